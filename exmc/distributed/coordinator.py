"""The coordinator: spread chains over exmc-node daemons, collect every draw, survive node loss.

The model goes to each node as its IR (msgpack data); each node compiles it for
itself and sends back the worker-link blocks of draws (``exmc/runtime/worker.py``)
with the chain's state after each block.  The coordinator folds them into one
``Collector`` (each draw kept once, by iteration index) and keeps each chain's
latest state, so a chain whose node stops answering resumes elsewhere from its
last received draw, with its step size, metric and random state: its trace is
the one it would have had without the failure.

Chains wait on the coordinator until a node has a free worker for them, so the
node that frees first takes the next chain, and a node that joins a live node set
(``nodes=`` an object with ``addresses()``, such as ``exmc.distributed.dask_nodes``)
mid-run takes waiting and moved chains.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

from exmc.distributed import wire
from exmc.runtime.executors import Outcome
from exmc.runtime.sample import SamplingError
from exmc.runtime.worker import Gap
from exmc.samplers.chain_state import pack_state, unpack_state

log = logging.getLogger("exmc.distributed")

LOCAL = "local"
PING_SECONDS = 0.5
HELLO_SECONDS = 1.0
REFRESH_SECONDS = 1.0  # how often a live node set is asked for its addresses
RETRY_SECONDS = 10.0   # an address that failed is tried again after this long, if still listed
MAX_REPLAYS = 3  # per chain and node; a node that keeps losing messages is dropped


class NodeError(SamplingError):
    """Nodes that cannot be used: unreachable, refusing, or failed with no fallback."""


class NodeLink:
    """A DEALER connection to one exmc-node; ``last_heard`` feeds failure detection."""

    def __init__(self, address, client_key=None, node_key=None, process=None):
        import zmq

        if (client_key is None) != (node_key is None):
            raise ValueError(f"CURVE for {address} needs both client_key= (this client's "
                             f".key_secret file) and node_key= (the node's .key file)")
        self.address, self.process = address, process
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 10_000)
        self.socket.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
        if "[" in address:
            self.socket.setsockopt(zmq.IPV6, 1)
        try:
            if node_key is not None:
                from exmc.distributed.keys import use_curve
                use_curve(self.socket, client_key, node_key)
            self.socket.connect(address)
        except BaseException:
            self.socket.close()
            raise
        self.workers = 1
        self.max_message_bytes = wire.MAX_MESSAGE_BYTES  # the node's, from its welcome
        self.name = address
        self.alive = True
        self.last_heard = self.last_ping = time.monotonic()
        self.jobs: dict = {}  # job id -> chain ids

    def send(self, message):
        import zmq
        try:
            self.socket.send(wire.pack(message), zmq.NOBLOCK)
        except zmq.Again:  # not connected or not reading: the heartbeat will tell
            pass

    def receive(self):
        """The next checked message, or None when there is none now."""
        import zmq
        try:
            payload = self.socket.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        self.last_heard = time.monotonic()
        return wire.check_reply(wire.unpack(payload))

    def welcomed(self):
        """True once the node's welcome came, a reason string if it refused or answered
        nonsense, None while no answer is in."""
        try:
            msg = self.receive()
        except wire.WireError as err:
            return f"answered with a bad message: {err}"
        while msg is not None:
            if msg["type"] == "welcome":
                self.workers = msg["workers"]
                self.max_message_bytes = msg["max_message_bytes"]
                return True
            if msg["type"] == "error":
                return f"refused: {msg['message']}"
            try:
                msg = self.receive()
            except wire.WireError as err:
                return f"answered with a bad message: {err}"
        return None

    def close(self):
        self.socket.close()
        if self.process is not None:
            self.process.stop()


class LocalNode:
    """An exmc-node subprocess on loopback: how ``"local"`` joins a run.

    The node holds the read end of a pipe whose only write end is this process's: when
    this process dies, however it dies (SIGKILL included), the node reads end-of-file
    and stops with its workers.
    """

    def __init__(self, workers=None, timeout=60.0):
        self.log = tempfile.NamedTemporaryFile(prefix="exmc-node-", suffix=".log", delete=False)
        read_end, self.lifeline = os.pipe()
        from exmc.compiler import cache_dir

        cache = cache_dir().parent  # this host's own compile cache, the one exmc.sample uses
        command = [sys.executable, "-m", "exmc.distributed.cli", "--bind", "tcp://127.0.0.1:*",
                   "--parent-fd", str(read_end), "--cache-dir", str(cache)]
        if workers:
            command += ["--workers", str(workers)]
        try:
            self.popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log,
                                          pass_fds=(read_end,))
        except BaseException:
            os.close(self.lifeline)
            self.log.close()
            os.unlink(self.log.name)
            raise
        finally:
            os.close(read_end)
        try:
            self.address = wait_for_listening(self.log.name, self.popen, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
            self.log.close()
            os.unlink(self.log.name)


def wait_for_listening(log_path, popen, timeout=60.0):
    """The address an exmc-node announced in its log ("listening on ADDRESS")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path) as fh:
            found = re.search(r"listening on (\S+)", fh.read())
        if found:
            return found.group(1)
        if popen.poll() is not None:
            with open(log_path) as fh:
                raise NodeError(f"exmc-node exited with status {popen.returncode}: {fh.read()}")
        time.sleep(0.05)
    raise NodeError(f"exmc-node did not start listening within {timeout:g} s")


