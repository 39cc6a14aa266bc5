"""The compiled NUTS loop: reproducibility, block boundaries, tree sizes, warmup sanity."""
import numba
import numpy as np
import pytest

from exmc import Builder, Custom, value
from exmc.compiler import compile_model
from exmc.runtime.chain import make_settings, run_chain, start_state
from exmc.samplers.adaptation.metric import update_metric, welford_add
from exmc.samplers.integrators import Metric, draw_momentum, velocity
from exmc.samplers.nuts import STAT_NAMES, run_block
from exmc.samplers.trajectory import make_workspace

STAT = {name: i for i, name in enumerate(STAT_NAMES)}
COV = np.array([[1.0, 0.95, 0.0],
                [0.95, 1.0, 0.3],
                [0.0, 0.3, 4.0]])


@pytest.fixture(scope="module")
def correlated():
    """A 3-d correlated Gaussian (one correlation of 0.95, scales 1 to 2)."""
    precision = np.linalg.inv(COV)
    return compile_model(Builder().rv("x", Custom(logp=-0.5 * (value @ (precision @ value)),
                                                  shape=3)))


SDS = np.array([0.3, 1.0, 3.0, 0.5, 2.0])


@pytest.fixture(scope="module")
def independent():
    """Independent Gaussians with scales 0.3 to 3: what a diagonal metric should learn."""
    return compile_model(Builder().rv("x", Custom(logp=-0.5 * value * value / SDS ** 2,
                                                  shape=5)))


def chain(compiled, seed, num_warmup=300, num_samples=300, dense=False, **kwargs):
    rng = np.random.default_rng(seed)
    state = start_state(compiled, None, rng, dense)
    settings = make_settings(num_warmup, **kwargs)
    return run_chain(compiled, settings, state, rng, num_warmup + num_samples)


def test_same_seed_gives_bit_identical_draws(correlated):
    a, b = chain(correlated, 5), chain(correlated, 5)
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(a.stats, b.stats)
    np.testing.assert_array_equal(a.state.metric.inverse_diag, b.state.metric.inverse_diag)


def test_different_seeds_give_different_draws(correlated):
    a, b = chain(correlated, 5), chain(correlated, 6)
    assert not np.any(np.all(a.draws == b.draws, axis=1))  # not a single draw in common


def run_in_blocks(compiled, seed, sizes, num_warmup=300, dense=False):
    """Run sum(sizes) iterations as consecutive run_block calls of the given sizes."""
    rng = np.random.default_rng(seed)
    state = start_state(compiled, None, rng, dense)
    settings = make_settings(num_warmup)
    total = sum(sizes)
    draws, stats = np.zeros((total, compiled.dim)), np.zeros((total, len(STAT_NAMES)))
    ws = make_workspace(compiled.dim, settings.max_tree_depth)
    done = 0
    for n in sizes:
        run_block(compiled.address, compiled.data, settings, state, rng, ws, n,
                  draws[done:done + n], stats[done:done + n])
        done += n
    return draws, stats, state


@pytest.mark.parametrize("dense", [False, True])
def test_block_boundaries_do_not_change_the_draws(correlated, dense):
    # Boundaries at the first draw, inside and at the edges of metric windows (300 warmup:
    # windows (75, 99) and (100, 249)), and at the end of warmup.
    one = run_in_blocks(correlated, 8, [450], dense=dense)
    many = run_in_blocks(correlated, 8, [1, 74, 1, 24, 1, 99, 50, 49, 1, 1, 149], dense=dense)
    single = run_in_blocks(correlated, 8, [1] * 450, dense=dense)
    for other in (many, single):
        np.testing.assert_array_equal(other[0], one[0])
        np.testing.assert_array_equal(other[1], one[1])
        np.testing.assert_array_equal(other[2].scalars, one[2].scalars)
        np.testing.assert_array_equal(other[2].metric.inverse_dense, one[2].metric.inverse_dense)
        np.testing.assert_array_equal(other[2].metric.inverse_diag, one[2].metric.inverse_diag)


