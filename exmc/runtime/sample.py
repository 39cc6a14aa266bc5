"""``exmc.sample``: compile a model, run NUTS chains, return ArviZ InferenceData."""
from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import warnings

import numpy as np

import exmc
from exmc.compiler import compile_model
from exmc.ir.builder import Model
from exmc.runtime.chain import ChainResult, check_init, load_kernels, make_settings
from exmc.runtime.executors import ChainJobs, Outcome, choose
from exmc.runtime.notices import CompileNotice
from exmc.runtime.progress import make_progress
from exmc.runtime.stream import Publisher, make_sink, new_run_id
from exmc.runtime.worker import Collector
from exmc.samplers.nuts import DIVERGING, STAT_NAMES, STEP_SIZE

FAULT_RATE_ENV = "EXMC_INJECT_FAULTS"
BOOL_STATS = ("diverging", "recovered")
INT_STATS = ("tree_depth", "n_steps")


class SamplingError(RuntimeError):
    """No chain could be returned, for reasons other than an interrupt.

    ``reasons`` maps each chain to why it failed (for chains run on an exmc-node, the
    worker's own error text when it had one).
    """

    def __init__(self, message, reasons=None):
        super().__init__(message)
        self.reasons = dict(reasons or {})


# PyMC's (and Stan's) names for exmc.sample's arguments; None: no counterpart needed.
OTHER_NAMES = {"draws": "num_samples", "tune": "num_warmup", "random_seed": "seed",
               "initvals": "init", "max_treedepth": "max_tree_depth",
               "iter_sampling": "num_samples", "iter_warmup": "num_warmup",
               "adapt_delta": "target_accept", "max_depth": "max_tree_depth",
               "compute_convergence_checks": "diagnostics", "return_inferencedata": None,
               "discard_tuned_samples": "save_warmup", "nuts_sampler": None}


def _unknown_arguments(unknown):
    """A TypeError's text for keyword arguments ``sample`` does not take, with the names it uses."""
    import difflib
    import inspect

    known = [p for p in inspect.signature(sample).parameters if not p.startswith("_")
             and p not in ("model", "unknown")]
    parts = []
    for name in unknown:
        if name in OTHER_NAMES and OTHER_NAMES[name]:
            hint = f"exmc calls it {OTHER_NAMES[name]}="
            if name == "discard_tuned_samples":
                hint = "exmc's save_warmup=True keeps them (the inverse)"
        elif name in OTHER_NAMES:
            hint = "exmc needs no such argument (it always returns InferenceData from NUTS)"
        else:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}=?" if close else "not an argument of exmc.sample"
        parts.append(f"{name}= ({hint})")
    return "exmc.sample got unexpected keyword arguments: " + "; ".join(parts)


def _check_arguments(num_samples, num_warmup, chains, target_accept, max_tree_depth):
    def whole(name, value, low):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    whole("num_samples", num_samples, 1)
    whole("num_warmup", num_warmup, 0)
    whole("chains", chains, 1)
    whole("max_tree_depth", max_tree_depth, 1)
    if not 0.0 < float(target_accept) < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept!r}")


