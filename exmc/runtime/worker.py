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

Internal link: the parent binds PULL on an ``ipc://`` endpoint inside the run's
private folder (mode 0700: other users cannot connect; loopback TCP only where the
path would be too long for a socket address), workers connect PUSH.  Each message is
two frames, the chain's token (32 random bytes made for this run and chain, handed to
its worker through the spawn pipe, never on a command line) and a msgpack map:

    {"kind": "block", "chain": int, "first": int, "n": int,
     "draws": bin (n*dim float64), "stats": bin (n*len(STAT_NAMES) float64), "state": state}
    {"kind": "done", "chain": int, "done": int}

The parent refuses a message whose token is not one of its chains', or that names
another chain than its token's, before using it: a process that is not this chain's
worker can neither add draws to it nor end it.  Maps are decoded with limits derived
from the model's size (``link_message_limit``).

Testing switch: ``EXMC_CRASH_AT="chain:iteration"`` SIGKILLs that chain's worker in its
first life, right after it delivers the block that passes that iteration;
``EXMC_CRASH_AT="chain:always"`` kills it at every start, and
``EXMC_CRASH_AT="chain:iteration:always"`` after that iteration in every life (a chain
that gives up with post-warmup draws).
"""
from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import msgpack
import numpy as np

from exmc.runtime.chain import MAX_BLOCK
from exmc.runtime.executors import Outcome
from exmc.runtime.protocol import unpack_bounded
from exmc.samplers.chain_state import iteration_of, pack_state, unpack_state
from exmc.samplers.nuts import ITERATION, N_SCALARS, STAT_NAMES

log = logging.getLogger("exmc.runtime")

CRASH_ENV = "EXMC_CRASH_AT"
MAX_ERROR_TEXT = 1000  # characters of a worker's exception kept for its chain's reason
LOAD_SECONDS = 600.0  # to load the model before the first block: a cold cache compiles
BEAT_MARGIN = 10.0    # a block may take this many times the previous one before it is hung
HEARTBEAT_TIMEOUT = 10.0  # seconds; the floor of every promise
BUSY_CHECK_SECONDS = 1.0  # how often a worker computing a long block says it is alive
# How chain workers start.  On Linux, fork: a worker starts in milliseconds with the sampler
# and the model this process has already loaded, and never runs the user's script.  Spawn
# elsewhere (fork is unsafe on macOS and absent on Windows): a fresh interpreter that imports
# exmc and loads the sampler from Numba's cache, about a second.
WORKER_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


def link_message_limit(dim):
    """Largest worker-link message of a ``dim``-parameter model, in bytes: a block of
    ``MAX_BLOCK`` rows and a dense-metric state, plus room for the map around them."""
    rows = MAX_BLOCK * (dim + len(STAT_NAMES))
    state = 3 * dim * dim + 13 * dim + N_SCALARS
    return 8 * (rows + state) + 65536


def _crash_plan(chain):
    """(iteration or "always", every life?) for this chain, or (None, False)."""
    spec = os.environ.get(CRASH_ENV, "").split(":")
    if len(spec) < 2 or spec[0] != str(chain):
        return None, False
    return spec[1], spec[1] == "always" or spec[2:] == ["always"]


def run_worker(model_path, chain, seed_sequence, options, endpoint, checkpoint_path, token):
    """Worker process entry point: run (or resume) one chain, PUSH its blocks to ``endpoint``,
    each after the chain's ``token``.  An exception's text is left beside the checkpoint
    (``error_path``), so the parent can report why the chain failed, not only its exit code."""
    try:
        _run_worker(model_path, chain, seed_sequence, options, endpoint, checkpoint_path, token)
    except Exception as err:
        text = " ".join(f"{type(err).__name__}: {err}".split())[:MAX_ERROR_TEXT]
        error_path(checkpoint_path).write_text(text)
        raise


def error_path(checkpoint_path):
    return Path(checkpoint_path).with_suffix(".error")


def _run_worker(model_path, chain, seed_sequence, options, endpoint, checkpoint_path, token):
    import zmq

    from exmc.compiler import compile_model
    from exmc.ir.serialize import loads
    from exmc.runtime.chain import make_settings, run_chain, start_state
    from supervisor import heartbeat

    crash, every_life = _crash_plan(chain)
    if crash == "always":
        os.kill(os.getpid(), signal.SIGKILL)
    heartbeat(within=LOAD_SECONDS)
    compiled = compile_model(loads(Path(model_path).read_bytes()))
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
    start = int(state.scalars[ITERATION])
    total = options["total"]
    socket = zmq.Context.instance().socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, -1)  # deliver everything before exiting
    socket.connect(endpoint)
    sent = [0]
    last_beat = [time.monotonic()]

    def send_block(result):
        # The next block should take about as long as this one (blocks aim at a fixed
        # duration): promise it with a margin; the spec's timeout is the floor.
        now = time.monotonic()
        heartbeat(within=BEAT_MARGIN * (now - last_beat[0]))
        last_beat[0] = now
        rows = slice(sent[0], result.done)
        socket.send(token, zmq.SNDMORE)
        socket.send(msgpack.packb({
            "kind": "block", "chain": chain, "first": start + sent[0],
            "n": result.done - sent[0], "draws": result.draws[rows].tobytes(),
            "stats": result.stats[rows].tobytes(), "state": pack_state(result.state, rng)},
            use_bin_type=True))
        sent[0] = result.done
        if ((first_life or every_life) and crash not in (None, "always")
                and int(crash) <= start + result.done):
            time.sleep(0.2)  # let the block leave, then die mid-run
            os.kill(os.getpid(), signal.SIGKILL)

    busy = threading.Event()
    beating = threading.Thread(target=beat_while_busy, args=(busy, heartbeat), daemon=True,
                               name="exmc-beat-while-busy")
    beating.start()
    try:
        result = run_chain(compiled, settings, state, rng, total - start, on_block=send_block)
    finally:
        busy.set()
        beating.join()
    socket.send(token, zmq.SNDMORE)
    socket.send(msgpack.packb({"kind": "done", "chain": chain, "done": start + result.done},
                              use_bin_type=True))
    socket.close()
    zmq.Context.instance().term()


def beat_while_busy(stop, heartbeat, every=BUSY_CHECK_SECONDS):
    """Beat every ``every`` seconds in which this process used CPU, until ``stop`` is set.

    A block of draws runs in compiled code without the GIL and cannot beat itself; its
    length is promised from the previous block's, but a warmup whose trees grow from a
    few steps to 2**max_tree_depth can take far longer than that promise, and such a
    chain is slow, not hung.  A stopped or blocked process uses no CPU, so it still
    misses its beats and is restarted.
    """
    used = time.process_time()
    while not stop.wait(every):
        now = time.process_time()
        if now - used > 0.05 * every:
            heartbeat()
        used = now


class Gap(ValueError):
    """A block that starts past its chain's last received iteration: one went missing."""

    def __init__(self, chain, first, received):
        super().__init__(f"chain {chain}: a block starts at iteration {first}, but iterations "
                         f"from {received} are missing")
        self.chain = chain


