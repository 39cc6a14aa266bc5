"""Streaming: every draw is a protocol message; a plain pyzmq + msgpack subscriber reads them all."""
import json
import socket
import subprocess
import sys
import textwrap

import msgpack
import numpy as np
import pytest

import exmc
from exmc import Builder, HalfNormal, Normal
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
