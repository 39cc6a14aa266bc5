"""Leapfrog: exact invariants, second-order energy error, reversibility, the metric's algebra."""
import numpy as np
import pytest

from exmc import Builder, Custom, StudentT, value
from exmc.compiler import compile_model
from exmc.samplers.integrators import (STATUS_INJECTED, Metric, draw_momentum, hamiltonian,
                                       kinetic_energy, leapfrog, velocity)
from tests.stats import assert_mean_close, assert_whitened_close

MEAN = np.array([0.5, -1.0, 2.0])
SDS = np.array([1.0, 0.3, 2.5])
CORRELATED = np.array([[1.0, 0.6, -0.3],
                       [0.6, 2.0, 0.4],
                       [-0.3, 0.4, 0.5]])


@pytest.fixture(scope="module")
def independent_gaussian():
    """N(MEAN, diag(SDS**2)) as a Custom density."""
    centred = value - MEAN
    return compile_model(Builder().rv("x", Custom(logp=-0.5 * centred * centred / SDS ** 2,
                                                  shape=3)))


@pytest.fixture(scope="module")
def correlated_gaussian():
    precision = np.linalg.inv(CORRELATED)
    centred = value - MEAN
    return compile_model(Builder().rv("x", Custom(logp=-0.5 * (centred @ (precision @ centred)),
                                                  shape=3)))


@pytest.fixture(scope="module")
def student_t():
    return compile_model(Builder().rv("x", StudentT(4.0, 1.0, 2.0, shape=3)))


def diagonal_metric(inverse_diag):
    return Metric(np.asarray(inverse_diag, dtype=float), np.eye(1), np.eye(1), False)


def dense_metric(inverse_dense):
    inverse_dense = np.asarray(inverse_dense, dtype=float)
    factor = np.linalg.inv(np.linalg.cholesky(inverse_dense)).T  # F F^T = inverse_dense^{-1}
    return Metric(np.ones(inverse_dense.shape[0]), inverse_dense, factor, True)


class State:
    """An integrator state (q, p, grad, logp, v) with the gradient and velocity filled in."""

    def __init__(self, compiled, metric, q, p):
        self.q, self.p = np.array(q, dtype=float), np.array(p, dtype=float)
        logp, self.grad, status = compiled.logp_and_grad(self.q)
        assert status == 0
        self.logp = np.array([logp])
        self.v = np.zeros_like(self.p)
        velocity(metric, self.p, self.v)
        self.compiled, self.metric = compiled, metric

    def step(self, step, rng=None, fault_rate=0.0):
        rng = np.random.default_rng(0) if rng is None else rng
        return leapfrog(self.compiled.address, self.compiled.data, self.metric, self.q, self.p,
                        self.grad, self.logp, self.v, step, rng, fault_rate)

    def energy(self):
        return hamiltonian(0, self.logp[0], self.p, self.v)

    def copy(self):
        return [a.copy() for a in (self.q, self.p, self.grad, self.logp, self.v)]


def test_leapfrog_conserves_its_shadow_energy_on_a_gaussian(independent_gaussian):
    # On q'' = -omega^2 q (omega^2 = m / sd^2 with inverse mass m) kick-drift-kick leapfrog
    # with step e conserves m p^2 + (1 - e^2 omega^2 / 4) (q - mean)^2 / sd^2 exactly,
    # coordinate by coordinate: a closed form the integrator must match to rounding.
    inverse_mass = np.array([1.0, 0.05, 3.0])
    state = State(independent_gaussian, diagonal_metric(inverse_mass), [1.2, -0.8, 0.0],
                  [0.3, 2.0, -0.4])
    step = 0.17

    def shadow():
        omega2 = inverse_mass / SDS ** 2
        return (inverse_mass * state.p ** 2
                + (1 - step ** 2 * omega2 / 4) * (state.q - MEAN) ** 2 / SDS ** 2)

    start = shadow()
    for _ in range(300):
        assert state.step(step) == 0
    np.testing.assert_allclose(shadow(), start, rtol=1e-11)
    # ... whereas the true energy is not conserved (so the check above is not vacuous).
    assert abs(state.energy() - State(independent_gaussian, diagonal_metric(inverse_mass),
                                      [1.2, -0.8, 0.0], [0.3, 2.0, -0.4]).energy()) > 1e-4


def max_energy_error(compiled, metric, q, p, step, duration=2.0):
    state = State(compiled, metric, q, p)
    h0 = state.energy()
    worst = 0.0
    for _ in range(int(round(duration / step))):
        assert state.step(step) == 0
        worst = max(worst, abs(state.energy() - h0))
    return worst


