"""Leapfrog integration of Hamiltonian dynamics with a diagonal or dense Euclidean metric.

Names: q position, p momentum, v = M^{-1} p velocity ("p_sharp" in Stan), grad
the gradient of the log density at q.  The log density is called through its
C address (see ``exmc/compiler/njit.py``).
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


@njit
def draw_momentum(metric, rng, p):
    """p ~ N(0, M), written into ``p``."""
    d = p.shape[0]
    if metric.dense:
        z = rng.standard_normal(d)
        p[:] = np.dot(metric.momentum_factor, z)
    else:
        for i in range(d):
            p[i] = rng.standard_normal() / math.sqrt(metric.inverse_diag[i])


@njit
def velocity(metric, p, v):
    """v = M^{-1} p, written into ``v``."""
    if metric.dense:
        v[:] = np.dot(metric.inverse_dense, p)
    else:
        for i in range(p.shape[0]):
            v[i] = metric.inverse_diag[i] * p[i]


@njit
def dot(a, b):
    """Inner product of two vectors (a loop: cheaper than a BLAS call at these sizes)."""
    total = 0.0
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


@njit
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


@njit
def hamiltonian(status, logp, p, v):
    """H = -log p(q) + K(p), infinite for a failed or non-finite evaluation."""
    if status != 0:
        return np.inf
    h = -logp + kinetic_energy(p, v)
    return np.inf if math.isnan(h) else h
