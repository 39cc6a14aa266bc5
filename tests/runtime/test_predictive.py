"""Prior and posterior predictive InferenceData, out-of-sample prediction, and the log-likelihood group."""
import warnings

import arviz as az
import matplotlib
import numpy as np
import pytest
from scipy import stats

import exmc
from tests.stats import assert_mean_close, assert_variance_close

matplotlib.use("Agg")

# Normal mean with known noise: y_i ~ N(mu, SIGMA), mu ~ N(M0, S0).  The posterior is
# N(m, v) and the predictive of a new y is N(m, v + SIGMA^2).
SIGMA, M0, S0 = 2.0, 1.0, 3.0
Y = np.array([3.1, 0.4, 2.2, 5.0, 1.7, 2.9])


@exmc.model
def normal_mean(y):
    mu = exmc.Normal(M0, S0)
    obs = exmc.Normal(mu, SIGMA, observed=y)


def _exact_posterior():
    v = 1.0 / (1.0 / S0 ** 2 + len(Y) / SIGMA ** 2)
    return v * (M0 / S0 ** 2 + Y.sum() / SIGMA ** 2), v


def _posterior(chains=4, draws=2500, seed=0, **values):
    """InferenceData whose posterior holds independent draws, given as (chains * draws, ...)."""
    return az.from_dict(posterior={k: np.reshape(v, (chains, draws) + np.shape(v)[1:])
                                   for k, v in values.items()})


def test_posterior_predictive_of_a_conjugate_model_matches_its_closed_form():
    m, v = _exact_posterior()
    mu = np.random.default_rng(1).normal(m, np.sqrt(v), 10_000)
    predictive = exmc.sample_posterior_predictive(normal_mean(Y), _posterior(mu=mu), seed=2)
    y = predictive.posterior_predictive["obs"].values
    assert y.shape == (4, 2500, len(Y))
    assert_mean_close(y, m)
    assert_variance_close(y, m, v + SIGMA ** 2)
    with pytest.raises(AssertionError, match="variance"):  # negative control: the noise left out
        assert_variance_close(y, m, v)
    np.testing.assert_array_equal(predictive.observed_data["obs"].values, Y)
    again = exmc.sample_posterior_predictive(normal_mean(Y), _posterior(mu=mu), seed=2)
    np.testing.assert_array_equal(again.posterior_predictive["obs"].values, y)


def test_prior_predictive_groups_and_plot_ppc():
    prior = exmc.sample_prior_predictive(normal_mean(Y), draws=300, seed=3)
    assert {"prior", "prior_predictive", "observed_data"} <= set(prior.groups())
    assert prior.prior["mu"].shape == (1, 300)
    assert prior.prior_predictive["obs"].shape == (1, 300, len(Y))
    assert prior.prior.attrs["inference_library"] == "exmc"
    az.plot_ppc(prior, group="prior", num_pp_samples=50)
    matplotlib.pyplot.close("all")


# Regression: out-of-sample prediction with the model rebuilt for new inputs.
@exmc.model
def regression(x, y):
    a = exmc.Normal(0.0, 5.0)
    b = exmc.Normal(0.0, 5.0)
    mean = exmc.Deterministic(a + b * x)
    out = exmc.Normal(mean, 0.5, observed=y)


X = np.linspace(-1.0, 1.0, 8)


def test_out_of_sample_prediction_with_the_model_rebuilt_for_new_data():
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, 0.1, 4000), rng.normal(2.0, 0.1, 4000)
    idata = _posterior(draws=1000, a=a, b=b)
    x_new = np.array([-3.0, 0.0, 3.0, 10.0])
    # observations left out (None): ``out`` becomes a variable with the new inputs' shape
    new = exmc.sample_posterior_predictive(regression(x_new, None), idata, seed=5,
                                           var_names=["out", "mean"], predictions=True)
    assert {"predictions", "predictions_constant_data"} <= set(new.groups())
    np.testing.assert_array_equal(new.predictions_constant_data["x"].values, x_new)
    mean = new.predictions["mean"].values.reshape(-1, 4)
    np.testing.assert_allclose(mean, a[:, None] + b[:, None] * x_new)  # recomputed, new data
    out = new.predictions["out"].values.reshape(-1, 4)
    assert_mean_close(out[None], 1.0 + 2.0 * x_new)
    # a placeholder of the new shape works too, and extends the InferenceData given
    extended = exmc.sample_posterior_predictive(regression(x_new, np.zeros(4)), idata, seed=5,
                                                extend_inferencedata=True)
    assert extended is idata and idata.posterior_predictive["out"].shape == (4, 1000, 4)


def test_bad_input_gets_a_clear_error():
    model = regression(X, np.zeros(8))
    idata = _posterior(draws=10, a=np.zeros(40), b=np.zeros(40))
    with pytest.raises(ValueError, match="no variable 'outt' \\(did you mean 'out'\\?\\)"):
        exmc.sample_posterior_predictive(model, idata, var_names=["outt"])
    with pytest.raises(ValueError, match="has no posterior group"):
        exmc.sample_posterior_predictive(model, az.from_dict(prior={"a": np.zeros((1, 5))}))
    with pytest.raises(TypeError, match="needs an arviz.InferenceData"):
        exmc.sample_posterior_predictive(model, {"a": np.zeros(3)})
    wrong = _posterior(draws=10, a=np.zeros((40, 2)), b=np.zeros(40))
    with pytest.raises(ValueError, match="'a': the posterior holds values of shape \\(2,\\)"):
        exmc.sample_posterior_predictive(model, wrong)
    with pytest.raises(exmc.ModelError, match="do not broadcast"):  # new data that does not fit
        exmc.sample_posterior_predictive(regression(X, np.zeros(5)), idata)
    with pytest.raises(ValueError, match="draws must be an integer"):
        exmc.sample_prior_predictive(model, draws=0)
    with pytest.raises(ValueError, match="the posterior has no values of 'b'"):
        exmc.compute_log_likelihood(model, _posterior(draws=10, a=np.zeros(40)))


