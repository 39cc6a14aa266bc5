"""Run every chain of an ``exmc.sample(..., device="cuda")`` call on a GPU, in blocks of draws.

The chains' state (position, gradient, metric, adaptation accumulators, random
stream) stays on the device; each kernel launch runs a block of iterations of
every chain (``exmc/samplers/gpu/nuts.py``), and the block's draws and
statistics are copied back and handed on exactly as the in-process path hands
on a block: to the progress display, the stream (``stream_to=``) and
``blocking=False``'s live view.

Control-flow divergence: the threads of a warp (32 chains) run in lockstep, so
a warp lasts as long as its longest chain.  Each run measures it from the
draws' leapfrog counts: the idle-lane share is 1 - (sum of the lanes' leapfrog
steps) / (sum over warps and launches of 32 x the warp's most steps).

Without a GPU, Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before
numba is imported) runs the same kernels, one Python thread per chain: for
tests, never for speed.
"""
from __future__ import annotations

import math
import sys
import time

import numba
import numpy as np

from exmc.compiler import require_cuda
from exmc.runtime.chain import ChainResult, initial_point
from exmc.samplers.nuts import N_STEPS, STAT_NAMES

WARP = 32
THREADS_PER_BLOCK = WARP  # small blocks spread a few thousand chains over every SM
MAX_BLOCK = 1000  # iterations per launch, at most
_kernels: dict = {}  # (model module, tree depth) -> compiled kernel, for this process


def require_gpu():
    """numba.cuda, or a clear error naming ``device='cuda'`` (the compiler's check)."""
    return require_cuda("device='cuda'")


def check_options(dense_mass, adaptation, cores, executor, checkpoint):
    """Errors for the options that the GPU sampler does not offer (yet)."""
    unsupported = {"dense_mass=True": dense_mass, f"adaptation={adaptation!r}":
                   adaptation != "stan", "cores=": cores is not None,
                   f"executor={executor!r}": executor is not None,
                   "checkpoint=": checkpoint is not None}
    named = [name for name, given in unsupported.items() if given]
    if named:
        raise ValueError(f"device='cuda' runs NUTS with Stan's windowed diagonal metric, every "
                         f"chain on the GPU; it does not take {', '.join(named)}")


def _simulator_safe(logp_grad, *modules):
    """Ready device code for Numba's CUDA simulator.

    The simulator swaps each device function's module globals while its threads run; a
    first warning raised in such a module (the random streams' wrapping uint64 products
    warn of overflow there) adds ``__warningregistry__`` to those globals mid-iteration, and
    another thread fails with "dictionary changed size during iteration".  Present from
    the start, the key is never added.  Returns the model function, failing as on a GPU.
    """
    from exmc.compiler import families, scalar
    from exmc.samplers.gpu import random as streams
    for module in (*modules, streams, families, scalar, sys.modules[logp_grad.__module__]):
        vars(module).setdefault("__warningregistry__", {})
    return _as_on_a_gpu(logp_grad)


def _as_on_a_gpu(logp_grad):
    """The simulator's model function, failing as a GPU does: with NaN, not an exception.

    The simulator runs device code as Python, whose ``math`` raises on overflow and
    outside a function's domain (``exp(1e3)``, ``log(-1)``) where a GPU returns inf or
    NaN; the sampler then sees a non-finite log density, a divergence, either way.
    """
    def guarded(q, data, grad, work):
        try:
            return logp_grad(q, data, grad, work)
        except (ArithmeticError, ValueError):
            for i in range(grad.shape[0]):
                grad[i] = math.nan
            return math.nan, 0
    return guarded