class Collector:
    """Every chain's draws and latest state, from blocks in any order, each draw kept once.

    Whatever runs the chains (``exmc.runtime.executors``) hands it blocks: ``receive`` a
    worker-link message, ``add`` a block made in this process.  ``states`` holds each
    chain's latest packed state (``exmc.samplers.chain_state``).  With ``files=True`` it
    is also written to ``checkpoint_path(chain)``, where a restarted worker resumes from
    (the message as it came: nothing is encoded again), in a private folder (mode 0700,
    in ``parent`` or the temporary folder) that ``close`` removes.  With
    ``keep_draws=False`` (an ``exmc-node`` relaying blocks onward) only the counters and
    states are kept.
    """

    def __init__(self, dim, total, chains, keep_draws=True, files=True, parent=None):
        self.dim, self.total = dim, total
        rows = total if keep_draws else 0
        self.draws = np.zeros((chains, rows, dim))
        self.stats = np.zeros((chains, rows, len(STAT_NAMES)))
        self.received = [0] * chains
        self.finished = [False] * chains
        self.states = {}
        self.directory = Path(tempfile.mkdtemp(prefix="exmc-run-", dir=parent)) if files else None

    def checkpoint_path(self, chain):
        return self.directory / f"chain-{chain}.msgpack"

    def resume_from(self, chain, packed_state, rows=None):
        """Start ``chain`` from a packed state, after the draws and stats ``rows`` (done, dim +
        len(STAT_NAMES)) that led to it, when they are kept."""
        self.received[chain] = iteration_of(packed_state)
        if rows is not None and len(rows) and self.draws.shape[1]:
            done = len(rows)
            self.draws[chain, :done], self.stats[chain, :done] = rows[:, :self.dim], rows[:, self.dim:]
        self._keep_state(chain, packed_state)
        self.finished[chain] = self.received[chain] >= self.total

    def _keep_state(self, chain, packed_state, payload=None):
        self.states[chain] = packed_state
        if self.directory is not None:
            tmp = self.checkpoint_path(chain).with_suffix(".tmp")
            tmp.write_bytes(payload or msgpack.packb({"state": packed_state}, use_bin_type=True))
            os.replace(tmp, self.checkpoint_path(chain))

    def receive(self, payload, sender=None):
        """Fold one worker-link message in; returns (chain, first, end) of the rows it added.

        ``sender``: the chain whose worker sent it (known from its token), if known.
        Raises ``ValueError`` for a message that does not follow the worker link's format
        or names another chain than its sender, and its subclass ``Gap`` for a block that
        leaves out iterations before it.
        """
        msg = _unpack_link(payload, link_message_limit(self.dim))
        chain = msg["chain"]
        if chain >= len(self.received):
            raise ValueError(f"malformed worker message: chain {chain} is not in this run")
        if sender is not None and chain != sender:
            raise ValueError(f"refused a worker message: chain {sender}'s worker sent a "
                             f"message for chain {chain}")
        if msg["kind"] == "done":
            self.finished[chain] = self.received[chain] >= msg["done"] >= self.total
            return chain, 0, 0
        if msg["draws"].shape[1:] != (self.dim,) or msg["first"] + msg["n"] > self.total:
            raise ValueError(f"malformed worker message: draws of shape {msg['draws'].shape} "
                             f"from iteration {msg['first']}; expected {self.dim} columns up "
                             f"to {self.total}")
        return (chain, *self.add(chain, msg["first"], msg["draws"], msg["stats"], msg["state"],
                                 payload))

    def add(self, chain, first, draws, stats, packed_state, payload=None):
        """Fold in a block of rows from iteration ``first`` and the chain's state after it;
        returns (first, end) of the rows that were new.  A resumed chain regenerates draws
        after its last saved state: only indices not received before are kept."""
        if first > self.received[chain]:
            raise Gap(chain, first, self.received[chain])
        start, end = self.received[chain], first + len(draws)
        if end <= start:
            return start, start
        new = start - first
        if self.draws.shape[1]:
            self.draws[chain, start:end] = draws[new:]
            self.stats[chain, start:end] = stats[new:]
        self.received[chain] = end
        self._keep_state(chain, packed_state, payload)
        return start, end

    def close(self):
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def _unpack_link(payload, max_bytes):
    """A worker-link message, checked: blocks can also come from an exmc-node over the network."""
    try:
        if len(payload) > max_bytes:
            raise ValueError(f"{len(payload)} bytes, more than the {max_bytes} of a block")
        # Strings: keys and the generator's state as decimal text; containers: maps of at
        # most 9 keys and array shapes.
        msg = unpack_bounded(payload, max_str_len=256, max_bin_len=max_bytes, min_items=256,
                             max_container_len=16)
        kind = msg["kind"]
        chain = msg["chain"]
        if not (isinstance(chain, int) and chain >= 0):
            raise ValueError("chain")
        if kind == "done":
            return {"kind": kind, "chain": chain, "done": int(msg["done"])}
        if kind != "block":
            raise ValueError("kind")
        first, n = int(msg["first"]), int(msg["n"])
        draws = np.frombuffer(msg["draws"], dtype=np.float64)
        stats = np.frombuffer(msg["stats"], dtype=np.float64).reshape(n, len(STAT_NAMES))
        unpack_state(msg["state"])  # a state that cannot be resumed is refused now, not later
        if first < 0 or n < 0:
            raise ValueError("first, n")
        return {"kind": kind, "chain": chain, "first": first, "n": n,
                "draws": draws.reshape(n, -1) if n else draws.reshape(0, 0), "stats": stats,
                "state": msg["state"]}
    except Exception as err:  # msgpack and shape errors come in many types
        raise ValueError(f"malformed worker message: {err!r}") from None


