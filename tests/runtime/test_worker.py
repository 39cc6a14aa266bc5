"""Chains in supervised worker processes: bit-for-bit draws, SIGKILL recovery, give-up reporting."""
import numpy as np
import pytest

import exmc
from exmc import Builder, HalfNormal, Normal
from exmc.runtime.worker import CRASH_ENV, Collector, Gap
from exmc.samplers.chain_state import pack_state, unpack_state
from exmc.samplers.nuts import STAT_NAMES, new_chain_state

Y = np.random.default_rng(1).normal(3.0, 1.0, size=20)
RUN = dict(chains=3, num_samples=400, num_warmup=300, seed=4, progressbar=False)


def model():
    return (Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(2))
            .rv("v", Normal(0, 1, shape=2)).obs("y", Normal("mu", "sigma"), Y))


@pytest.fixture(scope="module")
def in_process():
    return exmc.sample(model(), cores=1, **RUN)


def assert_same_trace(a, b):
    for name in ("mu", "sigma", "v"):
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
    for name in ("energy", "step_size", "n_steps", "diverging"):
        np.testing.assert_array_equal(a.sample_stats[name].values, b.sample_stats[name].values)


@pytest.mark.timeout(180)
def test_workers_give_the_in_process_draws_bit_for_bit(in_process):
    idata = exmc.sample(model(), cores=2, **RUN)
    assert_same_trace(in_process, idata)
    assert idata.attrs["restarts"] == [0, 0, 0] and idata.attrs["cores"] == 2


@pytest.mark.timeout(180)
def test_killed_worker_resumes_from_its_last_delivered_draw(in_process, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "1:350")  # SIGKILL chain 1 mid-run, once
    idata = exmc.sample(model(), cores=2, **RUN)
    assert idata.attrs["restarts"] == [0, 1, 0]
    assert_same_trace(in_process, idata)  # nothing lost, nothing duplicated


@pytest.mark.timeout(180)
def test_chain_failing_past_the_restart_intensity_is_reported(in_process, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "0:always")
    with pytest.warns(RuntimeWarning, match="chain 0 failed: gave up after 3 restarts"):
        idata = exmc.sample(model(), cores=2, **RUN)
    assert idata.posterior.sizes["chain"] == 2
    np.testing.assert_array_equal(idata.posterior["mu"].values, in_process.posterior["mu"].values[1:])


def test_bad_cores():
    with pytest.raises(ValueError, match="cores must be an integer >= 1"):
        exmc.sample(model(), cores=0, chains=1, num_samples=5, num_warmup=5, progressbar=False)


def test_state_snapshot_round_trips_with_the_generator():
    rng = np.random.default_rng(7)
    rng.standard_normal(5)
    state = new_chain_state(np.arange(3.0), np.ones(3), -1.5, True)
    again, rng2 = unpack_state(pack_state(state, rng))
    for a, b in zip(state, again):
        if isinstance(a, tuple):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_array_equal(a, b)
    assert rng.standard_normal() == rng2.standard_normal()