def test_run_chain_blocks_sized_by_time_give_the_same_draws(correlated):
    # run_chain sizes blocks by wall-clock time: different timings, same draws.
    results = []
    for block_seconds in (1e-6, 10.0):
        rng = np.random.default_rng(9)
        state = start_state(correlated, None, rng, False)
        results.append(run_chain(correlated, make_settings(200), state, rng, 500,
                                 block_seconds=block_seconds))
    np.testing.assert_array_equal(results[0].draws, results[1].draws)
    np.testing.assert_array_equal(results[0].stats, results[1].stats)


def test_tree_size_arithmetic(correlated):
    result = chain(correlated, 10, num_warmup=200, num_samples=500, max_tree_depth=10)
    depth, steps = result.stat("tree_depth"), result.stat("n_steps")
    assert np.all((depth >= 0) & (depth <= 10))
    # Depth j means j accepted subtrees, 1 + 2 + ... + 2**(j-1) = 2**j - 1 steps; a rejected
    # (turning or divergent) next subtree of 2**j steps adds between 1 and 2**j more.
    assert np.all(steps >= 2 ** depth - 1) and np.all(steps <= 2 ** (depth + 1) - 1)
    assert np.unique(depth).size >= 2
    # Some trees stop at a U-turn between subtrees (exactly 2**j - 1), others inside one.
    assert np.any(steps == 2 ** depth - 1) and np.any(steps > 2 ** depth - 1)


def test_max_tree_depth_caps_trees(correlated):
    result = chain(correlated, 11, num_warmup=200, num_samples=300, max_tree_depth=2)
    depth, steps = result.stat("tree_depth"), result.stat("n_steps")
    assert depth.max() == 2 and steps.max() <= 3
    assert np.mean(depth == 2) > 0.5  # a correlated target wants longer trees than 3 steps


def test_warmup_flags_and_fixed_step_size_after_warmup(correlated):
    result = chain(correlated, 12, num_warmup=300, num_samples=300)
    warmup = result.stat("warmup")
    np.testing.assert_array_equal(warmup, np.arange(600) < 300)
    step = result.stat("step_size")
    assert np.all(step[300:] == step[300]) and np.unique(step[:300]).size > 10
    assert step[300] == result.state.scalars[2]


def test_adaptation_sanity_after_warmup(independent):
    result = chain(independent, 13, num_warmup=1000, num_samples=1000)
    acceptance = result.stat("acceptance_rate")
    # Dual averaging holds the mean acceptance statistic at the target while it runs (the
    # last metric window, iterations 450-949); the final step exp(x_bar) is a little smaller.
    assert abs(acceptance[450:950].mean() - 0.8) < 0.05
    assert 0.75 < acceptance[1000:].mean() < 0.97
    assert result.stat("diverging")[1000:].sum() == 0
    # The diagonal metric estimates the variances from the last window: with them the
    # target is whitened and the step size is of order one (without them the smallest
    # scale, 0.3, would bound it).
    np.testing.assert_allclose(result.state.metric.inverse_diag, SDS ** 2, rtol=0.5)
    assert 0.4 < result.stat("step_size")[1000] < 1.5


def test_dense_metric_learns_the_covariance_and_shortens_trees(correlated):
    diag = chain(correlated, 14, num_warmup=1000, num_samples=500)
    dense = chain(correlated, 14, num_warmup=1000, num_samples=500, dense=True)
    learned = dense.state.metric.inverse_dense
    scale = np.sqrt(np.outer(np.diag(COV), np.diag(COV)))
    assert np.all(np.abs(learned - COV) < 0.35 * scale), learned
    np.testing.assert_allclose(np.linalg.inv(learned),
                               dense.state.metric.momentum_factor
                               @ dense.state.metric.momentum_factor.T, rtol=1e-10, atol=1e-10)
    # With the correlation of 0.95 removed, trees need fewer steps than with a diagonal metric.
    assert dense.stat("n_steps")[1000:].mean() < 0.7 * diag.stat("n_steps")[1000:].mean()


def test_no_warmup_keeps_the_initial_step_size_and_unit_metric(correlated):
    result = chain(correlated, 15, num_warmup=0, num_samples=50)
    assert np.all(result.stat("step_size") == 1.0)
    np.testing.assert_array_equal(result.state.metric.inverse_diag, np.ones(3))


