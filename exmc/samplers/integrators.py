"""Leapfrog integration of Hamiltonian dynamics with a diagonal or dense Euclidean metric.

Names: q position, p momentum, v = M^{-1} p velocity ("p_sharp" in Stan), grad
the gradient of the log density at q.  The log density is called through its
C address (see ``exmc/compiler/njit.py``).

Inlining and compile time (the sampler's first compile on a machine): Numba's IR-level
inlining (exmc's default, ``inline="always"``) copies the callee's IR at every call site,
and the sampler's loop had about a hundred such sites.  Small functions of plain arrays and
numbers (``dot``, ``copy``, ``velocity``, the U-turn checks, ...) are therefore compiled as
real functions (``inline="never"``): LLVM still inlines them into their callers, and the
draws are bit for bit the same.  Functions that take the workspace or settings tuples stay
inlined at IR level (a real call would update a reference count per array they hold), and
code that runs once per draw or rarer (step-size search, metric updates) is a real call.
"""
import math
from typing import NamedTuple

import numpy as np

from exmc.compiler.njit import call_model, njit

# Evaluation status codes.  1 (from generated code): a computed parameter is outside its
# domain, so the density is zero there; a property of the target, handled like a
# divergence.  2 and up: the evaluation itself failed (an injected fault for now); such
# steps are "recovered" and kept out of step-size adaptation.
STATUS_DOMAIN = 1
STATUS_FAILED = 2
STATUS_INJECTED = STATUS_FAILED  # a fault injected for testing (see ``fault_rate``)


class Metric(NamedTuple):
    """Inverse mass matrix M^{-1} (the posterior covariance estimate).

    ``inverse_diag`` (d,) is used when ``dense`` is False; otherwise
    ``inverse_dense`` (d, d) and ``momentum_factor`` (d, d), a matrix F with
    F F^T = M, so that F z with z ~ N(0, I) is a momentum draw.  Unused arrays
    are (1, 1) so one compiled sampler serves both kinds.
    """

    inverse_diag: np.ndarray
    inverse_dense: np.ndarray
    momentum_factor: np.ndarray
    dense: bool


# The dense metric's products are real calls, not inlined: a matrix product costs far more
# than a call, and inlining Numba's np.dot at each of the many sites that use a velocity
# was a large share of the sampler's first compile.  np.dot's ``out`` form writes BLAS's
# result in place (the same gemv call as ``out[:] = np.dot(...)``, without the copy).

@njit(inline="never")
def dense_momentum(factor, rng, p):
    np.dot(factor, rng.standard_normal(p.shape[0]), p)


@njit(inline="never")
def dense_product(matrix, x, out):
    np.dot(matrix, x, out)


@njit
def draw_momentum(metric, rng, p):
    """p ~ N(0, M), written into ``p``."""
    if metric.dense:
        dense_momentum(metric.momentum_factor, rng, p)
    else:
        for i in range(p.shape[0]):
            p[i] = rng.standard_normal() / math.sqrt(metric.inverse_diag[i])


@njit(inline="never")
def velocity(metric, p, v):
    """v = M^{-1} p, written into ``v``."""
    if metric.dense:
        dense_product(metric.inverse_dense, p, v)
    else:
        for i in range(p.shape[0]):
            v[i] = metric.inverse_diag[i] * p[i]


@njit(inline="never")
def copy(dst, src):
    """dst[:] = src for two vectors of one length.  A loop: an array assignment inlines
    Numba's broadcasting and overlap checks at every site, which costs compile time."""
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@njit(inline="never")
def dot(a, b):
    """Inner product of two vectors (a loop: cheaper than a BLAS call at these sizes)."""
    total = 0.0
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


@njit(inline="never")
def kinetic_energy(p, v):
    return 0.5 * dot(p, v)


@njit
def evaluate(address, data, q, grad, logp, rng, fault_rate):
    """Log density and gradient at q (into ``logp[0]``, ``grad``); returns the status."""
    status = call_model(address, q, data, grad, logp)
    if fault_rate > 0.0 and rng.random() < fault_rate:
        status = STATUS_INJECTED
    return status


@njit
def leapfrog(address, data, metric, q, p, grad, logp, v, step, rng, fault_rate):
    """One leapfrog step of size ``step`` (negative runs backward in time), in place.

    Returns the model's status; on return ``v`` holds the new velocity.
    """
    d = q.shape[0]
    for i in range(d):
        p[i] += 0.5 * step * grad[i]
    velocity(metric, p, v)
    for i in range(d):
        q[i] += step * v[i]
    status = evaluate(address, data, q, grad, logp, rng, fault_rate)
    for i in range(d):
        p[i] += 0.5 * step * grad[i]
    velocity(metric, p, v)
    return status


@njit(inline="never")
def hamiltonian(status, logp, p, v):
    """H = -log p(q) + K(p), infinite for a failed or non-finite evaluation."""
    if status != 0:
        return np.inf
    h = -logp + kinetic_energy(p, v)
    return np.inf if math.isnan(h) else h