def test_collector_keeps_each_draw_once():
    import msgpack
    c = Collector(dim=1, total=6, chains=1)
    state = pack_state(new_chain_state(np.zeros(1), np.zeros(1), 0.0, False), np.random.default_rng(0))

    def block(first, values):
        v = np.asarray(values, dtype=float).reshape(-1, 1)
        return msgpack.packb({"kind": "block", "chain": 0, "first": first, "n": len(v),
                              "draws": v.tobytes(), "stats": np.zeros((len(v), len(STAT_NAMES))).tobytes(),
                              "state": state}, use_bin_type=True)

    assert c.receive(block(0, [0, 1, 2])) == (0, 0, 3)
    assert c.receive(block(2, [2, 3])) == (0, 3, 4)  # a resumed worker overlaps: keep only index 3
    with pytest.raises(Gap, match="starts at iteration 5, but iterations from 4 are missing"):
        c.receive(block(5, [9]))  # a gap is never filled out of order: the sender must replay
    c.receive(block(4, [4, 5]))
    c.receive(msgpack.packb({"kind": "done", "chain": 0, "done": 6}))
    assert c.finished[0] and c.draws[0, :, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert c.checkpoint_path(0).exists()
    c.close()


def wait_for(predicate, seconds=60.0):
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cores", [None, 2])
def test_non_blocking_handle_inspect_and_abort(cores):
    long_run = dict(chains=2, num_samples=200_000, num_warmup=100, seed=3, progressbar=False)
    handle = exmc.sample(model(), blocking=False, cores=cores, **long_run)
    partial = wait_for(handle.inspect)  # the trace so far, while sampling goes on
    assert not handle.done()
    assert 0 < partial.posterior.sizes["draw"] < 200_000
    idata = handle.abort()
    assert handle.done()
    assert 0 < idata.posterior.sizes["draw"] < 200_000
    assert np.all(np.isfinite(idata.posterior["mu"].values))


@pytest.mark.timeout(120)
def test_non_blocking_wait_returns_the_full_trace(in_process):
    handle = exmc.sample(model(), blocking=False, **RUN)
    idata = handle.wait(timeout=100)
    assert_same_trace(in_process, idata)


def test_streaming_from_workers_delivers_every_draw():
    messages = []
    exmc.sample_stream(model(), messages.append, cores=2, **RUN)
    for chain in range(3):
        seqs = [m["seq"] for m in messages if m["chain"] == chain]
        assert seqs == list(range(701))
        assert messages[[i for i, m in enumerate(messages) if m["chain"] == chain][-1]]["type"] == "exmc_done"


@pytest.mark.timeout(120)
def test_abort_before_any_kept_draw_returns_none():
    handle = exmc.sample(model(), blocking=False, chains=1, num_samples=10, num_warmup=10**7,
                         progressbar=False)
    assert handle.abort() is None and handle.done()


@pytest.mark.parametrize("payload", [
    b"\xc1garbage", b"\x93\x01\x02\x03",
    {"kind": "block", "chain": 0, "first": 0, "n": 1, "draws": b"\0" * 16, "stats": b"\0" * 72},
    {"kind": "block", "chain": 5, "first": 0, "n": 0, "draws": b"", "stats": b""},
    {"kind": "note", "chain": 0},
])
def test_collector_refuses_malformed_messages(payload):
    import msgpack
    c = Collector(dim=1, total=6, chains=1)
    if isinstance(payload, dict):
        payload["state"] = pack_state(new_chain_state(np.zeros(1), np.zeros(1), 0.0, False),
                                      np.random.default_rng(0))
        payload = msgpack.packb(payload, use_bin_type=True)
    with pytest.raises(ValueError, match="malformed worker message"):
        c.receive(payload)
    c.close()
    assert not c.directory.exists()


# ---- the worker link accepts only this run's workers ------------------------------------------
FORGER = r"""
import sys, time, msgpack, zmq
endpoint, chains, total, dim, state_file, stop_file = sys.argv[1:]
chains, total, dim = int(chains), int(total), int(dim)
state = msgpack.unpackb(open(state_file, "rb").read(), raw=False)
push = zmq.Context.instance().socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, 0)
push.setsockopt(zmq.SNDTIMEO, 100)
push.connect(endpoint)
forged = []
for chain in range(chains):
    forged.append(msgpack.packb({"kind": "block", "chain": chain, "first": 0, "n": total,
                                 "draws": b"\0\0\0\0\0\0\x45\x40" * (total * dim),  # 42.0
                                 "stats": bytes(8 * 9 * total), "state": state}, use_bin_type=True))
    forged.append(msgpack.packb({"kind": "done", "chain": chain, "done": total}))
for _ in range(400):  # about 20 s at most
    try:
        open(stop_file).close()
        break
    except OSError:
        pass
    for body in forged:
        try:
            push.send(body)                                  # the old one-frame link
            push.send_multipart([bytes(32), body])           # a guessed token
        except zmq.Again:
            pass
    time.sleep(0.05)
"""


@pytest.mark.timeout(180)
def test_forged_blocks_from_a_stranger_process_are_refused(in_process, monkeypatch, tmp_path):
    """A local process that finds the link's endpoint cannot put its draws in the trace."""
    import subprocess
    import sys

    import msgpack

    from exmc.runtime import worker

    state = pack_state(new_chain_state(np.zeros(4), np.zeros(4), 0.0, False), np.random.default_rng(0))
    (tmp_path / "state").write_bytes(msgpack.packb(state, use_bin_type=True))
    stop = tmp_path / "stop"
    forgers = []
    original = worker.ChainGroup.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        forgers.append(subprocess.Popen(
            [sys.executable, "-c", FORGER, self.endpoint, "3", "700", "4",
             str(tmp_path / "state"), str(stop)]))
        time.sleep(1.0)  # the forger's first messages arrive before any worker's

    import time
    monkeypatch.setattr(worker.ChainGroup, "__init__", spy)
    try:
        with pytest.warns(RuntimeWarning, match=r"refused \d+ message\(s\) on the worker link"):
            idata = exmc.sample(model(), cores=2, **RUN)
    finally:
        stop.touch()
        for p in forgers:
            p.wait(30)
    assert forgers
    assert_same_trace(in_process, idata)  # every draw is the workers' own
    assert not np.any(idata.posterior["mu"].values == 42.0)


def test_link_endpoint_is_in_a_private_folder():
    import stat

    from exmc.runtime.worker import ChainGroup

    c = Collector(dim=1, total=6, chains=1)
    group = ChainGroup(b"", {"dim": 1}, {0: np.random.SeedSequence(0)}, c)
    try:
        assert group.endpoint == f"ipc://{c.directory}/link"
        assert stat.S_IMODE(c.directory.stat().st_mode) == 0o700
        assert len(group.tokens[0]) == 32
    finally:
        group.stop()
    assert not c.directory.exists()


# ---- failures reported as failures -------------------------------------------------------------
@pytest.mark.timeout(180)
def test_a_chain_that_gives_up_mid_run_leaves_the_others_whole(monkeypatch):
    # Blocks grow to ~0.25 s, so with 20,000 draws a block ends well past iteration 350 and
    # well before the end: chain 0 dies there in every life and gives up with kept draws.
    run = dict(RUN, num_samples=20_000)
    reference = exmc.sample(model(), cores=1, **run)
    monkeypatch.setenv(CRASH_ENV, "0:350:always")
    with pytest.warns(RuntimeWarning, match="chain 0 failed: gave up after 3 restarts") as caught:
        idata = exmc.sample(model(), cores=3, **run)
    assert not [w for w in caught if "interrupted" in str(w.message)]
    assert (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]) == (2, 20_000)
    np.testing.assert_array_equal(idata.posterior["mu"].values, reference.posterior["mu"].values[1:])


