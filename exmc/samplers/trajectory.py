"""NUTS trajectory building: iterative subtrees, multinomial merges and the generalised U-turn check.

Follows Stan's ``base_nuts.hpp`` (Betancourt 2017, "A Conceptual Introduction
to Hamiltonian Monte Carlo", appendix A): a subtree of depth j is 2**j
leapfrog steps; every pair of sibling subtrees is merged with a uniform
(progressive) multinomial choice of proposal and checked with the rho
criterion on the merged tree plus Stan's two extra checks that span the
seam between the siblings.  Stan recurses; here the recursion is unrolled
into a stack indexed by level, so Numba compiles plain loops.

Slot ``top = max_depth`` of every stacked array holds the subtree being
built; slot ``level < top`` holds a finished left sibling waiting for its
right sibling at that level.
"""
import math
from typing import NamedTuple

import numpy as np

from exmc.compiler.njit import njit
from exmc.samplers.integrators import STATUS_FAILED, dot, hamiltonian, leapfrog


class Workspace(NamedTuple):
    """Scratch arrays for one chain, allocated once per block of draws (L = max_depth + 1)."""

    q: np.ndarray  # (d,) integrator state
    p: np.ndarray
    grad: np.ndarray
    v: np.ndarray
    logp: np.ndarray  # (1,)
    end_q: np.ndarray  # (2, d) trajectory ends: 0 backward, 1 forward
    end_p: np.ndarray
    end_grad: np.ndarray
    end_v: np.ndarray
    end_logp: np.ndarray  # (2,)
    sample_q: np.ndarray  # (d,) the draw selected so far
    sample_p: np.ndarray
    sample_grad: np.ndarray
    sample_logp: np.ndarray  # (1,)
    rho: np.ndarray  # (d,) summed momentum of the whole trajectory
    tree_q: np.ndarray  # (L, d) proposal of each stacked subtree
    tree_p: np.ndarray
    tree_grad: np.ndarray
    tree_logp: np.ndarray  # (L,)
    tree_log_weight: np.ndarray  # (L,) log sum of exp(H0 - H) over the subtree
    tree_p_begin: np.ndarray  # (L, d) momentum / velocity at the subtree's first and last step
    tree_v_begin: np.ndarray
    tree_p_end: np.ndarray
    tree_v_end: np.ndarray
    tree_rho: np.ndarray  # (L, d)


def make_workspace(dim, max_depth):
    levels = max_depth + 1
    vec = lambda: np.zeros(dim)  # noqa: E731
    stack = lambda: np.zeros((levels, dim))  # noqa: E731
    return Workspace(vec(), vec(), vec(), vec(), np.zeros(1),
                     np.zeros((2, dim)), np.zeros((2, dim)), np.zeros((2, dim)), np.zeros((2, dim)),
                     np.zeros(2), vec(), vec(), vec(), np.zeros(1), vec(),
                     stack(), stack(), stack(), np.zeros(levels), np.zeros(levels),
                     stack(), stack(), stack(), stack(), stack())


@njit(inline="never")
def no_u_turn(v_minus, v_plus, rho):
    """Stan's compute_criterion: both ends' velocities still point along rho (no U-turn)."""
    return dot(v_plus, rho) > 0.0 and dot(v_minus, rho) > 0.0


@njit(inline="never")
def no_u_turn_across(v_minus, v_plus, rho, extra_p):
    """``no_u_turn`` on rho + extra_p, without forming the sum."""
    return (dot(v_plus, rho) + dot(v_plus, extra_p) > 0.0
            and dot(v_minus, rho) + dot(v_minus, extra_p) > 0.0)


@njit(inline="never")
def log_sum_exp(a, b):
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


@njit
def copy_subtree(ws, src, dst):
    ws.tree_logp[dst] = ws.tree_logp[src]
    ws.tree_log_weight[dst] = ws.tree_log_weight[src]
    for i in range(ws.tree_q.shape[1]):
        ws.tree_q[dst, i] = ws.tree_q[src, i]
        ws.tree_p[dst, i] = ws.tree_p[src, i]
        ws.tree_grad[dst, i] = ws.tree_grad[src, i]
        ws.tree_p_begin[dst, i] = ws.tree_p_begin[src, i]
        ws.tree_v_begin[dst, i] = ws.tree_v_begin[src, i]
        ws.tree_p_end[dst, i] = ws.tree_p_end[src, i]
        ws.tree_v_end[dst, i] = ws.tree_v_end[src, i]
        ws.tree_rho[dst, i] = ws.tree_rho[src, i]


