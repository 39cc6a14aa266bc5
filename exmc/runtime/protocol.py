"""The streaming wire protocol: each draw is one two-frame ZeroMQ message, topic then msgpack body.

Frames::

    topic  b"exmc.<run>.<chain>."      (ASCII; subscribe to b"exmc.<run>." for a run,
                                         b"exmc.<run>.<chain>." for one chain)
    body   msgpack map (string keys)

Bodies::

    exmc_sample  {"type": "exmc_sample", "run": str, "chain": int, "i": int, "seq": int,
                  "warmup": bool, "point": {name: float | nested list of floats},
                  "stats": {"lp", "energy", "step_size", "acceptance_rate": float,
                            "tree_depth", "n_steps": int, "diverging", "recovered": bool}}
    exmc_done    {"type": "exmc_done", "run": str, "chain": int, "seq": int,
                  "num_draws": int, "status": "ok" | "failed", "reason": str | nil}

``i`` counts iterations from 0 with warmup first (``warmup`` is true for i <
num_warmup); ``seq`` is the per-chain sequence number of the message, with no
gaps: a subscriber that sees seq jump has missed messages.  Points hold
constrained values in their shapes (nested lists), deterministics included.
The full description for subscribers in any language is docs/protocol.md.

``sample_message`` + ``encode`` define a draw's message; ``SampleEncoder`` makes the
same bodies for a whole block of draws at once (fixed-width msgpack, filled by NumPy),
which is what the sampler's publisher sends.
"""
from __future__ import annotations

import math

import msgpack
import numpy as np

SAMPLE, DONE = "exmc_sample", "exmc_done"
STAT_FIELDS = {"lp": float, "energy": float, "step_size": float, "acceptance_rate": float,
               "tree_depth": int, "n_steps": int, "diverging": bool, "recovered": bool}
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_NESTING = 8


class ProtocolError(ValueError):
    """A message that does not follow the protocol."""


class _ItemBudget:
    """Counts the items of every list and map msgpack builds; raises past ``left``.

    msgpack bounds each container's length by the payload's size, but not their total:
    a payload of n bytes can hold n empty lists, each a Python object of ~60 bytes.
    Counting through the decoder's hooks stops such a payload after ``left`` items.
    """

    def __init__(self, left):
        self.left = left

    def __call__(self, container):
        self.left -= len(container) + 1
        if self.left < 0:
            raise ValueError("too many list and map items for a message of this size")
        return container


