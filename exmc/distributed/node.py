"""exmc-node: a daemon that runs chains for coordinators on other hosts.

One thread serves a ZeroMQ ROUTER socket (the protocol is in
``exmc/distributed/wire.py``).  A submitted job is checked (schema, model IR,
options, chain states), then each of its chains runs in a worker process under
its own supervisor, exactly as ``exmc.sample(..., cores=K)`` runs them locally
(``exmc.runtime.worker.ChainGroup``): the model is compiled here, for this
host.  Blocks of draws from the workers are relayed to the job's coordinator
as they come.  At most ``workers`` chains run at once over all jobs.

Nothing a request does can freeze the serving thread: a request larger than
``DECODE_HERE`` bytes is decoded, and a submitted model read and checked, on checking
threads (at most ``MAX_CHECKS`` at once, each given ``read_timeout`` seconds before the
request is refused), while the loop goes on answering ``hello`` and pings and relaying
draws.  Until a client's large requests are decoded, its pings report no job gone and
its cancels are remembered, so the order of its requests still holds.  A job whose chains would need more
memory than ``max_chain_bytes`` (parameters x iterations) is refused naming the size.

Nothing outlives the node: each job's folder (model, checkpoints, the ipc endpoint
of its workers) lies in the node's own private folder, removed when it stops; SIGTERM
and SIGINT, however often repeated, only ask the loop to stop, so cleanup completes
(unless ``handle_signals=False``: a node hosted in a thread leaves signals to its host);
folders left by a node that was SIGKILLed are removed by the next node to start; and
with ``parent_fd`` (how a coordinator starts a ``"local"`` node) the node stops when
that pipe closes, that is when its parent dies, however it dies.

Connections are bounded: at most ``max_connections`` peers at once (counted with a
socket monitor; a connection past the cap is shut down as it is accepted), a peer that
has not completed its ZeroMQ handshake within ``HANDSHAKE_SECONDS`` is dropped, at
most ``RECEIVE_QUEUE`` requests are queued per peer, and the descriptor soft limit is
raised to the hard limit at start.

Heartbeats both ways: the coordinator pings every half second and the node
answers, naming the pinged jobs it no longer holds (so a coordinator that missed
a job's last messages can replay it); a job whose coordinator has been silent
for ``client_timeout`` seconds is stopped and its workers cleaned up.  Nothing
received is unpickled; a bad request gets an ``error`` reply naming the problem
and the node goes on.

Testing switch: ``EXMC_NODE_DROP=N`` makes the node drop the N-th worker message
it relays (``EXMC_NODE_DROP=done``: the first chain's closing message), once, as
a lossy link would; the coordinator must notice and replay.
"""
from __future__ import annotations

import concurrent.futures
import ipaddress
import logging
import math
import os
import re
import resource
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from exmc.distributed import wire
from exmc.runtime.worker import HEARTBEAT_TIMEOUT, ChainGroup, Collector
from exmc.samplers.chain_state import unpack_state
from exmc.samplers.nuts import ITERATION, N_SCALARS, STAT_NAMES, STEP

log = logging.getLogger("exmc.node")

CLIENT_TIMEOUT = 10.0
MAX_ERROR_CHARS = 2000  # error replies and log lines stay readable whatever the request held
MAX_JOBS = 1000
DROP_ENV = "EXMC_NODE_DROP"
READ_TIMEOUT = 30.0   # seconds a submitted model may take to be read and checked
MAX_CHECKS = 4        # requests being decoded or read at once; more are refused until one ends
DECODE_HERE = 2**20   # larger requests are decoded on a checking thread
MAX_CHAIN_BYTES = 4 * 2**30  # memory a chain's draws and state may need in its worker
FOLDER_PREFIX = "exmc-node-"
MAX_CONNECTIONS = 256
HANDSHAKE_SECONDS = 5.0  # a peer that has not said who it is by then is dropped
RECEIVE_QUEUE = 32       # requests queued per peer: at most this many x the message limit