@pytest.mark.timeout(180)
def test_every_chain_failing_raises_sampling_error_with_each_reason():
    from exmc.runtime.sample import SamplingError
    # No finite starting point: each worker fails at every start (a bad init= is refused
    # by the parent before any worker starts).
    impossible = Builder().rv("a", Normal(0, 1)).rv(
        "b", exmc.Custom(logp=exmc.math.log(-exmc.math.exp("a"))))
    with pytest.raises(SamplingError) as caught:
        exmc.sample(impossible, cores=2, **dict(RUN, chains=2))
    assert not isinstance(caught.value, KeyboardInterrupt)
    assert set(caught.value.reasons) == {0, 1}
    for chain in (0, 1):
        assert f"chain {chain}: gave up after 3 restarts" in str(caught.value)
    assert ("the worker's error: ValueError: no starting point with finite log density"
            in caught.value.reasons[0])


@pytest.mark.timeout(180)
def test_interrupt_warns_exactly_what_is_returned():
    import warnings

    from exmc.runtime.sample import _Live

    class StopAfterDraws(_Live):
        def update(self, compiled, chain, draws, stats, done):
            super().update(compiled, chain, draws, stats, done)
            if done >= RUN["num_warmup"] + 50:
                self.aborted.set()  # as SampleHandle.abort does

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = exmc.sample(model(), cores=2, _live=StopAfterDraws(), **dict(RUN, num_samples=10**6))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    kept = idata.posterior.sizes["chain"]
    assert [m for m in messages if "interrupted" in m or "failed" in m] == [
        f"sampling was interrupted: returning {kept} of 3 chains with "
        f"{idata.posterior.sizes['draw']} draws each"], messages


