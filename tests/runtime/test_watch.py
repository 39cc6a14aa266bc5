"""exmc watch: the state folded from messages (counts, gaps, diagnostics, bad input) and the command end to end."""
import io
import os
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq
from rich.console import Console

from exmc.runtime import protocol
from exmc.runtime.cli import main
from exmc.runtime.watch import EXIT_TIMEOUT, WatchState, render

pytestmark = pytest.mark.timeout(60)

STATS = dict(lp=-1.0, energy=1.5, step_size=0.5, acceptance_rate=0.8, tree_depth=3, n_steps=7,
             diverging=False, recovered=False)


def draw(chain, i, seq=None, warmup=False, point=None, run="r", **stats):
    return protocol.sample_message(run, chain, i, i if seq is None else seq, warmup,
                                   point if point is not None else {"mu": 0.0}, {**STATS, **stats})


def feed(state, messages):
    """Send messages through the wire encoding, as the watcher receives them."""
    for msg in messages:
        state.receive(protocol.encode(msg))


def two_chains(rng, means=(0.0, 0.0), num_samples=1000):
    """Warmup-free iid normal draws of mu (scalar) and theta (12 elements) for two chains."""
    messages = []
    for chain, mean in enumerate(means):
        for i in range(num_samples):
            messages.append(draw(chain, i, point={"mu": rng.normal(mean),
                                                  "theta": rng.normal(mean, size=12)}))
    return messages


def rows_by_label(state):
    return {r.label: r for r in state.variable_rows()}


def text_of(state):
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(render(state, "tcp://test"))
    return console.file.getvalue()


def test_counts_phases_and_divergences():
    state = WatchState()
    for chain in (0, 1):
        feed(state, [draw(chain, i, warmup=True, diverging=(i == 2), step_size=0.1 * (i + 1))
                     for i in range(5)])
        feed(state, [draw(chain, i, diverging=(i in (6, 9) and chain == 1), tree_depth=chain + 4)
                     for i in range(5, 15)])
    c0, c1 = state.chain_rows()
    assert (c0.warmup_draws, c0.sampling_draws, c0.warmup_divergences, c0.divergences) == (5, 10, 1, 0)
    assert (c1.warmup_draws, c1.sampling_draws, c1.warmup_divergences, c1.divergences) == (5, 10, 1, 2)
    assert (c0.phase, c0.tree_depth, c1.tree_depth, c0.step_size) == ("sampling", 4, 5, 0.5)
    assert state.messages == 30 and state.missed() == 0 and state.bad == 0
    assert rows_by_label(state)["mu"].draws == 20          # post-warmup draws only, both chains
    assert not state.finished()
    feed(state, [protocol.done_message("r", 0, 15, 15)])
    assert c0.phase == "done" and not state.finished()
    feed(state, [protocol.done_message("r", 1, 15, 15)])
    assert state.finished() and not state.failed()
    assert not state.finished(expected_chains=3)           # a third chain never spoke
    text = text_of(state)
    assert "done" in text and "2 (+1 warmup)" in text


def test_failed_chain_is_reported():
    state = WatchState()
    feed(state, [draw(0, 0), protocol.done_message("r", 0, 1, 1, "failed", "log density is [nan]")])
    assert state.finished() and state.failed()
    assert "failed: log density is [nan]" in text_of(state)   # brackets shown, not read as markup


def test_gaps_and_late_joins_are_counted_as_missed():
    state = WatchState()
    seqs = [0, 1, 2, 4, 5, 6, 10, 11]                      # 3 and 7..9 lost
    feed(state, [draw(0, s) for s in seqs])
    feed(state, [draw(0, 11)])                             # a duplicate is stale, not a draw
    feed(state, [draw(1, s) for s in range(20, 25)])       # joined chain 1 at seq 20
    c0, c1 = state.chain_rows()
    assert (c0.missed, c0.stale, c0.sampling_draws) == (4, 1, len(seqs))
    assert (c1.missed, c1.first_seq) == (20, 20)
    feed(state, [protocol.done_message("r", 0, 14, 14)])  # 12 and 13 lost before the end
    assert c0.missed == 6 and c0.done
    assert state.missed() == 26
    text = text_of(state)
    assert "missed 6" in text and "missed 20" in text and "missed 26" in text