@pytest.mark.parametrize("dense", [False, True])
def test_energy_errors_of_a_chain(correlated, dense):
    result = chain(correlated, 16, num_warmup=200, num_samples=300, dense=dense)
    error, largest = result.stat("energy_error"), result.stat("max_energy_error")
    # The draw is the start or one of the trajectory's steps, all of which max_energy_error saw.
    assert np.all(np.abs(largest) >= np.abs(error))
    assert np.all(np.isfinite(error)) and np.any(error > 0) and np.any(error < 0)
    # A draw that stays where it was is the start itself: no energy change at all.
    stayed = np.all(result.draws[1:] == result.draws[:-1], axis=1)
    assert np.all(error[1:][stayed] == 0.0)


def test_energy_errors_in_sample_stats(correlated):
    import exmc

    idata = exmc.sample(correlated.model, chains=2, num_warmup=100, num_samples=50, seed=3, cores=1,
                        progressbar=False, diagnostics=False)
    stats = idata.sample_stats
    for name in ("energy_error", "max_energy_error"):  # ArviZ's names
        assert stats[name].shape == (2, 50) and stats[name].dtype == np.float64
    assert np.all(np.abs(stats["max_energy_error"]) >= np.abs(stats["energy_error"]))
    assert stats.attrs["inference_library"] == "exmc"


# --- loops in place of array expressions (shorter compile) give the same bits -------------

@numba.njit
def _velocity_as_before(matrix, p):
    out = np.empty_like(p)
    out[:] = np.dot(matrix, p)
    return out


@numba.njit
def _momentum_as_before(factor, rng, d):
    out = np.empty(d)
    out[:] = np.dot(factor, rng.standard_normal(d))
    return out


@numba.njit
def _welford_as_before(count, mean, m2, q, dense):
    count += 1.0
    delta = q - mean
    mean += delta / count
    if dense:
        m2 += np.outer(q - mean, delta)
    else:
        m2[0] += (q - mean) * delta
    return count


@numba.njit
def _metric_as_before(count, m2, dense):
    n = count
    shrink, ridge = n / (n + 5.0), 1e-3 * 5.0 / (n + 5.0)
    if dense:
        cov = shrink * m2 / (n - 1.0)
        for i in range(cov.shape[0]):
            cov[i, i] += ridge
        return cov, np.linalg.inv(np.linalg.cholesky(cov)).T.copy()
    return (shrink * m2[0] / (n - 1.0) + ridge).reshape(1, -1), np.eye(1)


def test_metric_loops_give_the_bits_of_the_array_expressions_they_replace():
    rng = np.random.default_rng(0)
    d = 5
    a = rng.normal(size=(d, d))
    cov = a @ a.T + d * np.eye(d)
    factor = np.linalg.inv(np.linalg.cholesky(cov)).T.copy()
    metric = Metric(np.ones(d), cov, factor, True)
    p, v = rng.normal(size=d), np.empty(d)
    velocity(metric, p, v)
    np.testing.assert_array_equal(v, _velocity_as_before(cov, p))
    draw_momentum(metric, np.random.default_rng(5), v)
    np.testing.assert_array_equal(v, _momentum_as_before(factor, np.random.default_rng(5), d))
    for dense in (False, True):
        shape = (d, d) if dense else (1, d)
        mean, m2, count = np.zeros(d), np.zeros(shape), 0.0
        want_mean, want_m2, want_count = np.zeros(d), np.zeros(shape), 0.0
        for q in rng.normal(2.0, 3.0, size=(30, d)):
            count = welford_add(count, mean, m2, q, dense)
            want_count = _welford_as_before(want_count, want_mean, want_m2, q, dense)
        np.testing.assert_array_equal(mean, want_mean)
        np.testing.assert_array_equal(m2, want_m2)
        want_metric, want_factor = _metric_as_before(want_count, want_m2.copy(), dense)
        metric = Metric(np.ones(d), np.eye(d), np.eye(d), dense)
        assert update_metric(metric, count, mean, m2)
        if dense:
            np.testing.assert_array_equal(metric.inverse_dense, want_metric)
            np.testing.assert_array_equal(metric.momentum_factor, want_factor)
        else:
            np.testing.assert_array_equal(metric.inverse_diag, want_metric[0])
        assert not mean.any() and not m2.any()  # the window is cleared