def _own_command():
    with open("/proc/self/cmdline", "rb") as fh:
        return fh.read()


def _worker_pids():
    import subprocess
    import os
    found = subprocess.run(["pgrep", "-P", str(os.getpid())], capture_output=True, text=True,
                           timeout=10).stdout.split()
    from exmc.runtime import pool
    pool_workers = ({child.pid for child in pool._pool.supervisor.which_children()}
                    if pool._pool is not None else set())
    pids = []
    for pid in set(map(int, found)) - pool_workers:  # the session's pool is not this run's
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                command = fh.read()
        except OSError:
            continue
        # Chain workers are forked (this process's command line) or spawned (spawn_main).
        forked = command == _own_command()
        if (forked or b"spawn_main" in command) and b"resource_tracker" not in command:
            pids.append(pid)
    return pids


@pytest.mark.timeout(180)
def test_a_stopped_worker_is_detected_within_30_s():
    """The heartbeat follows the block cadence (~0.25 s) with a 10 s floor, not a fixed 120 s."""
    import os
    import signal
    import time
    handle = exmc.sample(model(), blocking=False, executor="processes", cores=1, chains=1,
                         num_samples=10**7,
                         num_warmup=100, seed=2, progressbar=False)
    try:
        wait_for(handle.inspect)  # past warmup: blocks flow
        [pid] = _worker_pids()
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        wait_for(lambda: None if pid in _worker_pids() else True, 60)
        detected = time.monotonic() - stopped
        assert detected < 30, detected
        wait_for(lambda: _worker_pids() or None, 60)  # restarted, from its checkpoint
    finally:
        idata = handle.abort()
    assert idata.posterior.sizes["draw"] > 0


TWICE = """
import sys, numpy as np, exmc
from exmc import Builder, Normal, HalfNormal
y = np.random.default_rng(1).normal(3.0, 1.0, size=20)
m = Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(2)).obs("y", Normal("mu", "sigma"), y)
if __name__ == "__main__":
    exmc.sample(m, cores=2, chains=2, num_samples=10**7, num_warmup=100, progressbar=False)
"""


@pytest.mark.timeout(180)
def test_ctrl_c_twice_still_removes_the_run_folder(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "twice.py"
    script.write_text(TWICE)
    folder = tmp_path / "tmp"
    folder.mkdir()
    run = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "TMPDIR": str(folder)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(folder.glob("exmc-run-*/chain-1.msgpack")):
            time.sleep(0.1)  # both workers are delivering draws
        assert list(folder.glob("exmc-run-*")), "the run never started"
        run.send_signal(signal.SIGINT)
        time.sleep(0.02)
        run.send_signal(signal.SIGINT)
        run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    assert not list(folder.glob("exmc-*")), list(folder.iterdir())


def test_a_worker_using_cpu_beats_and_an_idle_one_does_not():
    """A long compiled block (no GIL) is slow, not hung: beat_while_busy beats while the
    process computes, and not while it sleeps (a stopped or blocked worker)."""
    import threading
    import time

    from exmc.runtime.worker import beat_while_busy

    for busy, expected in ((True, True), (False, False)):
        beats, stop = [], threading.Event()
        thread = threading.Thread(target=beat_while_busy,
                                  args=(stop, lambda: beats.append(1), 0.1))
        thread.start()
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            if busy:
                sum(i * i for i in range(10_000))  # CPU time, as a compiled block uses
            else:
                time.sleep(0.05)
        stop.set()
        thread.join(5)
        assert bool(beats) == expected, (busy, len(beats))


def test_a_packed_state_names_its_scalars_and_a_missing_one_is_named():
    state = new_chain_state(np.zeros(2), np.zeros(2), -3.5, False)
    packed = pack_state(state, np.random.default_rng(0))
    assert packed["scalars"]["logp"] == -3.5 and packed["scalars"]["step_size"] == 1.0
    assert packed["scalars"]["iteration"] == 0
    del packed["scalars"]["dual_count"]
    with pytest.raises(ValueError, match="lack dual_count"):
        unpack_state(packed)
