"""The No-U-Turn Sampler: one transition, and the compiled loop that runs blocks of draws with warmup.

``nuts_transition`` follows Stan's ``base_nuts::transition`` (multinomial
sampling, biased progressive sampling at the outer merge, generalised U-turn
criterion with the two extra checks across the seam).  ``run_block`` runs any
number of iterations, warmup included, entirely in compiled code; Python
only sees finished draws.  Everything is resumable between blocks: the chain's
whole state lives in a ``ChainState`` of arrays.

Divergence, a non-finite log density, a computed parameter outside its domain
(zero density, as Stan's rejection) or a failed evaluation end the subtree; the
draw is then flagged ``diverging`` and, for failed evaluations, ``recovered``.
Recovered draws do not feed step-size adaptation; divergent draws do not feed
metric estimation.
"""
import math
from typing import NamedTuple

import numpy as np

from exmc.compiler.njit import njit
from exmc.samplers.adaptation.gradient import (BACKGROUND, FOREGROUND, add_draw,
                                               metric_from_gradient, metric_from_windows,
                                               promote_background)
from exmc.samplers.adaptation.metric import update_metric, welford_add
from exmc.samplers.adaptation.stepsize import (final_step_size, init_step_size, learn_step_size,
                                               restart_dual_averaging)
from exmc.samplers.integrators import Metric, copy, draw_momentum, kinetic_energy, velocity
from exmc.samplers.trajectory import (build_subtree, log_sum_exp, make_workspace, no_u_turn,
                                      no_u_turn_across)

# Names follow ArviZ's sample_stats schema.  energy_error: H(draw) - H(start) of the
# transition; max_energy_error: the H(step) - H(start) of largest magnitude over every
# leapfrog step of the trajectory, sign kept (as PyMC; +inf once an evaluation fails).
STAT_NAMES = ("lp", "diverging", "energy", "tree_depth", "n_steps", "step_size",
              "acceptance_rate", "recovered", "warmup", "energy_error", "max_energy_error")
(LP, DIVERGING, ENERGY, TREE_DEPTH, N_STEPS, STEP_SIZE, ACCEPTANCE, RECOVERED, WARMUP,
 ENERGY_ERROR, MAX_ERROR) = range(11)


class Settings(NamedTuple):
    """Sampler settings (Stan's defaults; see ``exmc.sample`` for the user-facing names)."""

    num_warmup: int
    max_tree_depth: int
    target_accept: float
    max_energy_error: float
    gamma: float
    t0: float
    kappa: float
    fault_rate: float  # probability that an evaluation reports a failure (testing only)
    collect: np.ndarray  # (num_warmup,) bool: draw feeds the metric window
    window_end: np.ndarray  # (num_warmup,) bool: a metric window ends here
    gradient_metric: bool  # nutpie-style metric adaptation instead of Stan's windows
    early_end: int  # gradient metric: windows of 10 draws before this iteration
    metric_end: int  # gradient metric: the metric is frozen from this iteration on


class ChainState(NamedTuple):
    """Everything a chain needs to continue: position, tuning and adaptation accumulators.

    ``scalars`` holds [iteration, logp, step_size, mu, s_bar, x_bar, counter, window_count].
    """

    position: np.ndarray  # (d,) unconstrained
    grad: np.ndarray  # (d,)
    scalars: np.ndarray  # (8,)
    metric: Metric
    window_mean: np.ndarray  # (d,)
    window_m2: np.ndarray  # (d, d) dense, (1, d) diagonal
    gradient_windows: np.ndarray  # (2, 4, d) foreground / background draw and gradient moments


ITERATION, LOGP, STEP, DUAL = 0, 1, 2, slice(3, 7)
WINDOW_COUNT, FG_COUNT, BG_COUNT, GRAD_WINDOW, METRIC_CHANGED = 7, 8, 9, 10, 11
N_SCALARS = 12


def new_chain_state(position, grad, logp, dense):
    """Initial state at ``position``: unit metric, step size 1, iteration 0."""
    d = position.shape[0]
    big = (d, d) if dense else (1, 1)
    metric = Metric(np.ones(d), np.eye(*big), np.eye(*big), dense)
    scalars = np.zeros(N_SCALARS)
    scalars[LOGP], scalars[STEP] = logp, 1.0
    m2 = np.zeros((d, d)) if dense else np.zeros((1, d))
    return ChainState(np.array(position, dtype=float), np.array(grad, dtype=float), scalars,
                      metric, np.zeros(d), m2, np.zeros((2, 4, d)))