class AllChainsProgress:
    """One progress line for every chain of a device run: a bar per chain is no use for thousands.

    Wraps a display of ``exmc.runtime.progress`` (same interface); divergences are summed
    over the chains, and the line moves when the last chain of a block is reported.
    """

    def __init__(self, display, chains):
        self.display, self.chains = display, chains
        self.divergences, self.total_divergences = {}, 0
        self.task = None

    def __enter__(self):
        self.display.__enter__()
        return self

    def __exit__(self, *exc):
        return self.display.__exit__(*exc)

    def add_chain(self, chain, total):
        if self.task is None:
            self.task = self.display.add_chain(f"0-{self.chains - 1}", total)
        return chain

    def update(self, task, done, divergences, step_size, warmup):
        self.total_divergences += divergences - self.divergences.get(task, 0)
        self.divergences[task] = divergences
        if task == self.chains - 1:
            self.display.update(self.task, done, self.total_divergences, step_size, warmup)


class DeviceReport:
    """What the device did: launches, kernel time, and the lockstep cost of NUTS's branching."""

    def __init__(self, chains):
        self.chains = chains
        self.launches = 0
        self.kernel_time = 0.0
        self.lane_steps = 0.0  # leapfrog steps the chains made
        self.warp_steps = 0.0  # sum over warps and launches of lanes x the warp's most steps
        self.extra = {}  # the sampler's own attributes (ChEES-HMC: its adapted parameters)

    def add_launch(self, steps, seconds):
        """``steps`` (chains,): leapfrog steps each chain made in one launch."""
        self.launches += 1
        self.kernel_time += seconds
        self.lane_steps += float(steps.sum())
        for first in range(0, steps.shape[0], WARP):
            warp = steps[first:first + WARP]
            self.warp_steps += warp.shape[0] * float(warp.max())

    @property
    def idle_lane_share(self):
        return 1.0 - self.lane_steps / self.warp_steps if self.warp_steps else 0.0

    @property
    def steps_per_chain_per_launch(self):
        return self.lane_steps / (self.chains * self.launches) if self.launches else 0.0

    def attrs(self):
        return {"device": "cuda", "device_launches": self.launches,
                "device_kernel_time": self.kernel_time,
                "device_idle_lane_share": self.idle_lane_share,
                "device_steps_per_chain_per_launch": self.steps_per_chain_per_launch,
                **self.extra}


