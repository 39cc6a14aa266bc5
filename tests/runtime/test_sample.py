"""exmc.sample: the InferenceData it returns, its arguments, seeds, init, and interruption."""
import arviz as az
import numpy as np
import pytest

import exmc
from exmc import Builder, HalfNormal, Normal, ref
from exmc.runtime import chain as chain_module

Y = np.random.default_rng(5).normal(1.0, 2.0, size=50)


def model():
    return (Builder()
            .rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(5))
            .rv("offsets", Normal(0, 1, shape=3))
            .det("shifted", ref("mu") + ref("offsets"))
            .obs("y", Normal("mu", "sigma"), Y))


def run(**kwargs):
    options = dict(chains=2, num_samples=100, num_warmup=100, seed=3, progressbar=False)
    options.update(kwargs)
    return exmc.sample(model(), **options)


def test_inference_data_layout():
    idata = run(save_warmup=True)
    assert isinstance(idata, az.InferenceData)
    post = idata.posterior
    assert post["mu"].shape == (2, 100) and post["offsets"].shape == (2, 100, 3)
    np.testing.assert_allclose(post["shifted"], post["mu"] + post["offsets"])
    assert np.all(post["sigma"] > 0)
    stats = idata.sample_stats
    for name in ("lp", "diverging", "energy", "tree_depth", "n_steps", "step_size",
                 "acceptance_rate", "recovered"):
        assert stats[name].shape == (2, 100), name
    assert stats["diverging"].dtype == bool and stats["tree_depth"].dtype.kind == "i"
    np.testing.assert_array_equal(idata.observed_data["y"], Y)
    assert idata.warmup_posterior["mu"].shape == (2, 100)
    assert idata.attrs["sampling_time"] > 0 and idata.attrs["compile_time"] >= 0
    # ArviZ's schema names the library that made the data.
    assert post.attrs["inference_library"] == "exmc"
    assert post.attrs["inference_library_version"] == exmc.__version__
    # Post-warmup draws use one step size per chain: the adapted one.
    assert np.all(stats["step_size"].max("draw") == stats["step_size"].min("draw"))


def test_same_seed_same_draws_different_seed_different_draws():
    a, b, c = run(seed=11), run(seed=11), run(seed=12)
    np.testing.assert_array_equal(a.posterior["mu"], b.posterior["mu"])
    np.testing.assert_array_equal(a.sample_stats["energy"], b.sample_stats["energy"])
    assert not np.array_equal(a.posterior["mu"], c.posterior["mu"])
    assert not np.array_equal(a.posterior["mu"][0], a.posterior["mu"][1])  # chains differ


def test_init_values_are_used():
    idata = run(chains=1, num_warmup=0, num_samples=1, init={"mu": 40.0, "sigma": 0.5,
                                                                "offsets": np.zeros(3)},
                max_tree_depth=1)
    # One short transition from mu = 40 cannot reach the data's mean near 1.
    assert float(idata.posterior["mu"][0, 0]) > 20


