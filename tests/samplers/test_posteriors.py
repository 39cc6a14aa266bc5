"""NUTS posteriors against exact answers (conjugate and Gaussian), each with a negative control.

Checks are in units of Monte Carlo standard error (``tests/stats.py`` holds the
failure budget).  A negative control feeds the same harness a wrong truth, or
draws from a deliberately wrong model, and asserts that it fails: a harness
that cannot fail proves nothing.
"""
import numpy as np
import pytest
from scipy import stats as scipy_stats

import exmc
from exmc import Beta, Binomial, Builder, Custom, Gamma, Normal, Poisson, ref, value
from tests.stats import (assert_correlation_close, assert_mean_close, assert_moments_close,
                         assert_variance_close, assert_whitened_close)

pytestmark = pytest.mark.timeout(300)


def sample(model, **kwargs):
    options = dict(chains=2, num_warmup=1000, num_samples=2000, seed=20240601, progressbar=False)
    options.update(kwargs)
    return exmc.sample(model, **options)


def draws_of(idata, name):
    return idata.posterior[name].values


def gaussian_logp(mean, cov):
    """Custom log density of N(mean, cov) up to a constant: -(x - mean)^T cov^-1 (x - mean) / 2."""
    precision = np.linalg.inv(cov)
    centred = value - np.asarray(mean, dtype=float)
    return -0.5 * (centred @ (precision @ centred))


# --- conjugate normal-normal, known sigma -------------------------------------------------

NN_PRIOR_MEAN, NN_PRIOR_SD, NN_SIGMA = 1.0, 2.0, 1.5
NN_Y = np.random.default_rng(101).normal(3.0, NN_SIGMA, size=20)


def normal_normal_model(sigma=NN_SIGMA):
    return (Builder().rv("mu", Normal(NN_PRIOR_MEAN, NN_PRIOR_SD))
            .obs("y", Normal("mu", sigma), NN_Y))


def normal_normal_posterior(sigma=NN_SIGMA):
    precision = 1.0 / NN_PRIOR_SD ** 2 + NN_Y.size / sigma ** 2
    mean = (NN_PRIOR_MEAN / NN_PRIOR_SD ** 2 + NN_Y.sum() / sigma ** 2) / precision
    return mean, 1.0 / precision


@pytest.fixture(scope="module")
def normal_normal_draws():
    return draws_of(sample(normal_normal_model()), "mu")


def test_normal_normal(normal_normal_draws):
    mean, var = normal_normal_posterior()
    assert_mean_close(normal_normal_draws, mean)
    assert_variance_close(normal_normal_draws, mean, var)


def test_normal_normal_negative_control(normal_normal_draws):
    mean, var = normal_normal_posterior()
    # A truth half a posterior sd away, or a variance 40% too large, must fail.
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(normal_normal_draws, mean + 0.5 * np.sqrt(var))
    with pytest.raises(AssertionError, match="variance"):
        assert_variance_close(normal_normal_draws, mean, 1.4 * var)
    # A wrong model (noise sd doubled) against the right answer must fail too.
    wrong = draws_of(sample(normal_normal_model(sigma=2 * NN_SIGMA), chains=1), "mu")
    with pytest.raises(AssertionError, match="variance"):
        assert_variance_close(wrong, mean, var)


# --- beta-binomial ------------------------------------------------------------------------

BB_A, BB_B = 2.0, 3.0
BB_TRIALS = np.array([10.0, 12.0, 8.0])
BB_SUCCESSES = np.array([3.0, 5.0, 2.0])


def beta_binomial_truth(a, b):
    dist = scipy_stats.beta(a, b)
    return dist.mean(), dist.var()


@pytest.fixture(scope="module")
def beta_binomial_draws():
    model = (Builder().rv("p", Beta(BB_A, BB_B))
             .obs("k", Binomial(BB_TRIALS, "p"), BB_SUCCESSES))
    return draws_of(sample(model), "p")


def test_beta_binomial(beta_binomial_draws):
    a = BB_A + BB_SUCCESSES.sum()
    b = BB_B + (BB_TRIALS - BB_SUCCESSES).sum()
    mean, var = beta_binomial_truth(a, b)
    assert_mean_close(beta_binomial_draws, mean)
    assert_variance_close(beta_binomial_draws, mean, var)


