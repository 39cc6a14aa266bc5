"""Run one chain in this process: initial point, then blocks of compiled draws until done.

The compiled loop (``exmc.samplers.nuts.run_block``) runs a block of
iterations; between blocks Python reports progress.  Block boundaries do not
change the draws: the chain's whole state is carried from block to block.
"""
from __future__ import annotations

import time

import numpy as np

from exmc.samplers.adaptation.schedule import schedule_arrays
from exmc.samplers.nuts import STAT_NAMES, Settings, new_chain_state, run_block
from exmc.samplers.trajectory import make_workspace

INIT_TRIES = 100
MAX_BLOCK = 10_000  # iterations run (and sent by a worker) at once


def make_settings(num_warmup, max_tree_depth=10, target_accept=0.8, fault_rate=0.0,
                  gradient_metric=False):
    """NUTS settings with Stan's defaults for everything not named."""
    collect, window_end = schedule_arrays(num_warmup)
    return Settings(int(num_warmup), int(max_tree_depth), float(target_accept), 1000.0,
                    0.05, 10.0, 0.75, float(fault_rate), collect, window_end,
                    bool(gradient_metric), int(0.3 * num_warmup), num_warmup - int(0.15 * num_warmup))


def check_init(compiled, init):
    """``init`` as a dict, or ValueError naming the variable whose value is unknown, out of
    its support or of the wrong shape (before any chain starts, wherever chains run)."""
    pm = compiled.pointmap
    init = dict(init or {})
    unknown = [k for k in init if k not in pm.names]
    if unknown:
        raise ValueError(f"init has values for {', '.join(map(repr, unknown))}, which are not "
                         f"sampled variables; sampled variables: {', '.join(pm.names)}")
    pm.unconstrain(init, lambda slot: np.zeros(slot.shape))
    return init


def initial_point(compiled, init, rng):
    """(position, logp, grad): ``init`` values where given, uniform(-2, 2) unconstrained elsewhere.

    As Stan does, retries random starts until log density and gradient are finite.
    """
    pm = compiled.pointmap
    init = check_init(compiled, init)
    for attempt in range(INIT_TRIES):
        x = pm.unconstrain(init, lambda slot: rng.uniform(-2.0, 2.0, slot.shape))
        logp, grad, status = compiled.logp_and_grad(x)
        if status == 0 and np.isfinite(logp) and np.all(np.isfinite(grad)):
            return x, logp, grad
        if len(init) == len(pm.names):
            raise ValueError(f"the log density is not finite at init={init!r} "
                             f"(log density {logp}, status {status})")
    raise ValueError(f"no starting point with finite log density and gradient in "
                     f"{INIT_TRIES} tries; pass init= with plausible values")


class ChainResult:
    """Unconstrained draws (n, d) and statistics (n, len(STAT_NAMES)) of one chain."""

    def __init__(self, draws, stats, done, state):
        self.draws, self.stats, self.done, self.state = draws, stats, done, state
        self.interrupted = False  # stopped by Ctrl-C or an abort, not by a failure
        self.failure = None       # why the chain failed, if it did

    def stat(self, name):
        return self.stats[:self.done, STAT_NAMES.index(name)]


def run_chain(compiled, settings, state, rng, num_iterations, on_block=None,
              block_seconds=0.25):
    """Run ``num_iterations`` iterations of NUTS from ``state``; returns a ``ChainResult``.

    ``on_block(result)`` is called after each block.  On KeyboardInterrupt the draws
    made so far are kept: the result's ``done`` says how many.
    """
    dim = compiled.dim
    draws = np.zeros((num_iterations, dim))
    stats = np.zeros((num_iterations, len(STAT_NAMES)))
    ws = make_workspace(dim, settings.max_tree_depth)
    result = ChainResult(draws, stats, 0, state)
    block = 10
    try:
        while result.done < num_iterations:
            n = min(block, num_iterations - result.done)
            start = time.perf_counter()
            run_block(compiled.address, compiled.data, settings, state, rng, ws, n,
                      draws[result.done:result.done + n], stats[result.done:result.done + n])
            result.done += n
            elapsed = time.perf_counter() - start
            # Aim each block at block_seconds so progress stays live and overhead small.
            block = int(min(max(n * block_seconds / max(elapsed, 1e-6), 10), MAX_BLOCK))
            if on_block is not None:
                on_block(result)
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def load_kernels(compiled, settings, dense):
    """Compile, or load from Numba's cache, the sampler loop for this model's types.

    Called before timing sampling, so a run's ``compile_time`` is its time to first draw.
    """
    state = new_chain_state(np.zeros(compiled.dim), np.zeros(compiled.dim), 0.0, dense)
    draws = np.zeros((1, compiled.dim))
    stats = np.zeros((1, len(STAT_NAMES)))
    run_block(compiled.address, compiled.data, settings, state, np.random.default_rng(0),
              make_workspace(compiled.dim, settings.max_tree_depth), 0, draws[0:0], stats[0:0])
    compiled.constrain(np.zeros((1, compiled.dim)))


def start_state(compiled, init, rng, dense):
    position, logp, grad = initial_point(compiled, init, rng)
    return new_chain_state(position, grad, logp, dense)


def pathfinder_states(compiled, seed_sequence, chain_seeds, dense):
    """Chain states started by multi-path Pathfinder, and the Pathfinder run's summary.

    Each chain starts at its own Pathfinder draw (distinct draws while there are enough)
    with Pathfinder's importance-weighted posterior variances as its initial inverse mass
    matrix (diagonal, or the dense metric's diagonal); the chains' generators are those
    of ``chain_seeds``, so only the start differs from a default run.

    Returns ({chain: (ChainState, Generator)}, attrs for the InferenceData).
    """
    from exmc.samplers.pathfinder import multi_path

    # A start needs far fewer draws than a posterior sample: the paper's 5 ELBO draws per
    # iterate (Stan's 25 made Pathfinder cost as much as the warmup it saves) and 250 per path.
    result = multi_path(compiled, seed_sequence, num_draws=max(250, len(chain_seeds)),
                        num_elbo_draws=5)
    variance = result.variance
    if not np.all(np.isfinite(variance)) or np.any(variance <= 0):
        variance = np.ones(compiled.dim)  # a collapsed estimate: keep the unit metric
    _, first = np.unique(result.draws, axis=0, return_index=True)
    distinct = set(first.tolist())
    order = sorted(distinct) + [i for i in range(len(result.draws)) if i not in distinct]
    states = {}
    for chain, child in enumerate(chain_seeds):
        position = result.draws[order[chain % len(order)]]
        logp, grad, status = compiled.logp_and_grad(position)
        state = new_chain_state(position, grad, logp, dense)
        if dense:
            state.metric.inverse_dense[:, :] = np.diag(variance)
            state.metric.momentum_factor[:, :] = np.diag(1.0 / np.sqrt(variance))
        else:
            state.metric.inverse_diag[:] = variance
        states[chain] = (state, np.random.Generator(np.random.PCG64(child)))
    attrs = {"init": "pathfinder", "pathfinder_pareto_k": result.pareto_k,
             "pathfinder_evaluations": int(sum(p.evaluations for p in result.paths))}
    return states, attrs
