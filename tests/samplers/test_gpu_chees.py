"""ChEES-HMC on the device (``device="cuda"``, ``sampler="chees"``) under Numba's CUDA simulator.

As tests/samplers/test_gpu.py: one child process with ``NUMBA_ENABLE_CUDASIM=1`` makes
every run (through ``exmc.runtime.gpu.device_sampler`` and ``run_on_device``, what
``exmc.sample(device="cuda", sampler="chees")`` runs) and saves the draws; the tests
check them.  Posterior moments in MCSE units (tests/stats.py; ArviZ's ESS over all
chains) on two conjugate models and eight schools non-centred (truth by quadrature,
from test_gpu.py), each with a negative control; the same seed gives the same draws;
every chain makes the same number of leapfrog steps (no idle lanes); without warmup
(nothing shared) a chain's draws do not depend on how many chains run; evaluations
that fail are divergent and the run goes on.  8 chains, short runs: the simulator runs
a Python thread per chain.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.samplers.test_gpu import (GP_ALPHA, GP_RATE, GP_Y, NN_Y, ROOT, SCHOOLS_SIGMA,
                                     SCHOOLS_Y, edge_truth, normal_normal_posterior,
                                     schools_truth)
from exmc.runtime.gpu import DeviceReport, check_sampler
from tests.stats import assert_mean_close, assert_variance_close

SEED = 20240602
# ChEES-HMC on the simulator takes about 100 s on 2 cores: out of the default run (the suite's
# 15 minutes); python -m pytest -m slow runs it.  NUTS's device tests (test_gpu.py) stay in.
pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    sys.path.insert(0, {root!r})
    warnings.simplefilter("ignore")  # uint64 hashing overflows by design
    import exmc
    from exmc import Builder, Custom, Gamma, HalfNormal, Normal, Poisson, ref, value
    from exmc.compiler import compile_model
    from exmc.runtime.chain import make_settings
    from exmc.runtime.gpu import device_sampler, run_on_device
    from exmc.samplers.nuts import STAT_NAMES

    out, seed = {out!r}, {seed}
    nn_y, gp_y = np.array({nn_y}), np.array({gp_y})
    schools_y, schools_sigma = np.array({schools_y}), np.array({schools_sigma})
    normal_normal = Builder().rv("mu", Normal(1.0, 2.0)).obs("y", Normal("mu", 1.5), nn_y)
    gamma_poisson = Builder().rv("lam", Gamma(3.0, 0.5)).obs("y", Poisson("lam"), gp_y)
    schools = (Builder().rv("mu", Normal(0.0, 5.0)).rv("tau", HalfNormal(5.0))
               .rv("z", Normal(0.0, 1.0, shape=8))
               .det("theta", ref("mu") + ref("tau") * ref("z"))
               .obs("y", Normal("theta", schools_sigma), schools_y))
    edge = Builder().rv("x", Custom(-0.5 * value ** 2 + exmc.math.log(1.0 - value)))

    def run(model, chains=8, num_warmup=150, num_samples=150, seed=seed):
        compiled = compile_model(model)
        sampler = device_sampler(model, compiled, make_settings(num_warmup), "chees")
        results, report = run_on_device(sampler, np.random.SeedSequence(seed).spawn(chains),
                                        None, num_warmup + num_samples,
                                        lambda *args: None, None)
        draws = np.stack([r.draws[num_warmup:] for r in results])
        stats = np.stack([r.stats for r in results])
        values = compiled.constrain(draws.reshape(-1, compiled.dim))
        values = {{k: v.reshape(chains, num_samples, *v.shape[1:]) for k, v in values.items()}}
        return values, stats, report, sampler.adapted()

    saved = {{}}
    values, stats, report, adapted = run(normal_normal)
    saved["normal_normal"] = values["mu"]
    saved["nn_stats"] = stats
    saved["nn_idle"] = np.array(report.idle_lane_share)
    saved["nn_attrs"] = np.array(json.dumps(report.attrs()))
    saved["nn_step"], saved["nn_length"] = adapted["step_size"], adapted["trajectory_length"]
    saved["nn_inverse_diag"] = adapted["inverse_diag"]
    saved["gamma_poisson"] = run(gamma_poisson)[0]["lam"]
    values, stats, report, _ = run(schools, num_warmup=200, num_samples=200)
    for name in ("mu", "tau", "z", "theta"):
        saved["schools_" + name] = values[name]
    saved["schools_stats"] = stats
    short = dict(num_warmup=20, num_samples=10)
    saved["two"] = run(normal_normal, chains=2, **short)[0]["mu"]
    saved["two_again"] = run(normal_normal, chains=2, **short)[0]["mu"]
    saved["other_seed"] = run(normal_normal, chains=2, seed=seed + 1, **short)[0]["mu"]
    no_warmup = dict(num_warmup=0, num_samples=10)
    saved["fixed_two"] = run(normal_normal, chains=2, **no_warmup)[0]["mu"]
    saved["fixed_five"] = run(normal_normal, chains=5, **no_warmup)[0]["mu"]
    values, stats, _, _ = run(edge)
    saved["edge"] = values["x"]
    saved["edge_stats"] = stats
    saved["stat_names"] = np.array(STAT_NAMES)
    np.savez(out, **saved)
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("chees") / "runs.npz"
    as_list = lambda a: json.dumps(a.tolist())  # noqa: E731
    script = CHILD.format(root=str(ROOT), out=str(out), seed=SEED, nn_y=as_list(NN_Y),
                          gp_y=as_list(GP_Y), schools_y=as_list(SCHOOLS_Y),
                          schools_sigma=as_list(SCHOOLS_SIGMA))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    env.pop("EXMC_INJECT_FAULTS", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-4000:]
    saved = dict(np.load(out))
    saved["column"] = {str(n): i for i, n in enumerate(saved["stat_names"])}
    return saved


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
        assert_mean_close(runs["gamma_poisson"], shape / (1.0 / GP_RATE + GP_Y.size))


def test_eight_schools_noncentred(runs):
    means, variances = schools_truth()
    for name in ("mu", "tau", "z"):
        assert_mean_close(runs["schools_" + name], means[name])
        assert_variance_close(runs["schools_" + name], means[name], variances[name])
    assert_mean_close(runs["schools_theta"], means["theta"])
    with pytest.raises(AssertionError, match="mean"):  # negative control: tau one sd too large
        assert_mean_close(runs["schools_tau"], means["tau"] + np.sqrt(variances["tau"]))


def test_every_chain_makes_the_same_number_of_leapfrog_steps(runs):
    # Lockstep: per iteration one count for all chains, except a divergence's early exit.
    for key in ("nn_stats", "schools_stats"):
        stats, col = runs[key], runs["column"]
        steps, diverging = stats[..., col["n_steps"]], stats[..., col["diverging"]] > 0
        clean = ~diverging.any(axis=0)  # iterations in which no chain diverged
        assert clean.sum() > 0.9 * clean.size
        assert np.all(steps[:, clean] == steps[0, clean])
        assert len(np.unique(steps[0, clean])) > 3  # jittered: the count varies by iteration
    assert float(runs["nn_idle"]) < 0.01  # only a divergent lane stops early


def test_trajectory_length_is_near_a_quarter_period_on_a_gaussian(runs):
    # On a Gaussian with sd s and inverse metric m, a leapfrog trajectory of time t turns
    # by t sqrt(m) / s radians; ChEES's best jittered length T (mean t = T / 2) makes the
    # mean turn about a quarter period (pi / 2).  A sign error in the ChEES gradient
    # drives T to one step instead.
    _, var = normal_normal_posterior()
    turn = runs["nn_length"] * np.sqrt(runs["nn_inverse_diag"][0] / var)
    assert 0.4 * np.pi < turn < 2.0 * np.pi, turn
    assert runs["nn_length"] > 2.0 * runs["nn_step"]


def test_the_run_reports_chees_and_its_adapted_parameters(runs):
    attrs = json.loads(str(runs["nn_attrs"]))
    assert attrs["sampler"] == "ChEES-HMC" and attrs["device_idle_lane_share"] < 0.01
    assert attrs["chees_step_size"] == runs["nn_step"]
    assert attrs["chees_trajectory_length"] == runs["nn_length"]


def test_same_seed_same_draws(runs):
    assert np.array_equal(runs["two"], runs["two_again"])
    assert not np.array_equal(runs["two"], runs["other_seed"])


def test_without_warmup_a_chains_draws_do_not_depend_on_how_many_chains_run(runs):
    # Nothing is shared without adaptation: each chain's counter-based stream decides alone.
    assert np.array_equal(runs["fixed_two"], runs["fixed_five"][:2])
    assert not np.array_equal(runs["fixed_five"][0], runs["fixed_five"][1])


def test_nan_evaluations_are_divergent_and_the_run_goes_on(runs):
    stats, col = runs["edge_stats"], runs["column"]
    assert stats[..., col["diverging"]].sum() > 0
    assert runs["edge"].shape == (8, 150) and np.all(runs["edge"] < 1.0)
    mean, var = edge_truth()
    assert_mean_close(runs["edge"], mean)
    assert_variance_close(runs["edge"], mean, var)
    with pytest.raises(AssertionError, match="mean"):  # negative control: the unbounded normal
        assert_mean_close(runs["edge"], 0.0)


def test_stats_rows_fill_the_columns_by_name(runs):
    stats, col = runs["nn_stats"], runs["column"]
    warmup, accept = stats[..., col["warmup"]], stats[..., col["acceptance_rate"]]
    assert np.all(warmup[:, :150] == 1.0) and np.all(warmup[:, 150:] == 0.0)
    assert np.all((accept >= 0) & (accept <= 1))
    assert np.all(stats[..., col["n_steps"]] >= 1)
    # After warmup the step size is one value, shared by every chain and draw.
    assert len(np.unique(stats[:, 150:, col["step_size"]])) == 1
    if "energy_error" in col:  # columns being added to STAT_NAMES: written when present
        clean = stats[..., col["diverging"]] == 0
        error = stats[..., col["energy_error"]][clean]
        largest = stats[..., col["max_energy_error"]][clean]
        assert np.all(np.isfinite(error)) and np.all(np.abs(largest) >= np.abs(error) - 1e-12)


def test_sampler_names_are_checked():
    check_sampler("nuts", "cpu")
    check_sampler("chees", "cuda")
    with pytest.raises(ValueError, match="sampler='chees' runs on device='cuda' only"):
        check_sampler("chees", "cpu")
    with pytest.raises(ValueError, match="sampler must be one of 'nuts', 'chees', got 'meads'"):
        check_sampler("meads", "cuda")


def test_divergence_benchmark_counts_idle_lanes_as_the_device_report_does():
    from benchmarks.gpu_divergence import idle_share
    counts = np.random.default_rng(3).choice([3.0, 7.0, 15.0], size=(70, 40))
    report = DeviceReport(chains=70)
    for first in range(0, 40, 10):  # launches of 10 draws
        report.add_launch(counts[:, first:first + 10].sum(axis=1), 0.0)
    share, per_launch = idle_share(counts, 10)
    assert share == pytest.approx(report.idle_lane_share)
    assert per_launch == pytest.approx(report.steps_per_chain_per_launch)
    assert idle_share(np.full((64, 5), 7.0), 1)[0] == 0.0  # lockstep: no idle lane
