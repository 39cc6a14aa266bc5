"""Metric adaptation: Welford accumulators and Stan's regularised (co)variance, against NumPy."""
import numpy as np
import pytest

from exmc.samplers.adaptation.metric import update_metric, welford_add
from exmc.samplers.integrators import Metric


def accumulate(draws, dense):
    d = draws.shape[1]
    mean, m2 = np.zeros(d), np.zeros((d, d) if dense else (1, d))
    count = 0.0
    for q in draws:
        count = welford_add(count, mean, m2, q, dense)
    return count, mean, m2


def fresh_metric(d, dense):
    big = (d, d) if dense else (1, 1)
    return Metric(np.ones(d), np.eye(*big), np.eye(*big), dense)


@pytest.fixture
def draws():
    rng = np.random.default_rng(1)
    mixing = np.array([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.2, 2.0]])
    return rng.normal(size=(60, 3)) @ mixing.T + np.array([5.0, -2.0, 0.5])


def test_welford_diagonal_matches_numpy(draws):
    count, mean, m2 = accumulate(draws, dense=False)
    assert count == 60
    np.testing.assert_allclose(mean, draws.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(m2[0], 59 * draws.var(axis=0, ddof=1), rtol=1e-12)


def test_welford_dense_matches_numpy(draws):
    count, mean, m2 = accumulate(draws, dense=True)
    assert count == 60
    np.testing.assert_allclose(mean, draws.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(m2, 59 * np.cov(draws.T), rtol=1e-12, atol=1e-12)


def test_welford_is_stable_far_from_zero():
    rng = np.random.default_rng(2)
    draws = 1e8 + 1e-3 * rng.normal(size=(500, 2))
    _, _, m2 = accumulate(draws, dense=False)
    # Each deviation carries rounding of order ulp(1e8) ~ 1e-8, i.e. 1e-5 of its 1e-3 size;
    # the textbook E[x^2] - E[x]^2 would lose everything (ulp(1e16) = 2 >> 1e-6).
    np.testing.assert_allclose(m2[0] / 499, draws.var(axis=0, ddof=1), rtol=1e-4)


def test_diagonal_update_is_stans_regularised_variance(draws):
    # Stan's var_adaptation: (n / (n + 5)) var + 1e-3 (5 / (n + 5)).
    count, mean, m2 = accumulate(draws, dense=False)
    metric = fresh_metric(3, dense=False)
    assert update_metric(metric, count, mean, m2)
    n = 60.0
    expected = n / (n + 5) * draws.var(axis=0, ddof=1) + 1e-3 * 5 / (n + 5)
    np.testing.assert_allclose(metric.inverse_diag, expected, rtol=1e-12)
    assert not mean.any() and not m2.any()  # accumulators cleared for the next window


def test_dense_update_is_stans_regularised_covariance(draws):
    count, mean, m2 = accumulate(draws, dense=True)
    metric = fresh_metric(3, dense=True)
    assert update_metric(metric, count, mean, m2)
    n = 60.0
    expected = n / (n + 5) * np.cov(draws.T) + 1e-3 * 5 / (n + 5) * np.eye(3)
    np.testing.assert_allclose(metric.inverse_dense, expected, rtol=1e-12, atol=1e-14)
    # The momentum factor F has F F^T = M, the inverse of the inverse mass matrix.
    factor = metric.momentum_factor
    np.testing.assert_allclose(factor @ factor.T, np.linalg.inv(expected), rtol=1e-10)
    assert not mean.any() and not m2.any()


@pytest.mark.parametrize("dense", [False, True])
def test_too_few_draws_keep_the_metric(dense):
    count, mean, m2 = accumulate(np.array([[1.0, 2.0], [3.0, 5.0]]), dense)
    metric = fresh_metric(2, dense)
    assert not update_metric(metric, count, mean, m2)
    np.testing.assert_array_equal(metric.inverse_diag, np.ones(2))
    np.testing.assert_array_equal(metric.inverse_dense, np.eye(2) if dense else np.eye(1))
    assert not mean.any() and not m2.any()


def test_non_finite_estimate_keeps_the_metric():
    count, mean, m2 = accumulate(np.array([[1.0, 2.0], [3.0, np.inf], [0.0, 1.0]]), False)
    metric = fresh_metric(2, dense=False)
    assert not update_metric(metric, count, mean, m2)
    np.testing.assert_array_equal(metric.inverse_diag, np.ones(2))
