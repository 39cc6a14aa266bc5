"""Checkpointed runs: SIGKILL the whole sampling process, run again, get the uninterrupted draws."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import arviz as az
import msgpack
import numpy as np
import pytest

import exmc
from exmc.runtime.checkpoint import RunFolder, read

pytestmark = pytest.mark.timeout(600)

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, exmc
    from exmc import Builder, Normal, Bernoulli, ref
    rng = np.random.default_rng(7)
    N = NUM_ROWS
    X = rng.normal(size=(N, 8))
    y = (X @ np.linspace(-1, 1, 8) + rng.normal(size=N) > 0).astype(float)
    model = (Builder().rv("alpha", Normal(0, 5)).rv("beta", Normal(0, 5, shape=8))
             .obs("y", Bernoulli(logit_p=ref("alpha") + X @ ref("beta")), y))
    OPTIONS = dict(chains=2, num_samples=NUM_SAMPLES, num_warmup=300, seed=11,
                   progressbar=False, diagnostics=False)
    if __name__ == "__main__":
        cores = None if sys.argv[2] == "None" else int(sys.argv[2])
        executor = sys.argv[3] if len(sys.argv) > 3 else None
        exmc.sample(model, checkpoint=sys.argv[1], cores=cores, executor=executor, **OPTIONS)
        print("finished")
""")


def load_script(tmp_path, num_samples, rows=400):
    path = tmp_path / "run_model.py"
    path.write_text(SCRIPT.replace("NUM_SAMPLES", str(num_samples)).replace("NUM_ROWS", str(rows)))
    namespace = {"__name__": "run_model"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return path, namespace["model"], namespace["OPTIONS"]


def progress(folder):
    """Iterations saved per chain (0 for a chain without a state yet)."""
    done = []
    for chain in range(2):
        try:
            done.append(msgpack.unpackb((folder / f"chain-{chain}.state").read_bytes())["done"])
        except (FileNotFoundError, ValueError, KeyError):
            done.append(0)
    return done


def children_of(pid):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def same_run(a, b):
    for group in ("posterior", "sample_stats"):
        for name in a[group].data_vars:
            np.testing.assert_array_equal(a[group][name].values, b[group][name].values,
                                          err_msg=f"{group}.{name}")


def kill_and_resume(tmp_path, cores, kills, num_samples, executor="processes"):
    # Enough data that a chain takes seconds: several blocks (about 0.25 s each) to kill in.
    script, model, options = load_script(tmp_path, num_samples, rows=4000)
    reference = exmc.sample(model, executor="in-process", **options)  # also warms the model cache for the subprocess
    folder = tmp_path / "run"
    total = 2 * (options["num_warmup"] + num_samples)
    rng = random.Random(cores or 0)
    last = 0
    for _ in range(kills):
        target = last + rng.uniform(0.1, 0.6) * (total - last)  # somewhere in what is left
        proc = subprocess.Popen([sys.executable, str(script), str(folder), str(cores), executor],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while sum(progress(folder)) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before it was killed: {proc.communicate()}"
        workers = children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        now = sum(progress(folder))
        assert now < total, "killed too late to test a resume"
        assert now > last, "a resumed run must go on from where it was"
        last = now
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers):  # no orphan survives its parent
            assert time.monotonic() < deadline, f"orphans: {[p for p in workers if alive(p)]}"
            time.sleep(0.05)
    partial = read(folder)
    if partial is not None:  # readable while unfinished: the draws so far, cut to the shortest
        n = partial.posterior.sizes["draw"]
        assert partial.attrs["partial"] == 1
        np.testing.assert_array_equal(partial.posterior["beta"], reference.posterior["beta"][:, :n])
    # The same call again finishes the run.
    done = subprocess.run([sys.executable, str(script), str(folder), str(cores), executor],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and "finished" in done.stdout, done.stderr[-3000:]
    same_run(az.from_netcdf(folder / "trace.nc"), reference)
    # And exmc.resume of a finished run returns it again, drawing nothing new.
    again = exmc.resume(folder, progressbar=False, diagnostics=False)
    same_run(again, reference)
    return folder


def test_killed_in_process_run_resumes_bit_for_bit(tmp_path):
    kill_and_resume(tmp_path, None, kills=3, num_samples=3000, executor="in-process")


def test_killed_run_with_worker_processes_resumes_bit_for_bit(tmp_path):
    kill_and_resume(tmp_path, 2, kills=2, num_samples=3000)


def test_killed_run_on_the_worker_pool_resumes_bit_for_bit(tmp_path):
    kill_and_resume(tmp_path, 2, kills=1, num_samples=3000, executor="pool")


def test_a_finished_run_is_extended_with_the_draws_of_a_longer_run(tmp_path):
    _, model, options = load_script(tmp_path, 150)
    first = exmc.sample(model, checkpoint=tmp_path / "run", **options)
    longer = exmc.sample(model, **{**options, "num_samples": 400})
    extended = exmc.resume(tmp_path / "run", num_samples=400, progressbar=False,
                           diagnostics=False)
    same_run(extended, longer)
    same_run(first, longer.isel(draw=slice(0, 150)))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["num_samples"] == 400
    # The same call again (num_samples as the run now has) reads it back.
    same_run(exmc.sample(model, checkpoint=tmp_path / "run", **{**options, "num_samples": 400}),
             longer)


def test_a_folder_of_another_run_is_refused(tmp_path):
    _, model, options = load_script(tmp_path, 50)
    exmc.sample(model, checkpoint=tmp_path / "run", **options)
    with pytest.raises(ValueError, match=r"other settings: num_warmup=200 \(the run has 300\)"):
        exmc.sample(model, checkpoint=tmp_path / "run", **{**options, "num_warmup": 200})
    with pytest.raises(ValueError, match="seed=.*the run has '11'"):
        exmc.sample(model, checkpoint=tmp_path / "run", **{**options, "seed": 12})
    with pytest.raises(ValueError, match="a run of another model"):
        exmc.sample(exmc.Builder().rv("a", exmc.Normal(0, 1)), checkpoint=tmp_path / "run",
                    **options)
    with pytest.raises(ValueError, match="extended, not shortened"):
        exmc.sample(model, checkpoint=tmp_path / "run", **{**options, "num_samples": 10})
    with pytest.raises(TypeError, match="only num_samples can change"):
        exmc.resume(tmp_path / "run", num_warmup=10)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty and holds no exmc run"):
        exmc.sample(model, checkpoint=tmp_path / "other", **options)
    with pytest.raises(FileNotFoundError, match="no exmc run in"):
        exmc.resume(tmp_path / "nothing")


def test_rows_past_the_saved_state_are_ignored(tmp_path):
    # A block whose rows reached the disk but whose state did not (killed in between):
    # garbage rows after the state's last iteration must not reach the trace.
    _, model, options = load_script(tmp_path, 100)
    folder = tmp_path / "run"
    exmc.sample(model, checkpoint=folder, **options)
    done, _, rows = RunFolder(folder).load_chain(1, 9)
    assert done == 400 and rows.shape == (400, 9 + len(exmc.runtime.checkpoint.STAT_NAMES))
    with open(folder / "chain-1.rows", "ab") as fh:
        fh.write(np.full(rows.shape[1] * 30, np.nan).tobytes())
    longer = exmc.sample(model, **{**options, "num_samples": 200})
    same_run(exmc.resume(folder, num_samples=200, progressbar=False, diagnostics=False), longer)
