"""Streaming: every draw is a protocol message; a plain pyzmq + msgpack subscriber reads them all."""
import json
import socket
import subprocess
import sys
import textwrap

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exmc
from exmc import Builder, HalfNormal, Normal, ref
from exmc.runtime import protocol

Y = np.random.default_rng(1).normal(3.0, 1.0, size=20)


def model():
    return (Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(2))
            .rv("v", Normal(0, 1, shape=2))
            .obs("y", Normal("mu", "sigma"), Y))


def test_callback_receives_every_draw_in_order():
    messages = []
    idata = exmc.sample_stream(model(), messages.append, chains=2, num_samples=60, num_warmup=40,
                               seed=5, progressbar=False, run_id="test1")
    for chain in (0, 1):
        mine = [m for m in messages if m["chain"] == chain]
        draws, done = mine[:-1], mine[-1]
        assert [m["seq"] for m in mine] == list(range(101))
        assert [m["i"] for m in draws] == list(range(100))
        assert [m["warmup"] for m in draws] == [True] * 40 + [False] * 60
        assert done["type"] == "exmc_done" and done["num_draws"] == 100 and done["status"] == "ok"
        for m in mine:
            protocol.check(m)
        # The stream carries exactly the trace's values.
        streamed = np.array([m["point"]["v"] for m in draws[40:]])
        np.testing.assert_array_equal(streamed, idata.posterior["v"].values[chain])
        assert [m["stats"]["diverging"] for m in draws[40:]] == \
            idata.sample_stats["diverging"].values[chain].tolist()
    assert all(m["run"] == "test1" for m in messages)
    assert idata.attrs["run_id"] == "test1"


def test_streaming_leaves_the_draws_unchanged():
    a = exmc.sample(model(), chains=1, num_samples=50, num_warmup=50, seed=9, progressbar=False)
    b = exmc.sample_stream(model(), lambda m: None, chains=1, num_samples=50, num_warmup=50, seed=9,
                           progressbar=False)
    np.testing.assert_array_equal(a.posterior["mu"], b.posterior["mu"])


def test_a_failing_viewer_does_not_lose_the_trace():
    def broken(message):
        raise OSError("viewer went away")

    with pytest.warns(RuntimeWarning, match="streaming failed: .*viewer went away"):
        idata = exmc.sample_stream(model(), broken, chains=1, num_samples=20, num_warmup=20,
                                   progressbar=False)
    assert idata.posterior.sizes["draw"] == 20


def test_bad_targets():
    with pytest.raises(TypeError, match="ZeroMQ address or a callable"):
        exmc.sample_stream(model(), 42, chains=1, num_samples=5, num_warmup=5, progressbar=False)
    with pytest.raises(ValueError, match="run_id must be an identifier"):
        exmc.sample_stream(model(), print, run_id="not ok", chains=1, num_samples=5,
                           num_warmup=5, progressbar=False)


