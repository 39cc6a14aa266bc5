"""Gradient-based (nutpie-style) metric adaptation: right posterior, learns scales, resumable."""
import numpy as np
import pytest

import exmc
from exmc import Builder, Custom, Normal
from exmc.samplers.adaptation.gradient import (BACKGROUND, M2_G, M2_Q, MEAN_G, MEAN_Q,
                                               add_draw, metric_from_gradient, metric_from_windows,
                                               promote_background)
from exmc.samplers.integrators import Metric
from tests.stats import assert_moments_close

SCALES = np.array([0.01, 1.0, 30.0])


def scaled_gaussian():
    return Builder().rv("x", Normal(np.array([1.0, -2.0, 5.0]), SCALES))


def diag_metric(d):
    return Metric(np.ones(d), np.eye(1), np.eye(1), False)


def test_moments_of_draws_and_gradients_match_numpy():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) * 4
    est = np.zeros((2, 4, 3))
    count = 0.0
    for k in range(50):
        count = add_draw(est, BACKGROUND, count, q[k], g[k])
    np.testing.assert_allclose(est[BACKGROUND, MEAN_Q], q.mean(0))
    np.testing.assert_allclose(est[BACKGROUND, M2_Q] / 49, q.var(0, ddof=1))
    np.testing.assert_allclose(est[BACKGROUND, MEAN_G], g.mean(0))
    np.testing.assert_allclose(est[BACKGROUND, M2_G] / 49, g.var(0, ddof=1))
    promote_background(est)
    assert np.all(est[BACKGROUND] == 0)
    metric = diag_metric(3)
    assert metric_from_windows(metric, est, count)
    np.testing.assert_allclose(metric.inverse_diag, np.sqrt(q.var(0) / g.var(0)))
    assert not metric_from_windows(diag_metric(3), est, 2.0)  # too few draws: unchanged


def test_initial_metric_from_gradient():
    metric = diag_metric(3)
    metric_from_gradient(metric, np.array([2.0, -0.5, 0.0]))
    np.testing.assert_allclose(metric.inverse_diag, [0.5, 2.0, 1.0])  # zero gradient: unit scale


def test_gaussian_posterior_and_learned_scales():
    idata = exmc.sample(scaled_gaussian(), chains=2, num_samples=2000, num_warmup=1000, seed=7,
                        progressbar=False, adaptation="gradient")
    draws = idata.posterior["x"].values
    assert_moments_close(draws, np.array([1.0, -2.0, 5.0]), np.diag(SCALES ** 2))
    # A well-adapted metric makes this target easy: short trees.
    assert float(idata.sample_stats["n_steps"].mean()) < 8
    assert idata.attrs["adaptation"] == "gradient"


def test_correlated_target_and_negative_control():
    cov = np.array([[1.0, 0.7], [0.7, 2.0]])
    model = Builder().rv("x", Custom(logp=_gauss(np.linalg.inv(cov)), shape=2))
    idata = exmc.sample(model, chains=2, num_samples=2000, num_warmup=1000, seed=3,
                        progressbar=False, adaptation="gradient")
    draws = idata.posterior["x"].values
    assert_moments_close(draws, np.zeros(2), cov)
    with pytest.raises(AssertionError):
        assert_moments_close(draws, np.zeros(2), np.diag(np.diag(cov)))


def _gauss(prec):
    v = exmc.value
    return -0.5 * (prec[0, 0] * v[0] ** 2 + 2 * prec[0, 1] * v[0] * v[1] + prec[1, 1] * v[1] ** 2)


def test_bad_adaptation_arguments():
    with pytest.raises(ValueError, match="adaptation must be 'stan' or 'gradient'"):
        exmc.sample(scaled_gaussian(), adaptation="magic", progressbar=False)
    with pytest.raises(ValueError, match="diagonal metric"):
        exmc.sample(scaled_gaussian(), adaptation="gradient", dense_mass=True, progressbar=False)


def test_domain_errors_shrink_the_step_instead_of_sticking():
    # Regression: on the race's sv model, seed 2 started with a huge step (metric from
    # 1/|grad|); every trajectory overflowed a scale to 0, and while such steps counted as
    # failed evaluations step-size adaptation never saw them and the chain froze.
    from benchmarks.models import sv
    idata = exmc.sample(sv(), chains=1, num_samples=200, num_warmup=1000, seed=2,
                        progressbar=False, adaptation="gradient")
    assert float(idata.sample_stats["diverging"].mean()) < 0.05
    assert len(np.unique(idata.posterior["sigma"].values)) > 100
