"""ChEES-HMC on a GPU: every chain a thread, and every chain the same number of leapfrog steps.

ChEES-HMC (Hoffman, Radul & Sountsov 2021, "An adaptive MCMC scheme for setting
trajectory lengths in Hamiltonian Monte Carlo", AISTATS) is plain HMC with a step
size and a trajectory length T shared by all chains.  Each iteration n jitters the
length, t_n = h_n T with h_n the base-2 Halton (van der Corput) number of n, and
every chain makes ceil(t_n / step) leapfrog steps: the same count in every lane of a
warp, so none idles (NUTS's per-chain trees leave lanes idle; benchmarks/gpu_divergence.py).

Warmup adapts, from statistics across the chains after every transition:

- the step size by dual averaging (Stan's constants) on the harmonic mean over the
  non-divergent chains of the Metropolis acceptance probabilities, aiming at
  ``target_accept`` (the paper aims the harmonic mean at 0.651; exmc keeps the user's
  knob, default 0.8: a smaller, safer step);
- log T by Adam (no momentum) ascending the ChEES criterion
  E[(|q' - E q'|^2 - |q - E q|^2)^2] / 4, whose gradient in log T per chain is
  t_n (|q' - mean q'|^2 - |q - mean q|^2) (q' - mean q') . v', v' = M^{-1} p' the
  proposal's velocity; chains are weighted by acceptance probability, divergent
  proposals left out; the update is clipped to +-0.35 and log T kept between one
  step and ``max_steps`` steps.  The length used after warmup is exp of a moving
  average of log T (weights n^-0.5), the step size dual averaging's averaged iterate;
- a diagonal metric, the variance of the positions over all chains and the draws of
  Stan's metric windows (regularised as Stan's), after which dual averaging restarts.

So warmup couples the chains: a chain's warmup (and so its draws) depends on the
others.  Its random numbers do not: each chain has its own counter-based stream
(``random.py``), and after warmup the chains are independent.

Kernels: ``transition`` (one thread per chain, a block of iterations per launch)
and ``adapt`` (one thread block, after each warmup transition: a reduction over the
chains, then thread 0 updates the shared parameters).  The host launches them
(``exmc/runtime/gpu.py``'s ``ChEESSampler``).
"""
import math

from numba import cuda, float64, uint64

from exmc.samplers.gpu.nuts import copy, dot, draw_momentum, hamiltonian, velocity
from exmc.samplers.gpu.random import uniform
from exmc.samplers.nuts import STAT_NAMES


def _column(name, required=True):
    """The stats column called ``name`` (by name: the table may gain columns); -1 if absent."""
    if name in STAT_NAMES:
        return STAT_NAMES.index(name)
    if required:
        raise RuntimeError(f"STAT_NAMES has no {name!r} column, which ChEES-HMC writes")
    return -1


COL_LP, COL_DIVERGING, COL_ENERGY, COL_TREE_DEPTH, COL_N_STEPS, COL_STEP_SIZE = (
    _column(n) for n in ("lp", "diverging", "energy", "tree_depth", "n_steps", "step_size"))
COL_ACCEPTANCE, COL_RECOVERED, COL_WARMUP = (
    _column(n) for n in ("acceptance_rate", "recovered", "warmup"))
COL_ENERGY_ERROR = _column("energy_error", required=False)
COL_MAX_ENERGY_ERROR = _column("max_energy_error", required=False)
N_STATS = len(STAT_NAMES)

# Shared parameters and adaptation state, one float array on the device (N_PARAMS,).
(STEP, TRAJECTORY, LOG_T, LOG_T_BAR, ADAM_V, ADAM_COUNT, MU, S_BAR, X_BAR, DA_COUNT,
 WINDOW_COUNT, HARMONIC_ACCEPT) = range(12)
N_PARAMS = 12
# Settings, one float array (N_SETTINGS,).
(NUM_WARMUP, TARGET_ACCEPT, MAX_ENERGY_ERROR, GAMMA, T0, KAPPA, FAULT_RATE, MAX_STEPS,
 LEARNING_RATE, BETA2, AVERAGE_DECAY) = range(11)
