"""Chains as supervised OS processes that resume after a crash from their last delivered draw.

Each chain runs in a worker process under its own supervisor (``supervisor/``;
transient child, so a crash restarts it and a normal end does not).  The worker
compiles the model from its IR (a cache hit: the parent compiled it first),
runs blocks of draws, and PUSHes each block to the parent over ZeroMQ together
with the chain's whole state after the block (``ChainState`` arrays and the
random generator's state).  The parent keeps the draws and writes the latest
state to a checkpoint file as it receives them; a restarted worker starts from
that file, so it regenerates exactly the draws that were not delivered (block
boundaries do not change the draws) and nothing is lost or repeated.

Internal link (parent binds PULL on loopback, workers connect PUSH), msgpack maps:

    {"kind": "block", "chain": int, "first": int, "n": int,
     "draws": bin (n*dim float64), "stats": bin (n*len(STAT_NAMES) float64), "state": state}
    {"kind": "done", "chain": int, "done": int}

Testing switch: ``EXMC_CRASH_AT="chain:iteration"`` SIGKILLs that chain's worker in its
first life, right after it delivers the block that passes that iteration;
``EXMC_CRASH_AT="chain:always"`` kills it at every start.
"""
from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np

from exmc.samplers.integrators import Metric
from exmc.samplers.nuts import STAT_NAMES, ChainState

CRASH_ENV = "EXMC_CRASH_AT"
STATE_ARRAYS = ("position", "grad", "scalars", "window_mean", "window_m2", "gradient_windows")
METRIC_ARRAYS = ("inverse_diag", "inverse_dense", "momentum_factor")


def _pack_array(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "bytes": a.tobytes()}


def _unpack_array(obj):
    return np.frombuffer(obj["bytes"], dtype=np.float64).reshape(obj["shape"]).copy()


def pack_state(state: ChainState, rng) -> dict:
    """Plain-data snapshot of a chain: its arrays and its generator's state (big ints as text)."""
    rs = rng.bit_generator.state
    return {"arrays": {k: _pack_array(getattr(state, k)) for k in STATE_ARRAYS},
            "metric": {k: _pack_array(getattr(state.metric, k)) for k in METRIC_ARRAYS},
            "dense": bool(state.metric.dense),
            "rng": {"state": str(rs["state"]["state"]), "inc": str(rs["state"]["inc"]),
                    "has_uint32": int(rs["has_uint32"]), "uinteger": int(rs["uinteger"])}}


def unpack_state(obj):
    """(ChainState, Generator) from ``pack_state``'s output."""
    arrays = {k: _unpack_array(obj["arrays"][k]) for k in STATE_ARRAYS}
    metric = Metric(*(_unpack_array(obj["metric"][k]) for k in METRIC_ARRAYS), bool(obj["dense"]))
    state = ChainState(arrays["position"], arrays["grad"], arrays["scalars"], metric,
                       arrays["window_mean"], arrays["window_m2"], arrays["gradient_windows"])
    rng = np.random.Generator(np.random.PCG64())
    r = obj["rng"]
    rng.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": int(r["state"]), "inc": int(r["inc"])},
                               "has_uint32": r["has_uint32"], "uinteger": r["uinteger"]}
    return state, rng


def _crash_plan(chain):
    spec = os.environ.get(CRASH_ENV, "")
    if not spec or spec.split(":")[0] != str(chain):
        return None
    return spec.split(":")[1]


def run_worker(model_bytes, chain, seed_sequence, options, endpoint, checkpoint_path):
    """Worker process entry point: run (or resume) one chain, PUSH its blocks to ``endpoint``."""
    import zmq

    from exmc.compiler import compile_model
    from exmc.ir.serialize import loads
    from exmc.runtime.chain import make_settings, run_chain, start_state
    from supervisor import heartbeat

    crash = _crash_plan(chain)
    if crash == "always":
        os.kill(os.getpid(), signal.SIGKILL)
    compiled = compile_model(loads(model_bytes))
    settings = make_settings(options["num_warmup"], options["max_tree_depth"],
                             options["target_accept"], options["fault_rate"],
                             gradient_metric=options["gradient_metric"])
    path = Path(checkpoint_path)
    first_life = not path.exists()
    if not first_life:
        saved = msgpack.unpackb(path.read_bytes(), raw=False)
        state, rng = unpack_state(saved["state"])
    else:
        rng = np.random.Generator(np.random.PCG64(seed_sequence))
        state = start_state(compiled, options["init"], rng, options["dense"])
    start = int(state.scalars[0])
    total = options["total"]
    socket = zmq.Context.instance().socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, -1)  # deliver everything before exiting
    socket.connect(endpoint)
    sent = [0]

    def send_block(result):
        heartbeat()
        rows = slice(sent[0], result.done)
        socket.send(msgpack.packb({
            "kind": "block", "chain": chain, "first": start + sent[0],
            "n": result.done - sent[0], "draws": result.draws[rows].tobytes(),
            "stats": result.stats[rows].tobytes(), "state": pack_state(result.state, rng)},
            use_bin_type=True))
        sent[0] = result.done
        if first_life and crash not in (None, "always") and int(crash) <= start + result.done:
            time.sleep(0.2)  # let the block leave, then die mid-run
            os.kill(os.getpid(), signal.SIGKILL)

    result = run_chain(compiled, settings, state, rng, total - start, on_block=send_block)
    socket.send(msgpack.packb({"kind": "done", "chain": chain, "done": start + result.done},
                              use_bin_type=True))
    socket.close()
    zmq.Context.instance().term()


