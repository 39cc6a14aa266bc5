"""exmc dash without a browser: the folded state and its plot data, banners, the HTTP server's rules, dashboard=."""
import json
import re
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import zmq

import exmc
from exmc import Builder, HalfNormal, Normal
from exmc.runtime import protocol
from exmc.runtime.cli import main
from exmc.runtime.dash import Dashboard, attach
from exmc.runtime.dash.server import parse_selection, token_for
from exmc.runtime.dash.state import DashState

pytestmark = pytest.mark.timeout(120)

STATS = dict(lp=-1.0, energy=1.5, step_size=0.5, acceptance_rate=0.8, tree_depth=3, n_steps=7,
             diverging=False, recovered=False)


def draw(chain, i, point, seq=None, warmup=False, run="r", **stats):
    return protocol.sample_message(run, chain, i, i if seq is None else seq, warmup, point,
                                   {**STATS, **stats})


def feed(state, messages):
    for msg in messages:
        state.receive(protocol.encode(msg))


def variable(snapshot, name):
    return next(v for v in snapshot["variables"] if v["name"] == name)


def strict_json(document):
    """The page parses with JSON.parse, which has no NaN: the snapshot must be strict JSON."""
    return json.loads(json.dumps(document, allow_nan=False))


def test_snapshot_has_the_counts_and_names_the_page_shows():
    state = DashState(clock=lambda: 0.0)
    rng = np.random.default_rng(0)
    for chain in (0, 1):
        feed(state, [draw(chain, i, {"mu": rng.normal(), "theta": rng.normal(size=3).tolist()},
                          warmup=i < 20, diverging=(i in (5, 30) and chain == 1))
                     for i in range(60)])
    snap = strict_json(state.snapshot())
    assert snap["runs"] == ["r"] and snap["messages"] == 120 and snap["missed"] == 0
    c0, c1 = snap["chains"]
    assert (c0["warmup_draws"], c0["draws"], c0["divergences"]) == (20, 40, 0)
    assert (c1["divergences"], c1["warmup_divergences"], c1["phase"]) == (1, 1, "sampling")
    assert [v["name"] for v in snap["variables"]] == ["mu", "theta"]
    assert [r["label"] for r in snap["rows"]] == ["mu", "theta[0]", "theta[1]", "theta[2]"]
    assert all(r["draws"] == 80 for r in snap["rows"])
    mu = variable(snap, "mu")
    assert mu["chains"] == [0, 1] and mu["warmup_end"] == 20
    assert mu["trace"]["x"] == list(range(60))                 # 60 draws: not decimated
    divergent = [(x, y) for x, y in zip(mu["trace"]["x"], mu["trace"]["divergent"]) if y is not None]
    assert [x for x, _ in divergent] == [5, 30]
    assert snap["status"]["banners"] == [] and not snap["status"]["ended"]


def test_trace_is_decimated_with_every_extreme_kept():
    state = DashState(trace_window=5000, max_points=200)
    values = np.random.default_rng(1).normal(size=5000)
    values[1234], values[4321] = 50.0, -60.0
    feed(state, [draw(0, i, {"mu": float(v)}, diverging=(i == 4000)) for i, v in enumerate(values)])
    trace = variable(state.snapshot(), "mu")["trace"]
    x, y = np.array(trace["x"]), np.array(trace["chains"][0], dtype=float)
    assert len(x) <= 200 and np.all(np.diff(x) > 0)
    assert np.nanmax(y) == 50.0 and np.nanmin(y) == -60.0     # min/max buckets keep spikes
    assert x[np.nanargmax(y)] <= 1234 < x[np.nanargmax(y)] + 5000 / 100
    marks = [(xi, yi) for xi, yi in zip(trace["x"], trace["divergent"]) if yi is not None]
    assert len(marks) == 1 and marks[0][1] == values[4000] and marks[0][0] <= 4000


def test_window_keeps_the_recent_draws_only():
    state = DashState(trace_window=100)
    feed(state, [draw(0, i, {"mu": float(i)}) for i in range(1000)])
    mu = variable(state.snapshot(), "mu")
    assert mu["trace"]["x"] == list(range(900, 1000))
    assert mu["trace"]["chains"][0] == [float(i) for i in range(900, 1000)]


