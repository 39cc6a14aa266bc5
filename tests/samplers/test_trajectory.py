"""NUTS trajectories: the U-turn criterion, hand-computed subtrees, Stan's recursion recomputed.

``Reference`` below is Stan's recursive ``build_tree`` / ``transition``
(``src/stan/mcmc/hmc/nuts/base_nuts.hpp``) written afresh in NumPy, in terms
of the trajectory's geometry (old and new parts, inner and outer ends) rather
than the unrolled stack of ``exmc/samplers/trajectory.py``.  It consumes the
random stream in the same order (Stan's order), so the compiled sampler must
reproduce it draw for draw: same draws, depths, step counts, divergences.
"""
import math
from typing import NamedTuple

import numpy as np
import pytest

from exmc import Builder, Custom, Normal, StudentT, value
from exmc.compiler import compile_model
from exmc.samplers.integrators import Metric
from exmc.samplers.nuts import STAT_NAMES, nuts_transition
from exmc.samplers.trajectory import (build_subtree, log_sum_exp, make_workspace, no_u_turn,
                                      no_u_turn_across)

MAX_ENERGY_ERROR = 1000.0
STAT = {name: i for i, name in enumerate(STAT_NAMES)}


@pytest.fixture(scope="module")
def standard_normal():
    return compile_model(Builder().rv("x", Normal(0, 1)))


@pytest.fixture(scope="module")
def student_t():
    return compile_model(Builder().rv("x", StudentT(4.0, 1.0, 2.0, shape=3)))


@pytest.fixture(scope="module")
def quartic():
    """log p = -sum x^4: steep enough that a large step diverges."""
    return compile_model(Builder().rv("x", Custom(logp=-(value * value * value * value),
                                                  shape=3)))


def unit_metric(dim):
    return Metric(np.ones(dim), np.eye(1), np.eye(1), False)


def diagonal_metric(inverse_diag):
    return Metric(np.asarray(inverse_diag, dtype=float), np.eye(1), np.eye(1), False)


# --- the U-turn criterion and log-sum-exp on hand-computed vectors ------------------------

def test_no_u_turn_hand_cases():
    minus, plus = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert no_u_turn(minus, plus, np.array([1.0, 1.0]))  # both ends along rho
    assert not no_u_turn(minus, plus, np.array([1.0, -1.0]))  # plus . rho = -1
    assert not no_u_turn(minus, plus, np.array([-1.0, 1.0]))  # minus . rho = -1
    assert not no_u_turn(minus, plus, np.array([0.0, 1.0]))  # minus . rho = 0: not > 0
    assert not no_u_turn(minus, plus, np.array([1.0, 0.0]))  # plus . rho = 0


def test_no_u_turn_across_is_no_u_turn_of_the_sum():
    # rho alone passes, rho + extra does not (and the reverse).
    minus, plus = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    rho, extra = np.array([1.0, 1.0]), np.array([0.0, -2.0])
    assert no_u_turn(minus, plus, rho)
    assert not no_u_turn_across(minus, plus, rho, extra)
    assert no_u_turn_across(minus, plus, rho + extra, -extra)
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b, r, e = rng.normal(size=(4, 3))
        assert no_u_turn_across(a, b, r, e) == no_u_turn(a, b, r + e)


def test_log_sum_exp():
    assert log_sum_exp(0.0, 0.0) == pytest.approx(math.log(2.0))
    assert log_sum_exp(-np.inf, -1.5) == -1.5
    assert log_sum_exp(2.0, -np.inf) == 2.0
    assert log_sum_exp(1000.0, 1000.0) == pytest.approx(1000.0 + math.log(2.0))
    assert log_sum_exp(-3.0, 1.0) == pytest.approx(math.log(math.exp(-3.0) + math.exp(1.0)))


# --- hand-computed subtrees on a 1-d standard normal, unit metric -------------------------

def start_subtree(compiled, q, p, dim=1, max_depth=3):
    """Workspace holding integrator state (q, p) ready for build_subtree; returns (ws, H0)."""
    ws = make_workspace(dim, max_depth)
    logp, grad, _ = compiled.logp_and_grad(np.array(q, dtype=float))
    ws.q[:], ws.p[:], ws.grad[:], ws.v[:], ws.logp[0] = q, p, grad, p, logp
    return ws, -logp + 0.5 * float(np.dot(p, p))


