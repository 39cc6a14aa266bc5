"""The node protocol's schema checks: every bad message raises WireError naming the problem.

Nothing here talks to a node: ``wire.unpack`` then ``check_request``/``check_reply`` are
what the node and the coordinator run on every message they receive, so arbitrary bytes
and arbitrary msgpack structures must end in a checked message or a `WireError`, never
in any other exception.
"""
import copy

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exmc.distributed import wire

OPTIONS = {"num_warmup": 10, "total": 20, "max_tree_depth": 5, "target_accept": 0.8,
           "gradient_metric": False, "dense": False, "init": None}
SUBMIT = {"type": "submit", "job": "run_1", "model": b"IR bytes", "options": OPTIONS,
          "chains": [{"chain": 0, "entropy": "1234", "spawn_key": [0], "state": None},
                     {"chain": 1, "entropy": "1234", "spawn_key": [1], "state": None}]}
REQUESTS = [{"type": "hello"}, {"type": "ping", "jobs": ["run_1"]},
            {"type": "cancel", "job": "run_1"}, SUBMIT]
REPLIES = [{"type": "welcome", "version": wire.VERSION, "node": "n1", "workers": 2,
            "max_message_bytes": 2**20},
           {"type": "pong", "gone": []}, {"type": "pong", "gone": ["run_1"]},
           {"type": "accepted", "job": "run_1"},
           {"type": "cancelled", "job": "run_1"}, {"type": "block", "job": "run_1", "data": b"x"},
           {"type": "chain_failed", "job": "run_1", "chain": 0, "reason": "crashed"},
           {"type": "error", "job": None, "message": "bad"}]


def received(message):
    """What a node does with a request: pack, unpack with the limits, check."""
    return wire.check_request(wire.unpack(wire.pack(message)))


DELETE = object()


def edited(message, path, value):
    """A deep copy of ``message`` with the item at ``path`` set to ``value`` (or deleted)."""
    out = copy.deepcopy(message)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


@pytest.mark.parametrize("message", REQUESTS, ids=lambda m: m["type"])
def test_valid_requests_pass(message):
    assert received(message) == message


@pytest.mark.parametrize("message", REPLIES, ids=lambda m: m["type"])
def test_valid_replies_pass(message):
    assert wire.check_reply(wire.unpack(wire.pack(message))) == message


@pytest.mark.parametrize("payload, problem", [
    (b"", "not a msgpack message"),
    (b"\xc1garbage", "not a msgpack message"),
    (wire.pack({"type": "hello"})[:-2], "not a msgpack message"),            # truncated
    (wire.pack({"type": "hello"}) + b"\x00", "not a msgpack message"),       # trailing bytes
    (b"\x91" * 100_000 + b"\xc0", "not a msgpack message"),                  # nested too deep
    (msgpack.packb(msgpack.ExtType(1, b"abc")), "not a msgpack message"),    # ext types refused
    (msgpack.packb({1: "hello"}), "not a msgpack message"),                  # non-string keys
    (b"\xdb\xff\xff\xff\xff", "not a msgpack message"),                      # 4 GiB string claimed
    (b"\xdd\xff\xff\xff\xff", "not a msgpack message"),                      # 4G-item array claimed
    (wire.pack([1, 2]), "msgpack map"),
    (wire.pack({"kind": "hello"}), "'type'"),
    (wire.pack({"type": 7}), "'type'"),
])
def test_unpack_refuses(payload, problem):
    with pytest.raises(wire.WireError, match=problem):
        wire.unpack(payload)


def test_unpack_limits_size():
    payload = wire.pack({"type": "hello", "pad": b"x" * 2000})
    with pytest.raises(wire.WireError, match=f"{len(payload)} bytes exceeds the limit of 1000"):
        wire.unpack(payload, max_bytes=1000)
    assert wire.unpack(payload, max_bytes=len(payload))["type"] == "hello"


@pytest.mark.parametrize("path, value, problem", [
    (("type",), "explode", "unknown request type 'explode'"),
    (("chains",), DELETE, "submit has fields"),
    (("extra",), 1, "submit has fields"),
    (("job",), "not an id", "'job' must be an identifier"),
    (("job",), "j" * 65, "'job' must be an identifier"),
    (("job",), 5, "'job' must be an identifier"),
    (("model",), "text, not binary", "'model' must be binary"),
    (("options",), None, "'options' must have exactly"),
    (("options", "dense"), DELETE, "'options' must have exactly"),
    (("options", "total"), 2.5, "option total must be an integer"),
    (("options", "total"), True, "option total must be an integer"),
    (("options", "target_accept"), float("nan"), "option target_accept must be a finite"),
    (("options", "target_accept"), float("inf"), "option target_accept must be a finite"),
    (("options", "target_accept"), 1.5, "target_accept must lie in"),
    (("options", "num_warmup"), 30, "num_warmup <= total"),
    (("options", "total"), 10**9, "total <= 1e8"),
    (("options", "max_tree_depth"), 0, "max_tree_depth must be from 1 to 30"),
    (("options", "dense"), "yes", "option dense has the wrong type"),
    (("options", "init"), [1.0], "option init has the wrong type"),
    (("options", "gradient_metric"), True, "dense must be false"),  # with dense below
    (("chains",), [], "'chains' must be a list of 1 to"),
    (("chains",), {"0": 1}, "'chains' must be a list of 1 to"),
    (("chains",), [SUBMIT["chains"][0]] * (wire.MAX_CHAINS_PER_JOB + 1), "'chains' must be"),
    (("chains", 0), [], "each chain is a map"),
    (("chains", 0, "state"), DELETE, "each chain is a map"),
    (("chains", 0, "chain"), -1, "chain ids must be integers"),
    (("chains", 0, "chain"), wire.MAX_CHAINS_PER_JOB, "chain ids must be integers"),
    (("chains", 0, "chain"), 1, "chain 1 is listed twice"),
    (("chains", 0, "entropy"), 1234, "'entropy' must be a decimal string"),
    (("chains", 0, "entropy"), "-12", "'entropy' must be a decimal string"),
    (("chains", 0, "entropy"), "9" * 201, "'entropy' must be a decimal string"),
    (("chains", 0, "spawn_key"), [-1], "'spawn_key' must be"),
    (("chains", 0, "spawn_key"), [2**32], "'spawn_key' must be"),
    (("chains", 0, "spawn_key"), [0] * 17, "'spawn_key' must be"),
    (("chains", 0, "spawn_key"), "0", "'spawn_key' must be"),
    (("chains", 0, "state"), [1, 2], "'state' must be a packed chain state or nil"),
])
def test_bad_submit_is_named(path, value, problem):
    message = edited(SUBMIT, path, value)
    if path == ("options", "gradient_metric"):
        message["options"]["dense"] = True
    with pytest.raises(wire.WireError, match=problem):
        received(message)