@njit
def nuts_transition(address, data, metric, ws, q, grad, logp, step, max_depth,
                    max_energy_error, rng, fault_rate, stats):
    """One NUTS transition from (q, grad, logp); the draw is written back into q and grad.

    Returns the draw's log density; fills ``stats`` (see ``STAT_NAMES``).
    """
    draw_momentum(metric, rng, ws.p)
    velocity(metric, ws.p, ws.v)
    H0 = -logp + kinetic_energy(ws.p, ws.v)
    for e in range(2):
        copy(ws.end_q[e], q)
        copy(ws.end_p[e], ws.p)
        copy(ws.end_grad[e], grad)
        copy(ws.end_v[e], ws.v)
        ws.end_logp[e] = logp
    copy(ws.sample_q, q)
    copy(ws.sample_p, ws.p)
    copy(ws.sample_grad, grad)
    ws.sample_logp[0] = logp
    copy(ws.rho, ws.p)
    top = ws.tree_q.shape[0] - 1
    log_weight = 0.0
    depth = 0
    n_leapfrog = 0
    sum_metro = 0.0
    divergent = False
    recovered = False
    max_error = 0.0
    while depth < max_depth:
        e = 1 if rng.random() > 0.5 else 0  # 1: extend forward in time, 0: backward
        copy(ws.q, ws.end_q[e])
        copy(ws.p, ws.end_p[e])
        copy(ws.grad, ws.end_grad[e])
        copy(ws.v, ws.end_v[e])
        ws.logp[0] = ws.end_logp[e]
        valid, n, metro, div, rec, error = build_subtree(
            address, data, metric, ws, depth, step if e == 1 else -step, H0, max_energy_error,
            rng, fault_rate)
        if abs(error) > abs(max_error):
            max_error = error
        n_leapfrog += n
        sum_metro += metro
        divergent = divergent or div
        recovered = recovered or rec
        if not valid:
            break
        depth += 1
        # Biased progressive sampling: favour the new subtree when it carries more weight.
        log_weight_new = ws.tree_log_weight[top]
        if log_weight_new > log_weight or rng.random() < math.exp(log_weight_new - log_weight):
            copy(ws.sample_q, ws.tree_q[top])
            copy(ws.sample_p, ws.tree_p[top])
            copy(ws.sample_grad, ws.tree_grad[top])
            ws.sample_logp[0] = ws.tree_logp[top]
        log_weight = log_sum_exp(log_weight, log_weight_new)
        # U-turn checks on the merged trajectory and across the seam; end e is still the
        # old trajectory's inner end, end 1 - e its outer end.
        outer = 1 - e
        persist = no_u_turn_across(ws.end_v[outer], ws.tree_v_begin[top], ws.rho,
                                   ws.tree_p_begin[top])
        persist = persist and no_u_turn_across(ws.end_v[e], ws.tree_v_end[top], ws.tree_rho[top],
                                               ws.end_p[e])
        for i in range(ws.rho.shape[0]):
            ws.rho[i] += ws.tree_rho[top, i]
        persist = persist and no_u_turn(ws.end_v[outer], ws.tree_v_end[top], ws.rho)
        copy(ws.end_q[e], ws.q)
        copy(ws.end_p[e], ws.p)
        copy(ws.end_grad[e], ws.grad)
        copy(ws.end_v[e], ws.v)
        ws.end_logp[e] = ws.logp[0]
        if not persist:
            break
    copy(q, ws.sample_q)
    copy(grad, ws.sample_grad)
    velocity(metric, ws.sample_p, ws.v)
    stats[LP] = ws.sample_logp[0]
    stats[DIVERGING] = 1.0 if divergent else 0.0
    stats[ENERGY] = -ws.sample_logp[0] + kinetic_energy(ws.sample_p, ws.v)
    stats[TREE_DEPTH] = depth
    stats[N_STEPS] = n_leapfrog
    stats[STEP_SIZE] = step
    stats[ACCEPTANCE] = sum_metro / max(n_leapfrog, 1)
    stats[RECOVERED] = 1.0 if recovered else 0.0
    stats[ENERGY_ERROR] = stats[ENERGY] - H0
    stats[MAX_ERROR] = max_error
    return ws.sample_logp[0]


