"""Posteriors with known answers in units of MCSE: Dirichlet-Multinomial and MvNormal with a
known covariance (closed forms), and a negative-binomial regression against a long nutpie run
(benchmarks/nb_regression_reference.py); each with a negative control."""
import json
from pathlib import Path

import numpy as np
import pytest

import exmc
from exmc import (Builder, Dirichlet, HalfNormal, Multinomial, MvNormal, NegativeBinomial, Normal,
                  ref)
from tests.stats import (Z, assert_mean_close, assert_moments_close, assert_variance_close,
                         expectation_error)

RUN = dict(chains=4, num_samples=1000, num_warmup=1000, seed=3, progressbar=False,
           diagnostics=False)

ALPHA = np.array([1.0, 2.0, 3.0])
COUNTS = np.array([[2.0, 3.0, 5.0], [4.0, 4.0, 2.0], [1.0, 6.0, 3.0]])  # three draws of n = 10

S0 = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, -0.5], [0.0, -0.5, 2.0]])   # prior covariance of mu
S = np.array([[1.0, 0.6, 0.2], [0.6, 2.0, 0.4], [0.2, 0.4, 1.5]])      # known covariance of y
M0 = np.array([1.0, -1.0, 0.5])
Y = np.random.default_rng(8).multivariate_normal([2.0, 0.0, -1.0], S, size=6)


def dirichlet_posterior():
    a = ALPHA + COUNTS.sum(axis=0)
    total = a.sum()
    return a / total, a * (total - a) / (total ** 2 * (total + 1))


def mvnormal_posterior(likelihood_cov=S):
    precision = np.linalg.inv(S0) + len(Y) * np.linalg.inv(likelihood_cov)
    cov = np.linalg.inv(precision)
    return cov @ (np.linalg.solve(S0, M0) + np.linalg.solve(likelihood_cov, Y.sum(axis=0))), cov


@pytest.fixture(scope="module")
def dirichlet_draws():
    model = (Builder().rv("p", Dirichlet(ALPHA))
             .obs("counts", Multinomial(10.0, "p"), COUNTS))
    return exmc.sample(model, **RUN).posterior["p"].values


@pytest.fixture(scope="module")
def mvnormal_draws():
    model = (Builder().rv("mu", MvNormal(M0, cov=S0))
             .obs("y", MvNormal("mu", cov=S), Y))
    return exmc.sample(model, **RUN).posterior["mu"].values


def test_dirichlet_multinomial_posterior(dirichlet_draws):
    mean, var = dirichlet_posterior()
    assert_mean_close(dirichlet_draws, mean)
    assert_variance_close(dirichlet_draws, mean, var)


def test_dirichlet_negative_control_the_prior_mean_fails(dirichlet_draws):
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(dirichlet_draws, ALPHA / ALPHA.sum())


def test_mvnormal_known_covariance_posterior(mvnormal_draws):
    mean, cov = mvnormal_posterior()
    assert_moments_close(mvnormal_draws, mean, cov)


def test_mvnormal_negative_control_ignoring_correlations_fails(mvnormal_draws):
    mean, cov = mvnormal_posterior(np.diag(np.diag(S)))  # the likelihood's correlations dropped
    with pytest.raises(AssertionError):
        assert_moments_close(mvnormal_draws, mean, cov)


NB_REFERENCE = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "data"
                           / "nb_regression_reference.json").read_text())


@pytest.fixture(scope="module")
def nb_posterior():
    x, y = np.array(NB_REFERENCE["x"]), np.array(NB_REFERENCE["y"])
    model = (Builder().rv("a", Normal(0.0, 2.0)).rv("b", Normal(0.0, 2.0))
             .rv("alpha", HalfNormal(5.0))
             .obs("y", NegativeBinomial(mu=exmc.math.exp(ref("a") + ref("b") * x),
                                        alpha="alpha"), y))
    return exmc.sample(model, **RUN).posterior


def nb_z_scores(posterior, shift=0.0):
    """Each parameter's mean against the long nutpie run's, in units of both runs' MCSE."""
    scores = {}
    for name, reference in NB_REFERENCE["posterior"].items():
        estimate, mcse, _ = expectation_error(posterior[name].values)
        scores[name] = (estimate - reference["mean"] - shift * reference["sd"]) / np.hypot(
            mcse, reference["mcse_mean"])
    return scores


def test_negative_binomial_regression_matches_a_long_reference_run(nb_posterior):
    scores = nb_z_scores(nb_posterior)
    assert all(abs(z) <= Z for z in scores.values()), scores
    for name, reference in NB_REFERENCE["posterior"].items():  # spread too, within 10%
        assert abs(float(nb_posterior[name].std()) / reference["sd"] - 1.0) < 0.1, name


def test_negative_binomial_negative_control_a_shifted_reference_fails(nb_posterior):
    assert any(abs(z) > Z for z in nb_z_scores(nb_posterior, shift=0.2).values())
