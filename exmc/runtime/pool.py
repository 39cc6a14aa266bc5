"""Warm chain workers kept for the Python session: parallel chains without a start-up tax.

``WorkerPool`` starts its workers once, under one supervisor (permanent children
``exmc-pool/worker-<i>``), and hands them chains, run after run, so that a run pays no
worker start and no supervisor start.  On Linux the workers are forked
(``exmc.runtime.worker.WORKER_START_METHOD``) when the first parallel run of the session
has compiled its model and loaded the sampler: they start in milliseconds, warm.
Elsewhere they are spawned, which costs about a second each (a Python interpreter,
``import exmc``, Numba loading the cached sampler), and each loads the sampler before it
asks for work.  A chain is run by the very function a one-chain
worker runs (``exmc.runtime.worker.run_worker``): same worker link, same tokens, same
checkpoint file, so the draws are bit for bit the in-process ones and a chain whose
worker dies (a crash, SIGKILL, a missed heartbeat) is restarted from its last delivered
draw on a worker that the supervisor has just restarted.  A chain that keeps dying (more
than ``max_restarts`` restarts in ``max_seconds``) is given up like a one-chain
worker's.  Workers never import the user's script (``exmc.runtime.spawning``).

Control link: the pool binds a ROUTER on an ``ipc://`` endpoint in its private folder
(mode 0700; under /tmp where the usual one's path would be too long; never TCP); each worker connects a
DEALER and sends multipart messages, the pool's 32-byte secret first (handed to it
through the spawn pipe, never on a command line); the pool answers only workers that
sent it:

    worker -> pool   [secret, b"ready", pid as text]        after warming up and after each chain
    pool -> worker   [b"job", pickle of (run_worker's arguments, {EXMC_CRASH_AT: value})]
    pool -> worker   [b"stop"]

Pickle is used only between this process and the workers it spawned, on an ipc link in
a folder only this user can enter: nothing from the network is unpickled.
"""
from __future__ import annotations

import atexit
import collections
import hmac
import os
import pickle
import queue
import secrets
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from exmc.runtime import spawning
from exmc.runtime.worker import Processes

POOL_NAME = "exmc-pool"
WARM_SECONDS = 600.0  # a worker's first beat: a cold cache compiles the sampler
POLL_SECONDS = 1.0    # an idle worker beats this often

_lock = threading.Lock()
_pool = None
_atexit_registered = []


def _warm():
    """Load the sampler loop (from Numba's cache) with a one-variable model."""
    import numpy as np

    from exmc.compiler import compile_model
    from exmc.ir.builder import Builder
    from exmc.ir.dists import Normal
    from exmc.runtime.chain import load_kernels, make_settings

    compiled = compile_model(Builder().rv("x", Normal(0.0, 1.0)))
    load_kernels(compiled, make_settings(10), False)
    compiled.constrain(np.zeros((1, 1)))


def pool_worker(endpoint, secret, forked=False):
    """Worker process entry point: warm up, then run chains handed over until told to stop.

    A forked worker is warm already: it is a copy of the parent, which loaded the sampler
    (and the model of the run that started the pool) before starting it."""
    import zmq

    from exmc.runtime.worker import run_worker
    from supervisor import heartbeat

    heartbeat(within=WARM_SECONDS)
    if not forked:
        _warm()
    context = zmq.Context()  # its own: run_worker ends the shared instance after each chain
    control = context.socket(zmq.DEALER)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(endpoint)
    pid = str(os.getpid()).encode()
    control.send_multipart([secret, b"ready", pid])
    try:
        while True:
            heartbeat()
            if not control.poll(int(POLL_SECONDS * 1000)):
                continue
            frames = control.recv_multipart()
            if frames[0] == b"stop":
                return
            if frames[0] == b"job" and len(frames) == 2:
                arguments, environment = pickle.loads(frames[1])
                for name, value in environment.items():  # the run's testing switches
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                run_worker(*arguments)  # an exception ends this worker: it is restarted
                control.send_multipart([secret, b"ready", pid])
    finally:
        control.close()
        context.term()