def sample(model, init=None, num_samples=1000, num_warmup=1000, chains=4, seed=None,
           target_accept=0.8, max_tree_depth=10, dense_mass=False, progressbar=True,
           save_warmup=False, adaptation="stan", stream_to=None, run_id=None, cores=None,
           blocking=True, dashboard=None, heartbeat_timeout=10.0, diagnostics=True,
           checkpoint=None, executor=None, device="cpu", log_likelihood=False, sampler="nuts",
           _live=None, **unknown):
    """Draw from the posterior of ``model`` with NUTS and Stan's windowed warmup.

    Parameters
    ----------
    model : Model
        From ``Builder`` or ``@exmc.model``.
    init : dict or "pathfinder", optional
        Constrained starting values by variable name (shared by all chains); the
        others start uniformly in (-2, 2) on the unconstrained scale, as in Stan.
        ``"pathfinder"``: run multi-path Pathfinder first (``exmc.pathfinder``) and start
        each chain at its own Pathfinder draw, with Pathfinder's posterior variances as
        the initial inverse mass matrix (warmup still adapts it).
    num_samples, num_warmup : int
        Draws kept per chain, and warmup iterations before them (PyMC's ``draws``
        and ``tune``; Stan's ``iter_sampling`` and ``iter_warmup``).
    chains : int
        Independent chains, each with its own stream from one ``SeedSequence(seed)``.
    seed : int, optional
        Same seed, same draws, bit for bit.
    target_accept : float
        Dual-averaging target for the mean acceptance statistic (Stan's ``adapt_delta``).
    max_tree_depth : int
        At most 2**max_tree_depth - 1 leapfrog steps per draw.
    dense_mass : bool
        Adapt a dense inverse mass matrix instead of a diagonal one.
    progressbar : bool
        Show per-chain progress (draws, divergences, step size) while sampling: a live table
        in a terminal or notebook, a plain line per chain every 5 s when output goes to a
        file.  Also says when the sampler or a new model is being compiled.
    save_warmup : bool
        Also return warmup draws (groups ``warmup_posterior``, ``warmup_sample_stats``).
    adaptation : {"stan", "gradient"}
        ``"stan"``: Stan's windowed warmup (default).  ``"gradient"``: nutpie's
        diagonal metric adaptation, M^{-1} = sqrt(var(draws) / var(gradients)),
        refreshed every warmup draw from overlapping windows (diagonal metric only).
    stream_to : str or callable, optional
        Publish every draw (warmup included) as it is made: a ZeroMQ address to bind
        an XPUB socket to (``"tcp://127.0.0.1:5556"``; watch it with ``exmc watch``),
        or a callable receiving each message dict.  See docs/protocol.md.
    run_id : str, optional
        The run's name on the stream (an identifier); random by default.
    cores : int, optional
        Run each chain in its own supervised worker process, at most ``cores`` at once.
        A worker that crashes is restarted and resumes from its last delivered draw
        (draws are bit-for-bit those of the in-process chain); a chain that keeps
        failing (more than 3 restarts in 60 s) is reported and the others are returned.
        By default, all the CPUs this process may use; ``cores=1`` runs the chains one after
        another in this process.
    executor : {"in-process", "processes", "pool"} or an executor, optional
        Where chains run; the draws are the same, bit for bit, wherever they run
        (``exmc.runtime.executors``).  ``exmc.distributed.Nodes([...])``: on exmc-node
        daemons on other machines (docs/distributed.md).
        ``"pool"`` (the default for more than one chain on more than one CPU): warm
        supervised worker processes kept for the Python session and reused by later calls
        (``exmc.runtime.pool``), ``min(chains, cores or cpu count)`` of them, each chain
        restarted from its last delivered draw if its worker crashes; on Linux they are
        forked from this process once it has loaded the sampler and the model (they start
        in milliseconds and never run the user's script), elsewhere spawned (about a second
        each, once per session).  ``"processes"``: a new supervised worker process per
        chain.  ``"in-process"`` (the default for one chain, or with ``cores=1``): one
        after another in this process, for debugging.
    device : {"cpu", "cuda"}
        ``"cuda"`` runs every chain on the GPU (one thread each, thousands at once: the
        same NUTS and Stan warmup with a diagonal metric), needs ``exmc[cuda]`` and a GPU,
        and streams and returns like any other run; see docs/gpu.md.
    sampler : {"nuts", "chees"}
        ``"chees"`` (with ``device="cuda"`` only): ChEES-HMC, one step size, jittered
        trajectory length and diagonal metric shared by all chains, adapted across them
        in warmup, so every GPU lane makes the same number of leapfrog steps; see
        docs/gpu.md.
    heartbeat_timeout : float
        With ``cores``: a worker silent this long is taken as hung, killed and restarted.
        It is a floor: after each block of draws a worker promises its next within ten
        times that block's duration if longer (and gets 10 minutes to load the model).
    blocking : bool
        False returns at once a ``SampleHandle`` with ``wait()``, ``inspect()`` (the
        trace so far) and ``abort()`` (stop, keep the partial trace).
    dashboard : True, int or exmc.runtime.dash.Dashboard, optional
        Serve a live browser dashboard of the run and print its URL (True: a free port on
        127.0.0.1; an int: that port).  Streams the run to it in-process, or through
        ``stream_to`` when given.  It keeps serving after ``sample`` returns, for as long as
        the Python process lives.  Needs no extra package; see docs/dashboard.md.
    diagnostics : bool
        After sampling, warn (``exmc.SamplingWarning``, one line each) about divergences per
        chain, R-hat above 1.01, bulk or tail ESS under 100 per chain, draws at the maximum
        tree depth and E-BFMI under 0.3, naming the chains or variables (ArviZ's numbers).
    checkpoint : str or path, optional
        Keep the run in this folder as it goes: every chain's draws and whole state
        (position, tuning, random generator), crash-safe (docs/runtime.md has the layout).
        If the Python process dies, the same call again (or ``exmc.resume(folder)``)
        continues every chain and returns exactly the draws of an uninterrupted run; with a
        larger ``num_samples`` it extends a finished run.  The finished run is also written
        as ``trace.nc`` (``arviz.from_netcdf``).
    log_likelihood : bool
        Also return the ``log_likelihood`` group (each observation's log density at each
        draw, for ``az.loo``, ``az.waic`` and ``az.compare``), computed from the draws
        themselves as they arrive (with worker processes, while they sample);
        ``exmc.compute_log_likelihood`` adds it later instead.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (constrained values in their shapes, deterministics included),
        ``sample_stats`` (lp, diverging, energy, tree_depth, n_steps, step_size,
        acceptance_rate, recovered) and ``observed_data``.
    """
    if unknown:
        raise TypeError(_unknown_arguments(unknown))
    if not blocking:
        return SampleHandle(model, dict(
            init=init, num_samples=num_samples, num_warmup=num_warmup, chains=chains, seed=seed,
            target_accept=target_accept, max_tree_depth=max_tree_depth, dense_mass=dense_mass,
            progressbar=progressbar, save_warmup=save_warmup, adaptation=adaptation,
            stream_to=stream_to, run_id=run_id, cores=cores, dashboard=dashboard,
            heartbeat_timeout=heartbeat_timeout, diagnostics=diagnostics, checkpoint=checkpoint,
            executor=executor, device=device, log_likelihood=log_likelihood, sampler=sampler))
    if not isinstance(model, Model):
        raise TypeError(f"exmc.sample needs a model from Builder or @exmc.model, got "
                        f"{type(model).__name__}")
    _check_arguments(num_samples, num_warmup, chains, target_accept, max_tree_depth)
    if adaptation not in ("stan", "gradient"):
        raise ValueError(f"adaptation must be 'stan' or 'gradient', got {adaptation!r}")
    if adaptation == "gradient" and dense_mass:
        raise ValueError("adaptation='gradient' adapts a diagonal metric; use dense_mass=False")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if sampler != "nuts":
        from exmc.runtime.gpu import check_sampler
        check_sampler(sampler, device)
    if run_id is not None and not (isinstance(run_id, str) and run_id.isidentifier()):
        raise ValueError(f"run_id must be an identifier, got {run_id!r}")
    if device == "cuda":  # every chain on the GPU: exmc/runtime/gpu.py
        from exmc.runtime import gpu
        gpu.check_options(dense_mass, adaptation, cores, executor, checkpoint)
        gpu.require_gpu()
    pathfinder_init = isinstance(init, str)
    if pathfinder_init:
        _check_pathfinder_init(init, checkpoint, device)
        init = None
    if device == "cuda":
        executor = None  # one process drives every chain on the GPU
    else:
        executor = choose(executor, cores, chains, heartbeat_timeout)
        executor.prepare()
    fault_rate = float(os.environ.get(FAULT_RATE_ENV, "0") or 0)
    start = time.perf_counter()
    with CompileNotice(enabled=progressbar):
        compiled = compile_model(model)
        settings = make_settings(num_warmup, max_tree_depth, target_accept, fault_rate,
                                 gradient_metric=(adaptation == "gradient"))
        if device == "cuda":
            device_sampler = gpu.device_sampler(model, compiled, settings, sampler)
        else:
            load_kernels(compiled, settings, dense_mass)
    compile_time = time.perf_counter() - start
    init = check_init(compiled, init) or None  # checked here, before any chain starts
    folder, prior, seed, init = _open_checkpoint(
        checkpoint, model, compiled.dim, init, chains=chains, num_warmup=num_warmup,
        num_samples=num_samples, seed=seed, target_accept=target_accept,
        max_tree_depth=max_tree_depth, dense_mass=bool(dense_mass), adaptation=adaptation,
        save_warmup=bool(save_warmup))
    seed_sequence = np.random.SeedSequence(seed)
    chain_seeds = seed_sequence.spawn(chains)
    init_attrs = {}
    if pathfinder_init:
        prior, init_attrs = _pathfinder_prior(compiled, seed_sequence, chain_seeds, dense_mass)
    total = num_warmup + num_samples
    publisher = None
    if dashboard is not None and dashboard is not False:
        from exmc.runtime.dash import attach
        _, stream_to = attach(dashboard, stream_to, chains=chains)
    if stream_to is not None:
        run_id = run_id or new_run_id()
        publisher = Publisher(make_sink(stream_to), compiled, run_id, num_warmup, chains)
    sampling_start = time.perf_counter()
    display = make_progress(progressbar)
    if device == "cuda":
        display = gpu.AllChainsProgress(display, chains)
    tasks = {}
    pointwise = None
    if log_likelihood and compiled.observed:  # as blocks arrive: while workers still sample
        from exmc.runtime.predictive import RunningLogLikelihood
        pointwise = RunningLogLikelihood(compiled, num_warmup)
    should_stop = _live.aborted.is_set if _live is not None else (lambda: False)

    def report(chain, draws, stats, done):
        display.update(tasks[chain], done, int(np.nansum(stats[:done, DIVERGING])),
                       stats[done - 1, STEP_SIZE] if done else 1.0, done < num_warmup)
        if pointwise is not None:
            pointwise.update(chain, draws, done)
        if _live is not None:
            _live.update(compiled, chain, draws, stats, done)
            if _live.aborted.is_set():
                raise KeyboardInterrupt  # the executor stops and keeps what was drawn

    try:
        with display:
            for chain in range(chains):
                tasks[chain] = display.add_chain(chain, total)
            if device == "cuda":
                results, device_report = gpu.run_on_device(device_sampler, chain_seeds, init,
                                                           total, report, publisher)
                attrs = device_report.attrs()
            else:
                jobs = ChainJobs(model, compiled, settings, chain_seeds, init, bool(dense_mass),
                                 total)
                results, attrs = _run_chains(executor, jobs, prior, report, publisher, folder,
                                             should_stop)
    finally:
        sampling_time = time.perf_counter() - sampling_start
        stream_error = publisher.close() if publisher is not None else None
        stream_time = time.perf_counter() - sampling_start
    if stream_error is not None:
        warnings.warn(f"streaming failed: {stream_error!r}; the returned trace is complete",
                      RuntimeWarning, stacklevel=2)
    attrs = {"exmc_version": exmc.__version__, "sampler": "NUTS",
             "seed": str(seed_sequence.entropy), "num_warmup": num_warmup,
             "compile_time": compile_time, "sampling_time": sampling_time,
             "dense_mass": int(dense_mass), "target_accept": target_accept,
             "max_tree_depth": max_tree_depth, "adaptation": adaptation,
             "executor": "device" if device == "cuda" else executor.name, **attrs, **init_attrs}
    if publisher is not None:
        attrs["run_id"] = run_id
        attrs["stream_time"] = stream_time  # until the last message was handed to the sink
    if folder is not None:
        attrs["checkpoint"] = str(folder.path)
    try:
        idata = to_inference_data(compiled, results, num_warmup, num_samples, save_warmup,
                                  attrs, chains=chains, log_likelihood=pointwise or log_likelihood)
    except SamplingError as err:  # every chain failed: in the executor's terms, if it has them
        if hasattr(executor, "failed"):
            raise executor.failed(err) from None
        raise
    if folder is not None and all(r.done >= total for r in results) and len(results) == chains:
        folder.save_trace(idata)
    if diagnostics:
        from exmc.runtime import diagnostics as checks
        checks.warn(idata, compiled.pointmap.names, max_tree_depth)
    return idata