def _node_key_for(node_key, address):
    if isinstance(node_key, dict):
        return node_key.get(address)
    return node_key


def connect(nodes, client_key=None, node_key=None, timeout=10.0):
    """NodeLinks that answered hello, and {address: reason} for those that did not."""
    links, failed = [], {}
    for address in nodes:
        if address == LOCAL:
            try:
                local = LocalNode()
            except NodeError as err:
                failed[LOCAL] = str(err)
                continue
            links.append(NodeLink(local.address, process=local))
            links[-1].name = LOCAL
        else:
            try:
                links.append(NodeLink(address, client_key, _node_key_for(node_key, address)))
            except Exception as err:  # bad address or key file
                failed[address] = str(err)
    deadline = time.monotonic() + timeout
    waiting = list(links)
    asked = 0.0
    while waiting and time.monotonic() < deadline:
        if time.monotonic() - asked > HELLO_SECONDS:
            # Again and again: a hello queued on a connection the node turned away (it caps
            # its peers) is lost with it; the next one goes on the reconnected link.
            for link in waiting:
                link.send({"type": "hello"})
            asked = time.monotonic()
        for link in list(waiting):
            answer = link.welcomed()
            if answer is True:
                waiting.remove(link)
            elif answer is not None:
                failed[link.address] = answer
                waiting.remove(link)
        time.sleep(0.01)
    for link in waiting:
        failed[link.address] = (f"no answer within {timeout:g} s (not running, unreachable, or "
                                f"refusing this client's CURVE keys)")
    good = [link for link in links if link.address not in failed]
    for link in links:
        if link.address in failed:
            link.close()
    return good, failed


