"""Gradient-based diagonal metric adaptation (nutpie's default, Seyboldt 2023 / nuts-rs).

The inverse mass matrix diagonal is sqrt(var(draws) / var(gradients)): for a
Gaussian target both ratios give the variance exactly, and the gradient
variance carries information from the first draws on.  Estimates come from a
foreground window used for the metric and a background window that replaces it
when it has enough draws (every 10 draws early in warmup, then in windows
growing by 1.5x); the metric is refreshed after every warmup draw.
"""
import math


from exmc.compiler.njit import njit

FOREGROUND, BACKGROUND = 0, 1
MEAN_Q, M2_Q, MEAN_G, M2_G = range(4)
LOWER, UPPER = 1e-20, 1e20


@njit
def add_draw(estimates, which, count, q, grad):
    """Welford update of window ``which`` with position q and gradient; returns the new count."""
    count += 1.0
    e = estimates[which]
    for i in range(q.shape[0]):
        dq = q[i] - e[MEAN_Q, i]
        e[MEAN_Q, i] += dq / count
        e[M2_Q, i] += dq * (q[i] - e[MEAN_Q, i])
        dg = grad[i] - e[MEAN_G, i]
        e[MEAN_G, i] += dg / count
        e[M2_G, i] += dg * (grad[i] - e[MEAN_G, i])
    return count


@njit
def promote_background(estimates):
    """The background window becomes the foreground; a new, empty background starts."""
    for row in range(estimates.shape[1]):  # loops: see adaptation/metric.py
        for i in range(estimates.shape[2]):
            estimates[FOREGROUND, row, i] = estimates[BACKGROUND, row, i]
            estimates[BACKGROUND, row, i] = 0.0


@njit
def metric_from_windows(metric, estimates, count):
    """Set M^{-1} = sqrt(var q / var grad) from the foreground window; False if too few draws."""
    if count < 3.0:
        return False
    e = estimates[FOREGROUND]
    for i in range(e.shape[1]):
        value = math.sqrt(e[M2_Q, i] / e[M2_G, i])
        if math.isfinite(value) and value > 0.0:
            metric.inverse_diag[i] = min(max(value, LOWER), UPPER)
    return True


@njit
def metric_from_gradient(metric, grad):
    """Initial M^{-1} = 1 / |grad| at the starting point (nutpie's start)."""
    for i in range(grad.shape[0]):
        value = 1.0 / abs(grad[i])
        metric.inverse_diag[i] = min(max(value, LOWER), UPPER) if math.isfinite(value) else 1.0
