"""Pathfinder: draws against closed-form Gaussian posteriors (with negative controls), eight
schools, seeds, bad arguments, and exmc.sample(init="pathfinder")."""
import warnings

import numpy as np
import pytest

import exmc
from exmc.compiler import compile_model
from exmc.samplers.pathfinder import path_approximations, lbfgs_path
from tests.samplers.test_advi import (COV, MU, POST_MEAN, POST_SD, close_to_gaussian, conjugate,
                                      correlated)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_inverse_hessian_estimate_on_a_gaussian():
    """The estimate satisfies the newest secant equation H y = s exactly (BFGS's defining
    property) and is close to the covariance once L-BFGS has crossed a Gaussian target."""
    compiled = compile_model(correlated())
    positions, grads, _ = lbfgs_path(compiled, np.zeros(3), 5, 100)
    approximations = path_approximations(positions, grads, 5)
    for l in (2, len(positions) - 1):
        s, y = positions[l] - positions[l - 1], grads[l - 1] - grads[l]
        assert np.allclose(approximations[l - 1].covariance() @ y, s, atol=1e-10)
    last = approximations[-1]
    assert np.allclose(last.covariance(), COV, atol=0.1)
    assert not np.allclose(last.covariance(), COV * 1.2, atol=0.1)  # negative control
    assert np.allclose(last.mean, MU, atol=1e-4)
    draws, log_q = last.sample(np.random.default_rng(0), 20_000)
    assert np.allclose(np.cov(draws.T), last.covariance(), atol=0.06)
    # log q is the normal density of the draws.
    from scipy.stats import multivariate_normal
    assert np.allclose(log_q[:5], multivariate_normal(last.mean, last.covariance()).logpdf(draws[:5]))


def test_draws_match_a_correlated_gaussian():
    idata = exmc.pathfinder(correlated(), seed=1, progressbar=False)
    x = idata.posterior["x"].values[0]
    assert x.shape == (1000, 3)
    assert close_to_gaussian(x.mean(0), np.cov(x.T), MU, COV, 0.1, 0.15)
    assert not close_to_gaussian(x.mean(0), np.cov(x.T), MU + np.sqrt(np.diag(COV)) / 2, COV,
                                 0.1, 0.15)  # negative control: a shifted truth fails
    assert idata.attrs["pareto_k"] < 0.5 and len(idata.attrs["elbo"]) == 4


def test_conjugate_posterior_moments():
    idata = exmc.pathfinder(conjugate(), seed=2, progressbar=False)
    mu = idata.posterior["mu"].values.ravel()
    assert abs(mu.mean() - POST_MEAN) < 0.1 * POST_SD and abs(mu.std() / POST_SD - 1) < 0.1
    assert not abs(mu.mean() - (POST_MEAN + 0.5 * POST_SD)) < 0.1 * POST_SD  # negative control
    assert set(idata.sample_stats) == {"lp", "log_q", "path"}


def test_eight_schools_runs_with_a_finite_pareto_k():
    import benchmarks.models as models

    idata = quiet(exmc.pathfinder, models.eight_schools(), num_paths=4, seed=3, progressbar=False)
    assert np.isfinite(idata.attrs["pareto_k"])
    assert idata.posterior["theta"].shape == (1, 1000, 8)
    assert (idata.posterior["tau"] > 0).all()
    assert idata.attrs["failed_paths"] == 0 and min(idata.attrs["iterations"]) > 0


def test_same_seed_same_draws():
    a = exmc.pathfinder(conjugate(), num_draws=50, seed=5, progressbar=False)
    b = exmc.pathfinder(conjugate(), num_draws=50, seed=5, progressbar=False)
    c = exmc.pathfinder(conjugate(), num_draws=50, seed=6, progressbar=False)
    assert np.array_equal(a.posterior["mu"], b.posterior["mu"])
    assert not np.array_equal(a.posterior["mu"], c.posterior["mu"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_paths=0), "num_paths must be an integer >= 1"),
    (dict(num_draws=2.5), "num_draws must be an integer >= 1"),
    (dict(history_size=True), "history_size must be an integer >= 1"),
    (dict(init={"sigma": 1.0}), "init has values for 'sigma'"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exmc.pathfinder(conjugate(), progressbar=False, **kwargs)


def test_sample_starts_from_pathfinder():
    model = (exmc.Builder().rv("mu", exmc.Normal(0.0, 5.0)).rv("sigma", exmc.HalfNormal(2.0))
             .obs("y", exmc.Normal("mu", "sigma"), np.random.default_rng(4).normal(3.0, 1.5, 40)))
    idata = quiet(exmc.sample, model, init="pathfinder", num_warmup=30, num_samples=20, chains=2,
                  seed=1, progressbar=False, save_warmup=True)
    assert idata.attrs["init"] == "pathfinder" and np.isfinite(idata.attrs["pathfinder_pareto_k"])
    # The chains start in the posterior's bulk, not at a random point in (-2, 2):
    first = idata.warmup_posterior["mu"].values[:, 0]
    assert np.all(np.abs(first - 3.0) < 1.5)
    again = quiet(exmc.sample, model, init="pathfinder", num_warmup=30, num_samples=20, chains=2,
                  seed=1, progressbar=False)
    assert np.array_equal(idata.posterior["mu"], again.posterior["mu"])


def test_sample_init_errors():
    with pytest.raises(ValueError, match="init must be a dict of starting values or 'pathfinder'"):
        exmc.sample(conjugate(), init="advi", progressbar=False)
    with pytest.raises(ValueError, match="init='pathfinder' with checkpoint= is not supported"):
        exmc.sample(conjugate(), init="pathfinder", checkpoint="/tmp/nowhere", progressbar=False)