def _import_arviz_meanwhile():
    """Import ArviZ (1 to 2 s) on a thread while the workers sample, so that assembling the
    result does not wait for it afterwards: this process is idle meanwhile.  Forked workers
    are safe from the half-done import: they import nothing this process has not finished
    importing (the sampler and model are loaded before they start)."""
    if "arviz" not in sys.modules:
        threading.Thread(target=importlib.import_module, args=("arviz",), daemon=True,
                         name="exmc-import-arviz").start()


def _check_pathfinder_init(init, checkpoint, device):
    if init != "pathfinder":
        raise ValueError(f"init must be a dict of starting values or 'pathfinder', got {init!r}")
    if checkpoint is not None:
        raise ValueError("init='pathfinder' with checkpoint= is not supported yet; start "
                         "without a checkpoint or pass init= as a dict")
    if device != "cpu":
        raise ValueError("init='pathfinder' runs on device='cpu' only")


def _pathfinder_prior(compiled, seed_sequence, chain_seeds, dense):
    """({chain: (0, packed state, no rows)}, attrs): chains started from Pathfinder draws,
    handed to the executors as a checkpoint's saved chains are (``runtime.chain.pathfinder_states``)."""
    from exmc.runtime.chain import pathfinder_states
    from exmc.samplers.chain_state import pack_state

    began = time.perf_counter()
    states, attrs = pathfinder_states(compiled, seed_sequence.spawn(1)[0], chain_seeds, dense)
    attrs["pathfinder_time"] = time.perf_counter() - began
    no_rows = np.zeros((0, compiled.dim + len(STAT_NAMES)))
    return {c: (0, pack_state(state, rng), no_rows) for c, (state, rng) in states.items()}, attrs


