"""Multivariate conjugate posteriors in units of MCSE: Dirichlet-Multinomial and MvNormal with a
known covariance (issue 16's posterior checks), each with a negative control."""
import numpy as np
import pytest

import exmc
from exmc import Builder, Dirichlet, Multinomial, MvNormal
from tests.stats import assert_mean_close, assert_moments_close, assert_variance_close

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
