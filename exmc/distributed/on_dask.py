"""Put exmc-node daemons on a Dask cluster's machines: ``dask_nodes(client)``.

    from dask.distributed import Client
    client = Client(cluster)          # LocalCluster, dask-jobqueue's SLURMCluster, ...
    with exmc.distributed.dask_nodes(client) as nodes:
        idata = exmc.distributed.sample_chains(model, nodes=nodes, chains=16, seed=1)

Dask only launches and supervises the daemons: a worker plugin (``NodePlugin``)
starts one ``exmc-node`` subprocess per host (or per worker), restarts it if it
dies, and stops it with its worker (the node also holds a pipe from the worker
process, so it stops when the worker dies however it dies).  A worker that Dask
starts or restarts later gets its node the same way.  Models, draws and failover
travel on exmc's own ZeroMQ protocol, straight between the coordinator and the
nodes: nothing of a run is pickled or carried by Dask.  What Dask carries is the
plugin itself (its options) and, every second, each node's address.

The returned `DaskNodes` is a live node set: ``sample_chains`` asks it for the
addresses of the nodes up now, so a worker added mid-run takes chains and a
worker that goes has its chains resumed elsewhere from their last draw.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError("exmc.distributed.dask_nodes needs Dask's distributed package: "
                      "pip install 'exmc[dask]'") from None

from exmc.distributed.coordinator import NodeError

log = logging.getLogger("exmc.distributed.dask")

PLUGIN_NAME = "exmc-node"
START_TIMEOUT = 120.0     # seconds a node may take to answer after it was launched
RESTART_INTENSITY = (5, 60.0)  # more restarts than this within that many seconds: give up
REFRESH_SECONDS = 1.0     # how often the coordinator's side asks the workers for addresses


class NodePlugin(WorkerPlugin):
    """A Dask worker plugin that keeps one exmc-node running beside the worker.

    Parameters
    ----------
    workers_per_node : int, optional
        Chains a node runs at once (``exmc-node --workers``).  By default the CPUs this
        process may use on the host (``per_host``), or the Dask worker's threads.
    per_host : bool
        One node per host: the first worker of a host to take the host's lock file runs
        it; when that worker goes, another worker of the host takes over (the new node
        has a new port, and joins running runs as a new node).  ``False``: one node per
        Dask worker.
    bind_host : str, optional
        Interface the node listens on; by default the host of the worker's own address.
        Off loopback the node needs ``secret_key`` and ``allow`` (CURVE).
    secret_key, allow : str, optional
        Paths on the workers' hosts: the node's ``.key_secret`` and the folder of the
        clients' public keys (``exmc-node keygen``).
    node_args : sequence of str
        More ``exmc-node`` options (``["--client-timeout", "20"]``).
    """

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, workers_per_node=None, per_host=True, bind_host=None, secret_key=None,
                 allow=None, node_args=()):
        if workers_per_node is not None and int(workers_per_node) < 1:
            raise ValueError(f"workers_per_node must be a positive integer, got "
                             f"{workers_per_node!r}")
        if (secret_key is None) != (allow is None):
            raise ValueError("CURVE on the nodes needs both secret_key= (the node's "
                             ".key_secret file) and allow= (the clients' public keys folder)")
        self.workers_per_node, self.per_host = workers_per_node, bool(per_host)
        self.bind_host, self.secret_key, self.allow = bind_host, secret_key, allow
        self.node_args = [str(arg) for arg in node_args]

    # -- on the worker ----------------------------------------------------------------------
    def setup(self, worker):
        self.worker_address = worker.address
        self.scheduler_address = getattr(worker.scheduler, "address", "")
        self.address = self.error = None
        self.restarts = 0
        self.gave_up = False  # a node that cannot start here: the error says why
        self.popen = self.lifeline = self.lock = None
        self.folder = Path(tempfile.mkdtemp(prefix="exmc-dask-node-"))
        self.stopping = threading.Event()
        self.nthreads = getattr(getattr(worker, "state", worker), "nthreads", 1)
        self.thread = threading.Thread(target=self._keep_running, name="exmc-node keeper",
                                       daemon=True)
        self.thread.start()

    def teardown(self, worker):
        self.stopping.set()
        self.thread.join(60)
        self._stop_node()
        if self.lock is not None:
            self.lock.close()  # lets another worker of this host take over
        shutil.rmtree(self.folder, ignore_errors=True)

    def status(self):
        """What the coordinator's side sees: {"address", "error", "gave_up", "restarts",
        "host", "pid"}."""
        running = self.popen is not None and self.popen.poll() is None
        return {"address": self.address, "error": self.error, "gave_up": self.gave_up,
                "restarts": self.restarts, "host": os.uname().nodename,
                "pid": self.popen.pid if running else None}

    def _keep_running(self):
        try:
            self._supervise()
        except Exception as err:  # noqa: BLE001 -- a bug here must be seen, not a silent thread
            self.error, self.gave_up = f"the exmc-node plugin failed: {err!r}", True
            log.exception("exmc-node beside worker %s", self.worker_address)

    def _supervise(self):
        """Take the host's lock if need be, run the node, restart it when it dies."""
        from exmc.distributed.node import is_loopback

        host = self._bind_host()
        if not is_loopback(f"tcp://{host}:0") and self.secret_key is None:
            self.error = (f"the node would listen on {host}, not a loopback address: pass "
                          f"secret_key= and allow= (CURVE key paths on the workers' hosts) "
                          f"or bind_host='127.0.0.1'")
            self.gave_up = True
            log.error("exmc-node beside worker %s: %s", self.worker_address, self.error)
            return
        started = []
        while not self.stopping.is_set():
            if self.per_host and self.lock is None and not self._take_host_lock():
                self.stopping.wait(1.0)
                continue
            try:
                self._start_node(host)
            except Exception as err:  # noqa: BLE001 -- said in the status, then tried again
                self.error = str(err) if isinstance(err, NodeError) else repr(err)
                log.error("exmc-node beside worker %s: %s", self.worker_address, err)
            else:
                self.error = None
                while not self.stopping.is_set() and self.popen.poll() is None:
                    self.stopping.wait(0.5)
                if self.stopping.is_set():
                    return
                self.error = (f"exmc-node exited with status {self.popen.returncode}: "
                              f"{self._log_tail()}")
                log.warning("exmc-node beside worker %s: %s; restarting it",
                            self.worker_address, self.error)
            self._stop_node()
            now = time.monotonic()
            started = [t for t in started if now - t < RESTART_INTENSITY[1]] + [now]
            if len(started) > RESTART_INTENSITY[0]:
                self.error = (f"gave up after {RESTART_INTENSITY[0]} restarts within "
                              f"{RESTART_INTENSITY[1]:g} s: {self.error}")
                self.gave_up = True
                log.error("exmc-node beside worker %s: %s", self.worker_address, self.error)
                return
            self.restarts += 1
            self.stopping.wait(1.0)

    def _take_host_lock(self):
        """True if this worker now runs its host's node (the lock is let go when it dies)."""
        # one lock per host and cluster: a second cluster on the host gets its own node
        key = hashlib.sha256(self.scheduler_address.encode()).hexdigest()[:16]
        path = Path(tempfile.gettempdir()) / f"exmc-dask-node-{os.getuid()}-{key}.lock"
        handle = open(path, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self.lock = handle
        return True

    def _bind_host(self):
        host = self.bind_host or urlsplit(self.worker_address).hostname or "127.0.0.1"
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    def _start_node(self, host):
        workers = self.workers_per_node or (len(os.sched_getaffinity(0)) if self.per_host
                                            else self.nthreads)
        address_file = self.folder / "address"
        address_file.unlink(missing_ok=True)
        read_end, self.lifeline = os.pipe()
        command = [sys.executable, "-m", "exmc.distributed.cli", "--bind", f"tcp://{host}:*",
                   "--workers", str(workers), "--parent-fd", str(read_end),
                   "--address-file", str(address_file), *self.node_args]
        if self.secret_key is not None:
            command += ["--secret-key", str(self.secret_key), "--allow", str(self.allow)]
        try:
            with open(self.folder / "node.log", "w") as log_file:
                self.popen = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                              stderr=log_file, pass_fds=(read_end,))
        finally:
            os.close(read_end)
        deadline = time.monotonic() + START_TIMEOUT
        while not address_file.exists():
            if self.popen.poll() is not None:
                raise NodeError(f"exmc-node exited with status {self.popen.returncode}: "
                                f"{self._log_tail()}")
            if time.monotonic() > deadline or self.stopping.is_set():
                raise NodeError(f"exmc-node did not answer within {START_TIMEOUT:g} s: "
                                f"{self._log_tail()}")
            time.sleep(0.05)
        self.address = address_file.read_text().strip()
        log.info("exmc-node beside worker %s listens on %s", self.worker_address, self.address)

    def _stop_node(self):
        self.address = None
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None

    def _log_tail(self, chars=2000):
        try:
            return (self.folder / "node.log").read_text()[-chars:].strip() or "(no output)"
        except OSError:
            return "(no log)"