@njit
def merge_subtrees(ws, left, top, rng):
    """Merge finished left sibling ``left`` with the right sibling in ``top``; True if no U-turn.

    The proposal moves to the left sibling's with probability w_left / (w_left + w_right)
    (uniform progressive sampling, Stan's build_tree).
    """
    log_w_left, log_w_right = ws.tree_log_weight[left], ws.tree_log_weight[top]
    log_w = log_sum_exp(log_w_left, log_w_right)
    if not log_w_right > log_w:
        if not rng.random() < math.exp(log_w_right - log_w):
            for i in range(ws.tree_q.shape[1]):
                ws.tree_q[top, i] = ws.tree_q[left, i]
                ws.tree_p[top, i] = ws.tree_p[left, i]
                ws.tree_grad[top, i] = ws.tree_grad[left, i]
            ws.tree_logp[top] = ws.tree_logp[left]
    # Extra checks across the seam: left subtree plus the right's first step, and
    # right subtree plus the left's last step.
    persist = no_u_turn_across(ws.tree_v_begin[left], ws.tree_v_begin[top], ws.tree_rho[left],
                               ws.tree_p_begin[top])
    persist = persist and no_u_turn_across(ws.tree_v_end[left], ws.tree_v_end[top],
                                           ws.tree_rho[top], ws.tree_p_end[left])
    for i in range(ws.tree_q.shape[1]):  # loops, not array assignments: see copy()
        ws.tree_rho[top, i] += ws.tree_rho[left, i]
        ws.tree_p_begin[top, i] = ws.tree_p_begin[left, i]
        ws.tree_v_begin[top, i] = ws.tree_v_begin[left, i]
    ws.tree_log_weight[top] = log_w
    return persist and no_u_turn(ws.tree_v_begin[top], ws.tree_v_end[top], ws.tree_rho[top])


@njit
def build_subtree(address, data, metric, ws, depth, step, H0, max_energy_error, rng, fault_rate):
    """Extend from the integrator state by a subtree of 2**depth steps of size ``step``.

    Returns (valid, n_leapfrog, sum_metropolis_prob, divergent, recovered, max_error),
    ``max_error`` the step's H - H0 of largest magnitude, sign kept (0 before any step).  On
    success the whole subtree is in slot ``top``; invalid means a divergence,
    a failed evaluation or a U-turn inside the subtree, and it must be rejected.
    """
    top = ws.tree_q.shape[0] - 1
    n_leapfrog = 0
    sum_metro = 0.0
    max_error = 0.0
    for k in range(1 << depth):
        status = leapfrog(address, data, metric, ws.q, ws.p, ws.grad, ws.logp, ws.v, step,
                          rng, fault_rate)
        n_leapfrog += 1
        h = hamiltonian(status, ws.logp[0], ws.p, ws.v)
        recovered = status >= STATUS_FAILED
        divergent = h - H0 > max_energy_error
        if abs(h - H0) > abs(max_error):
            max_error = h - H0
        sum_metro += 1.0 if H0 - h > 0.0 else math.exp(H0 - h)
        ws.tree_logp[top] = ws.logp[0]
        ws.tree_log_weight[top] = H0 - h
        for i in range(ws.q.shape[0]):
            p_i, v_i = ws.p[i], ws.v[i]
            ws.tree_q[top, i] = ws.q[i]
            ws.tree_p[top, i] = p_i
            ws.tree_grad[top, i] = ws.grad[i]
            ws.tree_p_begin[top, i] = p_i
            ws.tree_v_begin[top, i] = v_i
            ws.tree_p_end[top, i] = p_i
            ws.tree_v_end[top, i] = v_i
            ws.tree_rho[top, i] = p_i
        if divergent:
            return False, n_leapfrog, sum_metro, True, recovered, max_error
        level = 0
        while level < depth and (k >> level) & 1:
            if not merge_subtrees(ws, level, top, rng):
                return False, n_leapfrog, sum_metro, False, False, max_error
            level += 1
        if level < depth:
            copy_subtree(ws, top, level)
    return True, n_leapfrog, sum_metro, False, False, max_error