def test_depth_one_subtree_by_hand(standard_normal):
    # From q = 0, p = 1 with step 1/2 (all values dyadic, so exact):
    #   step 1: p = 1 - 0 = 1 -> q = 1/2 -> p = 1 - 1/8 = 7/8
    #   step 2: p = 7/8 - 1/8 = 3/4 -> q = 1/2 + 3/8 = 7/8 -> p = 3/4 - 7/32 = 17/32
    ws, H0 = start_subtree(standard_normal, [0.0], [1.0])
    top = ws.tree_q.shape[0] - 1
    rng = np.random.default_rng(7)
    u = np.random.default_rng(7).random()  # the one uniform the merge will draw
    valid, n, metro, divergent, recovered, max_error = build_subtree(
        standard_normal.address, standard_normal.data, unit_metric(1), ws, 1, 0.5, H0,
        MAX_ENERGY_ERROR, rng, 0.0)
    assert (valid, n, divergent, recovered) == (True, 2, False, False)
    # H - H0 = (q^2 + p^2)/2 - 1/2: 1/128 after step 1, 49/2048 after step 2.
    w1, w2 = -1 / 128, -49 / 2048
    assert max_error == pytest.approx(49 / 2048, rel=1e-14)  # the larger change, sign kept
    assert metro == pytest.approx(math.exp(w1) + math.exp(w2), rel=1e-14)
    log_w = math.log(math.exp(w1) + math.exp(w2))
    assert ws.tree_log_weight[top] == pytest.approx(log_w, rel=1e-12)
    assert ws.q[0] == 7 / 8 and ws.p[0] == 17 / 32  # the integrator is at the forward end
    np.testing.assert_array_equal(ws.tree_rho[top], [7 / 8 + 17 / 32])
    np.testing.assert_array_equal(ws.tree_p_begin[top], [7 / 8])
    np.testing.assert_array_equal(ws.tree_p_end[top], [17 / 32])
    expected_q = 7 / 8 if u < math.exp(w2 - log_w) else 1 / 2
    assert ws.tree_q[top, 0] == expected_q


def test_depth_one_subtree_that_turns_is_invalid(standard_normal):
    # Step 1 from q = 0, p = 1: p goes 1 -> 1/2 at q = 1, then -> 0 -> -1/2 at q = 1.
    # rho = 1/2 - 1/2 = 0, so neither end points along rho: a U-turn.
    ws, H0 = start_subtree(standard_normal, [0.0], [1.0])
    valid, n, _, divergent, _, _ = build_subtree(
        standard_normal.address, standard_normal.data, unit_metric(1), ws, 1, 1.0, H0,
        MAX_ENERGY_ERROR, np.random.default_rng(0), 0.0)
    assert (valid, n, divergent) == (False, 2, False)
    assert ws.q[0] == 1.0 and ws.p[0] == -0.5


# --- Stan's recursion, recomputed --------------------------------------------------------

class Point(NamedTuple):
    q: np.ndarray
    p: np.ndarray
    v: np.ndarray  # M^{-1} p
    grad: np.ndarray
    logp: float
    status: int


class Tree(NamedTuple):
    valid: bool
    n: int
    sum_metro: float
    divergent: bool
    recovered: bool
    log_weight: float
    proposal: Point
    rho: np.ndarray
    first: Point  # the state nearest the tree's starting point
    last: Point  # the state farthest from it (where integration stopped)
    max_error: float  # H - H0 of largest magnitude over the tree's steps (PyMC's max_energy_error)


def add(a, b):
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def points_along(a_velocity, b_velocity, rho):
    return float(a_velocity @ rho) > 0 and float(b_velocity @ rho) > 0