class WorkerPool:
    """``size`` warm workers under one supervisor; ``run`` gives them one run's chains.

    One run at a time: ``acquire`` returns False while another run holds the pool.
    """

    def __init__(self, size, heartbeat_timeout=10.0):
        import zmq

        from exmc.runtime.worker import WORKER_START_METHOD
        from supervisor import PERMANENT, ChildExited, ChildSpec, Supervisor, SupervisorSpec

        spawning.install()
        self.size = size
        self.directory = Path(tempfile.mkdtemp(prefix="exmc-pool-"))
        if len(str(self.directory / "control")) >= 100:  # beyond an ipc path's length limit
            shutil.rmtree(self.directory)
            self.directory = Path(tempfile.mkdtemp(prefix="exmc-pool-", dir="/tmp"))
        self.router = zmq.Context.instance().socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted worker takes its place
        # ipc only, never TCP: the jobs sent on this link are pickles (see the module docstring)
        self.router.bind(f"ipc://{self.directory / 'control'}")
        endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.secret = secrets.token_bytes(32)
        self.events = queue.Queue()
        self.idle = collections.deque()   # identities of workers waiting for a chain
        self.pids = {}                    # identity -> pid
        self.busy = threading.Lock()

        def on_event(event):
            if isinstance(event, ChildExited) and event.pid is not None:
                self.events.put((event.pid, str(event.reason)))
        # The pool's own intensity is unbounded: chains are given up one by one, by the
        # restarts their own workers needed (see run), as a one-chain worker's supervisor does.
        forked = WORKER_START_METHOD == "fork"
        self.supervisor = Supervisor(SupervisorSpec(POOL_NAME, children=[
            ChildSpec(f"worker-{i}", pool_worker, (endpoint, self.secret, forked),
                      restart=PERMANENT, heartbeat_timeout=heartbeat_timeout,
                      start_method=WORKER_START_METHOD) for i in range(size)],
            max_restarts=10 ** 9, max_seconds=1.0), on_event=on_event).start()

    @property
    def alive(self):
        return self.supervisor.status == "running"

    def acquire(self):
        return self.busy.acquire(blocking=False)

    def release(self):
        self.busy.release()

    def _messages(self):
        """Fold in what workers sent: (identity, pid) of each that just became ready."""
        import zmq

        ready = []
        while True:
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return ready
            if (len(frames) == 4 and hmac.compare_digest(frames[1], self.secret)
                    and frames[2] == b"ready"):
                identity, pid = frames[0], int(frames[3])
                self.pids[identity] = pid
                ready.append((identity, pid))

    def _exits(self):
        exits = []
        while True:
            try:
                exits.append(self.events.get_nowait())
            except queue.Empty:
                return exits

    def run(self, group, chains, cores, on_rows, should_stop, max_restarts, max_seconds):
        """Run ``chains`` of ``group`` (a ``ChainGroup``: link, tokens, collector), at most
        ``cores`` at once; returns (restarts per chain, failure reason per chain or None)."""
        from exmc.runtime.worker import CRASH_ENV

        collector = group.collector
        waiting = collections.deque(c for c in chains if not collector.finished[c])
        running = {}                      # pid -> chain
        restarts = {c: 0 for c in chains}
        restart_times = {c: collections.deque() for c in chains}
        failures = {c: None for c in chains}
        self._exits()  # exits from before this run are not this run's

        def active():
            return [c for c in chains if failures[c] is None and not collector.finished[c]]

        def job(chain):
            # The testing switch as the run sees it now (the workers were started before).
            environment = {CRASH_ENV: os.environ.get(CRASH_ENV)}
            return ((str(group.model_path), chain, group.seeds[chain], group.options,
                     group.endpoint, str(collector.checkpoint_path(chain)), group.tokens[chain]),
                    environment)
        try:
            while active() and not should_stop():
                for identity, pid in self._messages():
                    running.pop(pid, None)  # its chain's last message is in or on its way
                    self.idle.append(identity)
                for pid, reason in self._exits():
                    self.idle = collections.deque(i for i in self.idle if self.pids.get(i) != pid)
                    chain = running.pop(pid, None)
                    if chain is None or collector.finished[chain]:
                        continue
                    now = time.monotonic()
                    times = restart_times[chain]
                    while times and now - times[0] > max_seconds:
                        times.popleft()
                    if len(times) >= max_restarts:
                        failures[chain] = (f"gave up after {restarts[chain]} restarts: {reason}"
                                           f"{group._worker_error(chain)}")
                        continue
                    times.append(now)
                    restarts[chain] += 1
                    waiting.appendleft(chain)
                while waiting and self.idle and len(running) < cores:
                    identity, chain = self.idle.popleft(), waiting.popleft()
                    running[self.pids[identity]] = chain
                    self.router.send_multipart([identity, b"job", pickle.dumps(job(chain))])
                if group.pull.poll(20 if (waiting and not self.idle) else 100):
                    group.deliver(on_rows)
        except KeyboardInterrupt:
            pass
        finally:
            for pid, chain in running.items():  # stopped mid-chain: its worker starts afresh
                if not collector.finished[chain]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        return restarts, failures

    def stop(self):
        # A Ctrl-C pressed again while this runs (often at exit) must not cut it short:
        # it would leave workers and the folder behind.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            if self.supervisor.status == "running":
                for identity in list(self.pids):
                    try:
                        self.router.send_multipart([identity, b"stop"])
                    except Exception:
                        pass
                self.supervisor.stop()
            self.router.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            if main and previous is not None:
                signal.signal(signal.SIGINT, previous)