def test_running_mean_and_sd_equal_numpy_over_all_draws_with_bounded_memory():
    rng = np.random.default_rng(1)
    state = WatchState(window=50)
    messages = two_chains(rng, num_samples=200)
    feed(state, messages)
    mu = np.array([m["point"]["mu"] for m in messages])
    row = rows_by_label(state)["mu"]
    assert row.draws == 400 and row.window == 50
    np.testing.assert_allclose([row.mean, row.sd], [mu.mean(), mu.std(ddof=1)], rtol=1e-12)
    trace = state.variables["r"]["mu"].traces[0]
    assert trace.buffer.shape == (50, 1)
    np.testing.assert_array_equal(trace.last(50)[:, 0], mu[150:200])   # the last 50, in order
    assert "cover the last 50 draws" in text_of(state)


def test_rhat_near_one_for_iid_chains():
    state = WatchState()
    feed(state, two_chains(np.random.default_rng(2)))
    rows = rows_by_label(state)
    for label in ("mu", "theta[0]", "theta[7]"):
        r = rows[label]
        assert abs(r.rhat - 1) < 0.01, (label, r.rhat)
        assert r.ess_bulk > 1000, (label, r.ess_bulk)      # iid: about 2000
        assert abs(r.mean) < 4 / np.sqrt(2000) and abs(r.sd - 1) < 0.1
    assert "theta[8]" not in rows                           # first 8 of 12 elements
    assert "theta: first 8 of 12 elements shown" in state.notes()


def test_rhat_flags_chains_with_different_means():
    """Negative control: the same check must fail when the chains disagree."""
    state = WatchState()
    feed(state, two_chains(np.random.default_rng(3), means=(0.0, 3.0)))
    rows = rows_by_label(state)
    assert rows["mu"].rhat > 1.5 and rows["theta[3]"].rhat > 1.5


def test_matrix_labels_and_single_chain_has_no_rhat():
    state = WatchState()
    feed(state, [draw(0, i, point={"L": np.eye(2) * i}) for i in range(10)])
    rows = rows_by_label(state)
    assert list(rows) == ["L[0,0]", "L[0,1]", "L[1,0]", "L[1,1]"]
    assert np.isnan(rows["L[0,0]"].rhat) and rows["L[1,1]"].mean == 4.5   # R-hat needs two chains


def test_diagnostics_are_reused_within_the_interval():
    now = [0.0]
    state = WatchState(diagnostics_interval=1.0, clock=lambda: now[0])
    feed(state, two_chains(np.random.default_rng(4), num_samples=100))
    first = rows_by_label(state)["mu"]
    feed(state, [draw(c, 100 + i, point={"mu": 5.0, "theta": np.zeros(12)})
                 for c in (0, 1) for i in range(50)])
    stale = rows_by_label(state)["mu"]
    assert stale.rhat == first.rhat and stale.draws == 300   # mean and sd are always current
    now[0] = 2.0
    assert rows_by_label(state)["mu"].rhat != first.rhat


def test_bad_messages_are_counted_and_skipped():
    state = WatchState()
    good = protocol.encode(draw(0, 0, point={"x": [1.0, 2.0]}))
    bad_frames = [
        [b"exmc.r.0.", b"\xc1"],                                       # not msgpack
        [b"exmc.r.0."],                                                # one frame
        [b"exmc.r.9.", good[1]],                                       # topic of another chain
        [good[0], msgpack.packb({"type": "exmc_sample"})],             # missing fields
        [b"", b""],
        [b"exmc.r.0.", b"\x00" * 10, b"extra"],
    ]
    for frames in bad_frames:
        assert state.receive(frames) is None
    assert state.receive(good) is not None
    ragged = draw(0, 1, point={"x": [1.0, 2.0]})
    ragged["point"]["x"] = [[1.0], [2.0, 3.0]]                            # schema-valid, not an array
    reshaped = draw(0, 2, point={"x": [1.0, 2.0, 3.0]})                 # shape changed mid-run
    for msg in (ragged, reshaped):
        assert state.receive(protocol.encode(msg)) is None
    assert state.receive(protocol.encode(draw(0, 3, point={"x": [3.0, 4.0]}))) is not None
    assert state.bad == len(bad_frames) + 2 and "shape" in state.last_error
    assert rows_by_label(state)["x[1]"].mean == 3.0
    assert "bad 8" in text_of(state)