def test_histogram_is_a_density_per_chain_on_shared_bins():
    state = DashState(bins=25)
    rng = np.random.default_rng(2)
    for chain, scale in enumerate((1.0, 3.0)):
        feed(state, [draw(chain, i, {"mu": rng.normal(0, scale)}, warmup=i < 50) for i in range(500)])
    hist = variable(state.snapshot(), "mu")["histogram"]
    edges = np.array(hist["edges"])
    assert len(edges) == 26
    for density in hist["chains"]:
        assert len(density) == 26                                # one per edge: a stepped line
        assert np.sum(np.array(density[:-1]) * np.diff(edges)) == pytest.approx(1.0)
    wide, narrow = np.array(hist["chains"][1][:-1]), np.array(hist["chains"][0][:-1])
    assert narrow.max() > 2 * wide.max()                          # the narrow chain is taller


def test_vector_shows_a_chosen_element_and_a_summary_of_all():
    state = DashState(max_trace_elements=64)
    rng = np.random.default_rng(3)
    feed(state, [draw(c, i, {"mu": 0.0, "theta": (np.arange(100) + 0.01 * rng.normal(size=100)).tolist()})
                 for c in (0, 1) for i in range(50)])
    snap = state.snapshot({"r/theta": 42})
    theta = variable(snap, "theta")
    assert (theta["size"], theta["traced"], theta["element"], theta["label"]) == (100, 63, 42, "theta[42]")
    assert np.allclose([v for v in theta["trace"]["chains"][0] if v is not None], 42, atol=0.1)
    mean = np.array(theta["summary"]["mean"])
    assert mean.shape == (63,) and np.allclose(mean, np.arange(63), atol=0.01)
    assert variable(state.snapshot({"r/theta": 10**6}), "theta")["element"] == 62   # clamped
    assert variable(state.snapshot({"r/theta": -3}), "theta")["element"] == 0


def test_missed_messages_raise_a_banner():
    state = DashState()
    feed(state, [draw(0, i, {"mu": 0.0}) for i in (0, 1, 2, 6, 7)])      # 3, 4, 5 lost
    banners = {b["kind"]: b["text"] for b in state.snapshot()["status"]["banners"]}
    assert "missed 3 messages" in banners["missed"]
    assert state.snapshot()["chains"][0]["missed"] == 3


def test_run_ended_banner_after_every_chain_is_done():
    now = [0.0]
    state = DashState(clock=lambda: now[0], grace=1.0)
    feed(state, [draw(c, 0, {"mu": 0.0}) for c in (0, 1)])
    feed(state, [protocol.done_message("r", 0, 1, 1)])
    assert not state.snapshot()["status"]["ended"]
    feed(state, [protocol.done_message("r", 1, 1, 1, "failed", "log density is nan")])
    assert not state.snapshot()["status"]["ended"]              # within the grace period
    now[0] = 2.0
    status = state.snapshot()["status"]
    assert status["ended"] and status["failed"]
    assert "Run ended with failures (chain 1: log density is nan)" in status["banners"][0]["text"]
    counted = DashState(expected_chains=3)
    feed(counted, [draw(c, 0, {"mu": 0.0}) for c in (0, 1)] +
         [protocol.done_message("r", c, 1, 1) for c in (0, 1)])
    assert not counted.snapshot()["status"]["ended"]             # a third chain never spoke


def test_quiet_stream_banners():
    now = [0.0]
    state = DashState(clock=lambda: now[0], quiet=5.0)
    now[0] = 6.0
    absent = {"address": "tcp://127.0.0.1:9", "connected": False, "ever_connected": False}
    banner = state.snapshot(connection=absent)["status"]["banners"][0]
    assert banner["kind"] == "absent" and "Nothing is publishing at tcp://127.0.0.1:9" in banner["text"]
    assert state.snapshot()["status"]["banners"][0]["kind"] == "waiting"    # fed in-process
    feed(state, [draw(0, 0, {"mu": 0.0})])
    now[0] = 20.0
    banner = state.snapshot(connection=absent)["status"]["banners"][0]
    assert banner["kind"] == "gone"


def test_malformed_messages_are_counted_not_drawn():
    state = DashState()
    state.receive([b"exmc.r.0.", b"not msgpack"])
    feed(state, [draw(0, 0, {"mu": 0.0}, warmup=True), draw(0, 1, {"mu": [1.0, 2.0]}, warmup=True)])
    snap = strict_json(state.snapshot())
    assert snap["bad"] == 1 and any(b["kind"] == "bad" for b in snap["status"]["banners"])
    assert len(variable(snap, "mu")["trace"]["x"]) == 1           # the mis-shaped draw is not traced


def test_selection_parameter_is_parsed_defensively():
    assert parse_selection('{"r/theta": 3, "r/x": "7", "r/b": true}') == {"r/theta": 3}
    for text in ("", "[1]", "{", "x" * 5000):
        assert parse_selection(text) == {}