class ChainGroup:
    """The chains of one run, each in a worker process under its own supervisor.

    Workers PUSH their blocks, each after its chain's token, to this group's PULL socket
    (an ipc socket in the run's private folder); ``receive`` checks the token and folds
    the block into the collector.  The caller decides how many run at once
    (``launch_waiting``) and calls ``reap`` to retire finished and failed chains.
    """

    def __init__(self, model_bytes, options, seed_sequences, collector,
                 heartbeat_timeout=HEARTBEAT_TIMEOUT, max_restarts=3, max_seconds=60.0):
        import zmq

        self.pull = zmq.Context.instance().socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.MAXMSGSIZE, link_message_limit(options["dim"]))
        # The run's folder is private (mkdtemp: mode 0700), so only its owner can reach an
        # ipc endpoint in it.  A socket path is limited to 107 bytes: under a long TMPDIR the
        # endpoint goes in a private folder of its own in /tmp, and failing that loopback
        # TCP, where the tokens alone keep strangers out.
        self.link_directory = None
        link = collector.directory / "link"
        if len(str(link)) >= 100 and os.access("/tmp", os.W_OK):
            self.link_directory = Path(tempfile.mkdtemp(prefix="exmc-link-", dir="/tmp"))
            link = self.link_directory / "link"
        self.pull.bind(f"ipc://{link}" if len(str(link)) < 100 else "tcp://127.0.0.1:*")
        self.endpoint = self.pull.getsockopt_string(zmq.LAST_ENDPOINT)
        # The model goes to workers as a file: spawning pipes the arguments to the child, and
        # a large model (much data) would block the caller until the child has started.
        self.model_path = collector.directory / "model.msgpack"
        self.model_path.write_bytes(model_bytes)
        self.options, self.seeds = options, dict(seed_sequences)
        self.tokens = {chain: secrets.token_bytes(32) for chain in self.seeds}
        self.senders = {token: chain for chain, token in self.tokens.items()}
        self.refused = 0  # messages that did not come from this run's workers
        self.collector = collector
        self.limits = (heartbeat_timeout, max_restarts, max_seconds)
        self.waiting = sorted(c for c in self.seeds if not collector.finished[c])
        self.running = {}
        self.restarts = {chain: 0 for chain in self.seeds}
        self.failures = {chain: None for chain in self.seeds}

    @property
    def active(self):
        return bool(self.waiting or self.running)

    def launch_waiting(self, slots):
        while self.waiting and slots > 0:
            self._launch(self.waiting.pop(0))
            slots -= 1

    def _launch(self, chain):
        from supervisor import ChildRestarted, ChildSpec, Supervisor, SupervisorSpec, TRANSIENT

        def count(event, chain=chain):
            if isinstance(event, ChildRestarted):
                self.restarts[chain] += 1
        heartbeat_timeout, max_restarts, max_seconds = self.limits
        spec = SupervisorSpec(f"chain{chain}", children=[ChildSpec(
            f"chain-{chain}", run_worker,
            (str(self.model_path), chain, self.seeds[chain], self.options, self.endpoint,
             str(self.collector.checkpoint_path(chain)), self.tokens[chain]),
            restart=TRANSIENT, heartbeat_timeout=heartbeat_timeout,
            start_method=WORKER_START_METHOD)],
            max_restarts=max_restarts, max_seconds=max_seconds)
        self.running[chain] = Supervisor(spec, on_event=count).start()

    def deliver(self, on_rows):
        """Receive one message and hand its new rows to ``on_rows(chain, first, end)``; a
        refused one is logged, never used."""
        try:
            chain, first, end, _ = self.receive()
        except ValueError as err:  # not from our workers, or nonsense
            log.warning("%s", err)
            return
        if end > first:
            on_rows(chain, first, end)

    def receive(self, flags=0):
        """(chain, first, end, payload) of one message from the workers; with ``zmq.NOBLOCK``
        in ``flags``, raises ``zmq.Again`` when there is none.

        Raises ``ValueError`` for a message refused: not two frames, a token that is not
        one of this run's chains' (checked before anything is decoded), a message naming
        another chain than its token's, or one that does not follow the link's format.
        """
        frames = self.pull.recv_multipart(flags, copy=True)
        sender = self.senders.get(frames[0]) if len(frames) == 2 else None
        if sender is None or not hmac.compare_digest(frames[0], self.tokens[sender]):
            self.refused += 1
            raise ValueError("refused a worker-link message that did not come from a worker "
                             "of this run (no valid chain token)")
        try:
            return (*self.collector.receive(frames[1], sender), frames[1])
        except Gap:
            raise
        except ValueError:
            self.refused += 1
            raise

    def reap(self):
        """Retire chains whose last message is in, and chains past their restart intensity."""
        for chain, sup in list(self.running.items()):
            if self.collector.finished[chain]:  # its last message is in: the worker is exiting
                sup.stop()
                del self.running[chain]
            elif sup.status == "gave up":
                self.failures[chain] = (f"gave up after {self.restarts[chain]} restarts: "
                                        f"{sup.failure.reason if sup.failure else 'unknown'}"
                                        f"{self._worker_error(chain)}")
                sup.stop()
                del self.running[chain]

    def _worker_error(self, chain):
        """The worker's last exception, as its reason's tail ('' if it left none)."""
        try:
            text = error_path(self.collector.checkpoint_path(chain)).read_text()[:MAX_ERROR_TEXT]
        except OSError:
            return ""
        return f" (the worker's error: {text})"

    def stop(self):
        """Stop every worker (no orphans), close the socket, drop the checkpoints."""
        for sup in self.running.values():
            sup.stop()
        self.running.clear()
        self.pull.close()
        self.collector.close()
        if self.link_directory is not None:
            shutil.rmtree(self.link_directory, ignore_errors=True)


