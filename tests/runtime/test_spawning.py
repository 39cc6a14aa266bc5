"""Chain workers never re-run the user's script: cores= works without a __main__ guard."""
import multiprocessing.spawn
import subprocess
import sys
import textwrap

import pytest

import exmc
from exmc import Builder, Normal
from exmc.runtime import spawning

pytestmark = pytest.mark.timeout(300)


def test_only_chain_workers_leave_out_the_main_script(monkeypatch):
    spawning.install()
    spawning.install()  # idempotent
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "/somewhere/script.py", raising=False)
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    worker = multiprocessing.spawn.get_preparation_data("chain3/chain-3")
    other = multiprocessing.spawn.get_preparation_data("user-process")
    assert not any(key in worker for key in spawning.MAIN_KEYS)
    assert other["init_main_from_path"] == "/somewhere/script.py"
    assert worker["sys_path"] == other["sys_path"]  # exmc is imported from the same place


def test_a_script_without_the_guard_runs_with_cores(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, exmc
        from exmc import Builder, Normal, HalfNormal
        print("script body run")  # once: workers do not re-run it
        y = np.random.default_rng(0).normal(2, 1, 50)
        m = Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(1)).obs("y", Normal("mu", "sigma"), y)
        a = exmc.sample(m, chains=2, cores=2, num_samples=50, num_warmup=50, seed=1, progressbar=False, diagnostics=False)
        b = exmc.sample(m, chains=2, num_samples=50, num_warmup=50, seed=1, progressbar=False, diagnostics=False)
        assert np.array_equal(a.posterior["mu"], b.posterior["mu"])
        print("same draws")
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("script body run") == 1, done.stdout
    assert "same draws" in done.stdout
    assert "Traceback" not in done.stderr


def test_starting_workers_while_being_bootstrapped_names_the_guard(monkeypatch):
    monkeypatch.setattr(spawning, "in_bootstrap", lambda: True)
    with pytest.raises(RuntimeError, match='if __name__ == "__main__":'):
        exmc.sample(Builder().rv("a", Normal(0, 1)), chains=1, executor="processes", num_samples=5,
                    num_warmup=5, progressbar=False)