# ------------------------------------------------------------------------- the server
def get(url, host=None, method="GET"):
    request = urllib.request.Request(url, method=method)
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_loopback_by_default_token_elsewhere():
    assert token_for("127.0.0.1", None) is None and token_for("::1", None) is None
    assert token_for("localhost", None) is None
    generated = token_for("0.0.0.0", None)
    assert generated and len(generated) >= 20 and generated != token_for("0.0.0.0", None)
    assert token_for("192.168.1.4", "given") == "given"
    with pytest.raises(ValueError):
        token_for("127.0.0.1", "has space")
    with Dashboard() as board:
        assert board.host == "127.0.0.1" and board.url == f"http://127.0.0.1:{board.port}/"


def test_server_serves_the_page_read_only():
    with Dashboard() as board:
        base = f"http://127.0.0.1:{board.port}"
        status, headers, body = get(base + "/")
        assert status == 200 and b"exmc dashboard" in body
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        status, headers, body = get(base + "/api/state")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["messages"] == 0
        status, _, body = get(base + "/static/uPlot.iife.min.js")
        assert status == 200 and b"uPlot" in body
        for path in ("/static/state.py", "/static/../server.py", "/static/VENDORED.md", "/admin"):
            assert get(base + path)[0] == 404, path
        assert get(base + "/api/state?" + "&".join(f"a{k}=1" for k in range(20)))[0] == 400
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, headers, _ = get(base + "/api/state", method=method)
            assert status == 405 and headers["Allow"] == "GET, HEAD", method
        # DNS rebinding: another site's name resolving to 127.0.0.1 gets nothing.
        assert get(base + "/api/state", host="evil.example:80")[0] == 403
        assert get(base + "/api/state", host=f"localhost:{board.port}")[0] == 200


def test_ipv6_loopback():
    try:
        board = Dashboard(host="::1")
    except OSError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    with board:
        assert board.url == f"http://[::1]:{board.port}/" and board.token is None
        assert get(board.url + "api/state")[0] == 200


def test_a_token_is_required_when_set():
    with Dashboard(token="s3cret-T0ken") as board:
        base = f"http://127.0.0.1:{board.port}"
        assert board.url.endswith("/?token=s3cret-T0ken")
        for path in ("/", "/api/state", "/api/state?token=wrong"):
            status, _, body = get(base + path)
            assert status == 403 and b"token" in body, path
        assert get(board.url)[0] == 200
        assert get(base + "/api/state?token=s3cret-T0ken")[0] == 200
        assert get(base + "/static/dash.js")[0] == 200          # library code, no run data


def free_tcp_address():
    context = zmq.Context.instance()
    socket = context.socket(zmq.PUB)
    socket.bind("tcp://127.0.0.1:0")
    address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    socket.close(linger=0)
    return address


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def test_dashboard_started_after_the_run_ended_says_so():
    address = free_tcp_address()               # nothing publishes there any more
    with Dashboard(address, quiet=0.3) as board:
        banner = wait_until(lambda: [b for b in board.snapshot()["status"]["banners"]
                                     if b["kind"] == "absent"], timeout=10)[0]
        assert f"Nothing is publishing at {address}" in banner["text"]
        assert "has ended" in banner["text"]
        assert board.snapshot()["status"]["connected"] is False


def test_subscribed_dashboard_follows_a_publisher():
    context = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind("tcp://127.0.0.1:0")
    address = publisher.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        with Dashboard(address, expected_chains=1) as board:
            assert publisher.poll(10_000) and publisher.recv() == b"\x01exmc."
            wait_until(lambda: board.connected, timeout=10)
            for i in range(50):
                publisher.send_multipart(protocol.encode(draw(0, i, {"mu": float(i)})))
            publisher.send_multipart(protocol.encode(protocol.done_message("r", 0, 50, 50)))
            snap = wait_until(lambda: (s := board.snapshot())["status"]["ended"] and s)
            assert snap["chains"][0]["draws"] == 50 and snap["status"]["connected"]
    finally:
        publisher.close(linger=0)
        context.term()


def test_attach_modes():
    board = Dashboard()
    try:
        got = []
        same, target = attach(board, None, chains=2)
        assert same is board and target == board.feed and board.state.expected_chains == 2
        _, tee = attach(board, got.append)
        tee(draw(0, 0, {"mu": 1.0}))
        assert len(got) == 1 and board.snapshot()["messages"] == 1
        with pytest.raises(ValueError, match="fixed port"):
            attach(board, "tcp://127.0.0.1:*")
        for bad in ("yes", 1.5, []):
            with pytest.raises(TypeError):
                attach(bad, None)
    finally:
        board.close()