SUBSCRIBER = textwrap.dedent("""
    # A subscriber in plain pyzmq + msgpack: no exmc import, as a client in any language would be.
    import json, sys, time
    import msgpack, zmq
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(sys.argv[1])
    sub.setsockopt(zmq.SUBSCRIBE, b"exmc.")
    print("ready", flush=True)
    seen, done, deadline = {}, set(), time.monotonic() + 60
    while len(done) < int(sys.argv[2]) and time.monotonic() < deadline:
        if not sub.poll(1000):
            continue
        topic, body = sub.recv_multipart()
        msg = msgpack.unpackb(body)
        assert topic == ("exmc.%s.%d." % (msg["run"], msg["chain"])).encode()
        seen.setdefault(msg["chain"], []).append(msg["seq"])
        if msg["type"] == "exmc_done":
            done.add(msg["chain"])
    sub.close()
    print(json.dumps({str(k): v for k, v in seen.items()}))
""")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_plain_zmq_subscriber_gets_every_message(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    script = tmp_path / "subscriber.py"
    script.write_text(SUBSCRIBER)
    sub = subprocess.Popen([sys.executable, str(script), address, "2"], stdout=subprocess.PIPE,
                           text=True)
    try:
        assert sub.stdout.readline().strip() == "ready"
        exmc.sample_stream(model(), address, chains=2, num_samples=150, num_warmup=50, seed=2,
                           progressbar=False)
        out, _ = sub.communicate(timeout=60)
    finally:
        sub.kill()
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen == {"0": list(range(201)), "1": list(range(201))}  # nothing lost, no gaps


def test_protocol_rejects_malformed_frames():
    good = protocol.encode(protocol.done_message("r1", 0, 3, 10))
    assert protocol.decode(good)["num_draws"] == 10
    bad = [
        [b"x"],
        [good[0], b"\xc1"],
        [b"exmc.r2.0.", good[1]],
        [good[0], msgpack.packb({"type": "exmc_done", "run": "r1", "chain": 0})],
        [good[0], msgpack.packb({"type": "exec", "run": "r1", "chain": 0, "seq": 0})],
    ]
    for frames in bad:
        with pytest.raises(protocol.ProtocolError):
            protocol.decode(frames)
    msg = protocol.sample_message("r1", 1, 0, 0, True, {"a": 1.0}, dict.fromkeys(protocol.STAT_FIELDS, 0))
    msg["stats"]["tree_depth"] = "deep"
    with pytest.raises(protocol.ProtocolError, match="tree_depth"):
        protocol.check(msg)


def reference_body(run, chain, i, seq, warmup, point, stats):
    """The body the per-draw definition (sample_message + encode) gives, unpacked."""
    frames = protocol.encode(protocol.sample_message(run, chain, i, seq, warmup, point, stats))
    return msgpack.unpackb(frames[1])


def same(a, b):
    """Equal with the same types and key order, NaN equal to NaN (repr shows all three)."""
    return repr(a) == repr(b)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
shapes = st.lists(st.integers(0, 3), max_size=3).map(tuple)


@settings(max_examples=150, deadline=None)
@given(data=st.data(),
       named_shapes=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), shapes,
                                    max_size=4),
       n=st.integers(1, 4), chain=st.integers(0, 2**31))
def test_block_encoder_matches_the_per_draw_definition(data, named_shapes, n, chain):
    encoder = protocol.SampleEncoder("r1", chain, named_shapes)
    big = st.integers(0, 2**63 - 1)
    i = np.array(data.draw(st.lists(big, min_size=n, max_size=n)), dtype=np.int64)
    seq = np.array(data.draw(st.lists(big, min_size=n, max_size=n)), dtype=np.int64)
    warmup = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    point = {name: np.array(data.draw(st.lists(finite_or_not, min_size=n * int(np.prod(shape)),
                                               max_size=n * int(np.prod(shape))))).reshape((n, *shape))
             for name, shape in named_shapes.items()}
    # Stats arrive as the sampler's float64 columns, flags and counts included.
    stat_values = {k: np.array(data.draw(st.lists(
        finite_or_not if cast is float else st.integers(0, 2**40 if cast is int else 1),
        min_size=n, max_size=n)), dtype=np.float64) for k, cast in protocol.STAT_FIELDS.items()}
    stat_values["step_size"] = np.abs(np.nan_to_num(stat_values["step_size"]))  # never NaN
    rows = encoder.encode(i, seq, warmup, point, stat_values)
    assert rows.shape[0] == n
    for k in range(n):
        body = rows[k].tobytes()
        expected = reference_body("r1", chain, i[k], seq[k], warmup[k],
                                  {name: values[k] for name, values in point.items()},
                                  {name: values[k] for name, values in stat_values.items()})
        assert same(msgpack.unpackb(body), expected)
        assert same(protocol.decode([encoder.topic, body]), expected)