def _open_checkpoint(path, model, dim, init, **settings):
    """(folder or None, {chain: (done, packed state, rows)}, seed, init) for a run kept at ``path``.

    A folder that already holds this run continues it: its seed (when ``seed`` is None) and
    its ``init`` are the run's; anything else that differs is an error naming it.
    """
    if path is None:
        return None, {}, settings["seed"], init
    from exmc.runtime.checkpoint import RunFolder, _plain

    folder = RunFolder(path)
    if not folder.exists:
        settings["seed"] = str(np.random.SeedSequence(settings["seed"]).entropy)
        folder.create(model, settings, init, dim)
        return folder, {}, int(settings["seed"]), init
    saved = folder.settings()
    if settings["seed"] is None:
        settings["seed"] = saved["seed"]
    settings["seed"] = str(np.random.SeedSequence(int(settings["seed"])).entropy)
    folder.check(model, settings)
    if init is not None and {k: _plain(v) for k, v in init.items()} != saved["init"]:
        raise ValueError(f"checkpoint {str(folder.path)!r} was started with init="
                         f"{saved['init']!r}; resume with the run's own init (or none)")
    prior = {chain: folder.load_chain(chain, dim) for chain in range(settings["chains"])}
    return folder, prior, int(settings["seed"]), folder.init()