def unpack_bounded(payload, *, max_str_len, max_bin_len, min_items=4096, max_container_len=None,
                   bytes_per_item=8):
    """``msgpack.unpackb`` with every limit set: string, binary and container lengths, no
    extension types, string map keys, and at most ``len(payload) // bytes_per_item +
    min_items`` list and map items in all, so the objects built take at most a small
    multiple of the payload's size (about 64 / bytes_per_item times for the worst payload,
    all empty lists, each a Python object).  Nesting is bounded by msgpack's parser stack.
    Raises msgpack's errors or ``ValueError``.
    """
    longest = len(payload) if max_container_len is None else max_container_len
    budget = _ItemBudget(len(payload) // bytes_per_item + min_items)
    return msgpack.unpackb(payload, raw=False, strict_map_key=True, max_ext_len=0,
                           max_str_len=max_str_len, max_bin_len=max_bin_len,
                           max_array_len=longest, max_map_len=longest,
                           list_hook=budget, object_hook=budget)


def topic(run: str, chain: int | None = None) -> bytes:
    """Topic frame of a chain's messages, or the prefix matching every chain of ``run``."""
    return f"exmc.{run}.".encode() if chain is None else f"exmc.{run}.{int(chain)}.".encode()


def sample_message(run, chain, i, seq, warmup, point, stats):
    """The body of one draw; ``point`` maps names to numbers or arrays."""
    return {"type": SAMPLE, "run": run, "chain": int(chain), "i": int(i), "seq": int(seq),
            "warmup": bool(warmup),
            "point": {k: (np.asarray(v).tolist() if np.ndim(v) else float(v)) for k, v in point.items()},
            "stats": {k: cast(stats[k]) for k, cast in STAT_FIELDS.items()}}


class _Slot:
    """A varying value in a body template: its msgpack marker byte and payload size."""

    def __init__(self, marker, width):
        self.marker, self.width = marker, width


_FLOAT = _Slot(0xcb, 8)  # float 64, big-endian as all of msgpack
_INT = _Slot(0xd3, 8)    # int 64
_BOOL = _Slot(0xc2, 0)   # no payload: the marker is 0xc2 (false) + the value
_SLOT_OF = {float: _FLOAT, int: _INT, bool: _BOOL}


def _nested(shape):
    """Template of a point value of ``shape``: a float slot, or nested lists of them."""
    return [_nested(shape[1:]) for _ in range(shape[0])] if shape else _FLOAT


def _pack_template(value, packer, out: bytearray, markers: dict):
    """Append the msgpack bytes of ``value`` to ``out``; each slot's marker offset goes to markers[slot]."""
    if isinstance(value, _Slot):
        markers[value].append(len(out))
        out.append(value.marker)
        out.extend(bytes(value.width))
    elif isinstance(value, dict):
        out += packer.pack_map_header(len(value))
        for key, item in value.items():
            out += packer.pack(key)
            _pack_template(item, packer, out, markers)
    elif isinstance(value, list):
        out += packer.pack_array_header(len(value))
        for item in value:
            _pack_template(item, packer, out, markers)
    else:
        out += packer.pack(value)


def _payload_columns(markers, width):
    """Byte columns, (len(markers) * width,), of the payloads that follow each marker."""
    return (np.asarray(markers, dtype=np.intp)[:, None] + 1 + np.arange(width)).ravel()


class SampleEncoder:
    """``exmc_sample`` bodies of one chain, a block of draws at once: one row of bytes per draw.

    All sample bodies of a chain share one msgpack structure, and msgpack allows
    non-minimal encodings: with every float written as float 64 (0xcb), every integer
    as int 64 (0xd3) and booleans as 0xc2/0xc3, each value has a fixed offset in a
    fixed template, so a block is filled column by column with NumPy instead of one
    Python dict and ``packb`` per draw.  Row k unpacks to exactly the k-th
    ``sample_message`` (same keys in the same order, same Python types); the tests
    check this.

    Parameters
    ----------
    run, chain
        As in ``sample_message``.
    shapes
        Point variable name -> shape, in the order the point map is to have.
    """

    def __init__(self, run: str, chain: int, shapes: dict):
        self.shapes = {name: tuple(int(n) for n in shape) for name, shape in shapes.items()}
        self.topic = topic(run, chain)
        self.stats_of = {cast: [k for k, c in STAT_FIELDS.items() if c is cast]
                         for cast in (float, int, bool)}
        # Key order as in sample_message; slots of each kind are filled in packing order.
        skeleton = {"type": SAMPLE, "run": run, "chain": int(chain), "i": _INT, "seq": _INT,
                    "warmup": _BOOL,
                    "point": {name: _nested(shape) for name, shape in self.shapes.items()},
                    "stats": {k: _SLOT_OF[cast] for k, cast in STAT_FIELDS.items()}}
        markers = {_FLOAT: [], _INT: [], _BOOL: []}
        template = bytearray()
        _pack_template(skeleton, msgpack.Packer(use_bin_type=True), template, markers)
        self.template = np.frombuffer(bytes(template), dtype=np.uint8)
        self.float_columns = _payload_columns(markers[_FLOAT], _FLOAT.width)
        self.int_columns = _payload_columns(markers[_INT], _INT.width)
        self.bool_columns = np.asarray(markers[_BOOL], dtype=np.intp)

    def encode(self, i, seq, warmup, point: dict, stats: dict) -> np.ndarray:
        """Bodies, uint8 (n, body length), of n draws; each row is one message body.

        ``i``, ``seq``, ``warmup`` are (n,) arrays; ``point`` maps each name of ``shapes``
        to an (n, *shape) array; ``stats`` maps each of ``STAT_FIELDS`` to an (n,) array
        (floats are fine for the integer and boolean ones, as in ``sample_message``).
        """
        n = len(i)
        values = [np.reshape(point[name], (n, math.prod(shape))) for name, shape in self.shapes.items()]
        floats = np.column_stack(values + [stats[k] for k in self.stats_of[float]])
        # Cast each column before stacking: i or seq past 2**53 would not survive a float.
        ints = np.column_stack([np.asarray(v, dtype=np.int64)
                                for v in [i, seq] + [stats[k] for k in self.stats_of[int]]])
        flags = np.column_stack([np.asarray(v, dtype=bool)
                                 for v in [warmup] + [stats[k] for k in self.stats_of[bool]]])
        rows = np.empty((n, self.template.size), dtype=np.uint8)
        rows[:] = self.template
        rows[:, self.float_columns] = floats.astype(">f8").view(np.uint8)
        rows[:, self.int_columns] = ints.astype(">i8").view(np.uint8)
        rows[:, self.bool_columns] = _BOOL.marker + flags
        return rows


def done_message(run, chain, seq, num_draws, status="ok", reason=None):
    return {"type": DONE, "run": run, "chain": int(chain), "seq": int(seq),
            "num_draws": int(num_draws), "status": status, "reason": reason}


def encode(message: dict) -> list[bytes]:
    """[topic, body] frames of a message."""
    return [topic(message["run"], message["chain"]), msgpack.packb(message, use_bin_type=True)]


def decode(frames, max_bytes: int = MAX_MESSAGE_BYTES) -> dict:
    """Schema-checked message from received frames; raises ``ProtocolError``."""
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames (topic, body), got {len(frames)}")
    head, body = bytes(frames[0]), bytes(frames[1])
    if len(body) > max_bytes:
        raise ProtocolError(f"message of {len(body)} bytes exceeds {max_bytes}")
    try:
        msg = unpack_bounded(body, max_str_len=len(body), max_bin_len=0)
    except Exception as err:  # noqa: BLE001 -- msgpack raises several unrelated types
        raise ProtocolError(f"body is not valid msgpack: {err}") from None
    check(msg)
    if head != topic(msg["run"], msg["chain"]):
        raise ProtocolError(f"topic {head!r} does not match run {msg['run']!r} chain {msg['chain']}")
    return msg


def _need(cond, what):
    if not cond:
        raise ProtocolError(what)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(v, depth=0):
    if isinstance(v, float) or _is_int(v):
        return
    _need(isinstance(v, list) and depth < MAX_NESTING, "point values must be numbers or nested lists")
    for item in v:
        _check_value(item, depth + 1)


def check(msg):
    """Raise ``ProtocolError`` unless ``msg`` is a well-formed message body."""
    _need(isinstance(msg, dict), "message body must be a map")
    kind = msg.get("type")
    _need(kind in (SAMPLE, DONE), f"unknown message type {kind!r}")
    _need(isinstance(msg.get("run"), str) and msg["run"].isidentifier(), "run must be an identifier")
    for key in ("chain", "seq"):
        _need(_is_int(msg.get(key)) and msg[key] >= 0, f"{key} must be a non-negative integer")
    if kind == DONE:
        _need(set(msg) == {"type", "run", "chain", "seq", "num_draws", "status", "reason"},
              "exmc_done has fields type, run, chain, seq, num_draws, status, reason")
        _need(_is_int(msg["num_draws"]) and msg["num_draws"] >= 0, "num_draws must be >= 0")
        _need(msg["status"] in ("ok", "failed"), "status must be ok or failed")
        _need(msg["reason"] is None or isinstance(msg["reason"], str), "reason must be a string")
        return
    _need(set(msg) == {"type", "run", "chain", "i", "seq", "warmup", "point", "stats"},
          "exmc_sample has fields type, run, chain, i, seq, warmup, point, stats")
    _need(_is_int(msg["i"]) and msg["i"] >= 0, "i must be a non-negative integer")
    _need(isinstance(msg["warmup"], bool), "warmup must be a boolean")
    point = msg["point"]
    _need(isinstance(point, dict) and all(isinstance(k, str) for k in point), "point must map names to values")
    for v in point.values():
        _check_value(v)
    stats = msg["stats"]
    _need(isinstance(stats, dict) and set(stats) == set(STAT_FIELDS),
          f"stats must have exactly {sorted(STAT_FIELDS)}")
    for k, kind_ in STAT_FIELDS.items():
        v = stats[k]
        ok = isinstance(v, bool) if kind_ is bool else (_is_int(v) if kind_ is int
                                                         else isinstance(v, float) or _is_int(v))
        _need(ok, f"stat {k} must be {kind_.__name__}")
        if kind_ is float and not isinstance(v, bool):
            _need(not math.isnan(v) or k in ("lp", "energy", "acceptance_rate"), f"stat {k} is NaN")
