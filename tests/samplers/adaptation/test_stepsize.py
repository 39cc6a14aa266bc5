"""Step-size adaptation: dual averaging against Hoffman & Gelman, its fixed point, a Gaussian."""
import math

import numpy as np
import pytest

from exmc import Builder, Normal
from exmc.compiler import compile_model
from exmc.runtime.chain import make_settings, run_chain, start_state
from exmc.samplers.adaptation.stepsize import (COUNTER, MU, S_BAR, X_BAR, final_step_size,
                                               learn_step_size, restart_dual_averaging)

GAMMA, T0, KAPPA = 0.05, 10.0, 0.75


def hoffman_gelman(step0, accept_stats, target):
    """Algorithm 5 of Hoffman & Gelman (2014): the log step sizes and their averages."""
    mu = math.log(10 * step0)
    h_bar, log_bar = 0.0, 0.0
    steps, averages = [], []
    for m, alpha in enumerate(accept_stats, start=1):
        alpha = min(alpha, 1.0)  # Stan clips; the paper's statistic never exceeds 1
        h_bar = (1 - 1 / (m + T0)) * h_bar + (target - alpha) / (m + T0)
        log_step = mu - math.sqrt(m) / GAMMA * h_bar
        log_bar = m ** -KAPPA * log_step + (1 - m ** -KAPPA) * log_bar
        steps.append(math.exp(log_step))
        averages.append(math.exp(log_bar))
    return steps, averages


def test_restart():
    state = np.array([9.0, 9.0, 9.0, 9.0])
    restart_dual_averaging(state, 0.25)
    assert state[MU] == pytest.approx(math.log(2.5))
    assert state[S_BAR] == state[X_BAR] == state[COUNTER] == 0.0


def test_updates_follow_the_paper():
    accept_stats = np.random.default_rng(0).uniform(0.2, 1.3, size=200)  # > 1 is clipped
    state = np.zeros(4)
    restart_dual_averaging(state, 0.7)
    got, got_average = [], []
    for alpha in accept_stats:
        got.append(learn_step_size(state, alpha, 0.8, GAMMA, T0, KAPPA))
        got_average.append(final_step_size(state))
    want, want_average = hoffman_gelman(0.7, accept_stats, 0.8)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(got_average, want_average, rtol=1e-10)
    assert state[COUNTER] == 200


@pytest.mark.parametrize("target", [0.6, 0.8, 0.95])
def test_converges_to_the_step_with_the_target_acceptance(target):
    # A model acceptance curve alpha(step) = 0.8 ** ((step / 1.7)^2): the fixed point is the
    # step where alpha = target.
    def acceptance(step):
        return 0.8 ** ((step / 1.7) ** 2)

    exact = 1.7 * math.sqrt(math.log(target) / math.log(0.8))
    state = np.zeros(4)
    restart_dual_averaging(state, 0.01)
    step = 0.01
    for _ in range(3000):
        step = learn_step_size(state, acceptance(step), target, GAMMA, T0, KAPPA)
    assert final_step_size(state) == pytest.approx(exact, rel=0.02)


@pytest.fixture(scope="module")
def gaussian():
    return compile_model(Builder().rv("x", Normal(0, 1, shape=10)))


def adapted_chain(compiled, target, seed=3):
    rng = np.random.default_rng(seed)
    state = start_state(compiled, None, rng, False)
    return run_chain(compiled, make_settings(1000, target_accept=target), state, rng, 2000)


def test_acceptance_tracks_the_target_on_a_gaussian(gaussian):
    results = {target: adapted_chain(gaussian, target) for target in (0.6, 0.8, 0.95)}
    window = {t: r.stat("acceptance_rate")[450:950].mean() for t, r in results.items()}
    after = {t: r.stat("acceptance_rate")[1000:].mean() for t, r in results.items()}
    step = {t: r.stat("step_size")[1000] for t, r in results.items()}
    # While dual averaging runs (the last metric window) the mean acceptance statistic sits
    # at the target; each target is distinguishable from the others.
    for target in results:
        assert abs(window[target] - target) < 0.03, (target, window[target])
    # After warmup the step is exp(x_bar), a little below the last steps, so the acceptance
    # is near but above the target (as in Stan); higher targets mean smaller steps.
    assert 0.75 < after[0.8] < 0.95
    assert after[0.6] < after[0.8] < after[0.95]
    assert step[0.6] > step[0.8] > step[0.95]
