"""NUTS with Stan's warmup as one CUDA kernel: one thread per chain, a launch per block of draws.

The algorithm is the CPU sampler's (``exmc/samplers/nuts.py``, ``trajectory.py``,
``integrators.py``, ``adaptation/``) line for line: multinomial NUTS with biased
progressive sampling at the outer merge, the generalised U-turn check with
Stan's two extra checks across the seam, the subtree recursion unrolled into a
stack of ``max_tree_depth + 1`` levels, dual averaging on every warmup draw,
and Stan's windowed diagonal metric with a step-size search and a restart of
dual averaging after each window.  Device code cannot allocate or recurse, so
every scratch array is a fixed-size thread-local array whose size (the model's
dimension, the tree depth) is a constant of the compiled kernel.

A chain's state lives in device arrays between launches (``DeviceChains``
describes them); random numbers come from ``random.py``'s counter-based
streams, so a chain's draws depend only on its seed, never on how many chains
run beside it or how its draws are split into launches.

Divergence, a non-finite log density or gradient, a computed parameter outside
its domain, and a failed evaluation end the subtree, as on the CPU: the draw is
flagged ``diverging`` (and ``recovered`` for failed evaluations) and the chain
goes on.

Names inside kernels (the CPU sampler's): q position, p momentum, v = M^{-1} p
velocity, g gradient of the log density, rho summed momentum.
"""
import math

from numba import cuda, float64, uint64

from exmc.samplers.gpu.random import standard_normal, uniform
from exmc.samplers.nuts import (ACCEPTANCE, DIVERGING, ENERGY, ENERGY_ERROR, LP, MAX_ERROR,
                                N_STEPS, RECOVERED, STAT_NAMES, STEP_SIZE, TREE_DEPTH, WARMUP)

# Rows of a chain's vector scratch (VECTORS, dim).
Q, P, G, V, SAMPLE_Q, SAMPLE_P, SAMPLE_G, RHO, INVERSE_DIAG = range(9)
VECTORS = 9
# Rows of each trajectory end (2, END_ROWS, dim): 0 backward, 1 forward.
END_Q, END_P, END_G, END_V = range(4)
END_ROWS = 4
# Rows of each stacked subtree (levels, TREE_ROWS, dim) and its scalars (levels, 2).
TREE_Q, TREE_P, TREE_G, P_BEGIN, V_BEGIN, P_END, V_END, TREE_RHO = range(8)
TREE_ROWS = 8
TREE_LOGP, TREE_LOG_WEIGHT = 0, 1
# Per-chain scalars kept between launches (chains, N_SCALARS).
ITERATION, LOGP, STEP, MU, S_BAR, X_BAR, COUNTER, WINDOW_COUNT = range(8)
N_SCALARS = 8
# Settings passed to the kernel as one float array.
(NUM_WARMUP, TARGET_ACCEPT, MAX_ENERGY_ERROR, GAMMA, T0, KAPPA,
 FAULT_RATE) = range(7)
N_SETTINGS = 7
N_STATS = len(STAT_NAMES)
STATUS_FAILED = 2  # integrators.STATUS_FAILED: an evaluation that failed (here, injected)


# ---- vector helpers -----------------------------------------------------------------------

@cuda.jit(device=True)
def dot(a, b):
    total = 0.0
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


@cuda.jit(device=True)
def copy(dst, src):
    for i in range(dst.shape[0]):
        dst[i] = src[i]


@cuda.jit(device=True)
def velocity(inverse_diag, p, v):
    for i in range(p.shape[0]):
        v[i] = inverse_diag[i] * p[i]


@cuda.jit(device=True)
def draw_momentum(inverse_diag, rng, p):
    for i in range(p.shape[0]):
        p[i] = standard_normal(rng) / math.sqrt(inverse_diag[i])


@cuda.jit(device=True)
def hamiltonian(status, logp, p, v):
    """-log p(q) + K(p); infinite for a failed or non-finite evaluation."""
    if status != 0:
        return math.inf
    h = -logp + 0.5 * dot(p, v)
    return math.inf if math.isnan(h) else h


# ---- trajectory: U-turn checks and merges (trajectory.py) ---------------------------------

@cuda.jit(device=True)
def no_u_turn(v_minus, v_plus, rho):
    return dot(v_plus, rho) > 0.0 and dot(v_minus, rho) > 0.0