def test_run_filter_and_variable_cap():
    state = WatchState(run="a", max_variables=3)
    feed(state, [draw(0, 0, run="b"),
                 draw(0, 0, run="a", point={f"v{k}": float(k) for k in range(6)})])
    assert state.ignored == 1 and list(state.variables) == ["a"]
    assert [r.label for r in state.variable_rows()] == ["v0", "v1", "v2"]
    assert state.notes() == ["3 more variables not tracked: v3, v4, v5"]


def test_names_are_shown_literally():
    state = WatchState()
    feed(state, [draw(0, 0, point={"a[bold]b": 1.0})])
    assert "a[bold]b" in text_of(state)


def bound_socket(context, kind):
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind("tcp://127.0.0.1:0")
    return socket, socket.getsockopt_string(zmq.LAST_ENDPOINT)


def test_cli_times_out_without_messages(capsys):
    context = zmq.Context()
    publisher, address = bound_socket(context, zmq.PUB)
    try:
        start = time.monotonic()
        assert main(["watch", address, "--timeout", "0.3", "--refresh", "20"]) == EXIT_TIMEOUT
        assert time.monotonic() - start < 20
    finally:
        publisher.close(linger=0)
        context.term()
    assert "no message for 0.3 s" in capsys.readouterr().out


def test_cli_rejects_bad_arguments(capsys):
    for argv in (["watch", "tcp://x", "--run", "not-a-run"], ["watch", "tcp://x", "--refresh", "0"], []):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2


def wait_for_subscription(publisher, deadline, alive=lambda: True, prefix=b"exmc."):
    """The watcher's subscription reaching our XPUB: ZeroMQ's slow-joiner handshake done."""
    poller = zmq.Poller()
    poller.register(publisher, zmq.POLLIN)
    while time.monotonic() < deadline and alive():
        if poller.poll(100) and publisher.recv() == b"\x01" + prefix:
            return True
    return False


def test_watch_run_exits_when_the_expected_chains_are_done(capsys):
    context = zmq.Context()
    publisher, address = bound_socket(context, zmq.XPUB)
    sent = []

    def publish():
        if wait_for_subscription(publisher, time.monotonic() + 20, prefix=b"exmc.a."):
            for msg in [draw(0, i, run=run) for run in ("b", "a") for i in range(3)]:
                publisher.send_multipart(protocol.encode(msg))
            publisher.send_multipart(protocol.encode(protocol.done_message("a", 0, 3, 3)))
            sent.append(True)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        code = main(["watch", address, "--run", "a", "--chains", "1", "--timeout", "20"])
    finally:
        thread.join(timeout=30)
        publisher.close(linger=0)
        context.term()
    assert sent and code == 0
    assert "the chain is done (ok)" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_watch_command_end_to_end():
    context = zmq.Context()
    publisher, address = bound_socket(context, zmq.XPUB)
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "exmc.runtime.cli", "watch", address, "--timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        if not wait_for_subscription(publisher, time.monotonic() + 90,
                                     alive=lambda: process.poll() is None):
            pytest.fail(f"no subscription from the watcher:\n{process.communicate(timeout=5)[0]}")
        publisher.send_multipart([b"exmc.r.0.", b"not msgpack"])
        rng = np.random.default_rng(6)
        for chain in (0, 1):
            for i in range(300):
                msg = draw(chain, i, warmup=i < 100, diverging=(i == 150),
                           point={"mu": rng.normal(), "theta": rng.normal(size=3)})
                publisher.send_multipart(protocol.encode(msg))
            publisher.send_multipart(protocol.encode(protocol.done_message("r", chain, 300, 300)))
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        publisher.close(linger=0)
        context.term()
    assert process.returncode == 0, output
    for text in ("mu", "theta[2]", "done", "all 2 chains done (ok)", "bad 1", "R-hat"):
        assert text in output, (text, output)
    assert "lagged or joined late" not in output, output      # nothing missed on loopback