@pytest.mark.parametrize("message, problem", [
    ({"type": "hello", "job": "x"}, "hello has fields"),
    ({"type": "ping"}, "ping has fields"),
    ({"type": "ping", "jobs": "run_1"}, "'jobs' must be a list"),
    ({"type": "ping", "jobs": [1]}, "'jobs' must be a list"),
    ({"type": "cancel", "job": None}, "'job' must be an identifier"),
])
def test_bad_small_requests_are_named(message, problem):
    with pytest.raises(wire.WireError, match=problem):
        received(message)


@pytest.mark.parametrize("message, problem", [
    ({"type": "hello"}, "unknown node message type 'hello'"),
    ({"type": "pong", "x": 1}, "pong has fields"),
    ({"type": "pong", "gone": "run_1"}, "pong's 'gone' must be a list of job ids"),
    ({"type": "pong", "gone": [1]}, "pong's 'gone' must be a list of job ids"),
    ({"type": "welcome", "version": 99, "node": "n", "workers": 1, "max_message_bytes": 9},
     "protocol version 99"),
    ({"type": "welcome", "version": wire.VERSION, "node": "n", "workers": 0,
      "max_message_bytes": 9}, "workers must be"),
    ({"type": "welcome", "version": wire.VERSION, "node": 3, "workers": 1,
      "max_message_bytes": 9}, "node must be"),
    ({"type": "welcome", "version": wire.VERSION, "node": "n", "workers": 1,
      "max_message_bytes": 0}, "max_message_bytes"),
    ({"type": "accepted", "job": "a b"}, "'job' must be an identifier"),
    ({"type": "block", "job": "j", "data": "text"}, "block's data must be binary"),
    ({"type": "chain_failed", "job": "j", "chain": "0", "reason": "r"}, "chain_failed needs"),
    ({"type": "chain_failed", "job": "j", "chain": -1, "reason": "r"}, "chain_failed needs"),
    ({"type": "error", "job": 3, "message": "m"}, "error's job"),
    ({"type": "error", "job": None, "message": None}, "error's message"),
])
def test_bad_replies_are_named(message, problem):
    with pytest.raises(wire.WireError, match=problem):
        wire.check_reply(wire.unpack(wire.pack(message)))


# ---- hypothesis: garbage in, WireError (or a checked message) out ---------------------------
FIELDS = ["type", "job", "jobs", "model", "options", "chains", "chain", "entropy", "spawn_key",
          "state", "version", "node", "workers", "data", "reason", "message", *OPTIONS]
TYPES = [m["type"] for m in REQUESTS + REPLIES]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
                    st.text(max_size=8), st.binary(max_size=8), st.sampled_from(TYPES + ["run_1"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=4)), inner, max_size=5)),
    max_leaves=20)
messages = st.dictionaries(st.sampled_from(FIELDS), values, max_size=7)
typed = st.builds(lambda t, rest: {**rest, "type": t}, st.sampled_from(TYPES), messages)


def checks_or_wire_error(payload):
    """Run both checks on ``payload``; anything but a WireError propagates and fails the test."""
    for check in (wire.check_request, wire.check_reply):
        try:
            check(wire.unpack(payload))
        except wire.WireError as err:
            assert str(err)  # names a problem


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_bytes_raise_only_wire_error(payload):
    checks_or_wire_error(payload)


@settings(max_examples=300, deadline=None)
@given(st.one_of(values, messages, typed))
def test_random_structures_raise_only_wire_error(message):
    checks_or_wire_error(msgpack.packb(message, use_bin_type=True))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REQUESTS + REPLIES), st.data())
def test_valid_messages_with_one_field_replaced(message, data):
    """One field of a valid message (at any depth) replaced by something random."""
    paths = list(_paths(message))
    path = data.draw(st.sampled_from(paths))
    checks_or_wire_error(msgpack.packb(edited(message, path, data.draw(values)),
                                       use_bin_type=True))


def _paths(obj, prefix=()):
    """Every key path into nested maps and lists."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))