class Run:
    """One distributed run: which chain is where, what has arrived, where chains moved.

    Chains not on a node wait in ``waiting`` (in chain order) until a live node has a free
    worker; ``source``, a live node set, is asked for its addresses every
    ``REFRESH_SECONDS``: a new address is welcomed and takes waiting chains, an address
    gone from the set counts as a failed node.  With no live node for ``wait_for_nodes``
    seconds (at once for a fixed list of nodes), ``on_node_failure`` decides.
    """

    def __init__(self, model_bytes, options, seeds, links, collector, on_rows, run_id,
                 on_node_failure, node_timeout, dim, source=None, wait_for_nodes=0.0,
                 client_key=None, node_key=None):
        self.model_bytes, self.options, self.seeds, self.dim = model_bytes, options, seeds, dim
        self.links, self.collector, self.on_rows = links, collector, on_rows
        self.run_id, self.on_node_failure, self.node_timeout = run_id, on_node_failure, node_timeout
        self.source, self.wait_for_nodes = source, wait_for_nodes
        self.keys = (client_key, node_key)
        self.where: dict = {}     # chain -> link running it
        self.waiting: list = []   # chains on no node, in order
        self.moving: dict = {}    # chain -> (from, iteration, reason) until it is placed again
        self.history = {chain: [] for chain in range(len(seeds))}  # node names, in order
        self.moves: list = []
        self.failures = [None] * len(seeds)
        self.jobs = 0
        self.job_options: dict = {}  # job id -> the options it was sent with
        self.replays: dict = {}  # (chain, link) -> times replayed there
        self.pending_warmup = None  # (chain, chains waiting for its tuning) with warmup="once"
        self.joining: dict = {}   # address -> (link, when asked first): hello sent, no welcome
        self.tried: dict = {}     # address -> when it last failed to join or failed
        self.refreshed = 0.0
        self.empty_since = None   # when the last live node went, while chains wait
        self.last_failure = "no node could be used"

    # -- placing chains ---------------------------------------------------------------------
    def submit(self, link, chains, options=None, states=None):
        """Send ``chains`` to ``link`` as one job; ``states`` resume chains from a packed state."""
        self.jobs += 1
        job = f"{self.run_id}_{self.jobs}"
        states = states or {}
        link.send({"type": "submit", "job": job, "model": self.model_bytes,
                   "options": options or self.options,
                   "chains": [{"chain": c, "entropy": str(self.seeds[c].entropy),
                               "spawn_key": [int(k) for k in self.seeds[c].spawn_key],
                               "state": states.get(c)} for c in chains]})
        link.jobs[job] = list(chains)
        self.job_options[job] = options or self.options
        for c in chains:
            self.where[c] = link
            self.history[c].append(link.name)
            if c in self.moving:
                source, iteration, reason = self.moving.pop(c)
                self.moves.append(f"chain {c}: {source} -> {link.name} at iteration "
                                  f"{iteration} ({reason})")
        log.info("job %s: chains %s on %s", job, list(chains), link.name)

    def spread(self, chains):
        """Queue ``chains`` and place what live nodes have room for."""
        self.waiting = sorted(set(self.waiting) | set(chains))
        self.place()

    def place(self):
        """Give waiting chains to live nodes with a free worker, least loaded first; one job
        per node.  Chain 0 alone while it warms up for the others (warmup="once")."""
        live = [link for link in self.links if link.alive]
        load = {link: self.load(link) for link in live}
        share = {link: [] for link in live}
        for c in list(self.waiting):
            free = [link for link in live if load[link] < link.workers]
            if not free:
                break
            target = min(free, key=lambda link: load[link] / link.workers)
            load[target] += 1
            share[target].append(c)
            self.waiting.remove(c)
        for link, assigned in share.items():
            if assigned:
                warming = self.pending_warmup and assigned == [self.pending_warmup[0]]
                options = (dict(self.options, total=self.options["num_warmup"])
                           if warming else None)
                self.submit(link, assigned, options, {c: self.state_of(c) for c in assigned})

    def load(self, link):
        return sum(1 for c, where in self.where.items() if where is link and not self.settled(c))

    def settled(self, chain):
        return self.collector.finished[chain] or self.failures[chain] is not None

    def state_of(self, chain):
        """The chain's latest received state (None before its first block: it starts afresh)."""
        return self.collector.states.get(chain)

    # -- the loop ---------------------------------------------------------------------------
    def pump(self, should_stop=lambda: False):
        """Handle what arrived, ping nodes, notice silent ones, follow the node set, place
        waiting chains; returns when all chains settle (or ``should_stop()``)."""
        import zmq

        while not all(self.settled(c) for c in range(len(self.seeds))) and not should_stop():
            poller = zmq.Poller()
            live = [link for link in self.links if link.alive]
            for link in live + [link for link, _ in self.joining.values()]:
                poller.register(link.socket, zmq.POLLIN)
            ready = dict(poller.poll(100))
            now = time.monotonic()
            for link in live:
                if link.socket in ready:
                    self._drain(link)
                if now - link.last_ping > PING_SECONDS:
                    link.send({"type": "ping", "jobs": list(link.jobs)})
                    link.last_ping = now
                if link.alive and now - link.last_heard > self.node_timeout:
                    self._drain(link)  # what arrived since the poll (this loop may have stalled)
                    if link.alive and time.monotonic() - link.last_heard > self.node_timeout:
                        self.node_failed(link, f"silent for {self.node_timeout:g} s")
            self._follow_source()
            self.place()
            self._check_empty()

    def _drain(self, link, limit=1000):
        for _ in range(limit):
            try:
                msg = link.receive()
            except wire.WireError as err:
                self.node_failed(link, f"sent a bad message: {err}")
                return
            if msg is None:
                return
            job = msg.get("job")
            if job is not None and job not in link.jobs:
                continue  # from a job this run abandoned
            if msg["type"] == "block":
                self._block(link, job, msg["data"])
            elif msg["type"] == "pong":
                for gone in msg["gone"]:
                    if gone in link.jobs:  # its last messages never came: replay its chains
                        self._replay(link, gone, "the node ended the job before its last draws came")
            elif msg["type"] == "chain_failed":
                if msg["chain"] in link.jobs[job]:
                    self.failures[msg["chain"]] = f"on {link.name}: {msg['reason']}"
            elif msg["type"] == "error":
                self.node_failed(link, f"refused job {job}: {msg['message']}")
                return

    def _block(self, link, job, data):
        try:
            chain, first, end = self.collector.receive(data)
        except Gap as gap:
            self._replay(link, job, str(gap))
            return
        except ValueError as err:
            self.node_failed(link, str(err))
            return
        if end > first:
            self.on_rows(chain, first, end)
        if self.pending_warmup and chain == self.pending_warmup[0]:
            self._after_warmup(link)

    def _replay(self, link, job, reason):
        """Messages of ``job`` went missing: run its unsettled chains again on the same node,
        from their last received state (what follows is regenerated exactly)."""
        link.send({"type": "cancel", "job": job})
        chains = [c for c in link.jobs.pop(job) if not self.settled(c) and self.where.get(c) is link]
        options = self.job_options.pop(job)
        if not chains:
            return
        for c in chains:
            self.replays[c, link] = self.replays.get((c, link), 0) + 1
        if any(self.replays[c, link] > MAX_REPLAYS for c in chains):
            self.node_failed(link, f"lost messages of a chain more than {MAX_REPLAYS} times")
            return
        log.warning("job %s on %s: %s; replaying chains %s", job, link.name, reason, chains)
        for c in chains:
            self.moves.append(f"chain {c}: replayed on {link.name} from iteration "
                              f"{self.collector.received[c]} ({reason})")
        self.submit(link, chains, options, {c: self.state_of(c) for c in chains})

    def node_failed(self, link, reason):
        """Queue the unsettled chains of a node that failed, to go on elsewhere from their
        last received state."""
        link.alive = False
        self.tried[link.address] = time.monotonic()
        for job in link.jobs:
            link.send({"type": "cancel", "job": job})  # in case it is alive but cut off
            self.job_options.pop(job, None)
        link.jobs.clear()
        orphans = [c for c, where in self.where.items() if where is link and not self.settled(c)]
        log.warning("node %s failed (%s); moving chains %s", link.name, reason, orphans)
        for c in orphans:
            del self.where[c]
            self.moving[c] = (link.name, self.collector.received[c], reason)
        self.last_failure = f"node {link.name} failed ({reason})"
        self.spread(orphans)
        self._check_empty()

    def _check_empty(self):
        """With chains waiting and no live node (for ``wait_for_nodes`` s with a live set):
        start a local node (on_node_failure="local") or fail the waiting chains."""
        if not self.waiting or any(link.alive for link in self.links):
            self.empty_since = None
            return
        now = time.monotonic()
        if self.empty_since is None:
            self.empty_since = now
        if self.source is not None and now - self.empty_since < self.wait_for_nodes:
            return
        if self.on_node_failure == LOCAL and not any(l.name == LOCAL for l in self.links):
            links, failed = connect([LOCAL])
            if failed:
                log.error("could not start a local node: %s", "; ".join(failed.values()))
            self.links.extend(links)
            self.place()
            if links:
                return
        waited = (f" and none joined the node set within {self.wait_for_nodes:g} s"
                  if self.source is not None else "")
        for c in self.waiting:
            self.failures[c] = f"{self.last_failure}; no node is left{waited}"
            self.moving.pop(c, None)
        self.waiting = []

    # -- a live node set --------------------------------------------------------------------
    def _follow_source(self):
        """Welcome the set's new nodes; count nodes gone from it as failed."""
        if self.source is None:
            return
        now = time.monotonic()
        if now - self.refreshed >= REFRESH_SECONDS:
            self.refreshed = now
            try:
                listed = list(self.source.addresses())
            except Exception as err:  # noqa: BLE001 -- the set's engine hiccuped: keep what we have
                log.warning("the node set could not be read: %r", err)
                listed = None
            if listed is not None:
                self._update_members(listed, now)
        for address, (link, asked) in list(self.joining.items()):
            answer = link.welcomed()
            if answer is True:
                answer = self._fits(link)
            if answer is True:
                del self.joining[address]
                link.last_heard = link.last_ping = time.monotonic()
                self.links.append(link)
                log.info("node %s joined the run (%d workers)", address, link.workers)
            elif answer is not None or now - asked > self.node_timeout:
                del self.joining[address]
                link.close()
                self.tried[address] = now
                log.warning("node %s could not join: %s", address,
                            answer or f"no answer within {self.node_timeout:g} s")
            elif now - link.last_ping > HELLO_SECONDS:
                link.send({"type": "hello"})
                link.last_ping = now

    def _update_members(self, listed, now):
        members = set(listed)
        for link in self.links:
            if link.alive and link.name != LOCAL and link.address not in members:
                self.node_failed(link, "it left the node set")
        for address, (link, _) in list(self.joining.items()):
            if address not in members:
                del self.joining[address]
                link.close()
        present = {link.address for link in self.links if link.alive} | set(self.joining)
        for address in listed:
            if address in present or now - self.tried.get(address, -RETRY_SECONDS) < RETRY_SECONDS:
                continue
            client_key, node_key = self.keys
            try:
                link = NodeLink(address, client_key, _node_key_for(node_key, address))
            except Exception as err:  # noqa: BLE001 -- a bad address or key file
                self.tried[address] = now
                log.warning("node %s cannot be used: %s", address, err)
                continue
            link.send({"type": "hello"})
            link.last_ping = now
            self.joining[address] = (link, now)
            present.add(address)

    def _fits(self, link):
        """True if this run's requests fit the node's message limit, else why not."""
        try:
            _check_request_size(self.model_bytes, self.dim, self.options["dense"],
                                len(self.seeds), [link])
        except NodeError as err:
            return str(err)
        return True

    # -- warmup="once" ----------------------------------------------------------------------
    def _submit_warmup(self, chain):
        """Chain 0 goes first, alone, for the warmup the others will start from."""
        self.spread([chain])

    def _after_warmup(self, link):
        chain, others = self.pending_warmup
        if self.collector.received[chain] < self.options["num_warmup"]:
            return
        self.pending_warmup = None
        tuned, _ = unpack_state(self.state_of(chain))
        states = {}
        for c in others:  # chain 0's tuning and position, each chain's own random stream
            rng = np.random.Generator(np.random.PCG64(self.seeds[c]))
            states[c] = pack_state(tuned, rng)
            self.collector.resume_from(c, states[c])
            self.collector.draws[c, :self.options["num_warmup"]] = np.nan
            self.collector.stats[c, :self.options["num_warmup"]] = np.nan
        self.where.pop(chain)  # the warmup job is over; the chain is placed again below
        self.spread([chain, *others])

    def close(self):
        for link in self.links:
            for job in list(link.jobs):
                link.send({"type": "cancel", "job": job})
        time.sleep(0.05)  # let the cancels leave before the sockets close
        for link in self.links + [link for link, _ in self.joining.values()]:
            link.close()
        self.joining.clear()