N_SETTINGS = 11
LEARNING_RATE_DEFAULT = 0.025  # Adam on log T, the paper's choice
BETA2_DEFAULT = 0.95  # Adam's second-moment decay; no first moment (beta1 = 0)
AVERAGE_DECAY_DEFAULT = 0.5  # the final log T averages the iterates with weights n^-0.5
LOG_UPDATE_CLIP = 0.35  # at most a factor ~1.4 in T per iteration
ADAPT_THREADS = 128  # most threads of the one-block adaptation kernel (launched with
# min(this, chains): a launch is a cost of its own on the simulator)
STATUS_FAILED = 2  # integrators.STATUS_FAILED: an evaluation that failed (here, injected)
# Per-chain statistics the transition leaves for the adaptation (chains, N_CHAIN_STATS).
CHAIN_ACCEPT, CHAIN_DIVERGENT = 0, 1
N_CHAIN_STATS = 2


@cuda.jit(device=True)
def halton(n):
    """The base-2 radical inverse of n + 1, in (0, 1): 1/2, 1/4, 3/4, 1/8, 5/8, ..."""
    index = n + 1
    value, scale = 0.0, 0.5
    for _ in range(64):  # an int64 has at most 63 bits
        if index == 0:
            break
        if index & 1:
            value += scale
        index >>= 1
        scale *= 0.5
    return value


@cuda.jit(device=True)
def num_steps(iteration, trajectory, step, max_steps):
    """Leapfrog steps of ``iteration``: ceil(h_n T / step), between 1 and ``max_steps``."""
    if not step > 0.0:
        return 1
    steps = halton(iteration) * trajectory / step
    if not steps < max_steps:  # also inf and NaN
        return int(max_steps)
    return max(int(math.ceil(steps)), 1)