@pytest.mark.parametrize("kwargs, message", [
    (dict(init={"nope": 1.0}), "'nope', which are not sampled variables; sampled variables: mu, sigma, offsets"),
    (dict(init={"sigma": -1.0}), "init value for 'sigma'"),
    (dict(init={"offsets": [1.0, 2.0]}), "has shape \\(2,\\), expected \\(3,\\)"),
    (dict(num_samples=0), "num_samples must be an integer >= 1"),
    (dict(num_warmup=-1), "num_warmup must be an integer >= 0"),
    (dict(chains=1.5), "chains must be an integer"),
    (dict(target_accept=1.2), "target_accept must be in"),
    (dict(max_tree_depth=0), "max_tree_depth must be an integer >= 1"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(**kwargs)


def test_not_a_model():
    with pytest.raises(TypeError, match="needs a model"):
        exmc.sample(lambda: None)


def test_impossible_start_is_reported():
    m = Builder().rv("a", Normal(0, 1)).rv("b", exmc.Custom(logp=exmc.math.log(-exmc.math.exp("a"))))
    with pytest.raises(ValueError, match="no starting point with finite log density"):
        exmc.sample(m, chains=1, num_samples=5, num_warmup=5, progressbar=False)


def test_interrupt_keeps_every_finished_draw(monkeypatch):
    real_run_block = chain_module.run_block
    calls_per_chain = {}

    def interrupted_in_second_chain(address, data, settings, state, rng, ws, n, *rest):
        if n:  # n == 0 is the kernel warm-up before sampling
            calls = calls_per_chain.setdefault(id(state), [])
            calls.append(1)
            if len(calls_per_chain) == 2 and len(calls) == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the second chain
        return real_run_block(address, data, settings, state, rng, ws, n, *rest)

    monkeypatch.setattr(chain_module, "run_block", interrupted_in_second_chain)
    with pytest.warns(RuntimeWarning, match="sampling was interrupted: returning 1 of 3 chains with 200 "):
        idata = run(chains=3, num_samples=200, num_warmup=50, cores=1)  # in this process
    assert (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]) == (1, 200)
    assert np.all(np.isfinite(idata.posterior["mu"]))


def test_progress_bar_runs():
    idata = run(chains=1, num_samples=20, num_warmup=20, progressbar=True)
    assert idata.posterior.sizes["draw"] == 20


def test_dense_mass_runs_and_adapts():
    idata = run(chains=1, num_samples=200, num_warmup=300, dense_mass=True)
    assert idata.attrs["dense_mass"] == 1
    assert abs(float(idata.posterior["mu"].mean()) - Y.mean()) < 1.0


def test_parameter_leaving_its_domain_is_a_divergence_not_fatal():
    # sigma = a can go negative: Stan would throw a domain error and reject; here the
    # evaluation reports it, the subtree ends as a divergence, and the chain goes on.  It is
    # a property of the target (zero density), not a failure: not "recovered", and it feeds
    # step-size adaptation, so warmup shrinks the step instead of getting stuck.
    m = (Builder().rv("a", Normal(1.0, 1.0))
         .obs("y", Normal(0.0, "a"), np.array([0.1, -0.2, 0.3])))
    idata = exmc.sample(m, chains=1, num_samples=300, num_warmup=300, seed=4, progressbar=False,
                        save_warmup=True)
    warm = idata.warmup_sample_stats
    assert int(warm["diverging"].sum()) > 0
    assert int(warm["recovered"].sum() + idata.sample_stats["recovered"].sum()) == 0
    assert np.all(idata.posterior["a"] > 0)  # draws never land where the density is undefined


def test_pymc_names_get_exmc_names():
    with pytest.raises(TypeError, match=r"draws= \(exmc calls it num_samples=\); "
                                        r"tune= \(exmc calls it num_warmup=\)"):
        exmc.sample(model(), draws=100, tune=100)
    with pytest.raises(TypeError, match=r"random_seed= \(exmc calls it seed=\)"):
        exmc.sample(model(), random_seed=1)
    with pytest.raises(TypeError, match=r"return_inferencedata= \(exmc needs no such argument"):
        exmc.sample(model(), return_inferencedata=True)
    with pytest.raises(TypeError, match=r"num_sample= \(did you mean num_samples=\?\)"):
        exmc.sample(model(), num_sample=10)


def test_dims_and_coords_label_the_inference_data():
    schools = ["Choate", "Deerfield", "Phillips"]

    @exmc.model(coords=lambda y: {"school": schools[:len(y)]})
    def hierarchy(y):
        mu = Normal(0, 5)
        z = Normal(0, 1, dims="school")
        theta = exmc.Deterministic(mu + z, dims="school")
        obs = Normal(theta, 1.0, observed=y, dims="school")  # noqa: F841

    idata = exmc.sample(hierarchy(np.array([1.0, 2.0, 3.0])), chains=1, num_samples=20,
                        num_warmup=20, progressbar=False, diagnostics=False)
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert list(idata.posterior["z"].coords["school"].values) == schools
    assert idata.observed_data["obs"].dims == ("school",)


def test_chees_is_a_gpu_sampler_and_unknown_samplers_are_named():
    with pytest.raises(ValueError, match="device='cuda'"):
        exmc.sample(model(), sampler="chees", progressbar=False)
    with pytest.raises(ValueError, match="'hmc'"):
        exmc.sample(model(), sampler="hmc", progressbar=False)