class Reference:
    """Stan's recursive NUTS with a diagonal metric, in NumPy."""

    def __init__(self, compiled, inverse_diag, fault_rate=0.0):
        self.compiled, self.inverse_diag, self.fault_rate = compiled, inverse_diag, fault_rate

    def point(self, q, p, rng=None):
        logp, grad, status = self.compiled.logp_and_grad(q)
        if self.fault_rate > 0.0 and rng.random() < self.fault_rate:
            status = 2
        return Point(q, p, self.inverse_diag * p, grad, logp, status)

    def leapfrog(self, z, step, rng):
        p = z.p + 0.5 * step * z.grad
        q = z.q + step * (self.inverse_diag * p)
        z = self.point(q, p, rng)
        p = z.p + 0.5 * step * z.grad
        return z._replace(p=p, v=self.inverse_diag * p)

    @staticmethod
    def energy(z):
        if z.status != 0:
            return math.inf
        h = -z.logp + 0.5 * float(z.p @ z.v)
        return math.inf if math.isnan(h) else h

    def build_tree(self, z, depth, step, H0, rng):
        if depth == 0:
            z = self.leapfrog(z, step, rng)
            h = self.energy(z)
            divergent = h - H0 > MAX_ENERGY_ERROR
            return Tree(not divergent, 1, min(1.0, math.exp(H0 - h)), divergent, z.status != 0,
                        H0 - h, z, z.p, z, z, h - H0)
        inner = self.build_tree(z, depth - 1, step, H0, rng)
        if not inner.valid:
            return inner
        outer = self.build_tree(inner.last, depth - 1, step, H0, rng)
        n, metro = inner.n + outer.n, inner.sum_metro + outer.sum_metro
        max_error = max(inner.max_error, outer.max_error, key=abs)
        if not outer.valid:
            return outer._replace(n=n, sum_metro=metro, max_error=max_error)
        log_weight = add(inner.log_weight, outer.log_weight)
        proposal = inner.proposal
        if outer.log_weight > log_weight or rng.random() < math.exp(outer.log_weight - log_weight):
            proposal = outer.proposal
        rho = inner.rho + outer.rho
        valid = (points_along(inner.first.v, outer.last.v, rho)
                 and points_along(inner.first.v, outer.first.v, inner.rho + outer.first.p)
                 and points_along(inner.last.v, outer.last.v, outer.rho + inner.last.p))
        return Tree(valid, n, metro, False, False, log_weight, proposal, rho, inner.first,
                    outer.last, max_error)

    def transition(self, q, rng, step, max_depth):
        """One draw from q: returns (sample point, stats dict)."""
        p = np.array([rng.standard_normal() / math.sqrt(m) for m in self.inverse_diag])
        logp, grad, _ = self.compiled.logp_and_grad(q)
        start = Point(q, p, self.inverse_diag * p, grad, logp, 0)
        H0 = self.energy(start)
        ends = {+1: start, -1: start}  # forward and backward ends of the trajectory
        sample, rho, log_weight = start, p, 0.0
        depth = n = 0
        metro, divergent, recovered, max_error = 0.0, False, False, 0.0
        while depth < max_depth:
            direction = +1 if rng.random() > 0.5 else -1
            inner, outer = ends[direction], ends[-direction]  # of the old trajectory
            tree = self.build_tree(inner, depth, direction * step, H0, rng)
            n, metro = n + tree.n, metro + tree.sum_metro
            max_error = max(max_error, tree.max_error, key=abs)
            divergent, recovered = divergent or tree.divergent, recovered or tree.recovered
            if not tree.valid:
                break
            depth += 1
            if tree.log_weight > log_weight or rng.random() < math.exp(tree.log_weight
                                                                      - log_weight):
                sample = tree.proposal
            log_weight = add(log_weight, tree.log_weight)
            persist = (points_along(outer.v, tree.last.v, rho + tree.rho)
                       and points_along(outer.v, tree.first.v, rho + tree.first.p)
                       and points_along(inner.v, tree.last.v, tree.rho + inner.p))
            rho = rho + tree.rho
            ends[direction] = tree.last
            if not persist:
                break
        stats = dict(lp=sample.logp, diverging=float(divergent), energy=self.energy(sample),
                     tree_depth=depth, n_steps=n, step_size=step,
                     acceptance_rate=metro / max(n, 1), recovered=float(recovered),
                     energy_error=self.energy(sample) - H0, max_energy_error=max_error)
        return sample, stats


def compiled_transition(compiled, metric, ws, q, rng, step, max_depth, fault_rate=0.0):
    q = np.array(q, dtype=float)
    logp, grad, _ = compiled.logp_and_grad(q)
    stats = np.zeros(len(STAT_NAMES))
    nuts_transition(compiled.address, compiled.data, metric, ws, q, grad, logp, step, max_depth,
                    MAX_ENERGY_ERROR, rng, fault_rate, stats)
    return q, grad, stats


