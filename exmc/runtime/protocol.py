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


def topic(run: str, chain: int | None = None) -> bytes:
    """Topic frame of a chain's messages, or the prefix matching every chain of ``run``."""
    return f"exmc.{run}.".encode() if chain is None else f"exmc.{run}.{int(chain)}.".encode()


def sample_message(run, chain, i, seq, warmup, point, stats):
    """The body of one draw; ``point`` maps names to numbers or arrays."""
    return {"type": SAMPLE, "run": run, "chain": int(chain), "i": int(i), "seq": int(seq),
            "warmup": bool(warmup),
            "point": {k: (np.asarray(v).tolist() if np.ndim(v) else float(v)) for k, v in point.items()},
            "stats": {k: cast(stats[k]) for k, cast in STAT_FIELDS.items()}}


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
        msg = msgpack.unpackb(body, raw=False, strict_map_key=True, max_bin_len=0, max_ext_len=0)
    except Exception as err:  # msgpack raises several unrelated types for bad input
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
