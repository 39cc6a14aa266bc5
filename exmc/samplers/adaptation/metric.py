"""Metric adaptation: Welford estimates of the posterior (co)variance, regularised as Stan does.

Stan's ``welford_var_estimator.hpp`` / ``var_adaptation.hpp``: after a window
of n draws, M^{-1} = n / (n + 5) * var + 1e-3 * 5 / (n + 5) (times the identity
for the dense version).
"""
import math

import numpy as np

from exmc.compiler.njit import njit


# Plain loops rather than array expressions: each array expression or slice assignment
# brings Numba's broadcasting code (and its error messages) into the sampler's first
# compile.  The arithmetic is element for element the same.

@njit(inline="never")
def welford_add(count, mean, m2, q, dense):
    """Add draw ``q`` to the running mean and second moment; returns the new count.

    ``m2`` is (d, d) for a dense metric and (1, d) for a diagonal one (always 2-d so
    one compiled function serves both).
    """
    count += 1.0
    d = q.shape[0]
    delta = np.empty(d)
    for i in range(d):
        delta[i] = q[i] - mean[i]
        mean[i] += delta[i] / count
    if dense:
        for i in range(d):
            for j in range(d):
                m2[i, j] += (q[i] - mean[i]) * delta[j]
    else:
        for i in range(d):
            m2[0, i] += (q[i] - mean[i]) * delta[i]
    return count


@njit(inline="never")
def update_metric(metric, count, mean, m2):
    """Set the metric from the window's estimate (regularised) and clear the accumulators.

    Returns False, leaving the metric as it was, if the window is too short or the
    estimate is not finite.
    """
    ok = count >= 3.0
    for i in range(m2.shape[0]):
        for j in range(m2.shape[1]):
            ok = ok and math.isfinite(m2[i, j])
    if ok:
        n = count
        shrink, ridge = n / (n + 5.0), 1e-3 * 5.0 / (n + 5.0)
        if metric.dense:
            d = m2.shape[0]
            cov = metric.inverse_dense
            for i in range(d):
                for j in range(d):
                    cov[i, j] = shrink * m2[i, j] / (n - 1.0)
                cov[i, i] += ridge
            # M = cov^{-1}; momentum p = L^{-T} z with cov = L L^T has covariance M.
            inverse_lower = np.linalg.inv(np.linalg.cholesky(cov))
            for i in range(d):
                for j in range(d):
                    metric.momentum_factor[i, j] = inverse_lower[j, i]
        else:
            for i in range(m2.shape[1]):
                metric.inverse_diag[i] = shrink * m2[0, i] / (n - 1.0) + ridge
    for i in range(mean.shape[0]):
        mean[i] = 0.0
    for i in range(m2.shape[0]):
        for j in range(m2.shape[1]):
            m2[i, j] = 0.0
    return ok
