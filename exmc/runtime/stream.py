"""Streaming: every draw, warmup included, leaves the process as a protocol message.

The compiled loop hands over blocks of draws; a publisher thread encodes each block
into message bodies at once (``protocol.SampleEncoder``) and sends them to a sink,
while the sampler, which releases the GIL, goes on with the next block.  Sinks: a
ZeroMQ PUB socket bound to an address, or any callable receiving each message dict.
"""
from __future__ import annotations

import queue
import threading
import time
import uuid

import msgpack
import numpy as np

from exmc.runtime import protocol
from exmc.samplers.nuts import STAT_NAMES

_COLUMNS = {name: STAT_NAMES.index(name) for name in protocol.STAT_FIELDS}
# Draws encoded and sent at a time: bounds the memory of a large block's bodies and
# lets the first messages of a block leave before the whole block is encoded.
CHUNK_DRAWS = 256


class CallbackSink:
    """Calls ``fn(message)`` for every message, with the dict a subscriber would decode."""

    def __init__(self, fn):
        self.fn = fn

    def send(self, topic, bodies):
        for body in bodies:
            # Unpacking the encoded body in C is cheaper than building dicts in Python.
            self.fn(msgpack.unpackb(body))

    send_final = send

    def close(self):
        pass


class ZmqSink:
    """A ZeroMQ XPUB socket bound to ``address``; waits for a first subscriber (slow joiner).

    XPUB is PUB that also reports subscriptions, so the first draw is not sent into
    the void while a subscriber is still connecting.  After ``wait_for_subscriber``
    seconds without one, publishing starts anyway (viewers are best-effort); after the
    first subscription it waits ``grace`` seconds more, so every subscriber that
    subscribes within that time of the first sees the first draw too.

    A subscriber that lags: the socket never drops a message for one subscriber
    alone (``ZMQ_XPUB_NODROP``).  A draw that finds some subscriber's queue full (the
    high-water mark) is skipped for every subscriber, and each sees the gap in ``seq``;
    ``skipped`` counts them.  (libzmq's default would drop it for the lagging one only,
    but also take that subscriber out of delivery until it catches up, so a chain's
    ``exmc_done`` sent meanwhile was lost with nothing to show for it.)  A chain's
    ``exmc_done`` (``send_final``) instead waits for room, up to ``drain_seconds`` for
    the whole run, so a lagging subscriber learns from its ``seq`` how many messages it
    missed; and ``close`` goes on delivering what is queued for up to ``drain_seconds``.
    """

    def __init__(self, address, wait_for_subscriber=5.0, high_water_mark=100_000,
                 drain_seconds=5.0, grace=0.25):
        import zmq
        self.zmq = zmq
        # Its own context: terminating it at close drains this socket, and only it.
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.LINGER, int(drain_seconds * 1000))
        self.socket.setsockopt(zmq.SNDHWM, high_water_mark)
        self.socket.setsockopt(zmq.XPUB_NODROP, 1)
        self.skipped = 0
        try:
            self.socket.bind(address)
        except BaseException:
            self.socket.close(0)
            self.context.term()
            raise
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.wait_for_subscriber, self.grace = wait_for_subscriber, grace
        self.final_seconds = drain_seconds  # left for exmc_done messages to wait for room
        self.subscribed = False

    def _await_subscriber(self):
        deadline = time.monotonic() + self.wait_for_subscriber
        while time.monotonic() < deadline:
            if self.socket.poll(50, self.zmq.POLLIN):
                frame = self.socket.recv()
                if frame[:1] == b"\x01" and not self.subscribed:
                    self.subscribed = True
                    deadline = time.monotonic() + self.grace  # for the others
        self.subscribed = True  # do not wait again

    def send(self, topic, bodies):
        """Send each body (bytes-like) as a [topic, body] message."""
        if not self.subscribed:
            self._await_subscriber()
        first, again = self.zmq.SNDMORE | self.zmq.NOBLOCK, self.zmq.Again
        for body in bodies:
            # Two send calls cost less Python per message than send_multipart.
            try:
                self.socket.send(topic, first)  # the high-water mark is checked here
            except again:  # a subscriber's queue is full: skipped for all, seq shows it
                self.skipped += 1
                continue
            self.socket.send(body)

    def send_final(self, topic, bodies):
        """Send like ``send``, but wait (within the run's ``drain_seconds``) for room in
        every subscriber's queue rather than drop the message for one that lags."""
        zmq = self.zmq
        if not self.subscribed:
            self._await_subscriber()
        for body in bodies:
            started = time.monotonic()
            while True:  # the high-water mark is checked at a message's first frame
                try:
                    self.socket.send(topic, zmq.SNDMORE | zmq.NOBLOCK)
                    break
                except zmq.Again:
                    if time.monotonic() - started > self.final_seconds:
                        # Out of time: the others get it, the subscriber that is full not.
                        self.socket.setsockopt(zmq.XPUB_NODROP, 0)
                        try:
                            self.socket.send(topic, zmq.SNDMORE)
                        finally:
                            self.socket.setsockopt(zmq.XPUB_NODROP, 1)
                        break
                    time.sleep(0.001)
            self.socket.send(body)
            self.final_seconds = max(0.0, self.final_seconds - (time.monotonic() - started))

    def close(self):
        """Close the socket, delivering what is queued for at most ``drain_seconds``."""
        self.socket.close()
        self.context.term()