def get_pool(size, heartbeat_timeout=10.0):
    """The session's pool, with at least ``size`` workers (started, or grown, on demand)."""
    global _pool
    with _lock:
        if _pool is not None and (not _pool.alive or _pool.size < size):
            if not _pool.acquire():  # held by a run going on: leave it, start no other
                return None
            _pool.stop()
            _pool = None
        if _pool is None:
            _pool = WorkerPool(size, heartbeat_timeout)
            if not _atexit_registered:
                atexit.register(shutdown)  # its folder goes; its workers stop with it
                _atexit_registered.append(True)
        return _pool


def shutdown():
    """Stop the session's pool now (it is also stopped at interpreter exit)."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.stop()
            _pool = None


class Pool(Processes):
    """Executor: chains on the session's warm pool (``exmc.sample``'s default for parallel
    chains), ``cores`` at a time; while another run holds the pool, workers of its own
    (``Processes``).  Same draws, same restarts and give-ups as ``Processes``."""

    name = "pool"

    def prepare(self):
        """Start the session's pool now, so its workers warm up while this process compiles
        the model (not on a machine's first run: they would compile the sampler beside it).
        Forked workers start later, warm, from this process once it has loaded the model."""
        from exmc.runtime.notices import sampler_is_cached
        from exmc.runtime.worker import WORKER_START_METHOD

        super().prepare()
        if sampler_is_cached() and WORKER_START_METHOD == "spawn":
            get_pool(self.cores, self.heartbeat_timeout)

    def start(self):
        """Fork the pool now, if it is forked: before this process starts other threads."""
        from exmc.runtime.worker import WORKER_START_METHOD
        if WORKER_START_METHOD == "fork":
            get_pool(self.cores, self.heartbeat_timeout)

    def run(self, jobs, collector, on_rows, should_stop):
        from exmc.runtime.worker import interrupts_held

        pool = get_pool(self.cores, self.heartbeat_timeout)
        if pool is None or not pool.acquire():  # another run holds it
            return super().run(jobs, collector, on_rows, should_stop)
        chains = list(range(len(jobs.seeds)))
        try:
            group = self.group(jobs, collector)
            try:
                restarts, failures = pool.run(group, chains, self.cores, on_rows, should_stop,
                                              self.max_restarts, self.max_seconds)
            finally:
                with interrupts_held():  # a second Ctrl-C does not cut the cleanup short
                    group.stop()
        finally:
            pool.release()
        return self.outcome(group, [restarts[c] for c in chains], [failures[c] for c in chains])
