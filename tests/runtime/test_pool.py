"""The session's warm worker pool: in-process draws bit for bit, reused workers, crash-resume."""
import numpy as np
import pytest

import exmc
from exmc import Builder, HalfNormal, Normal
from exmc.runtime import pool as pool_module
from exmc.runtime.worker import CRASH_ENV

pytestmark = pytest.mark.timeout(300)

Y = np.random.default_rng(1).normal(3.0, 1.0, size=20)
RUN = dict(chains=3, num_samples=400, num_warmup=300, seed=4, progressbar=False,
           diagnostics=False)


def model():
    return (Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(2))
            .rv("v", Normal(0, 1, shape=2)).obs("y", Normal("mu", "sigma"), Y))


@pytest.fixture(scope="module")
def in_process():
    yield exmc.sample(model(), executor="in-process", **RUN)
    pool_module.shutdown()


def assert_same_trace(a, b):
    for group in ("posterior", "sample_stats"):
        for name in a[group].data_vars:
            np.testing.assert_array_equal(a[group][name].values, b[group][name].values)


def worker_pids():
    return {child.pid for child in pool_module._pool.supervisor.which_children()}


def test_pool_gives_the_in_process_draws_and_keeps_its_workers(in_process):
    first = exmc.sample(model(), executor="pool", cores=2, **RUN)
    assert_same_trace(in_process, first)
    assert first.attrs["executor"] == "pool" and first.attrs["restarts"] == [0, 0, 0]
    pids = worker_pids()
    assert len(pids) == 2
    second = exmc.sample(model(), executor="pool", cores=2, **RUN)
    assert_same_trace(in_process, second)
    assert worker_pids() == pids  # the same warm workers ran the second run


def test_a_killed_worker_is_restarted_and_its_chain_resumes(in_process, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "1:350")  # SIGKILL chain 1's worker mid-run, once
    idata = exmc.sample(model(), executor="pool", cores=2, **RUN)
    assert idata.attrs["restarts"] == [0, 1, 0]
    assert_same_trace(in_process, idata)


def test_a_chain_that_keeps_killing_its_worker_is_given_up(in_process, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "0:always")
    with pytest.warns(RuntimeWarning, match="chain 0 failed: gave up after 3 restarts"):
        idata = exmc.sample(model(), executor="pool", cores=2, **RUN)
    assert idata.posterior.sizes["chain"] == 2
    np.testing.assert_array_equal(idata.posterior["mu"].values, in_process.posterior["mu"].values[1:])
    monkeypatch.delenv(CRASH_ENV)
    assert_same_trace(in_process, exmc.sample(model(), executor="pool", cores=2, **RUN))


def test_checkpointed_run_on_the_pool_extends_bit_for_bit(in_process, tmp_path):
    short = exmc.sample(model(), executor="pool", checkpoint=tmp_path / "run",
                        **{**RUN, "num_samples": 150})
    assert_same_trace(in_process.isel(draw=slice(0, 150)), short)
    whole = exmc.resume(tmp_path / "run", num_samples=400, executor="pool", progressbar=False,
                        diagnostics=False)
    assert_same_trace(in_process, whole)


def test_an_aborted_run_frees_the_pool_for_the_next(in_process):
    import time

    handle = exmc.sample(model(), executor="pool", cores=2, blocking=False,
                         **{**RUN, "num_samples": 10 ** 7})
    deadline = time.monotonic() + 120
    while handle.inspect() is None:  # past warmup: blocks flow
        assert time.monotonic() < deadline
        time.sleep(0.05)
    partial = handle.abort()
    assert partial.posterior.sizes["draw"] > 0
    idata = exmc.sample(model(), executor="pool", cores=2, **RUN)
    assert_same_trace(in_process, idata)
    assert idata.attrs["restarts"] == [0, 0, 0]


def test_shutdown_leaves_no_worker(in_process):
    import time
    from pathlib import Path

    exmc.sample(model(), executor="pool", cores=2, **RUN)
    pids, folder = worker_pids(), pool_module._pool.directory
    pool_module.shutdown()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, "pool workers outlived shutdown"
        time.sleep(0.05)
    assert not folder.exists()


def test_bad_executor_is_named():
    with pytest.raises(ValueError, match="executor must be 'in-process', 'processes' or 'pool'"):
        exmc.sample(model(), executor="threads", **RUN)
    with pytest.raises(ValueError, match="leave cores out"):
        exmc.sample(model(), executor="in-process", cores=2, **RUN)


TWICE = """
import numpy as np, exmc
from exmc import Builder, Normal, HalfNormal
y = np.random.default_rng(1).normal(3.0, 1.0, size=20)
m = Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(2)).obs("y", Normal("mu", "sigma"), y)
exmc.sample(m, executor="pool", cores=2, chains=2, num_samples=10**7, num_warmup=100,
            progressbar=False)
"""


def test_ctrl_c_twice_leaves_no_folder_and_no_worker(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "twice.py"
    script.write_text(TWICE)
    folder = tmp_path / "tmp"
    folder.mkdir()
    run = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "TMPDIR": str(folder)},
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(folder.glob("exmc-run-*/chain-1.msgpack")):
            time.sleep(0.1)  # both chains are delivering draws
        assert list(folder.glob("exmc-pool-*")), "the pool never started"
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(run.pid)], text=True,
                                                  capture_output=True).stdout.split()]
        run.send_signal(signal.SIGINT)
        time.sleep(0.02)
        run.send_signal(signal.SIGINT)
        run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    assert not list(folder.glob("exmc-*")), list(folder.iterdir())
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its run"
        time.sleep(0.05)
