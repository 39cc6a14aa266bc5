"""Profile mode: the cost of one compiled log-density + gradient evaluation, alone.

Evaluations go through the model's C entry point, the way the sampler makes them,
so ``seconds_per_gradient * evaluations / sampling_time`` is the share of sampling
time spent in the model; the rest is the sampler's own overhead.
"""
import time

import numpy as np

from exmc.compiler.njit import call_model, njit


@njit
def _evaluate_many(address, data, points, repeats, grad, logp):
    total = 0.0
    for _ in range(repeats):
        for k in range(points.shape[0]):
            call_model(address, points[k], data, grad, logp)
            total += logp[0]
    return total


def seconds_per_gradient(compiled, points, min_seconds=0.2):
    """Mean wall seconds of one evaluation at ``points`` (n, dim), repeated for >= min_seconds."""
    points = np.ascontiguousarray(np.atleast_2d(points), dtype=np.float64)
    grad, logp = np.zeros(compiled.dim), np.zeros(1)
    _evaluate_many(compiled.address, compiled.data, points, 1, grad, logp)  # compile / warm
    repeats = 1
    while True:
        start = time.perf_counter()
        _evaluate_many(compiled.address, compiled.data, points, repeats, grad, logp)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or repeats >= 1 << 24:
            return elapsed / (repeats * points.shape[0])
        repeats *= max(2, int(min_seconds / max(elapsed, 1e-9)))