class Collector:
    """Parent side: assembles each chain's draws from blocks, keeps checkpoints, counts lives."""

    def __init__(self, dim, total, chains, directory=None):
        self.dim, self.total = dim, total
        self.draws = np.zeros((chains, total, dim))
        self.stats = np.zeros((chains, total, len(STAT_NAMES)))
        self.received = [0] * chains
        self.finished = [False] * chains
        self.directory = Path(directory or tempfile.mkdtemp(prefix="exmc-run-"))

    def checkpoint_path(self, chain):
        return self.directory / f"chain-{chain}.msgpack"

    def receive(self, payload):
        """Fold one message in; returns (chain, first, end) of the rows it added."""
        msg = msgpack.unpackb(payload, raw=False)
        if not isinstance(msg, dict) or msg.get("kind") not in ("block", "done"):
            raise ValueError("malformed worker message")
        chain = int(msg["chain"])
        if msg["kind"] == "done":
            self.finished[chain] = self.received[chain] >= int(msg["done"]) >= self.total
            return chain, 0, 0
        first, n = int(msg["first"]), int(msg["n"])
        draws = np.frombuffer(msg["draws"], dtype=np.float64).reshape(n, self.dim)
        stats = np.frombuffer(msg["stats"], dtype=np.float64).reshape(n, len(STAT_NAMES))
        # A resumed worker regenerates draws after its checkpoint; keep only new indices.
        new = max(self.received[chain] - first, 0)
        end, start = first + n, self.received[chain]
        if new < n and first <= self.received[chain]:
            self.draws[chain, first + new:end] = draws[new:]
            self.stats[chain, first + new:end] = stats[new:]
            self.received[chain] = end
            tmp = self.checkpoint_path(chain).with_suffix(".tmp")
            tmp.write_bytes(msgpack.packb({"state": msg["state"]}, use_bin_type=True))
            os.replace(tmp, self.checkpoint_path(chain))
            return chain, start, end
        return chain, start, start


def run_in_workers(model, options, seed_sequences, cores, on_rows, should_stop=lambda: False,
                   heartbeat_timeout=120.0, max_restarts=3, max_seconds=60.0):
    """Run every chain in supervised worker processes, at most ``cores`` at once.

    ``on_rows(chain, first, end, collector)`` is called as draws arrive.  Ctrl-C or
    ``should_stop()`` stops every worker and keeps what arrived.  Returns (collector,
    restarts per chain, failure reason per chain or None).
    """
    import zmq

    from supervisor import ChildRestarted, ChildSpec, Supervisor, SupervisorSpec, TRANSIENT

    chains = len(seed_sequences)
    context = zmq.Context.instance()
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("tcp://127.0.0.1:*")
    endpoint = pull.getsockopt_string(zmq.LAST_ENDPOINT)
    collector = Collector(options["dim"], options["total"], chains)
    restarts, failures = [0] * chains, [None] * chains
    waiting, running = list(range(chains)), {}
    model_bytes = model.to_msgpack()

    def launch(chain):
        def count(event, chain=chain):
            if isinstance(event, ChildRestarted):
                restarts[chain] += 1
        spec = SupervisorSpec(f"chain{chain}", children=[ChildSpec(
            f"chain-{chain}", run_worker,
            (model_bytes, chain, seed_sequences[chain], options, endpoint,
             str(collector.checkpoint_path(chain))),
            restart=TRANSIENT, heartbeat_timeout=heartbeat_timeout)],
            max_restarts=max_restarts, max_seconds=max_seconds)
        running[chain] = Supervisor(spec, on_event=count).start()

    try:
        while (waiting or running) and not should_stop():
            while waiting and len(running) < cores:
                launch(waiting.pop(0))
            if pull.poll(100):
                chain, first, end = collector.receive(pull.recv())
                if end > first:
                    on_rows(chain, first, end, collector)
            for chain, sup in list(running.items()):
                if collector.finished[chain]:  # its last message is in: the worker is exiting
                    sup.stop()
                    del running[chain]
                elif sup.status == "gave up":
                    failures[chain] = (f"gave up after {restarts[chain]} restarts: "
                                       f"{sup.failure.reason if sup.failure else 'unknown'}")
                    sup.stop()
                    del running[chain]
    except KeyboardInterrupt:
        pass
    finally:
        for sup in running.values():
            sup.stop()
        pull.close()
    for chain in range(chains):
        if not collector.finished[chain] and failures[chain] is None:
            failures[chain] = "interrupted"
    return collector, restarts, failures