def test_a_bad_address_is_an_error_that_names_it():
    with pytest.raises(ValueError, match="cannot subscribe to 'tcp://nowhere'"):
        Dashboard("tcp://nowhere")
    assert main(["dash", "nonsense", "--port", "0"]) == 2


def test_cli_rejects_bad_arguments():
    for argv in (["dash"], ["dash", "tcp://x", "--refresh", "0"], ["dash", "tcp://x", "--run", "a-b"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2


# ------------------------------------------------------------------------- dashboard=
Y = np.random.default_rng(5).normal(1.0, 2.0, size=50)


def small_model():
    return (Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(5))
            .rv("offsets", Normal(0, 1, shape=3)).obs("y", Normal("mu", "sigma"), Y))


def test_sample_with_dashboard_feeds_it_every_draw(capsys):
    board = Dashboard()
    try:
        idata = exmc.sample(small_model(), chains=2, num_samples=150, num_warmup=100, seed=1,
                            progressbar=False, dashboard=board)
        assert f"exmc dashboard: {board.url}" in capsys.readouterr().err
        snap = board.snapshot()
        assert snap["status"]["ended"] and snap["missed"] == 0
        assert [(c["warmup_draws"], c["draws"]) for c in snap["chains"]] == [(100, 150)] * 2
        assert [c["divergences"] for c in snap["chains"]] == \
            idata.sample_stats["diverging"].sum("draw").values.tolist()
        assert [v["name"] for v in snap["variables"]] == list(idata.posterior.data_vars)
        mu = next(r for r in snap["rows"] if r["label"] == "mu")
        assert mu["mean"] == pytest.approx(float(idata.posterior["mu"].mean()), rel=1e-9)
    finally:
        board.close()


def test_sample_in_workers_with_dashboard_and_a_stream_address():
    address = free_tcp_address()
    board = Dashboard()
    received = []
    try:
        # a plain subscriber on the same stream gets every message too
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"exmc.")
        sub.connect(address)

        def listen():
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and len(received) < 2 * 181:
                if sub.poll(100):
                    received.append(sub.recv_multipart())

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        exmc.sample(small_model(), chains=2, num_samples=100, num_warmup=80, seed=2,
                    progressbar=False, cores=2, stream_to=address, dashboard=board)
        thread.join(100)
        snap = wait_until(lambda: (s := board.snapshot())["status"]["ended"] and s, timeout=30)
        assert [(c["warmup_draws"], c["draws"]) for c in snap["chains"]] == [(80, 100)] * 2
        assert snap["status"]["address"] == address and snap["missed"] == 0
        assert len(received) == 2 * 181
    finally:
        board.close()
        sub.close(linger=0)
        context.term()


def test_sample_in_the_background_with_dashboard():
    board = Dashboard()
    try:
        handle = exmc.sample(small_model(), chains=2, num_samples=60, num_warmup=40, seed=3,
                             progressbar=False, blocking=False, dashboard=board)
        handle.wait(timeout=100)
        snap = board.snapshot()
        assert snap["status"]["ended"]
        assert [(c["warmup_draws"], c["draws"]) for c in snap["chains"]] == [(40, 60)] * 2
    finally:
        board.close()


@pytest.mark.timeout(240)
def test_distributed_run_with_dashboard():
    from exmc.distributed import sample_chains

    board = Dashboard()
    try:
        idata = sample_chains(small_model(), nodes=["local"], chains=2, num_samples=60,
                              num_warmup=40, seed=4, progressbar=False, dashboard=board)
        snap = board.snapshot()
        assert snap["status"]["ended"] and snap["missed"] == 0
        assert snap["runs"] == [idata.attrs["run_id"]]
        assert [(c["warmup_draws"], c["draws"]) for c in snap["chains"]] == [(40, 60)] * 2
    finally:
        board.close()


def test_cli_serves_until_the_run_ended_plus_exit_after(capsys):
    context = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 0)
    publisher.bind("tcp://127.0.0.1:0")
    address = publisher.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish():
        if publisher.poll(30_000):
            publisher.recv()
            for i in range(20):
                publisher.send_multipart(protocol.encode(draw(0, i, {"mu": float(i)})))
            publisher.send_multipart(protocol.encode(protocol.done_message("r", 0, 20, 20)))

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        start = time.monotonic()
        assert main(["dash", address, "--port", "0", "--chains", "1", "--exit-after", "0.2"]) == 0
        assert time.monotonic() - start < 60
    finally:
        thread.join(30)
        publisher.close(linger=0)
        context.term()
    assert re.search(r"exmc dash: http://127\.0\.0\.1:\d+/ ", capsys.readouterr().out)
    assert main(["dash", address, "--port", "0", "--token", "not a token"]) == 2
