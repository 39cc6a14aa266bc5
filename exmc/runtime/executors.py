"""Where a run's chains go: executors, each turning chain jobs into blocks for one ``Collector``.

``exmc.sample`` does the front and back matter once (arguments, compiling, seeds,
checkpoint, stream, progress, assembling the InferenceData) and hands the chains to an
executor:

- ``InProcess``: one after another in this process (``executor="in-process"``);
- ``exmc.runtime.worker.Processes``: a supervised worker process per chain;
- ``exmc.runtime.pool.Pool``: the session's warm supervised workers (the default);
- ``exmc.distributed.Nodes``: exmc-node daemons on other machines.

An executor has a ``name``, says whether its collector keeps checkpoint files
(``files``: workers that restart resume from them), may ``prepare`` before the model is
compiled, and has ``run(jobs, collector, on_rows, should_stop)``: it runs every chain of
``jobs`` (a ``ChainJobs``) not finished in ``collector``, folds each block into the
collector (which keeps each draw once, whatever the order or repeats), calls
``on_rows(chain, first, end)`` for the rows each block added, and stops when
``should_stop()`` is true or on Ctrl-C.  It returns an ``Outcome``.  Wherever chains
run, their draws are the same, bit for bit.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ChainJobs(NamedTuple):
    """What a run's chains need, wherever they run."""

    model: object      # the Model, sent as its IR to processes and nodes
    compiled: object   # this process's CompiledModel
    settings: object   # exmc.samplers.nuts.Settings
    seeds: list        # a SeedSequence per chain
    init: dict         # constrained starting values by name ({} for none)
    dense: bool        # dense metric
    total: int         # iterations per chain, warmup included

    @property
    def options(self):
        """The settings as plain data, for the worker link and nodes."""
        s = self.settings
        return {"dim": self.compiled.dim, "total": self.total, "num_warmup": s.num_warmup,
                "max_tree_depth": s.max_tree_depth, "target_accept": s.target_accept,
                "fault_rate": s.fault_rate, "gradient_metric": s.gradient_metric,
                "init": _plain(self.init) or None, "dense": bool(self.dense)}


class Outcome(NamedTuple):
    """How a run's chains ended: a failure reason per chain (None: no failure; "interrupted"
    for a stop), and InferenceData attributes of the executor's own (restarts, nodes)."""

    failures: list
    attrs: dict


def _plain(init):
    return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in (init or {}).items()}


class InProcess:
    """Executor: the chains one after another in this process (``executor="in-process"``),
    for debugging; an interrupt stops the run at the chain it reaches."""

    name = "in-process"
    files = False

    def prepare(self):
        pass

    def run(self, jobs, collector, on_rows, should_stop):
        from exmc.runtime.chain import run_chain, start_state
        from exmc.samplers.chain_state import pack_state, unpack_state

        failures = [None] * len(jobs.seeds)
        for chain, seed_sequence in enumerate(jobs.seeds):
            if collector.finished[chain]:
                continue
            if chain in collector.states:
                state, rng = unpack_state(collector.states[chain])
            else:
                rng = np.random.Generator(np.random.PCG64(seed_sequence))
                state = start_state(jobs.compiled, jobs.init, rng, jobs.dense)
            start = collector.received[chain]
            sent = [0]

            def on_block(result, chain=chain, start=start, sent=sent, rng=rng):
                rows = slice(sent[0], result.done)
                first, end = collector.add(chain, start + sent[0], result.draws[rows],
                                           result.stats[rows], pack_state(result.state, rng))
                sent[0] = result.done
                if end > first:
                    on_rows(chain, first, end)
                if should_stop():
                    raise KeyboardInterrupt  # run_chain keeps what was drawn

            result = run_chain(jobs.compiled, jobs.settings, state, rng,
                               collector.total - start, on_block=on_block)
            if result.interrupted:
                failures[chain] = "interrupted"
                break
            collector.finished[chain] = True
        return Outcome(failures, {})


def choose(executor, cores, chains, heartbeat_timeout):
    """The executor object for ``exmc.sample``'s ``executor`` and ``cores`` arguments."""
    if cores is not None and (isinstance(cores, bool) or not isinstance(cores, (int, np.integer))
                              or cores < 1):
        raise ValueError(f"cores must be an integer >= 1, got {cores!r}")
    if executor is not None and not isinstance(executor, str):
        if not callable(getattr(executor, "run", None)):
            raise ValueError(f"executor must be 'in-process', 'processes', 'pool' or an "
                             f"executor object such as exmc.distributed.Nodes, got {executor!r}")
        if cores is not None:
            raise ValueError(f"cores= applies to executor='pool' or 'processes'; the "
                             f"{executor.name} executor decides where chains run")
        return executor
    if executor is None:
        parallel = chains > 1 and (cores or available_cores()) > 1
        executor = "pool" if parallel else "in-process"
        if executor == "in-process":
            cores = None
    if executor not in ("in-process", "processes", "pool"):
        raise ValueError(f"executor must be 'in-process', 'processes' or 'pool', got "
                         f"{executor!r}")
    if executor == "in-process":
        if cores is not None:
            raise ValueError("executor='in-process' runs chains one after another here; "
                             "leave cores out or choose executor='pool' or 'processes'")
        return InProcess()
    cores = cores or max(1, min(chains, available_cores()))
    if executor == "pool":
        from exmc.runtime.pool import Pool
        return Pool(cores, heartbeat_timeout)
    from exmc.runtime.worker import Processes
    return Processes(cores, heartbeat_timeout)


def available_cores():
    """CPUs this process may run on (its affinity mask, where the OS has one)."""
    import os
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