def _node_status(dask_worker):
    """Run on each worker by ``Client.run``: its plugin's status, or None."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.status() if plugin is not None else None


class DaskNodes:
    """The exmc-nodes of a Dask cluster, as a live node set for ``sample_chains``.

    A thread asks the workers for their nodes' addresses every ``REFRESH_SECONDS``
    (``Client.run``); ``addresses()`` returns the latest answer at once.  ``close()``
    removes the plugin, which stops every node.
    """

    def __init__(self, client, plugin):
        self.client, self.plugin = client, plugin
        self.lock = threading.Lock()
        self.statuses: dict = {}  # Dask worker address -> NodePlugin.status()
        self.stopping = threading.Event()
        self.thread = None

    def addresses(self):
        """Addresses of the nodes up now (one per host or per worker)."""
        with self.lock:
            found = [s["address"] for s in self.statuses.values() if s and s["address"]]
        return sorted(set(found))

    def workers(self):
        """{Dask worker address: node address or None} as last seen."""
        with self.lock:
            return {worker: (s or {}).get("address") for worker, s in self.statuses.items()}

    def errors(self):
        """{Dask worker address: why its node is not up}, for the workers whose node failed."""
        with self.lock:
            return {worker: s["error"] for worker, s in self.statuses.items()
                    if s and s["error"] and not s["address"]}

    def refresh(self):
        """Ask every worker now; returns {worker: status}."""
        statuses = self.client.run(_node_status)
        with self.lock:
            self.statuses = statuses
        return statuses

    def _follow(self):
        while not self.stopping.wait(REFRESH_SECONDS):
            try:
                self.refresh()
            except Exception as err:  # noqa: BLE001 -- a worker going away mid-call: next time
                log.debug("asking the Dask workers for their nodes failed: %r", err)

    def wait(self, count=1, timeout=START_TIMEOUT):
        """Wait until ``count`` nodes are up; NodeError naming the workers' errors if not."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.refresh()
            except Exception as err:  # noqa: BLE001
                log.debug("asking the Dask workers for their nodes failed: %r", err)
            if len(self.addresses()) >= count:
                return self
            with self.lock:
                hopeless = self.statuses and all(s and s["gave_up"]
                                                 for s in self.statuses.values())
            if hopeless or time.monotonic() > deadline:
                errors = "; ".join(f"{w}: {e}" for w, e in self.errors().items())
                raise NodeError(f"{len(self.addresses())} exmc-node(s) up on the Dask cluster, "
                                f"{count} wanted"
                                f"{': ' + errors if errors else ''}")
            time.sleep(0.2)

    def start(self):
        self.thread = threading.Thread(target=self._follow, name="exmc dask nodes", daemon=True)
        self.thread.start()
        return self

    def close(self):
        """Stop following the cluster and stop every node (the plugin is removed)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(10)
        try:
            self.client.unregister_worker_plugin(PLUGIN_NAME)
        except Exception as err:  # noqa: BLE001 -- the cluster may be gone already
            log.debug("could not remove the exmc-node plugin: %r", err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"DaskNodes({self.addresses()})"


def dask_nodes(client, workers_per_node=None, per_host=True, bind_host=None, secret_key=None,
               allow=None, node_args=(), wait=1, timeout=START_TIMEOUT):
    """Start an exmc-node beside the workers of a Dask cluster; return them as a live set.

    Parameters
    ----------
    client : distributed.Client
    workers_per_node, per_host, bind_host, secret_key, allow, node_args
        As `NodePlugin`: chains at once per node, one node per host or per worker, the
        interface, CURVE key paths on the workers' hosts, more exmc-node options.
    wait : int
        Return once this many nodes are up (0: at once).
    timeout : float
        Seconds to wait for them; then `NodeError` naming each worker's problem.

    Returns
    -------
    DaskNodes
        Pass it as ``sample_chains(model, nodes=...)``; with CURVE give the run
        ``client_key=`` and ``node_key=`` as for any node.  ``close()`` (or a ``with``
        block) stops the nodes; they otherwise live as long as their workers.
    """
    plugin = NodePlugin(workers_per_node, per_host, bind_host, secret_key, allow, node_args)
    register = getattr(client, "register_plugin", None) or client.register_worker_plugin
    register(plugin, name=PLUGIN_NAME)
    nodes = DaskNodes(client, plugin)
    try:
        if wait:
            nodes.wait(wait, timeout)
        return nodes.start()
    except BaseException:
        nodes.close()
        raise