@cuda.jit(device=True)
def no_u_turn_across(v_minus, v_plus, rho, extra_p):
    """``no_u_turn`` on rho + extra_p, without forming the sum."""
    return (dot(v_plus, rho) + dot(v_plus, extra_p) > 0.0
            and dot(v_minus, rho) + dot(v_minus, extra_p) > 0.0)


@cuda.jit(device=True)
def log_sum_exp(a, b):
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


@cuda.jit(device=True)
def copy_subtree(tree, tree_s, src, dst):
    tree_s[dst, TREE_LOGP] = tree_s[src, TREE_LOGP]
    tree_s[dst, TREE_LOG_WEIGHT] = tree_s[src, TREE_LOG_WEIGHT]
    for row in range(TREE_ROWS):
        copy(tree[dst, row], tree[src, row])


@cuda.jit(device=True)
def merge_subtrees(tree, tree_s, left, top, rng):
    """Merge finished left sibling ``left`` into the right sibling in ``top``; True if no U-turn."""
    log_w_left, log_w_right = tree_s[left, TREE_LOG_WEIGHT], tree_s[top, TREE_LOG_WEIGHT]
    log_w = log_sum_exp(log_w_left, log_w_right)
    if not log_w_right > log_w:
        if not uniform(rng) < math.exp(log_w_right - log_w):
            copy(tree[top, TREE_Q], tree[left, TREE_Q])
            copy(tree[top, TREE_P], tree[left, TREE_P])
            copy(tree[top, TREE_G], tree[left, TREE_G])
            tree_s[top, TREE_LOGP] = tree_s[left, TREE_LOGP]
    persist = no_u_turn_across(tree[left, V_BEGIN], tree[top, V_BEGIN], tree[left, TREE_RHO],
                               tree[top, P_BEGIN])
    persist = persist and no_u_turn_across(tree[left, V_END], tree[top, V_END],
                                           tree[top, TREE_RHO], tree[left, P_END])
    for i in range(tree.shape[2]):
        tree[top, TREE_RHO, i] += tree[left, TREE_RHO, i]
    copy(tree[top, P_BEGIN], tree[left, P_BEGIN])
    copy(tree[top, V_BEGIN], tree[left, V_BEGIN])
    tree_s[top, TREE_LOG_WEIGHT] = log_w
    return persist and no_u_turn(tree[top, V_BEGIN], tree[top, V_END], tree[top, TREE_RHO])


# ---- adaptation (adaptation/stepsize.py, adaptation/metric.py) ----------------------------

@cuda.jit(device=True)
def restart_dual_averaging(s, step_size):
    s[MU] = math.log(10.0 * step_size)
    s[S_BAR] = 0.0
    s[X_BAR] = 0.0
    s[COUNTER] = 0.0


@cuda.jit(device=True)
def learn_step_size(s, accept_stat, settings):
    s[COUNTER] += 1.0
    n = s[COUNTER]
    accept_stat = min(1.0, accept_stat)
    eta = 1.0 / (n + settings[T0])
    s[S_BAR] = (1.0 - eta) * s[S_BAR] + eta * (settings[TARGET_ACCEPT] - accept_stat)
    x = s[MU] - s[S_BAR] * math.sqrt(n) / settings[GAMMA]
    x_eta = n ** (-settings[KAPPA])
    s[X_BAR] = (1.0 - x_eta) * s[X_BAR] + x_eta * x
    return math.exp(x)


@cuda.jit(device=True)
def welford_add(count, mean, m2, q):
    count += 1.0
    for i in range(q.shape[0]):
        delta = q[i] - mean[i]
        mean[i] += delta / count
        m2[i] += (q[i] - mean[i]) * delta
    return count


@cuda.jit(device=True)
def update_metric(inverse_diag, count, mean, m2):
    """Stan's regularised diagonal estimate from the window; clears the accumulators."""
    ok = count >= 3.0
    for i in range(m2.shape[0]):
        ok = ok and math.isfinite(m2[i])
    if ok:
        shrink, ridge = count / (count + 5.0), 1e-3 * 5.0 / (count + 5.0)
        for i in range(m2.shape[0]):
            inverse_diag[i] = shrink * m2[i] / (count - 1.0) + ridge
    for i in range(m2.shape[0]):
        mean[i] = 0.0
        m2[i] = 0.0