def make_kernels(logp_grad, dim, scratch):
    """The ``transition`` and ``adapt`` kernels for one model (its ``logp_grad`` device function).

    Parameters
    ----------
    logp_grad : numba.cuda device function ``(x, data, grad, work) -> (logp, status)``
    dim, scratch : int
        The model's dimension and the size of its work buffer (``LOCAL_SCRATCH``).
    """

    @cuda.jit(device=True)
    def leapfrog(q, p, g, v, inverse_diag, step, data, work, rng, fault_rate):
        for i in range(dim):
            p[i] += 0.5 * step * g[i]
            q[i] += step * inverse_diag[i] * p[i]
        logp, status = logp_grad(q, data, g, work)
        if fault_rate > 0.0 and uniform(rng) < fault_rate:
            status = STATUS_FAILED
        for i in range(dim):
            p[i] += 0.5 * step * g[i]
        velocity(inverse_diag, p, v)
        return logp, status

    @cuda.jit
    def transition(position, gradient, logp, streams, inverse_diag, params, settings, data,
                   first, num_iterations, offset, draws, stats, proposal, proposal_v,
                   previous, chain_stats):
        """Iterations first .. first + num_iterations - 1 of every chain (one thread each).

        ``position``/``gradient``/``proposal``/``proposal_v``/``previous`` are (chains, dim),
        ``logp`` (chains,), ``streams`` (chains, 3) uint64; draw k goes to
        ``draws[chain, offset + k]`` and ``stats[chain, offset + k]``.  The last
        iteration's start, proposal, its velocity and acceptance are left for ``adapt``.
        """
        chain = cuda.grid(1)
        if chain >= position.shape[0]:
            return
        q0 = cuda.local.array(dim, float64)
        g0 = cuda.local.array(dim, float64)
        q = cuda.local.array(dim, float64)
        p = cuda.local.array(dim, float64)
        g = cuda.local.array(dim, float64)
        v = cuda.local.array(dim, float64)
        metric = cuda.local.array(dim, float64)
        work = cuda.local.array(scratch, float64)
        rng = cuda.local.array(3, uint64)
        for i in range(dim):
            q0[i] = position[chain, i]
            g0[i] = gradient[chain, i]
            metric[i] = inverse_diag[i]
        for i in range(3):
            rng[i] = streams[chain, i]
        logp0 = logp[chain]
        step, trajectory = params[STEP], params[TRAJECTORY]
        num_warmup = int(settings[NUM_WARMUP])
        for k in range(num_iterations):
            it = first + k
            n = num_steps(it, trajectory, step, settings[MAX_STEPS])
            draw_momentum(metric, rng, p)
            velocity(metric, p, v)
            h0 = -logp0 + 0.5 * dot(p, v)
            copy(q, q0)
            copy(g, g0)
            new_logp = logp0
            error, max_error = 0.0, 0.0
            divergent, recovered = False, False
            taken = 0
            for _ in range(n):
                new_logp, status = leapfrog(q, p, g, v, metric, step, data, work, rng,
                                            settings[FAULT_RATE])
                taken += 1
                error = hamiltonian(status, new_logp, p, v) - h0
                if not abs(error) <= abs(max_error):
                    max_error = error
                recovered = recovered or status >= STATUS_FAILED
                if not error <= settings[MAX_ENERGY_ERROR]:  # also inf and NaN
                    divergent = True
                    break  # rejected whatever comes next: the lane's only early exit
            accept_prob = 0.0 if divergent else min(1.0, math.exp(-error))
            accepted = uniform(rng) < accept_prob
            for i in range(dim):
                proposal[chain, i] = q[i]
                proposal_v[chain, i] = v[i]
                previous[chain, i] = q0[i]
            chain_stats[chain, CHAIN_ACCEPT] = accept_prob
            chain_stats[chain, CHAIN_DIVERGENT] = 1.0 if divergent else 0.0
            energy = h0
            if accepted:
                copy(q0, q)
                copy(g0, g)
                logp0 = new_logp
                energy = h0 + error
            row = stats[chain, offset + k]
            row[COL_LP] = logp0
            row[COL_DIVERGING] = 1.0 if divergent else 0.0
            row[COL_ENERGY] = energy
            row[COL_TREE_DEPTH] = 0.0  # no tree: HMC
            row[COL_N_STEPS] = taken
            row[COL_STEP_SIZE] = step
            row[COL_ACCEPTANCE] = accept_prob
            row[COL_RECOVERED] = 1.0 if recovered else 0.0
            row[COL_WARMUP] = 1.0 if it < num_warmup else 0.0
            if COL_ENERGY_ERROR >= 0:  # H(draw) - H(start): 0 when the proposal is rejected
                row[COL_ENERGY_ERROR] = error if accepted else 0.0
            if COL_MAX_ENERGY_ERROR >= 0:
                row[COL_MAX_ENERGY_ERROR] = max_error
            for i in range(dim):
                draws[chain, offset + k, i] = q0[i]
        for i in range(dim):
            position[chain, i] = q0[i]
            gradient[chain, i] = g0[i]
        logp[chain] = logp0
        for i in range(3):
            streams[chain, i] = rng[i]

    @cuda.jit
    def adapt(params, settings, inverse_diag, window_mean, window_m2, position, proposal,
              proposal_v, previous, chain_stats, means, iteration, collect, window_end):
        """After warmup iteration ``iteration``: update the shared step size, T and metric.

        One block of at most ADAPT_THREADS threads: each reduces a share of the dimensions (means,
        the metric window), then a share of the chains (ChEES gradient, acceptance); thread
        0 combines the shares and updates ``params``.  ``means`` is (2, dim) scratch.
        """
        if iteration < 0:  # a launch only to compile
            return
        lane, threads = cuda.threadIdx.x, cuda.blockDim.x
        chains = position.shape[0]
        part_wg = cuda.shared.array(ADAPT_THREADS, float64)
        part_w = cuda.shared.array(ADAPT_THREADS, float64)
        part_inv = cuda.shared.array(ADAPT_THREADS, float64)
        part_n = cuda.shared.array(ADAPT_THREADS, float64)
        # 1. Per dimension: the acceptance-weighted mean of the proposals, the mean of the
        #    starts, and the metric window (every chain's position is one more draw).
        count0 = params[WINDOW_COUNT]
        for d in range(lane, dim, threads):
            weighted, weight, start = 0.0, 0.0, 0.0
            for c in range(chains):
                start += previous[c, d]
                if chain_stats[c, CHAIN_DIVERGENT] == 0.0:
                    a = chain_stats[c, CHAIN_ACCEPT]
                    weighted += a * proposal[c, d]
                    weight += a
            means[0, d] = weighted / weight if weight > 0.0 else 0.0
            means[1, d] = start / chains
            if collect[iteration]:
                count = count0
                for c in range(chains):
                    count += 1.0
                    delta = position[c, d] - window_mean[d]
                    window_mean[d] += delta / count
                    window_m2[d] += (position[c, d] - window_mean[d]) * delta
        cuda.syncthreads()
        # 2. Per chain: its ChEES gradient term and acceptance, summed per thread.
        wg, w, inv, n = 0.0, 0.0, 0.0, 0.0
        for c in range(lane, chains, threads):
            if chain_stats[c, CHAIN_DIVERGENT] == 0.0:
                a = chain_stats[c, CHAIN_ACCEPT]
                spread_new, spread_old, along = 0.0, 0.0, 0.0
                for d in range(dim):
                    centred = proposal[c, d] - means[0, d]
                    spread_new += centred * centred
                    spread_old += (previous[c, d] - means[1, d]) ** 2
                    along += centred * proposal_v[c, d]
                term = (spread_new - spread_old) * along
                if math.isfinite(term):
                    wg += a * term
                    w += a
                n += 1.0
                inv += 1.0 / a if a > 0.0 else math.inf
        part_wg[lane], part_w[lane], part_inv[lane], part_n[lane] = wg, w, inv, n
        cuda.syncthreads()
        if lane != 0:
            return
        # 3. Thread 0: combine, then update step size, T and (at a window's end) the metric.
        for t in range(1, threads):
            wg += part_wg[t]
            w += part_w[t]
            inv += part_inv[t]
            n += part_n[t]
        if collect[iteration]:
            params[WINDOW_COUNT] = count0 + chains
        # Harmonic mean of the non-divergent chains' acceptance probabilities (as BlackJAX;
        # one divergence among thousands of chains would otherwise pin it at 0); none: 0.
        harmonic = n / inv if n > 0.0 and math.isfinite(inv) and inv > 0.0 else 0.0
        params[HARMONIC_ACCEPT] = harmonic
        trajectory_used = params[TRAJECTORY]
        params[DA_COUNT] += 1.0
        m = params[DA_COUNT]
        eta = 1.0 / (m + settings[T0])
        params[S_BAR] = (1.0 - eta) * params[S_BAR] + eta * (settings[TARGET_ACCEPT] - harmonic)
        x = params[MU] - params[S_BAR] * math.sqrt(m) / settings[GAMMA]
        x_eta = m ** (-settings[KAPPA])
        params[X_BAR] = (1.0 - x_eta) * params[X_BAR] + x_eta * x
        step = math.exp(x)
        # Adam without momentum, ascending ChEES in log T.
        if w > 0.0:
            grad = halton(iteration) * trajectory_used * wg / w
            params[ADAM_COUNT] += 1.0
            beta2 = settings[BETA2]
            params[ADAM_V] = beta2 * params[ADAM_V] + (1.0 - beta2) * grad * grad
            v_hat = params[ADAM_V] / (1.0 - beta2 ** params[ADAM_COUNT])
            update = settings[LEARNING_RATE] * grad / (math.sqrt(v_hat) + 1e-12)
            params[LOG_T] += min(max(update, -LOG_UPDATE_CLIP), LOG_UPDATE_CLIP)
        log_low, log_high = math.log(step), math.log(settings[MAX_STEPS] * step)
        params[LOG_T] = min(max(params[LOG_T], log_low), log_high)
        weight = (iteration + 1.0) ** (-settings[AVERAGE_DECAY])
        params[LOG_T_BAR] = (1.0 - weight) * params[LOG_T_BAR] + weight * params[LOG_T]
        if window_end[iteration]:
            count = params[WINDOW_COUNT]
            ok = count >= 3.0
            for d in range(dim):
                ok = ok and math.isfinite(window_m2[d])
            if ok:  # Stan's regularised estimate
                shrink, ridge = count / (count + 5.0), 1e-3 * 5.0 / (count + 5.0)
                for d in range(dim):
                    inverse_diag[d] = shrink * window_m2[d] / (count - 1.0) + ridge
            for d in range(dim):
                window_mean[d] = 0.0
                window_m2[d] = 0.0
            params[WINDOW_COUNT] = 0.0
            # Restart dual averaging near the step size reached, as Stan does.
            params[MU] = math.log(10.0 * step)
            params[S_BAR] = 0.0
            params[X_BAR] = 0.0
            params[DA_COUNT] = 0.0
        params[STEP] = step
        params[TRAJECTORY] = math.exp(params[LOG_T])
        if iteration + 1 == int(settings[NUM_WARMUP]):  # warmup's end: the averaged values
            final_step = math.exp(params[X_BAR]) if params[DA_COUNT] > 0.0 else step
            params[STEP] = final_step
            params[TRAJECTORY] = min(max(math.exp(params[LOG_T_BAR]), final_step),
                                     settings[MAX_STEPS] * final_step)

    return transition, adapt


def initial_params(step_size=1.0):
    """The shared parameters before warmup: T one step, dual averaging centred on 10 x step."""
    import numpy as np

    params = np.zeros(N_PARAMS)
    params[STEP] = step_size
    params[TRAJECTORY] = step_size
    params[LOG_T] = params[LOG_T_BAR] = math.log(step_size)
    params[MU] = math.log(10.0 * step_size)
    return params
