"""The coordinator <-> exmc-node protocol: single-frame msgpack maps, checked on arrival.

The coordinator connects a DEALER socket to the node's ROUTER socket; both
sides send msgpack maps with a ``type``.  Nothing is unpickled: a message is
decoded with msgpack's size limits and then checked field by field, and any
message that does not follow this schema raises `WireError` naming the
problem, which the node sends back as an ``error`` reply.

Coordinator -> node::

    {"type": "hello"}                                  -> welcome
    {"type": "submit", "job": id, "model": bin (IR msgpack), "options": {...},
     "chains": [{"chain": int, "entropy": str, "spawn_key": [int], "state": map | nil}]}
                                                       -> accepted | error
    {"type": "ping", "jobs": [id]}                     -> pong (keeps those jobs alive)
    {"type": "cancel", "job": id}                      -> cancelled

Node -> coordinator::

    {"type": "welcome", "version": 2, "node": str, "workers": int,
     "max_message_bytes": int}                  # the largest request it accepts
    {"type": "accepted", "job": id}
    {"type": "pong", "gone": [id]}              # the pinged jobs this node no longer holds
    {"type": "cancelled", "job": id}
    {"type": "block", "job": id, "data": bin}   # a worker-link message (exmc/runtime/worker.py)
    {"type": "chain_failed", "job": id, "chain": int, "reason": str}
    {"type": "error", "job": id | nil, "message": str}

A chain's ``state`` (``exmc.samplers.chain_state.pack_state``) makes the node resume
it from there: how a chain moves off a failed node, and how ``warmup="once"``
hands its tuning to the other chains.
"""
from __future__ import annotations

import math

import msgpack

from exmc.runtime.protocol import unpack_bounded

VERSION = 2  # 2: chain states carry their scalars by name
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_CHAINS_PER_JOB = 4096
MAX_JOBS_PER_PING = 4096
MAX_STRING = 65536  # names, ids, decimal seeds, messages: all far shorter
# List and map items decoded: one per 32 bytes of message, and 100,000 more (a submit of
# 4096 chains, each a map with a short spawn key, needs about 60,000; a float in an init
# list takes 9 bytes, so init values are limited to about 130,000 numbers).
MIN_ITEMS, BYTES_PER_ITEM = 100_000, 32
MAX_LIST = 2**20  # items in one list or map
# sample options a job must carry, with their types
OPTIONS = {"num_warmup": int, "total": int, "max_tree_depth": int, "target_accept": float,
           "gradient_metric": bool, "dense": bool, "init": (dict, type(None))}


class WireError(ValueError):
    """A message that does not follow the node protocol."""