class DeviceSampler:
    """A model's NUTS kernel and its chains' state on the device.

    Parameters
    ----------
    model : Model
    compiled : CompiledModel
        The CPU build, for starting points (and, later, constraining the draws).
    settings : exmc.samplers.nuts.Settings
    """

    def __init__(self, model, compiled, settings):
        from exmc.compiler import compile_model
        from exmc.samplers.gpu import nuts

        self.cuda = require_gpu()
        self.compiled, self.settings = compiled, settings
        gpu_model = compile_model(model, target="cuda")
        key = (gpu_model.module.__name__, settings.max_tree_depth)
        if key not in _kernels:
            logp_grad = gpu_model.module.logp_grad
            if numba.config.ENABLE_CUDASIM:
                logp_grad = _simulator_safe(logp_grad, nuts)
            _kernels[key] = nuts.make_kernel(logp_grad, gpu_model.dim,
                                             gpu_model.module.LOCAL_SCRATCH,
                                             settings.max_tree_depth)
        self.kernel = _kernels[key]
        data = gpu_model.data if gpu_model.data.size else np.zeros(1)
        values = np.zeros(nuts.N_SETTINGS)
        values[[nuts.NUM_WARMUP, nuts.TARGET_ACCEPT, nuts.MAX_ENERGY_ERROR, nuts.GAMMA, nuts.T0,
                nuts.KAPPA, nuts.FAULT_RATE]] = (
            settings.num_warmup, settings.target_accept, settings.max_energy_error,
            settings.gamma, settings.t0, settings.kappa, settings.fault_rate)
        cuda = self.cuda
        self.constants = [cuda.to_device(np.asarray(settings.collect, dtype=np.int8)),
                          cuda.to_device(np.asarray(settings.window_end, dtype=np.int8)),
                          cuda.to_device(values), cuda.to_device(data)]
        self._compile(nuts.N_SCALARS)

    def _compile(self, n_scalars):
        """Compile the kernel now (a launch of no iterations), so it counts as compile time."""
        dim, cuda = self.compiled.dim, self.cuda
        self.state = [cuda.to_device(np.zeros((1, n))) for n in (dim, dim, dim, dim, dim,
                                                                  n_scalars)]
        self.state.append(cuda.to_device(np.zeros((1, 3), dtype=np.uint64)))
        self.chains = 1
        self.run(0, cuda.device_array((1, 1, dim)), cuda.device_array((1, 1, len(STAT_NAMES))))

    def start(self, chain_seeds, init):
        """Put every chain's starting state on the device (points drawn as on the CPU)."""
        from exmc.samplers.gpu import nuts
        from exmc.samplers.gpu.random import chain_keys

        chains, dim = len(chain_seeds), self.compiled.dim
        position, gradient = np.zeros((chains, dim)), np.zeros((chains, dim))
        scalars = np.zeros((chains, nuts.N_SCALARS))
        for chain, sequence in enumerate(chain_seeds):
            rng = np.random.Generator(np.random.PCG64(sequence))
            position[chain], scalars[chain, nuts.LOGP], gradient[chain] = initial_point(
                self.compiled, init, rng)
        scalars[:, nuts.STEP] = 1.0
        cuda = self.cuda
        self.state = [cuda.to_device(a) for a in (
            position, gradient, np.ones((chains, dim)), np.zeros((chains, dim)),
            np.zeros((chains, dim)), scalars, chain_keys(chain_seeds))]
        self.chains = chains

    def run(self, num_iterations, draws, stats):
        """Run ``num_iterations`` iterations of every chain; returns the kernel's seconds.

        ``draws`` (chains, >= num_iterations, dim) and ``stats`` device arrays receive them.
        """
        blocks = -(-self.chains // THREADS_PER_BLOCK)
        start = time.perf_counter()
        self.kernel[blocks, THREADS_PER_BLOCK](*self.state, *self.constants, num_iterations,
                                               draws, stats)
        self.cuda.synchronize()
        return time.perf_counter() - start


SAMPLERS = ("nuts", "chees")


def check_sampler(sampler, device):
    """ValueError naming ``sampler`` unless it is one of SAMPLERS and runs on ``device``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}, got "
                         f"{sampler!r}")
    if sampler != "nuts" and device != "cuda":
        raise ValueError(f"sampler={sampler!r} runs on device='cuda' only (all chains in "
                         f"lockstep on a GPU); on the CPU use sampler='nuts'")


def device_sampler(model, compiled, settings, sampler="nuts"):
    """The device sampler named by ``sampler``: "nuts" (``DeviceSampler``) or "chees"
    (``ChEESSampler``); ``exmc.sample(..., device="cuda", sampler=...)`` builds it here."""
    if sampler == "nuts":
        return DeviceSampler(model, compiled, settings)
    if sampler == "chees":
        return ChEESSampler(model, compiled, settings)
    raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))} on "
                     f"device='cuda', got {sampler!r}")


class ChEESSampler:
    """ChEES-HMC (``exmc/samplers/gpu/chees.py``) on the device: one step size, one jittered
    trajectory length and one diagonal metric shared by every chain.

    Same interface as ``DeviceSampler`` (``start``, ``run``), so ``run_on_device`` drives
    either.  Warmup needs a reduction over the chains after every transition, so it
    launches the transition kernel for one iteration and then the adaptation kernel;
    after warmup a launch runs a block of iterations, as NUTS's does.
    """

    def __init__(self, model, compiled, settings):
        from exmc.compiler import compile_model
        from exmc.samplers.gpu import chees

        self.cuda = require_gpu()
        self.compiled, self.settings = compiled, settings
        gpu_model = compile_model(model, target="cuda")
        key = (gpu_model.module.__name__, "chees")
        if key not in _kernels:
            logp_grad = gpu_model.module.logp_grad
            if numba.config.ENABLE_CUDASIM:
                logp_grad = _simulator_safe(logp_grad, chees)
            _kernels[key] = chees.make_kernels(logp_grad, gpu_model.dim,
                                               gpu_model.module.LOCAL_SCRATCH)
        self.transition, self.adapt = _kernels[key]
        values = np.zeros(chees.N_SETTINGS)
        values[[chees.NUM_WARMUP, chees.TARGET_ACCEPT, chees.MAX_ENERGY_ERROR, chees.GAMMA,
                chees.T0, chees.KAPPA, chees.FAULT_RATE, chees.MAX_STEPS, chees.LEARNING_RATE,
                chees.BETA2, chees.AVERAGE_DECAY]] = (
            settings.num_warmup, settings.target_accept, settings.max_energy_error,
            settings.gamma, settings.t0, settings.kappa, settings.fault_rate,
            2 ** settings.max_tree_depth, chees.LEARNING_RATE_DEFAULT, chees.BETA2_DEFAULT,
            chees.AVERAGE_DECAY_DEFAULT)
        cuda = self.cuda
        data = gpu_model.data if gpu_model.data.size else np.zeros(1)
        # A warmup of 0 still indexes the schedules: give them one (unused) entry.
        collect = np.asarray(settings.collect, dtype=np.int8)
        window_end = np.asarray(settings.window_end, dtype=np.int8)
        self.settings_d = cuda.to_device(values)
        self.data = cuda.to_device(data)
        self.collect = cuda.to_device(collect if collect.size else np.zeros(1, np.int8))
        self.window_end = cuda.to_device(window_end if window_end.size else np.zeros(1, np.int8))
        self.start_arrays(np.zeros((1, compiled.dim)), np.zeros((1, compiled.dim)),
                          np.zeros(1), np.zeros((1, 3), dtype=np.uint64))
        # Compile both kernels now (no iterations), so that it counts as compile time.
        self._launch(0, 0, cuda.device_array((1, 1, compiled.dim)),
                     cuda.device_array((1, 1, len(STAT_NAMES))))
        self.adapt[1, 1](*self._adapt_args(-1))
        cuda.synchronize()

    def start_arrays(self, position, gradient, logp, streams):
        from exmc.samplers.gpu import chees

        cuda, dim = self.cuda, self.compiled.dim
        chains = position.shape[0]
        self.chains, self.iteration = chains, 0
        self.position, self.gradient = cuda.to_device(position), cuda.to_device(gradient)
        self.logp, self.streams = cuda.to_device(logp), cuda.to_device(streams)
        self.inverse_diag = cuda.to_device(np.ones(dim))
        self.params = cuda.to_device(chees.initial_params())
        self.window_mean = cuda.to_device(np.zeros(dim))
        self.window_m2 = cuda.to_device(np.zeros(dim))
        self.proposal = cuda.device_array((chains, dim))
        self.proposal_v = cuda.device_array((chains, dim))
        self.previous = cuda.device_array((chains, dim))
        self.chain_stats = cuda.to_device(np.zeros((chains, chees.N_CHAIN_STATS)))
        self.means = cuda.device_array((2, dim))

    def start(self, chain_seeds, init):
        """Every chain's starting point (drawn as on the CPU) and random stream on the device."""
        from exmc.samplers.gpu.random import chain_keys

        chains, dim = len(chain_seeds), self.compiled.dim
        position, gradient = np.zeros((chains, dim)), np.zeros((chains, dim))
        logp = np.zeros(chains)
        for chain, sequence in enumerate(chain_seeds):
            rng = np.random.Generator(np.random.PCG64(sequence))
            position[chain], logp[chain], gradient[chain] = initial_point(self.compiled, init, rng)
        self.start_arrays(position, gradient, logp, chain_keys(chain_seeds))

    def _adapt_args(self, iteration):
        return (self.params, self.settings_d, self.inverse_diag, self.window_mean, self.window_m2,
                self.position, self.proposal, self.proposal_v, self.previous, self.chain_stats,
                self.means, iteration, self.collect, self.window_end)

    def _launch(self, n, offset, draws, stats):
        threads = min(THREADS_PER_BLOCK, self.chains)
        self.transition[-(-self.chains // threads), threads](
            self.position, self.gradient, self.logp, self.streams, self.inverse_diag,
            self.params, self.settings_d, self.data, self.iteration, n, offset, draws, stats,
            self.proposal, self.proposal_v, self.previous, self.chain_stats)
        self.iteration += n

    def run(self, num_iterations, draws, stats):
        """``num_iterations`` iterations of every chain into ``draws``/``stats``; kernel seconds."""
        from exmc.samplers.gpu import chees

        start = time.perf_counter()
        done = 0
        while done < num_iterations and self.iteration < self.settings.num_warmup:
            iteration = self.iteration
            self._launch(1, done, draws, stats)
            self.adapt[1, min(chees.ADAPT_THREADS, self.chains)](*self._adapt_args(iteration))
            done += 1
        if done < num_iterations:
            self._launch(num_iterations - done, done, draws, stats)
        self.cuda.synchronize()
        return time.perf_counter() - start

    def attrs(self):
        """InferenceData attributes: the sampler's name and the shared adapted parameters."""
        adapted = self.adapted()
        return {"sampler": "ChEES-HMC", "chees_step_size": adapted["step_size"],
                "chees_trajectory_length": adapted["trajectory_length"]}

    def adapted(self):
        """{"step_size", "trajectory_length", "inverse_diag"}: the shared parameters now."""
        from exmc.samplers.gpu import chees

        params = self.params.copy_to_host()
        return {"step_size": float(params[chees.STEP]),
                "trajectory_length": float(params[chees.TRAJECTORY]),
                "inverse_diag": self.inverse_diag.copy_to_host()}


def run_on_device(sampler, chain_seeds, init, total, report, publisher, block_seconds=0.5):
    """Every chain on the GPU (``sampler``, a DeviceSampler), in blocks; (ChainResults, DeviceReport).

    ``report(chain, draws, stats, done)`` and ``publisher.block`` see each block of each
    chain as the in-process path shows them; a KeyboardInterrupt (Ctrl-C, or an abort
    raised by ``report``) stops after the block in hand and keeps what was drawn.
    """
    sampler.start(chain_seeds, init)
    chains, dim = len(chain_seeds), sampler.compiled.dim
    draws = np.zeros((chains, total, dim))
    stats = np.zeros((chains, total, len(STAT_NAMES)))
    results = [ChainResult(draws[c], stats[c], 0, None) for c in range(chains)]
    device = DeviceReport(chains)
    cuda = sampler.cuda
    capacity = min(total, 10)
    block_draws = cuda.device_array((chains, capacity, dim))
    block_stats = cuda.device_array((chains, capacity, len(STAT_NAMES)))
    done, block = 0, min(total, 10)
    try:
        while done < total:
            n = min(block, total - done)
            if n > capacity:
                capacity = n
                block_draws = cuda.device_array((chains, capacity, dim))
                block_stats = cuda.device_array((chains, capacity, len(STAT_NAMES)))
            seconds = sampler.run(n, block_draws, block_stats)
            draws[:, done:done + n] = block_draws.copy_to_host()[:, :n]
            stats[:, done:done + n] = block_stats.copy_to_host()[:, :n]
            device.add_launch(stats[:, done:done + n, N_STEPS].sum(axis=1), seconds)
            first, done = done, done + n
            for result in results:
                result.done = done
            for chain in range(chains):
                if publisher is not None:
                    publisher.block(chain, first, draws[chain, first:done],
                                    stats[chain, first:done])
                report(chain, draws[chain], stats[chain], done)
            # Aim each launch at block_seconds: live progress, little launch overhead.
            block = int(min(max(n * block_seconds / max(seconds, 1e-6), 1), MAX_BLOCK))
    except KeyboardInterrupt:
        for result in results:
            result.interrupted = True
    if publisher is not None:
        for chain, result in enumerate(results):
            publisher.done(chain, result.done, "failed" if result.interrupted else "ok",
                           "interrupted" if result.interrupted else None)
    if hasattr(sampler, "attrs"):
        device.extra.update(sampler.attrs())
    return results, device