def make_sink(target, wait_for_subscriber=5.0, drain_seconds=5.0):
    if callable(target):
        return CallbackSink(target)
    if isinstance(target, str):
        return ZmqSink(target, wait_for_subscriber, drain_seconds=drain_seconds)
    raise TypeError(f"stream target must be a ZeroMQ address or a callable, got {type(target).__name__}")


def new_run_id():
    return "r" + uuid.uuid4().hex[:10]


class Publisher:
    """Turns blocks of draws into messages on a background thread; ``close`` flushes.

    A sink has ``send(topic, bodies)`` (encoded bodies, one per message) and ``close()``,
    and may have ``send_final`` (same arguments) for the messages that end a chain.

    Per chain, ``seq`` numbers the messages from 0 without gaps (``exmc_done`` included).
    """

    def __init__(self, sink, compiled, run_id, num_warmup, chains):
        self.sink, self.compiled, self.run, self.num_warmup = sink, compiled, run_id, num_warmup
        self.queue: queue.Queue = queue.Queue()
        self.seq: dict = {}
        # Set up before sampling starts, not on the publisher thread while the sampler runs:
        # the first constrain loads compiled code (milliseconds), and each chain's encoder.
        point = compiled.constrain(np.zeros((1, compiled.dim)))
        shapes = {name: values.shape[1:] for name, values in point.items()}
        self.encoders = {chain: protocol.SampleEncoder(run_id, chain, shapes)
                         for chain in range(chains)}
        self.error = None
        self.thread = threading.Thread(target=self._loop, name="exmc-publisher", daemon=True)
        self.thread.start()

    def block(self, chain, first, draws, stats):
        """Queue draws (n, dim) and stats (n, len(STAT_NAMES)) whose first iteration is ``first``."""
        self.queue.put(("block", chain, first, draws.copy(), stats.copy()))

    def done(self, chain, num_draws, status="ok", reason=None):
        self.queue.put(("done", chain, num_draws, status, reason))

    def close(self):
        """Send what is queued, close the sink; returns the error that stopped streaming, if any."""
        self.queue.put(None)
        self.thread.join()
        self.sink.close()
        return self.error

    def _next_seq(self, chain, count=1):
        """The first of ``count`` consecutive sequence numbers of ``chain``."""
        seq = self.seq.get(chain, 0)
        self.seq[chain] = seq + count
        return seq

    def _loop(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # keep draining so the sampler never blocks on us
            try:
                self._publish(item)
            except Exception as err:  # noqa: BLE001 -- a broken viewer must not break sampling
                self.error = err

    def _publish(self, item):
        if item[0] == "done":
            _, chain, num_draws, status, reason = item
            topic, body = protocol.encode(protocol.done_message(
                self.run, chain, self._next_seq(chain), num_draws, status, reason))
            getattr(self.sink, "send_final", self.sink.send)(topic, [body])
            return
        _, chain, first, draws, stats = item
        encoder = self.encoders[chain]
        for start in range(0, len(draws), CHUNK_DRAWS):
            end = min(start + CHUNK_DRAWS, len(draws))
            points = self.compiled.constrain(draws[start:end])
            i = np.arange(first + start, first + end)
            seq = self._next_seq(chain, end - start) + np.arange(end - start)
            stat_values = {name: stats[start:end, col] for name, col in _COLUMNS.items()}
            self.sink.send(encoder.topic,
                           encoder.encode(i, seq, i < self.num_warmup, points, stat_values))


__all__ = ["CallbackSink", "Publisher", "ZmqSink", "make_sink", "new_run_id"]