def _run_chains(executor, jobs, prior, report, publisher, folder, should_stop):
    """(ChainResults, the executor's attrs): every chain of ``jobs`` run by ``executor``,
    each continued from ``prior`` ({chain: (done, packed state, rows)}) when saved there.

    Each block of rows that arrives is reported, saved in the checkpoint ``folder`` and
    published, whichever executor made it.
    """
    chains, total = len(jobs.seeds), jobs.total
    collector = Collector(jobs.compiled.dim, total, chains, files=executor.files)
    for chain, (done, packed, rows) in prior.items():
        if packed is not None:
            collector.resume_from(chain, packed, rows)
        if publisher is not None and done:
            publisher.block(chain, 0, collector.draws[chain, :done], collector.stats[chain, :done])
            if done >= total:
                publisher.done(chain, done)

    def on_rows(chain, first, end):
        draws, stats = collector.draws[chain], collector.stats[chain]
        if folder is not None:
            folder.save_block(chain, first, draws[first:end], stats[first:end],
                              collector.states[chain])
        report(chain, draws, stats, end)
        if publisher is not None:
            publisher.block(chain, first, draws[first:end], stats[first:end])
            if end == total:
                publisher.done(chain, end)

    if all(collector.finished):
        outcome = Outcome([None] * chains, {})
    else:
        if hasattr(executor, "start"):
            executor.start()  # a forked pool: before the import below starts a thread
        _import_arviz_meanwhile()
        try:
            outcome = executor.run(jobs, collector, on_rows, should_stop)
        finally:
            collector.close()
    results = []
    for chain, reason in enumerate(outcome.failures):
        if reason is None and not collector.finished[chain]:
            reason = "interrupted"
        if publisher is not None and reason is not None:
            publisher.done(chain, collector.received[chain], "failed", reason)
        result = ChainResult(collector.draws[chain], collector.stats[chain],
                             collector.received[chain], None)
        result.interrupted = reason == "interrupted"
        result.failure = None if result.interrupted else reason
        results.append(result)
    return results, outcome.attrs


