"""Metric adaptation: Welford estimates of the posterior (co)variance, regularised as Stan does.

Stan's ``welford_var_estimator.hpp`` / ``var_adaptation.hpp``: after a window
of n draws, M^{-1} = n / (n + 5) * var + 1e-3 * 5 / (n + 5) (times the identity
for the dense version).
"""
import numpy as np

from exmc.compiler.njit import njit


@njit
def welford_add(count, mean, m2, q, dense):
    """Add draw ``q`` to the running mean and second moment; returns the new count.

    ``m2`` is (d, d) for a dense metric and (1, d) for a diagonal one (always 2-d so
    one compiled function serves both).
    """
    count += 1.0
    delta = q - mean
    mean += delta / count
    if dense:
        m2 += np.outer(q - mean, delta)
    else:
        m2[0] += (q - mean) * delta
    return count


@njit
def update_metric(metric, count, mean, m2):
    """Set the metric from the window's estimate (regularised) and clear the accumulators.

    Returns False, leaving the metric as it was, if the window is too short or the
    estimate is not finite.
    """
    ok = count >= 3.0 and np.all(np.isfinite(m2))
    if ok:
        n = count
        shrink, ridge = n / (n + 5.0), 1e-3 * 5.0 / (n + 5.0)
        if metric.dense:
            cov = shrink * m2 / (n - 1.0)
            for i in range(cov.shape[0]):
                cov[i, i] += ridge
            metric.inverse_dense[:, :] = cov
            # M = cov^{-1}; momentum p = L^{-T} z with cov = L L^T has covariance M.
            lower = np.linalg.cholesky(cov)
            metric.momentum_factor[:, :] = np.linalg.inv(lower).T
        else:
            metric.inverse_diag[:] = shrink * m2[0] / (n - 1.0) + ridge
    mean[:] = 0.0
    m2[:] = 0.0
    return ok