def test_beta_binomial_negative_control(beta_binomial_draws):
    # The posterior had the data been miscounted by three successes.
    a = BB_A + BB_SUCCESSES.sum() + 3
    b = BB_B + (BB_TRIALS - BB_SUCCESSES).sum()
    mean, _ = beta_binomial_truth(a, b)
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(beta_binomial_draws, mean)


# --- gamma-Poisson ------------------------------------------------------------------------

GP_ALPHA, GP_RATE = 3.0, 0.5
GP_Y = np.random.default_rng(102).poisson(4.0, size=15).astype(float)


def gamma_poisson_truth(rate):
    """Posterior Gamma(alpha + sum y, rate + n) mean and variance."""
    shape, rate = GP_ALPHA + GP_Y.sum(), rate + GP_Y.size
    return shape / rate, shape / rate ** 2


@pytest.fixture(scope="module")
def gamma_poisson_draws():
    model = Builder().rv("lam", Gamma(GP_ALPHA, GP_RATE)).obs("y", Poisson("lam"), GP_Y)
    return draws_of(sample(model), "lam")


def test_gamma_poisson(gamma_poisson_draws):
    mean, var = gamma_poisson_truth(GP_RATE)
    assert_mean_close(gamma_poisson_draws, mean)
    assert_variance_close(gamma_poisson_draws, mean, var)


def test_gamma_poisson_negative_control(gamma_poisson_draws):
    # Gamma's second parameter read as a scale instead of a rate (1 / 0.5 = 2).
    mean, _ = gamma_poisson_truth(1.0 / GP_RATE)
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(gamma_poisson_draws, mean)


# --- linear regression with known noise: exact Gaussian posterior -------------------------

REG_PRIOR_SD, REG_SIGMA = 2.0, 0.5


def regression_data():
    rng = np.random.default_rng(103)
    n = 30
    base = rng.normal(size=n)
    # Correlated columns, so the posterior has real correlations.
    X = np.column_stack([np.ones(n), base, base + 0.5 * rng.normal(size=n)])
    y = X @ np.array([0.5, -1.0, 2.0]) + REG_SIGMA * rng.normal(size=n)
    return X, y


def regression_posterior(X, y):
    precision = X.T @ X / REG_SIGMA ** 2 + np.eye(X.shape[1]) / REG_PRIOR_SD ** 2
    cov = np.linalg.inv(precision)
    return cov @ X.T @ y / REG_SIGMA ** 2, cov


@pytest.fixture(scope="module")
def regression():
    X, y = regression_data()
    model = (Builder().rv("beta", Normal(0, REG_PRIOR_SD, shape=3))
             .obs("y", Normal(X @ ref("beta"), REG_SIGMA), y))
    mean, cov = regression_posterior(X, y)
    return draws_of(sample(model), "beta"), mean, cov


def test_linear_regression(regression):
    draws, mean, cov = regression
    sd = np.sqrt(np.diag(cov))
    assert abs(cov[1, 2] / (sd[1] * sd[2])) > 0.5  # a strong correlation to find
    assert_moments_close(draws, mean, cov)
    assert_whitened_close(draws, mean, cov)


def test_linear_regression_negative_control(regression):
    draws, mean, cov = regression
    # The same marginals with the correlations dropped.
    with pytest.raises(AssertionError, match="correlation"):
        assert_correlation_close(draws, mean, np.diag(np.diag(cov)))
    with pytest.raises(AssertionError, match="whitened"):
        assert_whitened_close(draws, mean, np.diag(np.diag(cov)))


# --- correlated Gaussian targets ----------------------------------------------------------

def correlated_cov(sds, rho):
    sds = np.asarray(sds, dtype=float)
    corr = np.full((sds.size, sds.size), rho) + (1 - rho) * np.eye(sds.size)
    return corr * np.outer(sds, sds)