# ---- log-likelihood ------------------------------------------------------------------------
COUNTS = np.array([3.0, 0.0, 5.0, 2.0])


@exmc.model
def two_likelihoods(y, counts, scale):
    mu = exmc.Normal(0.0, scale)
    sigma = exmc.HalfNormal(1.0)
    rate = exmc.Uniform(mu - 1.0, mu + 3.0)  # bounds that depend on another variable
    w = exmc.Dirichlet(np.ones(3))  # a vector transform read back by compute_log_likelihood
    obs = exmc.Normal(mu, sigma, observed=y)
    hits = exmc.Poisson(exmc.math.exp(rate) * w[0] * 3.0, observed=counts)


@pytest.fixture(scope="module")
def fitted():
    """Two models of one structure (the second's prior far too narrow): one compile."""
    runs = {}
    for name, scale in (("wide", 10.0), ("narrow", 0.05)):
        model = two_likelihoods(Y, COUNTS, scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs[name] = model, exmc.sample(model, num_samples=300, num_warmup=300, chains=2,
                                            seed=6, progressbar=False, log_likelihood=True,
                                            diagnostics=False)
    return runs


def test_log_likelihood_group_matches_scipy_pointwise(fitted):
    model, idata = fitted["wide"]
    post = idata.posterior
    mu, sigma = post["mu"].values[..., None], post["sigma"].values[..., None]
    rate, w = post["rate"].values[..., None], post["w"].values[..., :1]
    np.testing.assert_allclose(idata.log_likelihood["obs"].values,
                               stats.norm.logpdf(Y, mu, sigma), rtol=1e-9)
    np.testing.assert_allclose(idata.log_likelihood["hits"].values,
                               stats.poisson.logpmf(COUNTS, np.exp(rate) * w * 3.0), rtol=1e-9)
    # afterwards, from the constrained posterior: the same values
    later = exmc.compute_log_likelihood(model, idata, extend_inferencedata=False)
    for name in ("obs", "hits"):
        np.testing.assert_allclose(later.log_likelihood[name].values,
                                   idata.log_likelihood[name].values, rtol=1e-8, atol=1e-10)


def test_loo_waic_and_compare_run(fitted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's notes on the Pareto k of a tiny data set
        loo = az.loo(fitted["wide"][1], var_name="obs")
        waic = az.waic(fitted["wide"][1], var_name="obs")
        table = az.compare({k: v[1] for k, v in fitted.items()}, var_name="obs")
    assert np.isfinite(loo.elpd_loo) and np.isfinite(waic.elpd_waic)
    assert table.index[0] == "wide"  # the prior that lets mu reach the data predicts better


def test_plot_ppc_on_posterior_predictive(fitted):
    model, idata = fitted["wide"]
    predictive = exmc.sample_posterior_predictive(model, idata, seed=7)
    assert set(predictive.posterior_predictive) == {"obs", "hits"}
    az.plot_ppc(predictive, var_names=["obs"], num_pp_samples=50)
    matplotlib.pyplot.close("all")


def test_warmup_log_likelihood_and_netcdf_round_trip(fitted, tmp_path):
    model, _ = fitted["wide"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = exmc.sample(model, num_samples=20, num_warmup=30, chains=1, seed=8,
                            progressbar=False, save_warmup=True, log_likelihood=True,
                            diagnostics=False)
    assert idata.log_likelihood["obs"].shape == (1, 20, len(Y))
    assert idata.warmup_log_likelihood["hits"].shape == (1, 30, len(COUNTS))
    assert idata.log_likelihood.attrs["inference_library"] == "exmc"
    idata.to_netcdf(tmp_path / "trace.nc")
    back = az.from_netcdf(tmp_path / "trace.nc")
    np.testing.assert_array_equal(back.log_likelihood["obs"].values,
                                  idata.log_likelihood["obs"].values)


SCHOOLS = ["Choate", "Deerfield", "Phillips"]


@exmc.model(coords=lambda y: {"school": SCHOOLS[:len(y)]})
def labelled(y):
    mu = exmc.Normal(0.0, 5.0)
    z = exmc.Normal(0.0, 1.0, dims="school")
    theta = exmc.Deterministic(mu + z, dims="school")
    obs = exmc.Normal(theta, 1.0, observed=y, dims="school")
    pot = exmc.Potential("pot", -0.5 * mu ** 2)


def test_dims_and_coords_label_every_group_and_potentials_are_not_drawn():
    from exmc.runtime.predictive import log_likelihood_dataset

    model = labelled(np.array([1.0, 2.0, 3.0]))
    prior = exmc.sample_prior_predictive(model, 50, seed=9)
    assert "pot" not in prior.prior and "pot" not in prior.prior_predictive
    assert prior.prior_predictive["obs"].dims == ("chain", "draw", "school")
    assert list(prior.prior["theta"].coords["school"].values) == SCHOOLS
    idata = _posterior(chains=2, draws=25, mu=prior.prior["mu"].values[0],
                       z=prior.prior["z"].values[0])
    predictive = exmc.sample_posterior_predictive(model, idata, seed=9)
    assert list(predictive.posterior_predictive) == ["obs"]
    assert predictive.posterior_predictive["obs"].dims == ("chain", "draw", "school")
    group = log_likelihood_dataset({"obs": np.zeros((2, 25, 3))}, model)
    assert list(group["obs"].coords["school"].values) == SCHOOLS