@contextlib.contextmanager
def interrupts_held():
    """Cleanup a second Ctrl-C cannot cut short (workers stopped, checkpoint folder removed):
    SIGINT is held until the block ends, then raised.  Only in the main thread, where
    Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda *_: held.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


class Processes:
    """Executor: a new supervised worker process per chain, at most ``cores`` at once
    (``exmc.sample(..., executor="processes")``).  A worker that crashes is restarted and
    resumes from its chain's last delivered draw; a chain whose worker needs more than
    ``max_restarts`` restarts in ``max_seconds`` is given up."""

    name = "processes"
    files = True  # restarted workers resume from the collector's checkpoint files

    def __init__(self, cores, heartbeat_timeout=HEARTBEAT_TIMEOUT, max_restarts=3,
                 max_seconds=60.0):
        if not float(heartbeat_timeout) > 0:
            raise ValueError(f"heartbeat_timeout must be > 0 seconds, got {heartbeat_timeout!r}")
        self.cores, self.heartbeat_timeout = int(cores), float(heartbeat_timeout)
        self.max_restarts, self.max_seconds = max_restarts, max_seconds

    def prepare(self):
        """Before compiling: refuse to start from a worker's own bootstrap."""
        from exmc.runtime import spawning
        spawning.refuse_in_bootstrap()

    def group(self, jobs, collector):
        from exmc.runtime import spawning
        spawning.install()  # workers never re-run the user's script: no __main__ guard needed
        return ChainGroup(jobs.model.to_msgpack(), jobs.options,
                          enumerate(jobs.seeds), collector, self.heartbeat_timeout,
                          self.max_restarts, self.max_seconds)

    def run(self, jobs, collector, on_rows, should_stop):
        group = self.group(jobs, collector)
        try:
            while group.active and not should_stop():
                group.launch_waiting(self.cores - len(group.running))
                if group.pull.poll(100):
                    group.deliver(on_rows)
                group.reap()
        except KeyboardInterrupt:
            pass
        finally:
            with interrupts_held():
                group.stop()
        return self.outcome(group, [group.restarts[c] for c in range(len(jobs.seeds))],
                            [group.failures[c] for c in range(len(jobs.seeds))])

    def outcome(self, group, restarts, failures):
        if group.refused:
            warnings.warn(f"refused {group.refused} message(s) on the worker link that did not "
                          f"come from this run's workers or did not follow its format; the "
                          f"trace holds only the workers' draws", RuntimeWarning, stacklevel=4)
        return Outcome(failures, {"cores": self.cores, "restarts": [int(r) for r in restarts]})