# ---- the model-dependent kernel -----------------------------------------------------------

def make_kernel(logp_grad, dim, scratch, max_tree_depth):
    """The ``run_block`` kernel for one model (its ``logp_grad`` device function) and tree depth.

    Parameters
    ----------
    logp_grad : numba.cuda device function ``(x, data, grad, work) -> (logp, status)``
        The model's body (``CudaModel.module.logp_grad``).
    dim, scratch : int
        The model's dimension and the size of its work buffer (``LOCAL_SCRATCH``).
    max_tree_depth : int
        Fixes the size of the subtree stack (``max_tree_depth + 1`` levels).
    """
    levels = max_tree_depth + 1
    top = max_tree_depth

    @cuda.jit(device=True)
    def evaluate(q, data, g, work, rng, fault_rate):
        logp, status = logp_grad(q, data, g, work)
        if fault_rate > 0.0 and uniform(rng) < fault_rate:
            status = STATUS_FAILED
        return logp, status

    @cuda.jit(device=True)
    def leapfrog(q, p, g, v, inverse_diag, step, data, work, rng, fault_rate):
        """One leapfrog step in place; returns (logp, status) at the new q, v updated."""
        for i in range(dim):
            p[i] += 0.5 * step * g[i]
            q[i] += step * inverse_diag[i] * p[i]
        logp, status = evaluate(q, data, g, work, rng, fault_rate)
        for i in range(dim):
            p[i] += 0.5 * step * g[i]
        velocity(inverse_diag, p, v)
        return logp, status

    @cuda.jit(device=True)
    def build_subtree(vec, tree, tree_s, logp, depth, step, H0, data, work, rng, settings):
        """Extend from vec[Q..V] by 2**depth steps.

        Returns (valid, logp, n, sum_metro, divergent, recovered, max_error), ``max_error``
        the step's H - H0 of largest magnitude, sign kept.
        """
        n_leapfrog = 0
        sum_metro = 0.0
        max_error = 0.0
        for k in range(1 << depth):
            logp, status = leapfrog(vec[Q], vec[P], vec[G], vec[V], vec[INVERSE_DIAG], step,
                                    data, work, rng, settings[FAULT_RATE])
            n_leapfrog += 1
            h = hamiltonian(status, logp, vec[P], vec[V])
            recovered = status >= STATUS_FAILED
            divergent = h - H0 > settings[MAX_ENERGY_ERROR]
            if abs(h - H0) > abs(max_error):
                max_error = h - H0
            sum_metro += 1.0 if H0 - h > 0.0 else math.exp(H0 - h)
            tree_s[top, TREE_LOGP] = logp
            tree_s[top, TREE_LOG_WEIGHT] = H0 - h
            for i in range(dim):
                p_i, v_i = vec[P, i], vec[V, i]
                tree[top, TREE_Q, i] = vec[Q, i]
                tree[top, TREE_P, i] = p_i
                tree[top, TREE_G, i] = vec[G, i]
                tree[top, P_BEGIN, i] = p_i
                tree[top, V_BEGIN, i] = v_i
                tree[top, P_END, i] = p_i
                tree[top, V_END, i] = v_i
                tree[top, TREE_RHO, i] = p_i
            if divergent:
                return False, logp, n_leapfrog, sum_metro, True, recovered, max_error
            level = 0
            while level < depth and (k >> level) & 1:
                if not merge_subtrees(tree, tree_s, level, top, rng):
                    return False, logp, n_leapfrog, sum_metro, False, False, max_error
                level += 1
            if level < depth:
                copy_subtree(tree, tree_s, top, level)
        return True, logp, n_leapfrog, sum_metro, False, False, max_error

    @cuda.jit(device=True)
    def transition(vec, ends, end_logp, tree, tree_s, logp, step, data, work, rng, settings,
                   stats):
        """One NUTS transition from (vec[Q], vec[G], logp); the draw replaces them.

        Returns the draw's log density and fills ``stats`` (``STAT_NAMES``).
        """
        draw_momentum(vec[INVERSE_DIAG], rng, vec[P])
        velocity(vec[INVERSE_DIAG], vec[P], vec[V])
        H0 = -logp + 0.5 * dot(vec[P], vec[V])
        for e in range(2):
            copy(ends[e, END_Q], vec[Q])
            copy(ends[e, END_P], vec[P])
            copy(ends[e, END_G], vec[G])
            copy(ends[e, END_V], vec[V])
            end_logp[e] = logp
        copy(vec[SAMPLE_Q], vec[Q])
        copy(vec[SAMPLE_P], vec[P])
        copy(vec[SAMPLE_G], vec[G])
        sample_logp = logp
        copy(vec[RHO], vec[P])
        log_weight = 0.0
        depth = 0
        n_leapfrog = 0
        sum_metro = 0.0
        divergent = False
        recovered = False
        max_error = 0.0
        while depth < max_tree_depth:
            e = 1 if uniform(rng) > 0.5 else 0  # 1: forward in time, 0: backward
            copy(vec[Q], ends[e, END_Q])
            copy(vec[P], ends[e, END_P])
            copy(vec[G], ends[e, END_G])
            copy(vec[V], ends[e, END_V])
            valid, new_logp, n, metro, div, rec, error = build_subtree(
                vec, tree, tree_s, end_logp[e], depth, step if e == 1 else -step, H0, data,
                work, rng, settings)
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
            log_weight_new = tree_s[top, TREE_LOG_WEIGHT]
            if log_weight_new > log_weight or uniform(rng) < math.exp(log_weight_new - log_weight):
                copy(vec[SAMPLE_Q], tree[top, TREE_Q])
                copy(vec[SAMPLE_P], tree[top, TREE_P])
                copy(vec[SAMPLE_G], tree[top, TREE_G])
                sample_logp = tree_s[top, TREE_LOGP]
            log_weight = log_sum_exp(log_weight, log_weight_new)
            # End e is still the old trajectory's inner end, 1 - e its outer end.
            outer = 1 - e
            persist = no_u_turn_across(ends[outer, END_V], tree[top, V_BEGIN], vec[RHO],
                                       tree[top, P_BEGIN])
            persist = persist and no_u_turn_across(ends[e, END_V], tree[top, V_END],
                                                   tree[top, TREE_RHO], ends[e, END_P])
            for i in range(dim):
                vec[RHO, i] += tree[top, TREE_RHO, i]
            persist = persist and no_u_turn(ends[outer, END_V], tree[top, V_END], vec[RHO])
            copy(ends[e, END_Q], vec[Q])
            copy(ends[e, END_P], vec[P])
            copy(ends[e, END_G], vec[G])
            copy(ends[e, END_V], vec[V])
            end_logp[e] = new_logp
            if not persist:
                break
        copy(vec[Q], vec[SAMPLE_Q])
        copy(vec[G], vec[SAMPLE_G])
        velocity(vec[INVERSE_DIAG], vec[SAMPLE_P], vec[V])
        stats[LP] = sample_logp
        stats[DIVERGING] = 1.0 if divergent else 0.0
        stats[ENERGY] = -sample_logp + 0.5 * dot(vec[SAMPLE_P], vec[V])
        stats[TREE_DEPTH] = depth
        stats[N_STEPS] = n_leapfrog
        stats[STEP_SIZE] = step
        stats[ACCEPTANCE] = sum_metro / max(n_leapfrog, 1)
        stats[RECOVERED] = 1.0 if recovered else 0.0
        stats[ENERGY_ERROR] = stats[ENERGY] - H0
        stats[MAX_ERROR] = max_error
        return sample_logp

    @cuda.jit(device=True)
    def init_step_size(vec, logp, step, data, work, rng, settings):
        """Stan's heuristic: double or halve until one step's acceptance crosses 0.8.

        Works on the trajectory rows (Q, P, G, V) from the state in (SAMPLE_Q, SAMPLE_G).
        """
        log_target = math.log(0.8)
        direction = 0
        for trial in range(100):
            copy(vec[Q], vec[SAMPLE_Q])
            copy(vec[G], vec[SAMPLE_G])
            draw_momentum(vec[INVERSE_DIAG], rng, vec[P])
            velocity(vec[INVERSE_DIAG], vec[P], vec[V])
            H0 = -logp + 0.5 * dot(vec[P], vec[V])
            new_logp, status = leapfrog(vec[Q], vec[P], vec[G], vec[V], vec[INVERSE_DIAG],
                                        step, data, work, rng, settings[FAULT_RATE])
            delta = H0 - hamiltonian(status, new_logp, vec[P], vec[V])
            if trial == 0:
                direction = 1 if delta > log_target else -1
                continue
            if direction == 1 and not delta > log_target:
                break
            if direction == -1 and not delta < log_target:
                break
            step = 2.0 * step if direction == 1 else 0.5 * step
            if step > 1e7 or step < 1e-12:
                break
        return step

    @cuda.jit(device=True)
    def search_step_size(vec, logp, step, data, work, rng, settings):
        """``init_step_size`` from the chain's position (kept in vec[Q], vec[G])."""
        copy(vec[SAMPLE_Q], vec[Q])
        copy(vec[SAMPLE_G], vec[G])
        step = init_step_size(vec, logp, step, data, work, rng, settings)
        copy(vec[Q], vec[SAMPLE_Q])
        copy(vec[G], vec[SAMPLE_G])
        return step

    @cuda.jit
    def run_block(position, gradient, inverse_diag, window_mean, window_m2, scalars, streams,
                  collect, window_end, settings, data, num_iterations, draws, stats):
        """Run ``num_iterations`` iterations of every chain (one thread each), warmup included.

        State arrays are (chains, dim) or (chains, N_SCALARS), ``streams`` (chains, 3)
        uint64; ``draws`` (chains, >= num_iterations, dim) and ``stats`` (chains, >=
        num_iterations, N_STATS) receive the iterations' draws and statistics.
        """
        chain = cuda.grid(1)
        if chain >= position.shape[0]:
            return
        vec = cuda.local.array((VECTORS, dim), float64)
        ends = cuda.local.array((2, END_ROWS, dim), float64)
        end_logp = cuda.local.array(2, float64)
        tree = cuda.local.array((levels, TREE_ROWS, dim), float64)
        tree_s = cuda.local.array((levels, 2), float64)
        work = cuda.local.array(scratch, float64)
        rng = cuda.local.array(3, uint64)
        s = cuda.local.array(N_SCALARS, float64)
        for i in range(dim):
            vec[Q, i] = position[chain, i]
            vec[G, i] = gradient[chain, i]
            vec[INVERSE_DIAG, i] = inverse_diag[chain, i]
        for i in range(3):
            rng[i] = streams[chain, i]
        for i in range(N_SCALARS):
            s[i] = scalars[chain, i]
        num_warmup = int(settings[NUM_WARMUP])
        mean, m2 = window_mean[chain], window_m2[chain]
        for k in range(num_iterations):
            it = int(s[ITERATION])
            warmup = it < num_warmup
            if it == 0 and num_warmup > 0:
                # As Stan: the first phase's dual averaging centres on 10x the initial step
                # size, chosen before the step-size search.
                restart_dual_averaging(s, s[STEP])
                s[STEP] = search_step_size(vec, s[LOGP], s[STEP], data, work, rng, settings)
            if it == num_warmup and num_warmup > 0:
                s[STEP] = math.exp(s[X_BAR])
            row = stats[chain, k]
            s[LOGP] = transition(vec, ends, end_logp, tree, tree_s, s[LOGP], s[STEP], data,
                                 work, rng, settings, row)
            row[WARMUP] = 1.0 if warmup else 0.0
            for i in range(dim):
                draws[chain, k, i] = vec[Q, i]
            if warmup:
                if row[RECOVERED] == 0.0:
                    s[STEP] = learn_step_size(s, row[ACCEPTANCE], settings)
                if collect[it] and row[DIVERGING] == 0.0:
                    s[WINDOW_COUNT] = welford_add(s[WINDOW_COUNT], mean, m2, vec[Q])
                if window_end[it]:
                    update_metric(vec[INVERSE_DIAG], s[WINDOW_COUNT], mean, m2)
                    s[WINDOW_COUNT] = 0.0
                    s[STEP] = search_step_size(vec, s[LOGP], s[STEP], data, work, rng, settings)
                    restart_dual_averaging(s, s[STEP])
            s[ITERATION] = it + 1
        for i in range(dim):
            position[chain, i] = vec[Q, i]
            gradient[chain, i] = vec[G, i]
            inverse_diag[chain, i] = vec[INVERSE_DIAG, i]
        for i in range(3):
            streams[chain, i] = rng[i]
        for i in range(N_SCALARS):
            scalars[chain, i] = s[i]

    return run_block
