"""The on-disk model cache: a second process loads machine code; data are arguments, not code."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

import exmc
from exmc import compiler
from exmc.compiler import compile_model

CHILD = textwrap.dedent("""
    import json
    import sys
    import numpy as np
    import exmc
    from exmc.compiler import compile_model

    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    model = (exmc.Builder().rv("mu", exmc.Normal(0.0, 10.0)).rv("sigma", exmc.HalfNormal(scale))
             .obs("y", exmc.Normal("mu", "sigma"), np.array([0.3, -1.2, 2.5])))
    cm = compile_model(model)
    x = np.array([0.4, -0.2])
    logp, grad, status = cm.logp_and_grad(x)
    direct = cm.module.logp_grad(x, cm.data, np.zeros(cm.dim), np.empty(cm.module.SCRATCH))
    cm.constrain(x)
    module = cm.module
    print(json.dumps({
        "file": module.__file__, "logp": logp, "grad": grad.tolist(), "direct": direct[0],
        "c_entry_hits": module.logp_grad_c.cache_hits,
        "hits": {name: sum(getattr(module, name).stats.cache_hits.values())
                 for name in ("logp_grad", "constrain_draws")},
        "misses": {name: sum(getattr(module, name).stats.cache_misses.values())
                   for name in ("logp_grad", "constrain_draws")},
    }))
""")


def run_child(cache_dir, *args):
    env = {**os.environ, "EXMC_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(600)
def test_second_process_loads_the_compiled_model_from_the_cache(tmp_path):
    first = run_child(tmp_path)
    assert first["c_entry_hits"] == 0
    assert first["hits"] == {"logp_grad": 0, "constrain_draws": 0}
    assert first["misses"]["logp_grad"] >= 1 and first["misses"]["constrain_draws"] >= 1

    second = run_child(tmp_path)
    assert second["file"] == first["file"]
    assert second["c_entry_hits"] == 1
    assert second["hits"]["logp_grad"] >= 1 and second["hits"]["constrain_draws"] >= 1
    assert second["misses"] == {"logp_grad": 0, "constrain_draws": 0}
    assert (second["logp"], second["grad"]) == (first["logp"], first["grad"])
    assert second["direct"] == first["logp"]


@pytest.mark.timeout(600)
def test_new_constants_in_a_fresh_process_compile_nothing(tmp_path):
    """HalfNormal(2.5) instead of HalfNormal(2): the same file, Numba cache hits and no miss."""
    first = run_child(tmp_path, "2.0")
    second = run_child(tmp_path, "2.5")
    assert second["file"] == first["file"]
    assert second["misses"] == {"logp_grad": 0, "constrain_draws": 0}
    assert second["c_entry_hits"] == 1
    z = np.array([0.4, -0.2])
    shift = stats.halfnorm.logpdf(np.exp(z[1]), scale=2.5) - stats.halfnorm.logpdf(np.exp(z[1]), scale=2.0)
    np.testing.assert_allclose(second["logp"] - first["logp"], shift, rtol=1e-10)


# ---- in this process, with a fresh cache directory and no modules already loaded -----------------
@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EXMC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compiler, "_loaded", {})
    return tmp_path / "models"


def normal_model(data, family=exmc.Normal, prior_scale=10.0):
    return (exmc.Builder().rv("mu", exmc.Normal(0.0, prior_scale)).rv("sigma", exmc.HalfNormal(2.0))
            .obs("y", family("mu", "sigma"), np.asarray(data)))


def generated_files(directory):
    return sorted(p.name for p in directory.glob("*.py"))


def test_models_differing_only_in_data_values_share_the_generated_file(fresh_cache):
    first = compile_model(normal_model([0.3, -1.2, 2.5]))
    second = compile_model(normal_model([5.0, 6.0, 7.0]))
    assert second.module is first.module
    assert generated_files(fresh_cache) == [os.path.basename(first.module.__file__)]


def test_models_differing_only_in_constants_share_the_compiled_code(fresh_cache):
    one = compile_model(normal_model([0.3, -1.2, 2.5]))
    two = compile_model(normal_model([0.3, -1.2, 2.5], prior_scale=3.0))
    assert two.module is one.module
    z = np.array([0.4, -0.2])
    shift = stats.norm.logpdf(0.4, 0.0, 3.0) - stats.norm.logpdf(0.4, 0.0, 10.0)
    np.testing.assert_allclose(two.logp_and_grad(z)[0] - one.logp_and_grad(z)[0], shift, rtol=1e-10)


@pytest.mark.parametrize("other", [
    pytest.param(lambda: normal_model([0.3, -1.2, 2.5, 0.8]), id="data-shape"),
    pytest.param(lambda: normal_model([0.3, -1.2, 2.5], family=exmc.Cauchy), id="family"),
])
def test_a_different_structure_gets_a_different_file(fresh_cache, other):
    first = compile_model(normal_model([0.3, -1.2, 2.5]))
    second = compile_model(other())
    assert second.module.__file__ != first.module.__file__
    assert len(generated_files(fresh_cache)) == 2


def reference_logp(z, data):
    mu, sigma = z[0], np.exp(z[1])
    return (stats.norm.logpdf(mu, 0.0, 10.0) + stats.halfnorm.logpdf(sigma, scale=2.0) + z[1]
            + np.sum(stats.norm.logpdf(data, mu, sigma)))


def test_data_are_arguments_of_the_shared_compiled_code(fresh_cache):
    data_one, data_two = np.array([0.3, -1.2, 2.5]), np.array([5.0, 6.0, 7.5])
    one = compile_model(normal_model(data_one))
    two = compile_model(normal_model(data_two))
    assert two.module is one.module
    z = np.array([0.4, -0.2])
    logp_one, _, _ = one.logp_and_grad(z)
    logp_two, _, _ = two.logp_and_grad(z)
    np.testing.assert_allclose(logp_one, reference_logp(z, data_one), rtol=1e-12)
    np.testing.assert_allclose(logp_two, reference_logp(z, data_two), rtol=1e-12)
    assert abs(logp_two - logp_one) > 1.0