@pytest.mark.parametrize("kind", ["diagonal", "dense"])
def test_energy_error_is_second_order_in_the_step_size(kind, correlated_gaussian):
    metric = (diagonal_metric([0.8, 1.5, 0.4]) if kind == "diagonal"
              else dense_metric(np.array([[1.0, 0.3, 0.0], [0.3, 1.5, 0.2], [0.0, 0.2, 0.4]])))
    q, p = [1.5, 0.0, 1.0], [0.5, -0.7, 1.1]
    errors = [max_energy_error(correlated_gaussian, metric, q, p, step)
              for step in (0.1, 0.05, 0.025)]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    # Halving the step divides the error by 4 for a second-order integrator (2 for first order).
    np.testing.assert_allclose(ratios, 4.0, rtol=0.1)


@pytest.mark.parametrize("kind", ["diagonal", "dense"])
def test_forward_then_backward_returns_to_the_start(kind, student_t):
    metric = (diagonal_metric([0.7, 2.0, 1.3]) if kind == "diagonal"
              else dense_metric(np.array([[1.0, -0.4, 0.2], [-0.4, 0.9, 0.1], [0.2, 0.1, 2.0]])))
    state = State(student_t, metric, [0.3, -2.0, 4.0], [1.0, 0.5, -1.5])
    start = state.copy()
    for _ in range(50):
        state.step(0.3)
    assert not np.allclose(state.q, start[0])
    for _ in range(50):
        state.step(-0.3)
    for got, want in zip(state.copy(), start):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_dense_velocity_equals_diagonal_when_the_matrix_is_diagonal():
    inverse_diag = np.array([0.5, 2.0, 3.5, 1e-3])
    p = np.array([1.0, -2.0, 0.25, 40.0])
    v_diag, v_dense = np.zeros(4), np.zeros(4)
    velocity(diagonal_metric(inverse_diag), p, v_diag)
    velocity(dense_metric(np.diag(inverse_diag)), p, v_dense)
    np.testing.assert_allclose(v_dense, v_diag, rtol=1e-15)
    np.testing.assert_allclose(v_diag, inverse_diag * p, rtol=1e-15)
    assert kinetic_energy(p, v_diag) == pytest.approx(0.5 * np.sum(inverse_diag * p ** 2),
                                                      rel=1e-14)


def test_dense_momentum_equals_diagonal_when_the_matrix_is_diagonal():
    inverse_diag = np.array([0.5, 2.0, 3.5])
    rng_diag, rng_dense = np.random.default_rng(3), np.random.default_rng(3)
    p_diag, p_dense = np.zeros(3), np.zeros(3)
    for _ in range(20):
        draw_momentum(diagonal_metric(inverse_diag), rng_diag, p_diag)
        draw_momentum(dense_metric(np.diag(inverse_diag)), rng_dense, p_dense)
        np.testing.assert_allclose(p_dense, p_diag, rtol=1e-14)
    assert rng_diag.random() == rng_dense.random()  # the same stream consumed


@pytest.mark.parametrize("kind", ["diagonal", "dense"])
def test_momentum_has_the_mass_matrix_as_covariance(kind):
    inverse = np.diag([0.5, 2.0, 3.5]) if kind == "diagonal" else CORRELATED
    metric = (diagonal_metric(np.diag(inverse)) if kind == "diagonal" else dense_metric(inverse))
    rng = np.random.default_rng(4)
    p = np.zeros(3)
    draws = np.empty((8000, 3))
    for i in range(draws.shape[0]):
        draw_momentum(metric, rng, p)
        draws[i] = p
    mass = np.linalg.inv(inverse)
    assert_whitened_close(draws[None], np.zeros(3), mass)
    # Negative control: the inverse mass matrix is not the momentum's covariance.
    with pytest.raises(AssertionError, match="whitened moment"):
        assert_whitened_close(draws[None], np.zeros(3), inverse)
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(draws[None], 0.2 * np.sqrt(np.diag(mass)))


def test_hamiltonian_is_infinite_for_failures_and_nan():
    p, v = np.array([1.0, 2.0]), np.array([0.5, 0.5])
    assert hamiltonian(0, -3.0, p, v) == pytest.approx(3.0 + 0.75)
    assert hamiltonian(1, -3.0, p, v) == np.inf
    assert hamiltonian(0, np.nan, p, v) == np.inf
    assert hamiltonian(0, -np.inf, p, v) == np.inf


def test_injected_fault_is_reported_as_a_status(independent_gaussian):
    metric = diagonal_metric(np.ones(3))
    state = State(independent_gaussian, metric, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    rng = np.random.default_rng(5)
    assert state.step(0.1, rng, fault_rate=1.0) == STATUS_INJECTED
    assert state.step(0.1, rng, fault_rate=0.0) == 0