def assert_same_transitions(compiled, inverse_diag, step, max_depth, n, seed, start,
                            fault_rate=0.0):
    """Run n transitions both ways from the same states and random streams; return the stats."""
    metric = diagonal_metric(inverse_diag)
    reference = Reference(compiled, np.asarray(inverse_diag, dtype=float), fault_rate)
    ws = make_workspace(compiled.dim, max_depth)
    rng_compiled, rng_reference = np.random.default_rng(seed), np.random.default_rng(seed)
    q = np.array(start, dtype=float)
    seen = []
    for _ in range(n):
        got_q, got_grad, got = compiled_transition(compiled, metric, ws, q, rng_compiled, step,
                                                   max_depth, fault_rate)
        want, want_stats = reference.transition(q, rng_reference, step, max_depth)
        np.testing.assert_allclose(got_q, want.q, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got_grad, want.grad, rtol=1e-12, atol=1e-12)
        for name, expected in want_stats.items():
            if name in ("tree_depth", "n_steps", "diverging", "recovered"):
                assert got[STAT[name]] == expected, name
            else:
                assert got[STAT[name]] == pytest.approx(expected, rel=1e-12, abs=1e-12), name
        # Every candidate draw is one of the trajectory's steps (or the start, error 0).
        assert abs(got[STAT["max_energy_error"]]) >= abs(got[STAT["energy_error"]])
        seen.append(want_stats)
        q = got_q
    assert rng_compiled.random() == rng_reference.random()  # streams still in step
    return seen


def test_transitions_match_stan_recursion(student_t):
    seen = assert_same_transitions(student_t, [1.0, 2.0, 0.5], step=0.45, max_depth=10, n=200,
                                   seed=11, start=[0.5, -1.0, 3.0])
    depths = {s["tree_depth"] for s in seen}
    assert len(depths) >= 3  # a mix of tree sizes, so many merges were compared


def test_transitions_match_stan_recursion_with_divergences(quartic):
    seen = assert_same_transitions(quartic, [1.0, 1.0, 1.0], step=0.8, max_depth=10, n=200,
                                   seed=12, start=[0.2, -0.4, 0.1])
    divergent = sum(s["diverging"] for s in seen)
    assert 0 < divergent < len(seen)


def test_transitions_match_stan_recursion_at_max_depth(student_t):
    seen = assert_same_transitions(student_t, [1.0, 1.0, 1.0], step=0.02, max_depth=4, n=100,
                                   seed=13, start=[0.5, -1.0, 3.0])
    assert any(s["tree_depth"] == 4 for s in seen)


def test_transitions_match_stan_recursion_with_failed_evaluations(student_t):
    seen = assert_same_transitions(student_t, [1.0, 2.0, 0.5], step=0.45, max_depth=10, n=200,
                                   seed=14, start=[0.5, -1.0, 3.0], fault_rate=0.05)
    assert any(s["recovered"] for s in seen)


@pytest.mark.parametrize("depth", range(6))
def test_subtrees_match_stan_recursion(depth, student_t):
    inverse_diag = np.array([1.0, 2.0, 0.5])
    metric = diagonal_metric(inverse_diag)
    reference = Reference(student_t, inverse_diag)
    top = depth + 1  # workspace made with max_depth = depth + 1
    rng_draw = np.random.default_rng(100 + depth)
    valid_count = invalid_count = 0
    for trial in range(30):
        q, p = rng_draw.normal(1.0, 2.0, 3), rng_draw.normal(size=3)
        step = 5.0 / 2 ** depth * (-1) ** trial  # trajectories of length 5: some turn
        ws, _ = start_subtree(student_t, q, p, dim=3, max_depth=depth + 1)
        ws.v[:] = inverse_diag * p
        start = reference.point(q, p)
        H0 = reference.energy(start)
        seed = 1000 * depth + trial
        got = build_subtree(student_t.address, student_t.data, metric, ws, depth, step, H0,
                            MAX_ENERGY_ERROR, np.random.default_rng(seed), 0.0)
        want = reference.build_tree(start, depth, step, H0, np.random.default_rng(seed))
        assert got[0] == want.valid and got[1] == want.n and got[3] == want.divergent
        assert got[2] == pytest.approx(want.sum_metro, rel=1e-12)
        assert got[5] == pytest.approx(want.max_error, rel=1e-12, abs=1e-12)
        if not want.valid:
            invalid_count += 1
            continue
        valid_count += 1
        np.testing.assert_allclose(ws.q, want.last.q, rtol=1e-12)
        np.testing.assert_allclose(ws.tree_q[top], want.proposal.q, rtol=1e-12)
        np.testing.assert_allclose(ws.tree_rho[top], want.rho, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ws.tree_p_begin[top], want.first.p, rtol=1e-12)
        np.testing.assert_allclose(ws.tree_v_begin[top], want.first.v, rtol=1e-12)
        np.testing.assert_allclose(ws.tree_p_end[top], want.last.p, rtol=1e-12)
        np.testing.assert_allclose(ws.tree_v_end[top], want.last.v, rtol=1e-12)
        assert ws.tree_log_weight[top] == pytest.approx(want.log_weight, rel=1e-12, abs=1e-12)
    assert valid_count > 0 and (depth == 0 or invalid_count > 0)