class Nodes:
    """Executor: chains on exmc-node daemons, ``exmc.sample(model, executor=Nodes([...]))``.

    Parameters
    ----------
    nodes : list of str, or a live node set
        Node addresses (``"tcp://10.0.0.2:5555"``); ``"local"`` starts a node on this
        machine for the run.  Or a live set: any object whose ``addresses()`` returns the
        addresses of the nodes up now (``exmc.distributed.dask_nodes(client)``), asked
        again every second: a node that joins mid-run takes waiting or moved chains, a
        node that leaves the set counts as failed, a node restarted on a new port joins
        as a new one.  Each node gets as many chains as it has workers; the others wait
        on this machine for the first free worker of any node.
    warmup : "each" or "once"
        ``"each"``: every chain warms up on its node.  ``"once"``: chain 0 warms up,
        then every chain starts from its tuned step size, metric and final position,
        each with its own random stream (the other chains' warmup draws and float
        warmup stats are NaN, their integer stats -1 and flags False).
    on_node_failure : "error" or "local"
        What to do when no node is left (at start or mid-run): raise `NodeError` /
        report the chains failed, or start a node on this machine and go on there.
        Chains of a failed node move to the other live nodes either way.  With a live
        set, this applies only once the set has had no usable node for ``wait_for_nodes``.
    client_key, node_key
        CURVE: this client's ``.key_secret`` file, and the node's public ``.key`` file
        (one for all nodes, or a dict address -> file).  See ``exmc-node keygen``.
    node_timeout : float
        Seconds of silence after which a node counts as failed (pinged every 0.5 s).
    connect_timeout : float
        Seconds to wait for each node's answer at start (a fixed list of nodes).
    wait_for_nodes : float
        With a live node set: seconds the set may have no usable node while chains wait
        (at start, or after its last node left) before ``on_node_failure`` applies.  The
        chains' draws so far are kept; they resume from there on the next node.

    The run's InferenceData attrs record ``nodes`` (where each chain ran, in order,
    joined by ``>``) and ``moves`` (each move with its iteration and reason).
    """

    name = "nodes"
    files = False  # chains resume on nodes from the states the collector keeps in memory

    def __init__(self, nodes=(LOCAL,), warmup="each", on_node_failure="error", client_key=None,
                 node_key=None, node_timeout=5.0, connect_timeout=10.0, wait_for_nodes=60.0):
        if warmup not in ("each", "once"):
            raise ValueError(f"warmup must be 'each' or 'once', got {warmup!r}")
        if on_node_failure not in ("error", LOCAL):
            raise ValueError(f"on_node_failure must be 'error' or 'local', got "
                             f"{on_node_failure!r}")
        self.source = nodes if callable(getattr(nodes, "addresses", None)) else None
        if self.source is None and (isinstance(nodes, str) or not nodes):
            raise ValueError("nodes must be a non-empty list of addresses (or 'local'), or a "
                             "live node set (an object with addresses(), such as "
                             "dask_nodes(client))")
        if not wait_for_nodes >= 0:
            raise ValueError(f"wait_for_nodes must be >= 0 seconds, got {wait_for_nodes!r}")
        self.nodes, self.warmup, self.on_node_failure = nodes, warmup, on_node_failure
        self.client_key, self.node_key = client_key, node_key
        self.node_timeout, self.connect_timeout = node_timeout, connect_timeout
        self.wait_for_nodes = wait_for_nodes

    def prepare(self):
        pass

    def run(self, jobs, collector, on_rows, should_stop):
        from exmc.runtime.stream import new_run_id

        options = {k: v for k, v in jobs.options.items() if k in wire.OPTIONS}
        wire.check_options(options)
        # A live set's nodes up now are welcomed first, so that the first chains spread over
        # them all; later ones join as they come, and one that does not answer is left out.
        source = self.source
        listed = list(source.addresses()) if source is not None else list(self.nodes)
        links, failed = (connect(listed, self.client_key, self.node_key, self.connect_timeout)
                         if listed else ([], {}))
        try:  # from here on, nodes are connected (a "local" one running): close them on any error
            if failed and source is not None:
                log.warning("nodes of the set not used: %s", "; ".join(
                    f"{address}: {reason}" for address, reason in failed.items()))
            elif failed:
                detail = "; ".join(f"{address}: {reason}" for address, reason in failed.items())
                if self.on_node_failure != LOCAL:
                    raise NodeError(f"{len(failed)} of {len(self.nodes)} node(s) cannot be used: "
                                    f"{detail} (on_node_failure='local' runs their chains here "
                                    f"instead)")
                warnings.warn(f"nodes not used: {detail}", RuntimeWarning, stacklevel=4)
                if not links:
                    links, more = connect([LOCAL])
                    if not links:
                        raise NodeError(f"no node could be used and a local node failed: {more}")
            model_bytes = jobs.model.to_msgpack()
            _check_request_size(model_bytes, jobs.compiled.dim, jobs.dense, len(jobs.seeds),
                                links)
            run = Run(model_bytes, options, jobs.seeds, links, collector, on_rows, new_run_id(),
                      self.on_node_failure, self.node_timeout, jobs.compiled.dim, source,
                      self.wait_for_nodes, self.client_key, self.node_key)
        except BaseException:
            for link in links:
                link.close()
            raise
        chains = range(len(jobs.seeds))
        try:
            unfinished = [c for c in chains if not collector.finished[c]]
            if self.warmup == "once" and options["num_warmup"] > 0 and 0 in unfinished \
                    and collector.received[0] < options["num_warmup"]:
                run.pending_warmup = (0, [c for c in unfinished if c != 0])
                run._submit_warmup(0)
            else:
                run.spread(unfinished)
            run.pump(should_stop)
        except KeyboardInterrupt:
            pass
        finally:
            run.close()
        return Outcome(list(run.failures), {
            "nodes": [" > ".join(run.history[c]) for c in chains], "moves": list(run.moves),
            "warmup": self.warmup})

    @staticmethod
    def failed(err):
        """The error when no chain made a draw to keep: where and why."""
        return NodeError("no chain made a draw to keep: " + "; ".join(
            f"chain {chain} {reason}" for chain, reason in err.reasons.items()), err.reasons)