def pack(message: dict) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def unpack(payload: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> dict:
    """Decode one message with bounded sizes; checks only that it is a map with a type."""
    if len(payload) > max_bytes:
        raise WireError(f"message of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        # Bounded: strings, binaries, the items of all lists and maps together (so the
        # objects built stay within a small multiple of the payload's size), nesting by
        # msgpack's parser stack (StackError); no ext types.
        msg = unpack_bounded(payload, max_str_len=MAX_STRING, max_bin_len=max_bytes,
                             min_items=MIN_ITEMS, bytes_per_item=BYTES_PER_ITEM,
                             max_container_len=MAX_LIST)
    except Exception as err:  # noqa: BLE001 -- msgpack raises several unrelated types
        raise WireError(f"not a msgpack message: {type(err).__name__}: {err}") from None
    _need(isinstance(msg, dict), "a message must be a msgpack map")
    _need(isinstance(msg.get("type"), str), "a message needs a string field 'type'")
    return msg


def _need(cond, problem):
    if not cond:
        raise WireError(problem)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _job_id(msg):
    job = msg.get("job")
    _need(isinstance(job, str) and job.isidentifier() and len(job) <= 64,
          "'job' must be an identifier of at most 64 characters")
    return job


def _is_job_list(jobs):
    return (isinstance(jobs, list) and len(jobs) <= MAX_JOBS_PER_PING
            and all(isinstance(j, str) and len(j) <= 64 for j in jobs))


def check_request(msg: dict) -> dict:
    """Raise `WireError` unless ``msg`` is a well-formed coordinator request."""
    kind = msg["type"]
    fields = {"hello": {"type"}, "ping": {"type", "jobs"}, "cancel": {"type", "job"},
              "submit": {"type", "job", "model", "options", "chains"}}
    _need(kind in fields, f"unknown request type {kind!r}; expected one of {sorted(fields)}")
    _need(set(msg) == fields[kind], f"{kind} has fields {sorted(fields[kind])}, got {sorted(msg)}")
    if kind == "ping":
        _need(_is_job_list(msg["jobs"]), "ping's 'jobs' must be a list of job ids")
    if kind in ("cancel", "submit"):
        _job_id(msg)
    if kind == "submit":
        _need(isinstance(msg["model"], bytes), "submit's 'model' must be binary (IR msgpack)")
        check_options(msg["options"])
        chains = msg["chains"]
        _need(isinstance(chains, list) and 0 < len(chains) <= MAX_CHAINS_PER_JOB,
              f"submit's 'chains' must be a list of 1 to {MAX_CHAINS_PER_JOB} chains")
        seen = set()
        for spec in chains:
            _need(isinstance(spec, dict) and set(spec) == {"chain", "entropy", "spawn_key", "state"},
                  "each chain is a map with chain, entropy, spawn_key, state")
            _need(_is_int(spec["chain"]) and 0 <= spec["chain"] < MAX_CHAINS_PER_JOB,
                  f"chain ids must be integers from 0 to {MAX_CHAINS_PER_JOB - 1}")
            _need(spec["chain"] not in seen, f"chain {spec['chain']} is listed twice")
            seen.add(spec["chain"])
            _need(isinstance(spec["entropy"], str) and spec["entropy"].isdigit()
                  and len(spec["entropy"]) <= 200, "a chain's 'entropy' must be a decimal string")
            _need(isinstance(spec["spawn_key"], list) and len(spec["spawn_key"]) <= 16
                  and all(_is_int(k) and 0 <= k < 2**32 for k in spec["spawn_key"]),
                  "a chain's 'spawn_key' must be a short list of 32-bit unsigned integers")
            _need(spec["state"] is None or isinstance(spec["state"], dict),
                  "a chain's 'state' must be a packed chain state or nil")
    return msg


def check_options(options):
    _need(isinstance(options, dict) and set(options) == set(OPTIONS),
          f"submit's 'options' must have exactly {sorted(OPTIONS)}")
    for key, kind in OPTIONS.items():
        value = options[key]
        if kind is int:
            _need(_is_int(value), f"option {key} must be an integer, got {value!r}")
        elif kind is float:
            _need((isinstance(value, float) or _is_int(value)) and math.isfinite(value),
                  f"option {key} must be a finite number, got {value!r}")
        else:
            _need(isinstance(value, kind), f"option {key} has the wrong type: {value!r}")
    _need(0 <= options["num_warmup"] <= options["total"] <= 10**8,
          "options need 0 <= num_warmup <= total <= 1e8")
    _need(1 <= options["max_tree_depth"] <= 30, "max_tree_depth must be from 1 to 30")
    _need(0 < options["target_accept"] < 1, "target_accept must lie in (0, 1)")
    _need(not (options["dense"] and options["gradient_metric"]),
          "gradient adaptation uses a diagonal metric: dense must be false")


def check_reply(msg: dict) -> dict:
    """Raise `WireError` unless ``msg`` is a well-formed node message."""
    kind = msg["type"]
    fields = {"welcome": {"type", "version", "node", "workers", "max_message_bytes"},
              "pong": {"type", "gone"},
              "accepted": {"type", "job"}, "cancelled": {"type", "job"},
              "block": {"type", "job", "data"}, "chain_failed": {"type", "job", "chain", "reason"},
              "error": {"type", "job", "message"}}
    _need(kind in fields, f"unknown node message type {kind!r}")
    _need(set(msg) == fields[kind], f"{kind} has fields {sorted(fields[kind])}, got {sorted(msg)}")
    if kind in ("accepted", "cancelled", "block", "chain_failed"):
        _job_id(msg)
    if kind == "pong":
        _need(_is_job_list(msg["gone"]), "pong's 'gone' must be a list of job ids")
    if kind == "error":
        _need(msg["job"] is None or isinstance(msg["job"], str), "error's job must be an id or nil")
        _need(isinstance(msg["message"], str), "error's message must be a string")
    if kind == "block":
        _need(isinstance(msg["data"], bytes), "block's data must be binary")
    if kind == "chain_failed":
        _need(_is_int(msg["chain"]) and 0 <= msg["chain"] < MAX_CHAINS_PER_JOB
              and isinstance(msg["reason"], str),
              "chain_failed needs a chain id from 0 to "
              f"{MAX_CHAINS_PER_JOB - 1} and a string reason")
    if kind == "welcome":
        _need(msg["version"] == VERSION, f"node speaks protocol version {msg['version']!r}, "
                                         f"this coordinator {VERSION}")
        _need(_is_int(msg["workers"]) and msg["workers"] >= 1, "welcome's workers must be >= 1")
        _need(isinstance(msg["node"], str), "welcome's node must be a string")
        _need(_is_int(msg["max_message_bytes"]) and msg["max_message_bytes"] > 0,
              "welcome's max_message_bytes must be a positive integer")
    return msg