class _Live:
    """What a running ``sample`` has drawn so far, for ``SampleHandle.inspect``."""

    def __init__(self):
        self.aborted = threading.Event()
        self.lock = threading.Lock()
        self.compiled = None
        self.chains = {}

    def update(self, compiled, chain, draws, stats, done):
        with self.lock:
            self.compiled = compiled
            self.chains[chain] = (draws, stats, done)


class SampleHandle:
    """A run started with ``exmc.sample(..., blocking=False)``, going on in a background thread."""

    def __init__(self, model, options):
        self._options = options
        self._live = _Live()
        self._result = self._error = None
        self._thread = threading.Thread(target=self._run, args=(model,), name="exmc-sample",
                                        daemon=True)
        self._thread.start()

    def _run(self, model):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self._result = sample(model, **self._options, _live=self._live)
        except BaseException as err:  # handed to wait()
            self._error = err

    def done(self):
        return not self._thread.is_alive()

    def wait(self, timeout=None):
        """The InferenceData, once sampling ends (TimeoutError if still running after ``timeout``)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("sampling is still running")
        if self._error is not None:
            raise self._error
        return self._result

    def abort(self, timeout=60.0):
        """Stop sampling and return the trace drawn so far (None before any post-warmup draw)."""
        self._live.aborted.set()
        try:
            return self.wait(timeout)
        except KeyboardInterrupt:  # stopped before anything could be returned
            return None

    def inspect(self):
        """InferenceData of the post-warmup draws made so far (equal length per chain), or None."""
        from exmc.runtime.chain import ChainResult

        with self._live.lock:
            compiled = self._live.compiled
            snapshot = {c: (d.copy(), s.copy(), n) for c, (d, s, n) in self._live.chains.items()}
        num_warmup = self._options["num_warmup"]
        results = [ChainResult(d, s, n, None) for c, (d, s, n) in sorted(snapshot.items())
                   if n > num_warmup]
        if compiled is None or not results:
            return None
        n = min(r.done for r in results) - num_warmup
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return to_inference_data(compiled, results, num_warmup, n, False,
                                     {"partial": 1})


def sample_stream(model, stream_to, **kwargs):
    """``sample`` that also publishes every draw to ``stream_to`` (address or callable).

    Takes the same keyword arguments as ``exmc.sample`` and returns the same InferenceData.
    """
    return sample(model, stream_to=stream_to, **kwargs)


def to_inference_data(compiled, results, num_warmup, num_samples, save_warmup, attrs,
                      chains=None, log_likelihood=False):
    """Assemble InferenceData from chain results (of ``chains`` asked for, by default as many).

    ``log_likelihood``: add that group, the pointwise log-likelihood of the kept draws
    (a ``RunningLogLikelihood``: with the rows it has computed already).

    A chain that failed is left out unless it finished (each is named in a warning); the
    others keep every draw.  An interrupt (Ctrl-C, an abort) returns the chains with
    post-warmup draws, cut to the shortest (the warning says how many of how many, and
    how long).  Raises `SamplingError` naming each chain's reason when every chain failed,
    and ``KeyboardInterrupt`` when an interrupt came before any post-warmup draw.
    """
    chains = len(results) if chains is None else chains
    total = num_warmup + num_samples
    failed = {c: r.failure for c, r in enumerate(results)
              if r.failure is not None and r.done < total}
    kept_chains = [c for c, r in enumerate(results) if c not in failed and r.done > num_warmup]
    kept = [results[c] for c in kept_chains]
    n = min(num_samples, min((r.done - num_warmup for r in kept), default=0))
    interrupted = any(r.interrupted for r in results) or len(results) < chains
    if not kept and not interrupted:
        raise SamplingError("every chain failed: " + "; ".join(
            f"chain {c}: {reason}" for c, reason in failed.items()), failed)
    for c, reason in failed.items():
        warnings.warn(f"chain {c} failed: {reason}; it is left out, the other chains are "
                      f"returned in full", RuntimeWarning, stacklevel=3)
    if interrupted:
        warnings.warn(f"sampling was interrupted: returning {len(kept)} of {chains} chains with "
                      f"{n} draws each", RuntimeWarning, stacklevel=3)
    if not kept:
        raise KeyboardInterrupt("sampling interrupted before any post-warmup draw")
    groups, built = {}, {}
    parts = {"": slice(num_warmup, num_warmup + n)}
    if save_warmup and num_warmup:
        parts["warmup_"] = slice(0, num_warmup)
    for prefix, rows in parts.items():
        draws = np.stack([r.draws[rows] for r in kept])
        flat = compiled.constrain(draws.reshape(-1, compiled.dim))
        groups[prefix + "posterior"] = {k: v.reshape(draws.shape[:2] + v.shape[1:])
                                        for k, v in flat.items()}
        stats = np.stack([r.stats[rows] for r in kept])
        groups[prefix + "sample_stats"] = {name: _stat(stats[..., i], name)
                                           for i, name in enumerate(STAT_NAMES) if name != "warmup"}
        if log_likelihood and compiled.observed:
            from exmc.runtime.predictive import RunningLogLikelihood, log_likelihood_dataset
            running = log_likelihood if isinstance(log_likelihood, RunningLogLikelihood) and \
                not prefix else RunningLogLikelihood(compiled, rows.start)
            built[prefix + "log_likelihood"] = log_likelihood_dataset(
                running.values(kept_chains, draws), compiled.model)
    import arviz as az  # imported here: it costs ~2 s, which a cached model's start should not pay

    observed = {v.name: v.data for v in compiled.model.variables  # a Potential is no data
                if v.kind == "obs" and v.dist.family != "Potential"}
    constant = dict(getattr(compiled.model, "constant_data", {}))  # an @exmc.model's inputs
    idata = az.from_dict(**groups, observed_data=observed, constant_data=constant or None,
                         coords=compiled.model.coords or None,
                         dims={k: list(v) for k, v in compiled.model.dims.items()} or None,
                         attrs=attrs, save_warmup="warmup_posterior" in groups)
    if built:  # groups built as Datasets: from_dict's extra cost is felt on a small model
        idata.add_groups(built, warn_on_custom_groups=False)
    for group in idata.groups():  # ArviZ's schema: each group names the library that made it
        idata[group].attrs.update(inference_library="exmc",
                                  inference_library_version=exmc.__version__)
    return idata


def _stat(values, name):
    """A stat column in its type; rows never sampled (NaN) read False or -1."""
    missing = np.isnan(values)
    if name in BOOL_STATS:
        return np.where(missing, 0, values).astype(bool)
    if name in INT_STATS:
        return np.where(missing, -1, values).astype(np.int64)
    return values