# --- whole transitions with known outcomes ------------------------------------------------

@pytest.mark.parametrize("max_depth", [1, 3, 6, 10])
def test_tiny_steps_hit_max_depth(max_depth, standard_normal):
    # From the mode q = 0 of a 1-d standard normal, p(t) = p0 cos t keeps its sign for
    # |t| < pi/2, so no U-turn before 2**10 - 1 steps of 1e-3 (time 1.023).  Stan's loop
    # builds subtrees of 1, 2, ..., 2**(max_depth - 1) steps: 2**max_depth - 1 in all,
    # and reports tree depth max_depth.
    ws = make_workspace(1, max_depth)
    for seed in range(5):
        _, _, stats = compiled_transition(standard_normal, unit_metric(1), ws, [0.0],
                                          np.random.default_rng(seed), 1e-3, max_depth)
        assert stats[STAT["n_steps"]] == 2 ** max_depth - 1
        assert stats[STAT["tree_depth"]] == max_depth
        assert stats[STAT["diverging"]] == 0.0
        assert stats[STAT["acceptance_rate"]] > 0.999


def test_divergence_on_the_first_step_keeps_the_start(quartic):
    # From x = 3 a step of 1 kicks p by -54 and lands near x = -50: log p falls by ~1e7.
    ws = make_workspace(3, 10)
    start = np.array([3.0, 3.0, 3.0])
    q, _, stats = compiled_transition(quartic, unit_metric(3), ws, start,
                                      np.random.default_rng(0), 1.0, 10)
    np.testing.assert_array_equal(q, start)
    assert stats[STAT["diverging"]] == 1.0 and stats[STAT["recovered"]] == 0.0
    assert stats[STAT["tree_depth"]] == 0 and stats[STAT["n_steps"]] == 1
    assert stats[STAT["acceptance_rate"]] < 1e-100


def test_failed_evaluation_on_the_first_step_keeps_the_start(student_t):
    ws = make_workspace(3, 10)
    start = np.array([0.5, -1.0, 3.0])
    q, _, stats = compiled_transition(student_t, unit_metric(3), ws, start,
                                      np.random.default_rng(0), 0.3, 10, fault_rate=1.0)
    np.testing.assert_array_equal(q, start)
    assert stats[STAT["diverging"]] == 1.0 and stats[STAT["recovered"]] == 1.0
    assert stats[STAT["n_steps"]] == 1 and stats[STAT["acceptance_rate"]] == 0.0


@pytest.mark.parametrize("seed", range(8))
def test_energy_errors_of_one_leapfrog_step_by_hand(seed, standard_normal):
    # max_depth 1: one step of size eps (sign drawn) from q = 0 of a 1-d standard normal.
    # q1 = eps p, p1 = p (1 - eps^2 / 2), so H1 - H0 = eps^4 p^2 / 8 exactly (in reals).
    # The step is kept as the draw when u < exp(-(H1 - H0)) (biased progressive sampling).
    eps = 1.5
    replay = np.random.default_rng(seed)
    p = replay.standard_normal()  # the momentum draw
    replay.random()  # the direction
    u = replay.random()  # the choice between start and step
    error = eps ** 4 * p ** 2 / 8
    kept = u < math.exp(-error)
    _, _, stats = compiled_transition(standard_normal, unit_metric(1), make_workspace(1, 1),
                                      [0.0], np.random.default_rng(seed), eps, 1)
    assert stats[STAT["n_steps"]] == 1
    assert stats[STAT["max_energy_error"]] == pytest.approx(error, rel=1e-12)
    assert stats[STAT["energy_error"]] == (pytest.approx(error, rel=1e-12) if kept else 0.0)
    h0 = 0.5 * p * p  # logp(0) = -log(2 pi) / 2 cancels in the difference
    energy = stats[STAT["energy"]] - 0.5 * math.log(2 * math.pi)
    assert stats[STAT["energy_error"]] == pytest.approx(energy - h0, rel=1e-9, abs=1e-12)


def test_max_energy_error_keeps_the_sign_of_a_divergence(quartic):
    # A huge step on a quartic diverges: the largest change is a positive one past the limit.
    _, _, stats = compiled_transition(quartic, unit_metric(3), make_workspace(3, 10),
                                      [0.5, -0.5, 0.5], np.random.default_rng(3), 5.0, 10)
    assert stats[STAT["diverging"]] == 1.0
    assert stats[STAT["max_energy_error"]] > MAX_ENERGY_ERROR
    assert stats[STAT["energy_error"]] < stats[STAT["max_energy_error"]]