def test_block_encoder_edge_values():
    encoder = protocol.SampleEncoder("run_2", 7, {"s": (), "v": (3,), "m": (2, 2), "e": (0,)})
    point = {"s": np.array([np.nan, -0.0]), "v": np.array([[np.inf, -np.inf, 1e308]] * 2),
             "m": np.arange(8.0).reshape(2, 2, 2), "e": np.zeros((2, 0))}
    stats = dict.fromkeys(protocol.STAT_FIELDS, np.zeros(2))
    stats.update(lp=np.array([np.nan, -1.5]), diverging=np.array([1.0, 0.0]),
                 recovered=np.array([0.0, 1.0]), tree_depth=np.array([10.0, 0.0]))
    rows = encoder.encode(np.array([0, 2**53 + 1]), np.array([2**63 - 1, 5]), np.array([True, False]),
                          point, stats)
    first, second = (msgpack.unpackb(row.tobytes()) for row in rows)
    assert first["i"] == 0 and second["i"] == 2**53 + 1 and first["seq"] == 2**63 - 1
    assert first["warmup"] is True and second["warmup"] is False
    assert first["stats"]["diverging"] is True and second["stats"]["recovered"] is True
    assert np.isnan(first["stats"]["lp"]) and first["stats"]["tree_depth"] == 10
    assert np.isnan(first["point"]["s"]) and repr(second["point"]["s"]) == "-0.0"
    assert first["point"]["v"] == [np.inf, -np.inf, 1e308]
    assert second["point"]["m"] == [[4.0, 5.0], [6.0, 7.0]] and first["point"]["e"] == []
    assert rows.shape == (2, len(rows[0].tobytes()))


def test_streamed_messages_are_the_per_draw_definition():
    """Through the real publisher: matrix-shaped and deterministic values, every kept draw."""
    shaped = (Builder().rv("mu", Normal(0, 1)).rv("m", Normal(0, 1, shape=(2, 3)))
              .det("shifted", ref("mu") + ref("m")))
    messages = []
    idata = exmc.sample_stream(shaped, messages.append, chains=1, num_samples=30, num_warmup=20,
                               seed=3, progressbar=False, run_id="defn")
    draws = [m for m in messages if m["type"] == protocol.SAMPLE]
    assert [m["i"] for m in draws] == list(range(50))
    sample_stats = idata.sample_stats
    for k, msg in enumerate(draws[20:]):
        point = {name: idata.posterior[name].values[0, k] for name in ("mu", "m", "shifted")}
        stats = {name: sample_stats[name].values[0, k] for name in protocol.STAT_FIELDS}
        assert same(msg, reference_body("defn", 0, 20 + k, 20 + k, False, point, stats))


# ---- the tail of a stream, and several early subscribers ---------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_a_lagging_subscriber_learns_how_many_messages_it_missed():
    """It reads nothing until sampling has ended: messages past the high-water mark are
    dropped for it, but each chain's exmc_done still reaches it and its seq tells the count."""
    import time

    import zmq
    address = f"tcp://127.0.0.1:{_free_port()}"
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"exmc.")
    sub.connect(address)
    total = 150_000  # more messages than the sink's 100,000 high-water mark
    handle = exmc.sample(model(), stream_to=address, chains=1, num_samples=total - 100,
                         num_warmup=100, seed=1, progressbar=False, blocking=False)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until every draw is made, reading nothing
            with handle._live.lock:
                made = handle._live.chains.get(0, (None, None, 0))[2]
            if made == total:
                break
            time.sleep(0.2)
        received, done = 0, None
        deadline = time.monotonic() + 60
        while done is None and time.monotonic() < deadline:
            if sub.poll(1000):  # then read as fast as it can: the sink drains for 5 s
                msg = msgpack.unpackb(sub.recv_multipart()[1])
                received += 1
                done = msg if msg["type"] == "exmc_done" else None
    finally:
        handle.wait(120)
        sub.close()
    assert done is not None, f"no exmc_done after {received} messages"
    assert done["num_draws"] == total and done["seq"] == total
    missed = done["seq"] + 1 - received
    assert missed > 0  # the subscriber knows it missed these


@pytest.mark.timeout(120)
def test_two_early_subscribers_both_see_the_first_draw():
    import threading

    import zmq
    address = f"tcp://127.0.0.1:{_free_port()}"
    firsts = {}

    def subscriber(name, delay):
        import time
        time.sleep(delay)
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"exmc.")
        sub.connect(address)
        if sub.poll(30_000):
            firsts[name] = protocol.decode(sub.recv_multipart())
        sub.close()

    threads = [threading.Thread(target=subscriber, args=(name, delay))
               for name, delay in (("a", 0.0), ("b", 0.1))]
    for t in threads:
        t.start()
    exmc.sample(model(), stream_to=address, chains=1, num_samples=50, num_warmup=50, seed=1,
                progressbar=False)
    for t in threads:
        t.join(40)
    assert {name: m["seq"] for name, m in firsts.items()} == {"a": 0, "b": 0}
