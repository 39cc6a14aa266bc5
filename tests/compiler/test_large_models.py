"""Large models: many scalar variables compile in bounded time and give the same density.

Above ``LARGE_MODEL_NODES`` nodes the compiler batches scalar terms of one kind
into one loop over offset tables and writes the body as a chain of functions of
bounded length; both must give exactly what the plain emission gives.
"""
import numpy as np
import pytest
from scipy import stats

import exmc
from exmc import compiler
from exmc.compiler import compile_model, emit, lower


def chain(n, shared_scale=True):
    """x0 ~ N(0, 1), x_i ~ N(x_{i-1}, s) with s ~ HalfNormal(1) (or 1.0), and a few extras."""
    scale = "s" if shared_scale else 1.0
    model = exmc.Builder().rv("s", exmc.HalfNormal(1.0)).rv("x0", exmc.Normal(0.0, 1.0))
    for i in range(1, n):
        model.rv(f"x{i}", exmc.Normal(f"x{i - 1}", scale))
    return (model.det("total", exmc.math.sum(exmc.math.stack([exmc.ref(f"x{i}") for i in range(n)])))
            .obs("y", exmc.Normal("x0", "s"), np.array([0.3, -0.2])))


def reference_logp(z, n):
    s, x = np.exp(z[0]), z[1:]
    return (stats.halfnorm.logpdf(s) + z[0] + stats.norm.logpdf(x[0])
            + stats.norm.logpdf(x[1:], x[:-1], s).sum() + stats.norm.logpdf([0.3, -0.2], x[0], s).sum())


@pytest.mark.timeout(600)
def test_ten_thousand_scalar_variables_compile_and_are_right():
    n = 10_000
    cm = compile_model(chain(n))
    z = 0.3 * np.random.default_rng(0).normal(size=cm.dim)
    logp, grad, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(logp, reference_logp(z, n), rtol=1e-12)
    for k in (0, 1, 2, n // 2, n):  # a few partials, by central differences
        e = np.zeros(cm.dim)
        e[k] = 1e-4
        numeric = (cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / 2e-4
        np.testing.assert_allclose(grad[k], numeric, rtol=1e-5, atol=1e-5)
    values = cm.constrain(z[None])
    np.testing.assert_allclose(values["total"][0], z[1:].sum(), rtol=1e-10)
    np.testing.assert_allclose(values["s"][0], np.exp(z[0]), rtol=1e-14)


@pytest.mark.parametrize("shared_scale", [True, False])
def test_large_emission_equals_the_plain_one(monkeypatch, tmp_path, shared_scale):
    """The same 60-variable model, emitted plainly and (with a low threshold) batched and chunked."""
    model = chain(60, shared_scale)
    plain = compile_model(model)
    monkeypatch.setenv("EXMC_CACHE_DIR", str(tmp_path))  # a new file, not the plain one's
    monkeypatch.setattr(compiler, "_loaded", {})
    monkeypatch.setattr(lower, "LARGE_MODEL_NODES", 20)
    monkeypatch.setattr(emit, "LARGE_MODEL_NODES", 20)
    monkeypatch.setattr(emit, "CHUNK_LINES", 40)
    program = lower.lower_model(model)
    assert any(node.op == "logp_batch" for node in program.nodes)
    source = emit.module_source(program, "test")
    assert "logp_grad_forward_" in source and "constrain_part_" in source
    large = compile_model(model)
    assert large.module is not plain.module
    for seed in (1, 2):
        z = 0.5 * np.random.default_rng(seed).normal(size=plain.dim)
        (lp1, g1, s1), (lp2, g2, s2) = plain.logp_and_grad(z), large.logp_and_grad(z)
        assert s1 == s2 == 0
        np.testing.assert_allclose(lp2, lp1, rtol=1e-12)
        np.testing.assert_allclose(g2, g1, rtol=1e-10, atol=1e-12)
        for name, values in plain.constrain(z[None]).items():
            np.testing.assert_allclose(large.constrain(z[None])[name], values, rtol=1e-12)
        np.testing.assert_allclose(large.log_likelihood(z[None])["y"],
                                   plain.log_likelihood(z[None])["y"], rtol=1e-12)