class NodeConfigError(ValueError):
    """The node cannot start with these options."""


def is_loopback(address):
    """True for tcp addresses on a loopback interface, and for ipc/inproc."""
    scheme, _, rest = address.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = urlsplit(f"//{rest}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: not known to be loopback
        return False


class Job:
    """One coordinator's chains on this node."""

    def __init__(self, job_id, client, group):
        self.id, self.client, self.group = job_id, client, group
        self.last_seen = time.monotonic()
        self.reported = set()  # chains whose failure was sent


class Node:
    """The daemon's state and loop.  ``serve()`` runs until ``stop()``, SIGTERM or SIGINT.

    ``handle_signals=False`` leaves signals to the host (a thread, another framework's
    process): then only ``stop()`` or the parent pipe ends ``serve()``.  ``address`` is the
    bound address (``tcp://127.0.0.1:*`` resolved to its port) as soon as it is created.
    """

    def __init__(self, bind="tcp://127.0.0.1:5555", workers=None, secret_key=None, allow=None,
                 client_timeout=CLIENT_TIMEOUT, max_message_bytes=wire.MAX_MESSAGE_BYTES,
                 name=None, read_timeout=READ_TIMEOUT, max_chain_bytes=MAX_CHAIN_BYTES,
                 parent_fd=None, heartbeat_timeout=HEARTBEAT_TIMEOUT,
                 max_connections=MAX_CONNECTIONS, handle_signals=True):
        import zmq

        if (secret_key is None) != (allow is None):
            raise NodeConfigError("CURVE needs both --secret-key and --allow")
        if not is_loopback(bind) and secret_key is None:
            raise NodeConfigError(f"refusing to listen on non-loopback {bind} without CURVE keys: "
                                  f"pass --secret-key and --allow (make keys with exmc-node keygen)")
        self.workers = int(workers or os.cpu_count() or 1)
        self.client_timeout = client_timeout
        self.max_message_bytes = max_message_bytes
        self.name = name or os.uname().nodename
        self.jobs: dict = {}
        self.read_timeout, self.max_chain_bytes = read_timeout, max_chain_bytes
        self.parent_fd, self.heartbeat_timeout = parent_fd, heartbeat_timeout
        self.handle_signals = handle_signals
        self.checks: dict = {}  # (client, job) -> (future, started, request): being read
        self.abandoned: set = set()  # checks refused for taking too long, still running
        self.decoding: list = []  # (future, client, started): large requests being decoded
        self.cancelled: set = set()  # (client, job) cancelled while its client's requests decode
        self.checker = None
        self.stopping = self.closed = False
        self.relayed = 0  # worker messages relayed, for the drop switch
        self.drop = os.environ.get(DROP_ENV) or None
        if self.drop is not None and not (self.drop == "done" or self.drop.isdigit()):
            raise NodeConfigError(f"{DROP_ENV} must be a message number or 'done', "
                                  f"got {self.drop!r}")
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)  # libzmq drops bigger peers
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished client raises, not queues
        self.socket.setsockopt(zmq.SNDHWM, 100_000)
        self.socket.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        self.socket.setsockopt(zmq.HANDSHAKE_IVL, int(HANDSHAKE_SECONDS * 1000))
        _raise_descriptor_limit()
        self.max_connections = max_connections
        self.connections: set = set()  # descriptors of the peers connected now
        self.turned_away = 0
        self.monitor = self.socket.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED)
        self.auth = None
        try:
            if secret_key is not None:
                from exmc.distributed.keys import serve_curve
                self.auth = serve_curve(self.socket, secret_key, allow)
            if "[" in bind:
                self.socket.setsockopt(zmq.IPV6, 1)
            self.socket.bind(bind)
        except BaseException:  # a bad key file or address: leave nothing open behind
            self.socket.disable_monitor()
            self.monitor.close()
            self.socket.close()
            if self.auth is not None:
                self.auth.stop()
            raise
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        _remove_stale_folders()
        self.directory = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
        self.checker = concurrent.futures.ThreadPoolExecutor(MAX_CHECKS, "exmc-node-check")

    # -- the loop ---------------------------------------------------------------------------
    def serve(self, restore_signals=True, ready=None):
        """Serve until ``stop()``, SIGTERM or SIGINT (or the parent pipe closes); then close.

        Parameters
        ----------
        restore_signals : bool
            Put back the previous SIGTERM/SIGINT handlers after closing.  ``False`` (the
            command) ignores both signals from then on instead: the process is on its way
            out, and Python's finalisation resets handlers to the defaults, so a late
            signal would otherwise kill it with a status saying it was not stopped cleanly.
        ready : callable, optional
            Called with the bound address once signals are handled and requests are
            answered (the "listening on" log line comes at the same moment): what a
            launcher waits for (``exmc-node --address-file``).

        With ``Node(..., handle_signals=False)`` signals are left alone, and ``serve`` may
        run in any thread; ``stop()`` from another thread ends it within about 0.1 s.
        """
        import zmq

        # Both signals only ask the loop to stop (no KeyboardInterrupt), and stay so until
        # cleanup is over: a second signal cannot cut it short.
        previous = {}
        if self.handle_signals:
            if threading.current_thread() is not threading.main_thread():
                self.close()
                raise RuntimeError("Node.serve() outside the main thread cannot handle "
                                   "signals: create it with Node(..., handle_signals=False)")
            previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
            for sig in previous:
                signal.signal(sig, lambda *_: self.stop())
        try:
            log.info("listening on %s (%d workers, %s)", self.address, self.workers,
                     "CURVE, clients from the allow list" if self.auth else "plaintext, loopback")
            if ready is not None:
                ready(self.address)
            while not self.stopping:
                poller = zmq.Poller()
                poller.register(self.socket, zmq.POLLIN)
                poller.register(self.monitor, zmq.POLLIN)
                if self.parent_fd is not None:
                    poller.register(self.parent_fd, zmq.POLLIN)
                for job in self.jobs.values():
                    poller.register(job.group.pull, zmq.POLLIN)
                ready_now = dict(poller.poll(100))
                if self.parent_fd in ready_now and not os.read(self.parent_fd, 64):
                    log.info("its parent process has exited")
                    break
                if self.monitor in ready_now:
                    self._count_connections()
                if self.socket in ready_now:
                    self._drain_requests()
                self._finish_checks()
                for job in list(self.jobs.values()):
                    if job.group.pull in ready_now:
                        self._relay(job)
                    self._tend(job)
        finally:
            try:
                self.close()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler if restore_signals else signal.SIG_IGN)

    def stop(self):
        self.stopping = True

    def close(self):
        """Stop every job and its workers, close the sockets, remove the node's folder.
        Idempotent (``serve`` calls it however it ends)."""
        if self.closed:
            return
        self.closed = True
        for job in list(self.jobs.values()):
            self._end(job, "node shutting down")
        self.checks.clear()
        self.checker.shutdown(wait=False, cancel_futures=True)
        self.socket.disable_monitor()
        self.monitor.close()
        self.socket.close()
        if self.auth is not None:
            self.auth.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        log.info("stopped")

    # -- connections ------------------------------------------------------------------------
    def _count_connections(self, limit=1000):
        """Track peers from monitor events; shut down a connection past the cap at once."""
        import socket as net

        import zmq
        from zmq.utils.monitor import recv_monitor_message

        for _ in range(limit):
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            fd = event["value"]
            if event["event"] != zmq.EVENT_ACCEPTED:
                self.connections.discard(fd)
            elif len(self.connections) < self.max_connections:
                self.connections.add(fd)
            else:
                # Shutting the TCP connection down (through a duplicate of libzmq's
                # descriptor, which stays libzmq's to close) makes libzmq drop the peer.
                try:
                    with net.socket(fileno=os.dup(fd)) as peer:
                        peer.shutdown(net.SHUT_RDWR)
                except OSError:
                    pass
                self.turned_away += 1
                if self.turned_away in (1, 10, 100) or self.turned_away % 1000 == 0:
                    log.warning("%d connection(s) turned away: %d peers connected, the most "
                                "allowed", self.turned_away, self.max_connections)

    # -- requests ---------------------------------------------------------------------------
    def _drain_requests(self, limit=100):
        import zmq

        for _ in range(limit):  # bounded, so workers' blocks are relayed under a request flood
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            client, payload = frames[0], frames[-1]
            msg = None  # decoded once; its job id, if any, goes in an error reply
            try:
                if len(frames) != 2:
                    raise wire.WireError(f"expected one frame per request, got {len(frames) - 1}")
                if len(payload) > DECODE_HERE:
                    self._check_capacity()
                    self.decoding.append((self.checker.submit(
                        _decode, payload, self.max_message_bytes), client, time.monotonic()))
                    continue
                msg = wire.unpack(payload, self.max_message_bytes)
                self._handle(client, wire.check_request(msg))
            except (wire.WireError, ValueError) as err:
                message = _shorten(str(err))
                log.warning("refused a request from client %s: %s", client.hex(), message)
                self._send(client, {"type": "error", "job": _job_of(msg), "message": message})
            except Exception as err:  # noqa: BLE001 -- a bug here must not take the node down
                log.exception("failed on a request from client %s", client.hex())
                message = _shorten(f"the node failed on this request: {err!r}")
                self._send(client, {"type": "error", "job": _job_of(msg), "message": message})

    def _handle(self, client, msg):
        kind = msg["type"]
        if kind == "hello":
            self._send(client, {"type": "welcome", "version": wire.VERSION, "node": self.name,
                                "workers": self.workers,
                                "max_message_bytes": self.max_message_bytes})
        elif kind == "ping":
            now, gone = time.monotonic(), []
            decoding = any(c == client for _, c, _ in self.decoding)  # a submit may be there
            for job_id in msg["jobs"]:
                job = self.jobs.get((client, job_id))
                if job is None and (client, job_id) not in self.checks and not decoding:
                    gone.append(job_id)
                elif job is None:
                    continue
                else:
                    job.last_seen = now
            self._send(client, {"type": "pong", "gone": gone})
        elif kind == "cancel":
            job = self.jobs.get((client, msg["job"]))
            if job is not None:
                self._end(job, "cancelled by its coordinator")
            checking = self.checks.pop((client, msg["job"]), None)
            if checking is not None and not checking[0].cancel():
                self.abandoned.add(checking[0])  # still being read: its result is dropped
            if any(c == client for _, c, _ in self.decoding):  # its submit may be decoding
                self.cancelled.add((client, msg["job"]))
            self._send(client, {"type": "cancelled", "job": msg["job"]})
        else:
            self._submit(client, msg)

    def _submit(self, client, msg):
        """Start reading the job's model on a checking thread; ``_finish_checks`` goes on."""
        key = (client, msg["job"])
        if key in self.jobs or key in self.checks:
            raise wire.WireError(f"job {msg['job']} is already running")
        if key in self.cancelled:  # cancelled before it was even decoded
            self.cancelled.discard(key)
            return
        if len(self.jobs) + len(self.checks) >= _job_limit(self.workers):
            raise wire.WireError(f"this node holds {len(self.jobs)} jobs, as many as it can; "
                                 f"try again later or another node")
        self._check_capacity()
        self.checks[key] = (self.checker.submit(_check_job, msg, self.max_chain_bytes),
                            time.monotonic(), msg)

    def _check_capacity(self):
        self.abandoned = {future for future in self.abandoned if not future.done()}
        busy = (sum(not future.done() for future, _, _ in self.checks.values())
                + sum(not future.done() for future, _, _ in self.decoding))
        if busy + len(self.abandoned) >= MAX_CHECKS:
            raise wire.WireError(f"this node is reading {MAX_CHECKS} other requests; try again "
                                 f"in a few seconds")

    def _finish_decoding(self):
        """Handle the large requests decoded since, in their order; refuse the too slow."""
        now = time.monotonic()
        while self.decoding:
            future, client, started = self.decoding[0]
            if not future.done() and now - started <= self.read_timeout:
                break  # later requests of that client wait for it: their order holds
            self.decoding.pop(0)
            msg = None
            try:
                if not future.done():
                    if not future.cancel():
                        self.abandoned.add(future)
                    raise wire.WireError(f"decoding the request took more than "
                                         f"{self.read_timeout:g} s; refused")
                msg = future.result()
                self._handle(client, msg)
            except (wire.WireError, ValueError) as err:
                self._refuse(client, _job_of(msg), _shorten(str(err)))
            except Exception as err:  # noqa: BLE001 -- a bug here must not take the node down
                log.exception("failed on a request from client %s", client.hex())
                self._refuse(client, _job_of(msg),
                             _shorten(f"the node failed on this request: {err!r}"))
        if not self.decoding:
            self.cancelled.clear()

    def _finish_checks(self):
        """Start the jobs whose model is read and checked; refuse the bad and the too slow."""
        self._finish_decoding()
        now = time.monotonic()
        for key, (future, started, msg) in list(self.checks.items()):
            client, job = key
            if not future.done():
                if now - started > self.read_timeout:
                    del self.checks[key]
                    if not future.cancel():  # a thread cannot be stopped: it still counts
                        self.abandoned.add(future)
                    self._refuse(client, job, f"reading and checking the model took more than "
                                              f"{self.read_timeout:g} s; refused")
                continue
            del self.checks[key]
            try:
                _, dim = future.result()
                self._start_job(client, msg, dim)
            except (wire.WireError, ValueError, RecursionError) as err:
                self._refuse(client, job, _shorten(str(err) or type(err).__name__))
            except Exception as err:  # noqa: BLE001 -- a bug here must not take the node down
                log.exception("failed on a request from client %s", client.hex())
                self._refuse(client, job, _shorten(f"the node failed on this request: {err!r}"))

    def _refuse(self, client, job, message):
        log.warning("refused a request from client %s: %s", client.hex(), message)
        self._send(client, {"type": "error", "job": job, "message": message})

    def _start_job(self, client, msg, dim):
        options = dict(msg["options"])
        options.update(dim=dim, fault_rate=_fault_rate())
        chains = {spec["chain"]: spec for spec in msg["chains"]}
        collector = Collector(dim, options["total"], max(chains) + 1, keep_draws=False,
                              parent=self.directory)
        try:
            for chain, spec in chains.items():
                if spec["state"] is not None:
                    collector.resume_from(chain, spec["state"])
            seeds = {chain: np.random.SeedSequence(int(spec["entropy"]),
                                                   spawn_key=tuple(spec["spawn_key"]))
                     for chain, spec in chains.items()}
            group = ChainGroup(msg["model"], options, seeds, collector, self.heartbeat_timeout)
        except BaseException:
            collector.close()
            raise
        self.jobs[client, msg["job"]] = Job(msg["job"], client, group)
        log.info("job %s from client %s: chains %s, %d parameters, %d iterations", msg["job"],
                 client.hex(), sorted(chains), dim, options["total"])
        self._send(client, {"type": "accepted", "job": msg["job"]})

    # -- jobs -------------------------------------------------------------------------------
    def _relay(self, job, limit=1000):
        import zmq

        for _ in range(limit):
            try:
                chain, *_, payload = job.group.receive(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError as err:  # not from the job's workers, or nonsense: never relayed
                if job.group.refused <= 1:  # once per job; the count goes in its last line
                    log.error("job %s: %s", job.id, err)
                continue
            self.relayed += 1
            if self._dropping(job, chain):
                log.warning("job %s: dropped worker message %d (%s=%s)", job.id, self.relayed,
                            DROP_ENV, self.drop)
                self.drop = None  # once
                continue
            self._send(job.client, {"type": "block", "job": job.id, "data": payload})

    def _dropping(self, job, chain):
        if self.drop == "done":
            return job.group.collector.finished[chain]
        return self.drop is not None and self.relayed == int(self.drop)

    def _tend(self, job):
        running = sum(len(j.group.running) for j in self.jobs.values())
        job.group.launch_waiting(self.workers - running)
        job.group.reap()
        for chain, reason in job.group.failures.items():
            if reason is not None and chain not in job.reported:
                job.reported.add(chain)
                log.warning("job %s chain %d failed: %s", job.id, chain, reason)
                self._send(job.client, {"type": "chain_failed", "job": job.id, "chain": chain,
                                        "reason": reason})
        if not job.group.active:
            self._end(job, "finished")
        elif time.monotonic() - job.last_seen > self.client_timeout:
            self._end(job, f"its coordinator was silent for {self.client_timeout:g} s")

    def _end(self, job, why):
        job.group.stop()
        self.jobs.pop((job.client, job.id), None)
        if job.group.refused:
            why += f" (refused {job.group.refused} worker-link messages)"
        log.info("job %s ended: %s", job.id, why)

    def _send(self, client, message):
        import zmq

        try:
            self.socket.send_multipart([client, wire.pack(message)], zmq.NOBLOCK)
        except zmq.ZMQError as err:  # the client is gone or not reading: its heartbeat will lapse
            log.debug("could not send to client %s: %s", client.hex(), err)


def _raise_descriptor_limit():
    """Soft descriptor limit up to the hard one: each peer and each job's link hold one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _job_limit(workers):
    """Jobs held at once.  Each holds sockets and each running chain pipes, and libzmq aborts
    the whole process when it runs out of file descriptors: stay well below the limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_JOBS
    return max(1, min(MAX_JOBS, (soft - 64 - 10 * workers) // 4))


def _shorten(text):
    """One line (a log line per event) of at most about MAX_ERROR_CHARS characters."""
    text = " ".join(text.split())
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return f"{text[:MAX_ERROR_CHARS]}... ({len(text) - MAX_ERROR_CHARS} more characters)"


def _job_of(msg):
    """The job id of a refused request (its decoded map, or None), for the error reply."""
    job = msg.get("job") if isinstance(msg, dict) else None
    return job if isinstance(job, str) and len(job) <= 64 else None


def _decode(payload, max_bytes):
    """A large request, decoded and checked on a checking thread."""
    return wire.check_request(wire.unpack(payload, max_bytes))


def _check_job(msg, max_chain_bytes):
    """(Model, number of parameters) of a submit, its model, init and states checked.

    Runs on a checking thread: nothing here touches the node's sockets or jobs.
    """
    model, dim = _read_model(msg["model"])
    options = msg["options"]
    _check_init(model, options["init"])
    _check_size(dim, options, max_chain_bytes)
    for spec in msg["chains"]:
        if spec["state"] is not None:
            _check_state(spec["state"], spec["chain"], dim, options)
    return model, dim


def _check_size(dim, options, max_chain_bytes):
    """Refuse a job whose chains would not fit in a worker: draws and stats of every
    iteration, and the state (a dense metric is three d x d arrays)."""
    state = 3 * dim * dim if options["dense"] else 13 * dim
    need = 8 * (options["total"] * (dim + len(STAT_NAMES)) + state)
    if need > max_chain_bytes:
        raise wire.WireError(f"a chain of this job would need about {need / 2**20:,.0f} MiB "
                             f"({dim:,} parameters, {options['total']:,} iterations"
                             f"{', dense metric' if options['dense'] else ''}), more than this "
                             f"node allows ({max_chain_bytes / 2**20:,.0f} MiB)")


def _remove_stale_folders():
    """Remove the folders of nodes (of this user) that died without cleaning up."""
    for path in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        found = re.fullmatch(rf"{FOLDER_PREFIX}(\d+)-\w+", path.name)
        try:
            if not found or path.stat().st_uid != os.getuid():
                continue
            os.kill(int(found.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone meanwhile, or alive under another user
            continue


def _read_model(model_bytes):
    """(Model, number of parameters) from IR bytes; ModelError names what is wrong."""
    from exmc.ir.builder import ModelError
    from exmc.ir.serialize import loads

    try:
        model = loads(model_bytes)  # schema-checked; raises ModelError (a ValueError)
        shapes = model.shapes()
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 -- a hole in the IR checks is still bad input
        raise wire.WireError(f"the model IR cannot be read: {type(err).__name__}: {err}") from None
    _check_constants(model)
    free = model.free_variables
    if not free:
        raise wire.WireError("the model has no free variables to sample")
    return model, int(sum(math.prod(shapes[v.name]) for v in free))


def _check_constants(model):
    """Constants in a model are data sent to this node: like observed data, they must be finite."""
    from exmc.ir.dists import Distribution

    def exprs(dist, where):
        for key, value in dist.param_exprs.items():
            if isinstance(value, Distribution):
                yield from exprs(value, f"{where}.{key}")
            else:
                yield value, f"{where}, parameter {key!r}"

    for var in model.variables:
        where = f"variable {var.name!r}"
        found = [(var.expr, where)] if var.expr is not None else exprs(var.dist, where)
        for expr, place in found:
            for node in expr.walk():
                if node.op == "const" and not np.all(np.isfinite(node.value)):
                    raise wire.WireError(f"{place}: constants must be finite, got {node.value!r}")


def _check_init(model, init):
    if not init:
        return
    names = {v.name: v for v in model.free_variables}
    shapes = model.shapes()
    for name, value in init.items():
        if name not in names:
            raise wire.WireError(f"init names {name!r}, which is not a free variable; free "
                                 f"variables: {', '.join(names)}")
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise wire.WireError(f"init value for {name!r} is not numeric") from None
        if array.shape != tuple(shapes[name]) or not np.all(np.isfinite(array)):
            raise wire.WireError(f"init value for {name!r} must be finite with shape "
                                 f"{tuple(shapes[name])}, got shape {array.shape}")


def _check_state(packed, chain, dim, options):
    try:
        state, _ = unpack_state(packed)
    except Exception as err:
        raise wire.WireError(f"chain {chain}'s state cannot be read: {err!r}") from None
    arrays = {**state._asdict(), **state.metric._asdict()}
    for name, shape in _state_shapes(dim, bool(state.metric.dense)).items():
        if arrays[name].shape != shape:
            raise wire.WireError(f"chain {chain}'s state has {name} of shape "
                                 f"{arrays[name].shape}; a model of {dim} parameters needs {shape}")
        if not np.all(np.isfinite(arrays[name])):
            raise wire.WireError(f"chain {chain}'s state has non-finite values in {name}")
    iteration = state.scalars[ITERATION]
    if not (iteration == int(iteration) and 0 <= iteration <= options["total"]):
        raise wire.WireError(f"chain {chain}'s state is at iteration {iteration}, outside the job")
    if not (state.scalars[STEP] > 0 and np.all(state.metric.inverse_diag > 0)):
        raise wire.WireError(f"chain {chain}'s state needs a positive step size and metric")


def _state_shapes(d, dense):
    """Array shapes of a chain state of ``d`` parameters, as nuts.new_chain_state makes them."""
    big = (d, d) if dense else (1, 1)
    return {"position": (d,), "grad": (d,), "scalars": (N_SCALARS,), "window_mean": (d,),
            "window_m2": (d, d) if dense else (1, d), "gradient_windows": (2, 4, d),
            "inverse_diag": (d,), "inverse_dense": big, "momentum_factor": big}


def _fault_rate():
    from exmc.runtime.sample import FAULT_RATE_ENV
    return float(os.environ.get(FAULT_RATE_ENV, "0") or 0)
