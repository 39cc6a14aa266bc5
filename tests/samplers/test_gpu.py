"""The GPU sampler (``device="cuda"``) on Numba's CUDA simulator: posteriors, seeds, failures, streams.

No GPU is needed: one child process with ``NUMBA_ENABLE_CUDASIM=1`` (which must be
set before numba is imported) makes every run and saves the draws; the tests
here check them.  Posteriors are checked in units of Monte Carlo standard error
(tests/stats.py) against exact answers: two conjugate models, eight schools
(non-centred) by quadrature over (mu, tau), and a density that is NaN beyond a
boundary (evaluations there fail) by quadrature.  Each harness has a negative
control.  Also: same seed same draws, a chain's draws whatever the number of chains,
``blocking=False`` and its abort, every draw streamed, and the counter-based random
streams themselves.  The simulator runs one Python thread per chain, so runs are short:
4 chains, a few hundred warmup and draws (the ESS floor of tests/stats.py holds).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

import exmc
from exmc.runtime.gpu import AllChainsProgress, DeviceReport, check_options
from exmc.runtime.progress import PlainProgress
from tests.stats import assert_mean_close, assert_variance_close

ROOT = Path(__file__).resolve().parents[2]
SEED = 20240601
NN_PRIOR_MEAN, NN_PRIOR_SD, NN_SIGMA = 1.0, 2.0, 1.5
NN_Y = np.random.default_rng(101).normal(3.0, NN_SIGMA, size=20)
GP_ALPHA, GP_RATE = 3.0, 0.5
GP_Y = np.random.default_rng(102).poisson(4.0, size=15).astype(float)
SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])

CHILD = textwrap.dedent("""
    import json, os, sys, time, warnings
    import numpy as np
    sys.path.insert(0, {root!r})
    warnings.simplefilter("ignore")  # uint64 hashing overflows by design; short-run diagnostics
    import exmc
    from exmc import Builder, Custom, Gamma, HalfNormal, Normal, Poisson, ref, value

    out, seed = {out!r}, {seed}
    nn_y, gp_y = np.array({nn_y}), np.array({gp_y})
    schools_y, schools_sigma = np.array({schools_y}), np.array({schools_sigma})
    normal_normal = Builder().rv("mu", Normal(1.0, 2.0)).obs("y", Normal("mu", 1.5), nn_y)
    gamma_poisson = Builder().rv("lam", Gamma(3.0, 0.5)).obs("y", Poisson("lam"), gp_y)
    schools = (Builder().rv("mu", Normal(0.0, 5.0)).rv("tau", HalfNormal(5.0))
               .rv("z", Normal(0.0, 1.0, shape=8))
               .det("theta", ref("mu") + ref("tau") * ref("z"))
               .obs("y", Normal("theta", schools_sigma), schools_y))
    # NaN beyond 1 (log of a negative number): evaluations there fail.
    edge = Builder().rv("x", Custom(-0.5 * value ** 2 + exmc.math.log(1.0 - value)))

    def run(model, **options):
        options = dict(dict(chains=4, num_warmup=300, num_samples=1000, seed=seed,
                            progressbar=False, diagnostics=False, device="cuda"), **options)
        return exmc.sample(model, **options)

    saved, messages = {{}}, []
    idata = run(normal_normal, stream_to=messages.append)
    saved["normal_normal"] = idata.posterior["mu"].values
    saved["messages_per_chain"] = np.bincount([m["chain"] for m in messages
                                              if m["type"] == "exmc_sample"])
    saved["done_messages"] = np.array(sum(m["type"] == "exmc_done" for m in messages))
    saved["idle_lane_share"] = np.array(idata.attrs["device_idle_lane_share"])
    saved["executor"] = np.array(idata.attrs["executor"])
    saved["gamma_poisson"] = run(gamma_poisson).posterior["lam"].values
    idata = run(schools, num_samples=500)
    for name in ("mu", "tau", "z", "theta"):
        saved["schools_" + name] = idata.posterior[name].values
    short = dict(num_warmup=30, num_samples=20)
    saved["two_chains"] = run(normal_normal, chains=2, **short).posterior["mu"].values
    saved["two_chains_again"] = run(normal_normal, chains=2, **short).posterior["mu"].values
    saved["five_chains"] = run(normal_normal, chains=5, **short).posterior["mu"].values
    handle = run(normal_normal, chains=2, blocking=False, **short)
    saved["not_blocking"] = handle.wait().posterior["mu"].values
    idata = run(edge)
    saved["edge"] = idata.posterior["x"].values
    saved["edge_diverging"] = idata.sample_stats["diverging"].values
    handle = run(normal_normal, chains=2, num_warmup=20, num_samples=100_000, blocking=False)
    for _ in range(600):  # poll for the first post-warmup draws, then stop the run
        if handle.inspect() is not None:
            break
        time.sleep(0.1)
    saved["aborted"] = handle.abort().posterior["mu"].values

    from numba import cuda
    from exmc.samplers.gpu.random import chain_keys, standard_normal, uniform

    @cuda.jit
    def draw(keys, uniforms, normals):
        lane = cuda.grid(1)
        if lane < keys.shape[0]:
            for k in range(uniforms.shape[1]):
                uniforms[lane, k] = uniform(keys[lane])
                normals[lane, k] = standard_normal(keys[lane])

    keys = chain_keys(np.random.SeedSequence(seed).spawn(2))
    uniforms, normals = np.zeros((2, 4000)), np.zeros((2, 4000))
    draw[1, 2](keys, uniforms, normals)
    saved["uniforms"], saved["normals"] = uniforms, normals
    os.environ["EXMC_INJECT_FAULTS"] = "0.01"
    idata = run(normal_normal)
    saved["faults"] = idata.posterior["mu"].values
    saved["faults_recovered"] = idata.sample_stats["recovered"].values
    saved["faults_diverging"] = idata.sample_stats["diverging"].values
    np.savez(out, **saved)
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "runs.npz"
    as_list = lambda a: json.dumps(a.tolist())  # noqa: E731
    script = CHILD.format(root=str(ROOT), out=str(out), seed=SEED, nn_y=as_list(NN_Y),
                          gp_y=as_list(GP_Y), schools_y=as_list(SCHOOLS_Y),
                          schools_sigma=as_list(SCHOOLS_SIGMA))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    env.pop("EXMC_INJECT_FAULTS", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(np.load(out))


# --- conjugate models ----------------------------------------------------------------------

def normal_normal_posterior():
    precision = 1.0 / NN_PRIOR_SD ** 2 + NN_Y.size / NN_SIGMA ** 2
    return (NN_PRIOR_MEAN / NN_PRIOR_SD ** 2 + NN_Y.sum() / NN_SIGMA ** 2) / precision, 1.0 / precision


@pytest.mark.timeout(600)
def test_normal_normal(runs):
    mean, var = normal_normal_posterior()
    assert_mean_close(runs["normal_normal"], mean)
    assert_variance_close(runs["normal_normal"], mean, var)
    with pytest.raises(AssertionError, match="mean"):  # negative control: half an sd off
        assert_mean_close(runs["normal_normal"], mean + 0.5 * np.sqrt(var))
    with pytest.raises(AssertionError, match="variance"):
        assert_variance_close(runs["normal_normal"], mean, 1.4 * var)


def test_gamma_poisson(runs):
    shape, rate = GP_ALPHA + GP_Y.sum(), GP_RATE + GP_Y.size
    mean, var = shape / rate, shape / rate ** 2
    assert_mean_close(runs["gamma_poisson"], mean)
    assert_variance_close(runs["gamma_poisson"], mean, var)
    with pytest.raises(AssertionError, match="mean"):  # Gamma's rate read as a scale
        assert_mean_close(runs["gamma_poisson"], (shape) / (1.0 / GP_RATE + GP_Y.size))


# --- eight schools, non-centred ------------------------------------------------------------

def schools_truth():
    """Posterior means and variances of mu, tau, z (8) and means of theta (8), by quadrature.

    theta integrates out: y_j | mu, tau ~ N(mu, sigma_j^2 + tau^2), so p(mu, tau | y) is a
    2-d density on a grid; given (mu, tau), theta_j is normal with mean m_j and variance
    v_j, and z_j = (theta_j - mu) / tau is normal with mean (m_j - mu) / tau and variance
    v_j / tau^2.
    """
    mu = np.linspace(-25.0, 35.0, 1201)[:, None, None]
    tau = np.linspace(1e-6, 45.0, 2401)[None, :, None]
    y, s2 = SCHOOLS_Y, SCHOOLS_SIGMA ** 2
    log_density = (stats.norm.logpdf(mu[..., 0], 0.0, 5.0) + stats.halfnorm.logpdf(tau[..., 0], 0.0, 5.0)
                   + stats.norm.logpdf(y, mu, np.sqrt(s2 + tau ** 2)).sum(axis=-1))
    weight = np.exp(log_density - log_density.max())
    weight /= integrate.trapezoid(integrate.trapezoid(weight, tau[0, :, 0], axis=1), mu[:, 0, 0])

    def expect(f):
        f = np.broadcast_to(f, weight.shape + np.shape(f)[2:]) if np.ndim(f) > 2 else f
        w = weight[..., None] if np.ndim(f) > 2 else weight
        inner = integrate.trapezoid(w * f, tau[0, :, 0], axis=1)
        return integrate.trapezoid(inner, mu[:, 0, 0], axis=0)

    precision = 1.0 / tau ** 2 + 1.0 / s2
    m = (mu / tau ** 2 + y / s2) / precision
    v = 1.0 / precision
    z_mean = (m - mu) / tau
    mu2, tau2 = mu[..., 0], tau[..., 0]
    means = {"mu": expect(mu2), "tau": expect(tau2), "z": expect(z_mean), "theta": expect(m)}
    variances = {"mu": expect((mu2 - means["mu"]) ** 2), "tau": expect((tau2 - means["tau"]) ** 2),
                 "z": expect((z_mean - means["z"]) ** 2 + v / tau ** 2)}
    return means, variances


@pytest.fixture(scope="module")
def schools():
    return schools_truth()


def test_schools_quadrature_agrees_with_importance_sampling(schools):
    # The truth checked independently: prior draws weighted by the marginal likelihood.
    rng = np.random.default_rng(0)
    mu, tau = rng.normal(0.0, 5.0, 400_000), np.abs(rng.normal(0.0, 5.0, 400_000))
    log_weight = stats.norm.logpdf(SCHOOLS_Y, mu[:, None],
                                   np.sqrt(SCHOOLS_SIGMA ** 2 + tau[:, None] ** 2)).sum(axis=1)
    weight = np.exp(log_weight - log_weight.max())
    weight /= weight.sum()
    means, _ = schools
    assert abs(weight @ mu - means["mu"]) < 0.05 and abs(weight @ tau - means["tau"]) < 0.05


def test_eight_schools_noncentred(runs, schools):
    means, variances = schools
    for name in ("mu", "tau", "z"):
        assert_mean_close(runs["schools_" + name], means[name])
        assert_variance_close(runs["schools_" + name], means[name], variances[name])
    assert_mean_close(runs["schools_theta"], means["theta"])
    with pytest.raises(AssertionError, match="mean"):  # negative control: tau one sd too large
        assert_mean_close(runs["schools_tau"], means["tau"] + np.sqrt(variances["tau"]))


# --- reproducibility -----------------------------------------------------------------------

def test_same_seed_same_draws(runs):
    assert np.array_equal(runs["two_chains"], runs["two_chains_again"])


def test_a_chains_draws_do_not_depend_on_how_many_chains_run(runs):
    assert np.array_equal(runs["two_chains"], runs["five_chains"][:2])
    assert not np.array_equal(runs["five_chains"][0], runs["five_chains"][1])


def test_blocking_false_gives_the_same_draws(runs):
    assert np.array_equal(runs["not_blocking"], runs["two_chains"])


def test_abort_returns_what_was_drawn(runs):
    assert 0 < runs["aborted"].shape[1] < 100_000


def test_random_streams_are_uniform_normal_and_independent(runs):
    # Kolmogorov-Smirnov at a 1e-4 level: a wrong transform or a biased hash fails by far.
    for chain in range(2):
        assert stats.kstest(runs["uniforms"][chain], "uniform").pvalue > 1e-4
        assert stats.kstest(runs["normals"][chain], "norm").pvalue > 1e-4
    # Two chains' streams are uncorrelated (|r| < 5 / sqrt(n)), and not shifted copies.
    assert abs(np.corrcoef(runs["normals"])[0, 1]) < 5 / np.sqrt(4000)
    assert not np.isin(runs["uniforms"][0], runs["uniforms"][1]).any()
    with pytest.raises(AssertionError):  # negative control: a skewed sample fails the check
        assert stats.kstest(runs["uniforms"][0] ** 1.3, "uniform").pvalue > 1e-4


# --- failures ------------------------------------------------------------------------------

def edge_truth():
    """Mean and variance of the density proportional to exp(-x^2 / 2) (1 - x) on x < 1."""
    density = lambda x: np.exp(-0.5 * x ** 2) * (1.0 - x)  # noqa: E731
    norm = integrate.quad(density, -np.inf, 1.0)[0]
    mean = integrate.quad(lambda x: x * density(x), -np.inf, 1.0)[0] / norm
    var = integrate.quad(lambda x: (x - mean) ** 2 * density(x), -np.inf, 1.0)[0] / norm
    return mean, var


def test_nan_evaluations_are_divergent_and_the_run_goes_on(runs):
    assert runs["edge_diverging"].sum() > 0
    assert runs["edge"].shape == (4, 1000) and np.all(runs["edge"] < 1.0)
    mean, var = edge_truth()
    assert_mean_close(runs["edge"], mean)
    assert_variance_close(runs["edge"], mean, var)
    with pytest.raises(AssertionError, match="mean"):  # negative control: the unbounded normal
        assert_mean_close(runs["edge"], 0.0)


def test_failed_evaluations_are_recovered_and_the_posterior_is_right(runs):
    recovered, diverging = runs["faults_recovered"], runs["faults_diverging"]
    assert recovered.sum() > 0 and np.all(diverging[recovered])
    mean, var = normal_normal_posterior()
    assert_mean_close(runs["faults"], mean)
    assert_variance_close(runs["faults"], mean, var)


# --- streaming and the device report -------------------------------------------------------

def test_every_draw_is_streamed(runs):
    # Warmup included, one message per draw per chain, and each chain's end.
    assert runs["messages_per_chain"].tolist() == [1300] * 4
    assert int(runs["done_messages"]) == 4
    assert 0.0 <= float(runs["idle_lane_share"]) < 1.0
    assert str(runs["executor"]) == "device"


def test_idle_lane_share_counts_each_warp_at_its_longest_lane():
    report = DeviceReport(chains=34)
    steps = np.ones(34)
    steps[0] = 5.0  # the first warp (32 lanes) lasts 5 steps; the second (2 lanes) 1 step
    report.add_launch(steps, 0.1)
    assert report.lane_steps == 38.0 and report.warp_steps == 32 * 5 + 2 * 1
    assert report.idle_lane_share == pytest.approx(1 - 38 / 162)
    assert report.steps_per_chain_per_launch == pytest.approx(38 / 34)


def test_progress_is_one_line_for_all_chains(tmp_path):
    with (tmp_path / "log").open("w+") as log:
        display = AllChainsProgress(PlainProgress(log, interval=0.0), chains=3)
        with display:
            tasks = [display.add_chain(c, 10) for c in range(3)]
            for done, divergences in ((5, 1), (10, 2)):
                for task in tasks:
                    display.update(task, done, divergences, 0.5, done < 10)
        log.seek(0)
        lines = log.read().splitlines()
    assert len(lines) == 2 and lines[0].startswith("chain 0-2: 5/10 draws (warmup), 3 divergences")
    assert lines[1].startswith("chain 0-2: 10/10 draws (sampling), 6 divergences")


def test_options_the_gpu_does_not_take_are_named():
    with pytest.raises(ValueError, match="does not take dense_mass=True, cores="):
        check_options(True, "stan", 4, None, None)
    model = exmc.Builder().rv("x", exmc.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'tpu'"):
        exmc.sample(model, device="tpu", progressbar=False)


def test_without_a_gpu_device_cuda_says_so():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        pytest.skip("the simulator is on in this process")
    from numba import cuda
    if cuda.is_available():
        pytest.skip("a GPU is present")
    model = exmc.Builder().rv("x", exmc.Normal(0.0, 1.0))
    with pytest.raises(RuntimeError, match="device='cuda': no CUDA GPU found.*NUMBA_ENABLE_CUDASIM"):
        exmc.sample(model, device="cuda", progressbar=False)