def test_correlated_2d_gaussian_custom():
    mean, cov = np.array([1.0, -1.0]), correlated_cov([1.0, 2.0], 0.9)
    idata = sample(Builder().rv("x", Custom(logp=gaussian_logp(mean, cov), shape=2)))
    draws = draws_of(idata, "x")
    assert_moments_close(draws, mean, cov)
    assert_whitened_close(draws, mean, cov)
    # Negative control: a correlation of 0.8 instead of 0.9 is a different target.
    with pytest.raises(AssertionError, match="whitened moment"):
        assert_whitened_close(draws, mean, correlated_cov([1.0, 2.0], 0.8))


def test_correlated_gaussian_as_normal_hierarchy():
    # x1 ~ N(0, 1), x2 | x1 ~ N(1 + 0.8 x1, 0.6): jointly N((0, 1), [[1, .8], [.8, 1]]).
    model = (Builder().rv("x1", Normal(0, 1))
             .rv("x2", Normal(1.0 + 0.8 * ref("x1"), 0.6)))
    idata = sample(model)
    draws = np.stack([draws_of(idata, "x1"), draws_of(idata, "x2")], axis=-1)
    mean, cov = np.array([0.0, 1.0]), correlated_cov([1.0, 1.0], 0.8)
    assert_moments_close(draws, mean, cov)
    assert_whitened_close(draws, mean, cov)
    # Negative control: the same model written with the conditional sd squared by mistake.
    wrong = sample(Builder().rv("x1", Normal(0, 1)).rv("x2", Normal(1.0 + 0.8 * ref("x1"), 0.36)))
    wrong_draws = np.stack([draws_of(wrong, "x1"), draws_of(wrong, "x2")], axis=-1)
    with pytest.raises(AssertionError, match="whitened moment"):
        assert_whitened_close(wrong_draws, mean, cov)


def random_covariance(rng, d, condition):
    """A covariance with eigenvalues log-spaced over ``condition`` and a random rotation."""
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    eigenvalues = np.geomspace(1.0 / np.sqrt(condition), np.sqrt(condition), d)
    return rotation @ np.diag(eigenvalues) @ rotation.T


def test_higher_dimensional_gaussian():
    rng = np.random.default_rng(104)
    mean, cov = rng.normal(size=6), random_covariance(rng, 6, condition=50.0)
    idata = sample(Builder().rv("x", Custom(logp=gaussian_logp(mean, cov), shape=6)))
    draws = draws_of(idata, "x")
    assert_moments_close(draws, mean, cov)
    assert_whitened_close(draws, mean, cov)
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(draws, mean + 0.5 * np.sqrt(np.diag(cov)))


def test_dense_mass_on_strongly_correlated_gaussian():
    mean, cov = np.array([2.0, 0.0, -3.0]), correlated_cov([1.0, 3.0, 0.5], 0.99)
    idata = sample(Builder().rv("x", Custom(logp=gaussian_logp(mean, cov), shape=3)),
                   dense_mass=True)
    draws = draws_of(idata, "x")
    assert_moments_close(draws, mean, cov)
    assert_whitened_close(draws, mean, cov)
    # Negative control: correlation 0.98 instead of 0.99 doubles the small directions' variance.
    with pytest.raises(AssertionError, match="whitened moment"):
        assert_whitened_close(draws, mean, correlated_cov([1.0, 3.0, 0.5], 0.98))


# --- failed evaluations (injected faults) -------------------------------------------------

def test_injected_faults_are_recovered_and_posterior_is_right(monkeypatch):
    monkeypatch.setenv("EXMC_INJECT_FAULTS", "0.01")
    idata = sample(normal_normal_model())
    recovered = idata.sample_stats["recovered"].values
    diverging = idata.sample_stats["diverging"].values
    assert recovered.sum() > 0
    assert np.all(diverging[recovered])
    mean, var = normal_normal_posterior()
    draws = draws_of(idata, "mu")
    assert_mean_close(draws, mean)
    assert_variance_close(draws, mean, var)
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(draws, mean + 0.5 * np.sqrt(var))


def test_no_faults_without_the_switch(monkeypatch):
    monkeypatch.delenv("EXMC_INJECT_FAULTS", raising=False)
    idata = sample(normal_normal_model(), chains=1, num_samples=500)
    assert not idata.sample_stats["recovered"].values.any()