def sample_chains(model, init=None, nodes=(LOCAL,), warmup="each", on_node_failure="error",
                  client_key=None, node_key=None, node_timeout=5.0, connect_timeout=10.0,
                  wait_for_nodes=60.0, **options):
    """Run NUTS chains on exmc-node daemons and return one InferenceData with every chain:
    ``exmc.sample(model, executor=Nodes(nodes, ...), **options)``.

    ``nodes``, ``warmup``, ``on_node_failure``, ``client_key``, ``node_key``,
    ``node_timeout``, ``connect_timeout`` and ``wait_for_nodes`` are ``Nodes``'s (see
    there); every other argument is ``exmc.sample``'s, with the same defaults (four
    chains of 1000 + 1000, progress, diagnostics, ``stream_to=``, ``dashboard=``,
    ``checkpoint=``, ``blocking=False`` ...).
    """
    from exmc.runtime.sample import sample

    executor = Nodes(nodes, warmup, on_node_failure, client_key, node_key, node_timeout,
                     connect_timeout, wait_for_nodes)
    return sample(model, init=init, executor=executor, **options)


def _check_request_size(model_bytes, dim, dense, chains, links):
    """Refuse up front a run whose submits some node would drop as too large: the model's
    IR, and a chain state per chain (chains moving with their state)."""
    state = 8 * ((3 * dim * dim if dense else 0) + 16 * dim) + 1024
    need = len(model_bytes) + chains * (state + 256) + 4096
    for link in links:
        if need > link.max_message_bytes:
            raise NodeError(
                f"this run's requests need about {need:,} bytes (the model's IR is "
                f"{len(model_bytes):,}), more than node {link.name} accepts "
                f"({link.max_message_bytes:,} bytes; exmc-node --max-message-mb)")