@njit(nogil=True)  # releases the GIL: streaming and viewers run beside the sampler
def run_block(address, data, settings, state, rng, ws, num_iterations, draws, stats):
    """Run ``num_iterations`` iterations from ``state`` (mutated in place), warmup included.

    ``draws`` (n, d) receives unconstrained positions and ``stats`` (n, len(STAT_NAMES))
    the per-draw statistics.  Adaptation follows Stan by default: dual averaging on every
    warmup draw, metric windows per ``settings.collect`` / ``settings.window_end``, and
    after each window a fresh step-size search and dual-averaging restart.  With
    ``settings.gradient_metric`` the metric instead follows nutpie's gradient-based
    scheme (``adapt_gradient_metric``) while dual averaging runs throughout.
    """
    s = state.scalars
    dual = s[DUAL]
    q, grad, metric = state.position, state.grad, state.metric
    num_warmup = settings.num_warmup
    for k in range(num_iterations):
        it = int(s[ITERATION])
        warmup = it < num_warmup
        if it == 0 and num_warmup > 0:
            if settings.gradient_metric:
                metric_from_gradient(metric, grad)
                s[FG_COUNT] = add_draw(state.gradient_windows, FOREGROUND, s[FG_COUNT], q, grad)
                s[BG_COUNT] = add_draw(state.gradient_windows, BACKGROUND, s[BG_COUNT], q, grad)
                s[GRAD_WINDOW] = 80.0
            # As Stan: the first phase's dual averaging centres on 10x the initial step size,
            # chosen before the step-size search.
            restart_dual_averaging(dual, s[STEP])
            s[STEP] = init_step_size(address, data, metric, ws, q, grad, s[LOGP], s[STEP], rng,
                                     settings.fault_rate)
        if it == num_warmup and num_warmup > 0:
            s[STEP] = final_step_size(dual)
        moved_from = s[LOGP]
        s[LOGP] = nuts_transition(address, data, metric, ws, q, grad, s[LOGP], s[STEP],
                                  settings.max_tree_depth, settings.max_energy_error, rng,
                                  settings.fault_rate, stats[k])
        stats[k, WARMUP] = 1.0 if warmup else 0.0
        copy(draws[k], q)
        if warmup and settings.gradient_metric:
            if stats[k, RECOVERED] == 0.0:
                s[STEP] = learn_step_size(dual, stats[k, ACCEPTANCE], settings.target_accept,
                                          settings.gamma, settings.t0, settings.kappa)
            if it < settings.metric_end:
                adapt_gradient_metric(address, data, settings, state, rng, ws, it,
                                      s[LOGP] != moved_from)
        elif warmup:
            if stats[k, RECOVERED] == 0.0:
                s[STEP] = learn_step_size(dual, stats[k, ACCEPTANCE], settings.target_accept,
                                          settings.gamma, settings.t0, settings.kappa)
            if settings.collect[it] and stats[k, DIVERGING] == 0.0:
                s[WINDOW_COUNT] = welford_add(s[WINDOW_COUNT], state.window_mean, state.window_m2,
                                              q, metric.dense)
            if settings.window_end[it]:
                update_metric(metric, s[WINDOW_COUNT], state.window_mean, state.window_m2)
                s[WINDOW_COUNT] = 0.0
                s[STEP] = init_step_size(address, data, metric, ws, q, grad, s[LOGP], s[STEP],
                                         rng, settings.fault_rate)
                restart_dual_averaging(dual, s[STEP])
        s[ITERATION] = it + 1

@njit
def adapt_gradient_metric(address, data, settings, state, rng, ws, it, moved):
    """One warmup draw of nutpie-style metric adaptation (see adaptation/gradient.py)."""
    s, est, metric = state.scalars, state.gradient_windows, state.metric
    early = it < settings.early_end
    if it == settings.early_end:
        s[GRAD_WINDOW] = max(s[GRAD_WINDOW], s[BG_COUNT])
    if moved:
        s[FG_COUNT] = add_draw(est, FOREGROUND, s[FG_COUNT], state.position, state.grad)
        s[BG_COUNT] = add_draw(est, BACKGROUND, s[BG_COUNT], state.position, state.grad)
    switch_at = 10.0 if early else s[GRAD_WINDOW]
    next_window = 10.0 if early else max(s[GRAD_WINDOW] + 1.0, round(s[GRAD_WINDOW] * 1.5))
    late = next_window + it > settings.metric_end
    if s[BG_COUNT] >= switch_at and not late:
        promote_background(est)
        s[FG_COUNT], s[BG_COUNT] = s[BG_COUNT], 0.0
        if not early:
            s[GRAD_WINDOW] = next_window
    if metric_from_windows(metric, est, s[FG_COUNT]) and s[METRIC_CHANGED] == 0.0:
        s[METRIC_CHANGED] = 1.0
        s[STEP] = init_step_size(address, data, metric, ws, state.position, state.grad, s[LOGP],
                                 s[STEP], rng, settings.fault_rate)
        restart_dual_averaging(s[DUAL], s[STEP])


__all__ = ["STAT_NAMES", "Settings", "ChainState", "new_chain_state", "nuts_transition",
           "run_block", "make_workspace"]
