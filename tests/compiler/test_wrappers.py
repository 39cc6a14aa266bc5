"""Truncated, Censored, Mixture, Potential, missing data and the structured multivariate families.

Log densities against scipy (or closed forms), gradients against finite
differences, random draws' moments, serialisation round trips, a few sampled
posteriors against known truths in MCSE units (tests/stats.py) with negative
controls, and the errors a user meets.
"""
import functools
import warnings

import numpy as np
import pytest
from scipy import stats

import exmc
from exmc import ref
from exmc.compiler import compile_model
from exmc.compiler.families import KERNELS
from tests.stats import assert_expectations_close

S = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.5]])
Y3 = np.random.default_rng(0).normal(size=(5, 3))
W = np.array([[0, 1, 0, 0], [1, 0, 1, 1], [0, 1, 0, 1], [0, 1, 1, 0]], dtype=float)
X = np.array([-2.0, 0.5, 3.0])


def _icar(v):
    x, s = v["x"], v["s"]
    edges = sum((x[i] - x[j]) ** 2 for i in range(4) for j in range(i + 1, 4) if W[i, j])
    return (stats.halfnorm.logpdf(s) - edges / (2 * s * s) - 3 * np.log(s)
            + stats.norm(0, 0.004).logpdf(x.sum()))


def _ar(v):
    x, rho = v["x"], v["rho"]
    lp = stats.norm.logpdf(rho).sum() + stats.norm(0, 100).logpdf(x[:2]).sum()
    means = 0.3 + rho[0] * x[1:5] + rho[1] * x[:4]
    return lp + stats.norm(means, 0.5).logpdf(x[2:]).sum()


def _mixture(v):
    w, mu = v["w"], v["mu"]
    return (stats.norm(0, 5).logpdf(mu).sum() + stats.dirichlet(np.ones(2)).logpdf(w) + np.log(w).sum()
            + np.log(w[0] * stats.norm(mu[0], 1).pdf(X) + w[1] * stats.t(3, mu[1], 2).pdf(X)).sum())


CENSORED = np.array([0.3, 1.2, 2.5, 0.2, 3.0, 0.2])
TRUNCATED = np.array([0.3, 1.2, 2.5, 0.1])

# name -> (model, log density of the constrained values from scipy, less the log-Jacobians
# of the positive scalars listed, which are added from z)
MODELS = {
    "truncated": (lambda: exmc.Builder().rv("mu", exmc.Normal(0, 3)).rv("s", exmc.HalfNormal(2))
                  .obs("y", exmc.Truncated(exmc.Normal("mu", "s"), 0.0, 3.0), TRUNCATED),
                  lambda v: stats.norm(0, 3).logpdf(v["mu"]) + stats.halfnorm(scale=2).logpdf(v["s"])
                  + stats.truncnorm(-v["mu"] / v["s"], (3 - v["mu"]) / v["s"], v["mu"], v["s"])
                  .logpdf(TRUNCATED).sum(), ["s"]),
    "truncated-lower-only": (lambda: exmc.Builder().rv("lam", exmc.HalfNormal(2))
                             .obs("y", exmc.Truncated(exmc.Exponential("lam"), lower=0.5), TRUNCATED + 0.5),
                             lambda v: stats.halfnorm(scale=2).logpdf(v["lam"])
                             + stats.expon(scale=1 / v["lam"]).logpdf(TRUNCATED).sum(), ["lam"]),
    "truncated-latent-upper-tail": (lambda: exmc.Builder().rv("x", exmc.Truncated(exmc.Normal(0, 1), 4.0, 6.0)),
                                    lambda v: stats.truncnorm(4.0, 6.0).logpdf(v["x"])  # + interval Jacobian
                                    + np.log((v["x"] - 4.0) * (6.0 - v["x"]) / 2.0), []),
    "censored": (lambda: exmc.Builder().rv("lam", exmc.HalfNormal(2))
                 .obs("y", exmc.Censored(exmc.Exponential("lam"), 0.2, 3.0), CENSORED),
                 lambda v: stats.halfnorm(scale=2).logpdf(v["lam"])
                 + stats.expon(scale=1 / v["lam"]).logpdf(CENSORED[:3]).sum()
                 + stats.expon(scale=1 / v["lam"]).logsf(3.0)
                 + 2 * stats.expon(scale=1 / v["lam"]).logcdf(0.2), ["lam"]),
    # the incomplete-gamma cdfs: shape and rate both learned through a censoring bound
    "censored-gamma": (lambda: exmc.Builder().rv("a", exmc.HalfNormal(3)).rv("b", exmc.HalfNormal(2))
                       .obs("y", exmc.Censored(exmc.Gamma("a", "b"), 0.2, 3.0), CENSORED),
                       lambda v: stats.halfnorm(scale=3).logpdf(v["a"]) + stats.halfnorm(scale=2).logpdf(v["b"])
                       + stats.gamma(v["a"], scale=1 / v["b"]).logpdf(CENSORED[:3]).sum()
                       + stats.gamma(v["a"], scale=1 / v["b"]).logsf(3.0)
                       + 2 * stats.gamma(v["a"], scale=1 / v["b"]).logcdf(0.2), ["a", "b"]),
    "truncated-inversegamma": (lambda: exmc.Builder().rv("a", exmc.HalfNormal(3))
                               .obs("y", exmc.Truncated(exmc.InverseGamma("a", 1.5), 0.05, 2.6), TRUNCATED),
                               lambda v: stats.halfnorm(scale=3).logpdf(v["a"])
                               + (stats.invgamma(v["a"], scale=1.5).logpdf(TRUNCATED)
                                  - np.log(stats.invgamma(v["a"], scale=1.5).cdf(2.6)
                                           - stats.invgamma(v["a"], scale=1.5).cdf(0.05))).sum(), ["a"]),
    "truncated-studentt": (lambda: exmc.Builder().rv("nu", exmc.Gamma(2.0, 0.1)).rv("mu", exmc.Normal(0, 2))
                           .obs("y", exmc.Truncated(exmc.StudentT("nu", "mu", 0.8), 0.0, 2.6), TRUNCATED),
                           lambda v: stats.gamma(2.0, scale=10.0).logpdf(v["nu"]) + stats.norm(0, 2).logpdf(v["mu"])
                           + (stats.t(v["nu"], v["mu"], 0.8).logpdf(TRUNCATED)
                              - np.log(stats.t(v["nu"], v["mu"], 0.8).cdf(2.6)
                                       - stats.t(v["nu"], v["mu"], 0.8).cdf(0.0))).sum(), ["nu"]),
    "mixture": (lambda: exmc.Builder().rv("w", exmc.Dirichlet(np.ones(2))).rv("mu", exmc.Normal(0, 5, shape=2))
                .obs("y", exmc.Mixture("w", [exmc.Normal(ref("mu")[0], 1.0),
                                             exmc.StudentT(3.0, ref("mu")[1], 2.0)]), X),
                _mixture, []),
    "normal-mixture": (lambda: exmc.Builder().rv("mu", exmc.Normal(0, 5, shape=2))
                       .obs("y", exmc.NormalMixture(np.array([0.3, 0.7]), "mu", np.array([1.0, 2.0])), X),
                       lambda v: stats.norm(0, 5).logpdf(v["mu"]).sum() + np.log(
                           0.3 * stats.norm(v["mu"][0], 1).pdf(X) + 0.7 * stats.norm(v["mu"][1], 2).pdf(X)).sum(),
                       []),
    "potential": (lambda: exmc.Builder().rv("mu", exmc.Normal(0, 5, shape=2)).potential("pot", -ref("mu") ** 2),
                  lambda v: stats.norm(0, 5).logpdf(v["mu"]).sum() - (v["mu"] ** 2).sum(), []),
    "mvstudentt": (lambda: exmc.Builder().rv("nu", exmc.Gamma(4.0, 1.0)).rv("mu", exmc.Normal(0, 1, shape=3))
                   .obs("y", exmc.MvStudentT("nu", "mu", scale=S), Y3),
                   lambda v: stats.gamma(4.0).logpdf(v["nu"]) + stats.norm.logpdf(v["mu"]).sum()
                   + stats.multivariate_t(v["mu"], S, df=v["nu"]).logpdf(Y3).sum(), ["nu"]),
    "mvstudentt-chol": (lambda: exmc.Builder().rv("mu", exmc.Normal(0, 1, shape=3))
                        .obs("y", exmc.MvStudentT(5.0, "mu", chol=np.linalg.cholesky(S)), Y3),
                        lambda v: stats.norm.logpdf(v["mu"]).sum()
                        + stats.multivariate_t(v["mu"], S, df=5.0).logpdf(Y3).sum(), []),
    "mvstudentt-tau": (lambda: exmc.Builder().rv("mu", exmc.Normal(0, 1, shape=3))
                       .obs("y", exmc.MvStudentT(5.0, "mu", tau=np.linalg.inv(S)), Y3),
                       lambda v: stats.norm.logpdf(v["mu"]).sum()
                       + stats.multivariate_t(v["mu"], S, df=5.0).logpdf(Y3).sum(), []),
    "lkjcorr": (lambda: exmc.Builder().rv("C", exmc.LKJCorr(3, 2.0)), None, []),
    "car": (lambda: exmc.Builder().rv("tau", exmc.Gamma(2.0, 1.0)).rv("x", exmc.CAR(np.zeros(4), W, 0.5, "tau")),
            lambda v: stats.gamma(2.0).logpdf(v["tau"]) + stats.multivariate_normal(
                np.zeros(4), np.linalg.inv(v["tau"] * (np.diag(W.sum(1)) - 0.5 * W))).logpdf(v["x"]), ["tau"]),
    "icar": (lambda: exmc.Builder().rv("s", exmc.HalfNormal(1.0)).rv("x", exmc.ICAR(W, sigma="s")), _icar, ["s"]),
    "ar": (lambda: exmc.Builder().rv("rho", exmc.Normal(0, 1, shape=2))
           .det("r", exmc.math.concatenate([np.array([0.3]), ref("rho")]))
           .rv("x", exmc.AR("r", 0.5, constant=True, shape=6)), _ar, []),
    "grw-per-step-sigma": (lambda: exmc.Builder().rv("x", exmc.GaussianRandomWalk(0.1, np.array([0.5, 1.0, 2.0, 0.3]),
                                                                                  shape=5)),
                           lambda v: stats.norm(0, 100).logpdf(v["x"][0])
                           + stats.norm(0.1, [0.5, 1.0, 2.0, 0.3]).logpdf(np.diff(v["x"])).sum(), []),
    # B = 3 series along the last axis, parameters one per series
    "grw-batched": (lambda: exmc.Builder().rv("s", exmc.HalfNormal(1.0, shape=3))
                    .rv("x", exmc.GaussianRandomWalk(np.array([0.1, -0.2, 0.0]), "s", shape=(3, 5))),
                    lambda v: stats.halfnorm.logpdf(v["s"]).sum() + stats.norm(0, 100).logpdf(v["x"][:, 0]).sum()
                    + stats.norm(np.array([[0.1], [-0.2], [0.0]]), v["s"][:, None])
                    .logpdf(np.diff(v["x"], axis=1)).sum(), ["s"]),
    "ar-batched": (lambda: exmc.Builder().rv("rho", exmc.Normal(0, 0.5, shape=(3, 2)))
                   .rv("x", exmc.AR("rho", np.array([1.0, 0.5, 2.0]), init_dist=exmc.Normal(0, 2), shape=(3, 6))),
                   lambda v: stats.norm(0, 0.5).logpdf(v["rho"]).sum() + stats.norm(0, 2).logpdf(v["x"][:, :2]).sum()
                   + stats.norm(v["rho"][:, :1] * v["x"][:, 1:5] + v["rho"][:, 1:] * v["x"][:, :4],
                                np.array([[1.0], [0.5], [2.0]])).logpdf(v["x"][:, 2:]).sum(), []),
    "mvgrw": (lambda: exmc.Builder().rv("x", exmc.MvGaussianRandomWalk(0.1, cov=S, shape=(5, 3))),
              lambda v: stats.norm(0, 100).logpdf(v["x"][0]).sum()
              + stats.multivariate_normal(np.full(3, 0.1), S).logpdf(np.diff(v["x"], axis=0)).sum(), []),
}


@functools.cache
def compiled(name):
    return compile_model(MODELS[name][0]())


def point(cm, seed=1):
    z = 0.4 * np.random.default_rng(seed).normal(size=cm.dim)
    return z, {k: a[0] for k, a in cm.constrain(z[None]).items()}


@pytest.mark.parametrize("name", [n for n, m in MODELS.items() if m[1] is not None])
def test_log_density_matches_scipy(name):
    cm = compiled(name)
    z, values = point(cm)
    logp, _, status = cm.logp_and_grad(z)
    jacobian = sum(np.log(values[k]).sum() for k in MODELS[name][2])  # log-transformed positives
    assert status == 0
    np.testing.assert_allclose(logp, MODELS[name][1](values) + jacobian, rtol=1e-8)


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_matches_finite_differences(name):
    cm = compiled(name)
    z, _ = point(cm, 2)
    _, grad, status = cm.logp_and_grad(z)
    numeric = np.array([(cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / 2e-6
                        for e in np.eye(cm.dim) * 1e-6])
    assert status == 0
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


def test_ar_tau_is_sigma_to_the_minus_two():
    def logp(dist):
        return compile_model(exmc.Builder().rv("x", dist)).logp_and_grad(np.linspace(-1, 1, 6))[0]
    rho = np.array([0.3, 0.2, -0.4])
    assert logp(exmc.AR(rho, tau=4.0, constant=True, shape=6)) == pytest.approx(
        logp(exmc.AR(rho, 0.5, constant=True, shape=6)), rel=1e-12)


def test_lkjcorr_is_lkjcorrcholesky_pushed_through_l_l_transpose():
    """Same prior, two values: the densities on the free space (with Jacobians) agree."""
    other = compile_model(exmc.Builder().rv("L", exmc.LKJCorrCholesky(2.0, n=3)))
    z = 0.4 * np.random.default_rng(5).normal(size=3)
    np.testing.assert_allclose(compiled("lkjcorr").logp_and_grad(z)[0], other.logp_and_grad(z)[0],
                               rtol=1e-12)
    C = compiled("lkjcorr").constrain(z[None])["C"][0]
    L = other.constrain(z[None])["L"][0]
    np.testing.assert_allclose(C, L @ L.T, rtol=1e-12)


def test_pointwise_log_likelihood_of_wrapped_observations():
    for name, expected in (("truncated", lambda v: stats.truncnorm(
            -v["mu"] / v["s"], (3 - v["mu"]) / v["s"], v["mu"], v["s"]).logpdf(TRUNCATED)),
            ("mvstudentt", lambda v: stats.multivariate_t(v["mu"], S, df=v["nu"]).logpdf(Y3))):
        cm = compiled(name)
        z, values = point(cm)
        np.testing.assert_allclose(cm.log_likelihood(z[None])["y"][0], expected(values), rtol=1e-10)


def test_truncation_far_in_a_tail_stays_finite():
    """Bounds 30 sd out: the normaliser is taken in the tail where it is exact."""
    cm = compile_model(exmc.Builder().rv("x", exmc.Truncated(exmc.Normal(0, 1), 30.0, 31.0)))
    z = np.array([0.3])
    logp, grad, status = cm.logp_and_grad(z)
    x = cm.constrain(z[None])["x"][0]
    expected = stats.truncnorm(30.0, 31.0).logpdf(x) + np.log(x - 30.0) + np.log(31.0 - x)
    assert status == 0 and np.isfinite(grad).all()
    np.testing.assert_allclose(logp, expected, rtol=1e-9)


def test_every_family_with_both_cdfs_can_be_truncated():
    """Derived from the kernel registry: each scalar family with logcdf and logccdf wraps."""
    names = {f for (f, _), k in KERNELS.items() if k.logcdf is not None and k.logccdf is not None}
    assert {"Normal", "Exponential", "Laplace"} <= names
    for (family, params), kernel in KERNELS.items():
        if kernel.logcdf is None or kernel.logccdf is None or family not in exmc.ir.dists.FAMILIES:
            continue
        cls = exmc.ir.dists.FAMILIES[family]
        base = cls(**{p: 1.0 for p in params}) if "lower" not in params else cls(0.0, 2.0)
        exmc.Truncated(base, 0.5, 0.9)  # no error: the family is wrappable


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="SkewNormal has no logcdf or logccdf, so it cannot be truncated"):
        exmc.Truncated(exmc.SkewNormal(2.0, 0.0, 1.0), 0.0, 1.0)
    with pytest.raises(TypeError, match="Truncated needs a lower or an upper bound"):
        exmc.Truncated(exmc.Normal(0, 1), -np.inf, np.inf)
    with pytest.raises(TypeError, match="MvNormal cannot be truncated"):
        exmc.Truncated(exmc.MvNormal(np.zeros(2), cov=np.eye(2)), 0.0, 1.0)
    with pytest.raises(exmc.ModelError, match="'c': Censored can only be observed"):
        exmc.Builder().rv("c", exmc.Censored(exmc.Normal(0, 1), 0.0, 1.0)).validate()
    with pytest.raises(exmc.ModelError, match="Mixture has 2 components but w has 3 weights"):
        exmc.Builder().rv("x", exmc.Mixture(np.ones(3) / 3, [exmc.Normal(0, 1), exmc.Normal(1, 1)])).validate()
    with pytest.raises(exmc.ModelError, match="sigma must be a scalar or one value per step, shape \\(4,\\)"):
        exmc.Builder().rv("x", exmc.GaussianRandomWalk(0.0, np.ones(5), shape=5)).validate()
    with pytest.raises(exmc.ModelError, match="AR has ar_order=3 but 2 coefficients"):
        exmc.Builder().rv("x", exmc.AR(np.array([0.5, 0.1]), ar_order=3, shape=5)).validate()
    with pytest.raises(TypeError, match="AR needs a shape T or \\(B, T\\)"):
        exmc.AR(np.array([0.5]), 1.0)
    with pytest.raises(TypeError, match="GaussianRandomWalk needs a shape T or \\(B, T\\)"):
        exmc.GaussianRandomWalk(0.0, 1.0, shape=(2, 3, 4))
    with pytest.raises(exmc.ModelError, match="AR's rho must be a vector of 1 to 5 coefficients "
                                              "\\(the order\\), or one such row per series \\(3,\\)"):
        exmc.Builder().rv("x", exmc.AR(np.ones((2, 1)), shape=(3, 6))).validate()
    with pytest.raises(exmc.ModelError, match="missing values .* cannot be imputed for Poisson"):
        exmc.Builder().rv("m", exmc.HalfNormal(1.0)).obs("y", exmc.Poisson("m"), [1.0, np.nan])


@pytest.mark.parametrize("name", ["truncated", "censored", "mixture", "mvstudentt", "car", "ar", "mvgrw", "lkjcorr"])
def test_serialisation_round_trip(name):
    model = MODELS[name][0]()
    again = exmc.Model.from_msgpack(model.to_msgpack())
    assert again == model
    z, _ = point(compiled(name))
    assert compile_model(again).logp_and_grad(z)[0] == compiled(name).logp_and_grad(z)[0]


def test_every_non_scalar_family_has_a_readme_row():
    """Derived from the registry: the wrappers, multivariate and composite modules."""
    from pathlib import Path
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    families = [name for name, cls in exmc.ir.dists.FAMILIES.items() if cls.__module__.rsplit(".", 1)[-1]
                in ("wrappers", "multivariate", "composite")]
    assert len(families) >= 17
    assert [name for name in families if f"| `{name}` |" not in readme] == []


# ---- random draws --------------------------------------------------------------------------
N = 40_000
DRAWS = [
    (exmc.Truncated(exmc.Normal(1.0, 2.0), 0.0, 3.0), {"dist": {"mu": 1.0, "sigma": 2.0}, "lower": 0.0, "upper": 3.0},
     stats.truncnorm(-0.5, 1.0, 1.0, 2.0)),
    (exmc.Censored(exmc.Normal(1.0, 2.0), 0.0, 3.0), {"dist": {"mu": 1.0, "sigma": 2.0}, "lower": 0.0, "upper": 3.0},
     None),
    (exmc.NormalMixture(np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.5, 1.0])),
     {"w": np.array([0.3, 0.7]), "mu": np.array([-1.0, 2.0]), "sigma": np.array([0.5, 1.0])}, None),
]


def _censored_moments():
    d = stats.norm(1.0, 2.0)
    inner = stats.truncnorm(-0.5, 1.0, 1.0, 2.0)
    p_low, p_high = d.cdf(0.0), d.sf(3.0)
    p_in = 1 - p_low - p_high
    mean = p_in * inner.mean() + p_high * 3.0
    second = p_in * (inner.var() + inner.mean() ** 2) + p_high * 9.0
    return mean, second - mean ** 2


@pytest.mark.parametrize("case", range(len(DRAWS)))
def test_random_draws_match_their_moments(case):
    dist, values, reference = DRAWS[case]
    x = dist.random(np.random.default_rng(case), values, (N,))
    if reference is not None:
        mean, var = reference.mean(), reference.var()
    elif dist.family == "Censored":
        mean, var = _censored_moments()
    else:
        mean = 0.3 * -1.0 + 0.7 * 2.0
        var = 0.3 * (0.25 + 1.0) + 0.7 * (1.0 + 4.0) - mean ** 2
    assert abs(x.mean() - mean) < 5 * np.sqrt(var / N) and abs(x.var() - var) < 0.05 * var
    assert abs(x.mean() - (mean + 0.1 * np.sqrt(var))) >= 5 * np.sqrt(var / N)  # negative control


def _tail_mean(dist, lower, upper):
    """Mean and variance of a scipy distribution restricted to [lower, upper], by quadrature
    (continuous) or by sum (discrete)."""
    from scipy import integrate
    if hasattr(dist, "pmf"):
        k = np.arange(lower, upper + 1)
        p = dist.pmf(k)
        mean = (k * p).sum() / p.sum()
        return mean, (k * k * p).sum() / p.sum() - mean ** 2
    mass = dist.cdf(upper) - dist.cdf(lower) if dist.cdf(upper) < 0.5 else dist.sf(lower) - dist.sf(upper)
    moment = [integrate.quad(lambda x: x ** j * dist.pdf(x) / mass, lower, upper, epsabs=0)[0]
              for j in (1, 2)]
    return moment[0], moment[1] - moment[0] ** 2


TAIL_DRAWS = [  # bounds so far in a tail that rejection cannot reach them: the inverse cdf
    (exmc.Truncated(exmc.Normal(0.0, 1.0), 8.0, 10.0), {"dist": {"mu": 0.0, "sigma": 1.0}, "lower": 8.0,
                                                       "upper": 10.0}, stats.norm(0, 1), (8.0, 10.0)),
    (exmc.Truncated(exmc.Normal(0.0, 1.0), upper=-9.0), {"dist": {"mu": 0.0, "sigma": 1.0}, "upper": -9.0},
     stats.norm(0, 1), (-12.0, -9.0)),
    (exmc.Truncated(exmc.Gamma(3.0, 1.0), upper=0.01), {"dist": {"alpha": 3.0, "beta": 1.0}, "upper": 0.01},
     stats.gamma(3.0), (0.0, 0.01)),
    (exmc.Truncated(exmc.Poisson(3.0), lower=25), {"dist": {"mu": 3.0}, "lower": 25.0},
     stats.poisson(3.0), (25, 80)),
]


@pytest.mark.parametrize("case", range(len(TAIL_DRAWS)))
def test_truncated_draws_far_in_a_tail_use_the_inverse_cdf(case):
    dist, values, reference, (lower, upper) = TAIL_DRAWS[case]
    n = 4000
    x = dist.random(np.random.default_rng(case), values, (n,))
    mean, var = _tail_mean(reference, lower, upper)
    assert x.min() >= lower and x.max() <= upper
    assert abs(x.mean() - mean) < 5 * np.sqrt(var / n) and abs(x.var() - var) < 0.15 * var
    assert abs(x.mean() - (mean + 0.2 * np.sqrt(var))) >= 5 * np.sqrt(var / n)  # negative control


def test_batched_random_walks_draw_one_walk_per_row():
    rng = np.random.default_rng(4)
    mu, sigma = np.array([0.5, -1.0]), np.array([1.0, 0.2])
    walks = exmc.GaussianRandomWalk(mu, sigma, init=exmc.Normal(0.0, 1.0), shape=(2, 6)).random(
        rng, {"mu": mu, "sigma": sigma, "init": {"mu": 0.0, "sigma": 1.0}}, (20_000, 2, 6))
    steps = np.diff(walks, axis=-1)
    np.testing.assert_allclose(steps.mean(axis=(0, 2)), mu, atol=0.02)
    np.testing.assert_allclose(steps.std(axis=(0, 2)), sigma, rtol=0.02)
    assert abs(steps[:, 1].mean() - mu[0]) > 1.0  # negative control: the rows differ


def test_multivariate_random_draws():
    rng = np.random.default_rng(3)
    t = exmc.MvStudentT(6.0, np.zeros(3), scale=S).random(rng, {"nu": 6.0, "mu": np.zeros(3), "scale": S}, 20_000)
    np.testing.assert_allclose(np.cov(t.T), S * 6 / 4, atol=0.15)  # cov = scale nu / (nu - 2)
    C = exmc.LKJCorr(3, 2.0).random(rng, {"eta": 2.0}, (4000, 3, 3))
    assert np.allclose(np.diagonal(C, axis1=1, axis2=2), 1.0)
    assert abs(np.mean(C[:, 1, 0] ** 2) - 1 / (2 * 2.5 + 1)) < 0.01  # E[r^2] = 1 / (2b + 1)
    car = exmc.CAR(np.zeros(4), W, 0.5, 2.0).random(rng, {"mu": np.zeros(4), "W": W, "alpha": 0.5, "tau": 2.0}, 20_000)
    np.testing.assert_allclose(np.cov(car.T), np.linalg.inv(2.0 * (np.diag(W.sum(1)) - 0.5 * W)), atol=0.03)
    ar = exmc.AR(np.array([0.6]), 1.0, init_dist=exmc.Normal(0.0, 1.25), shape=200).random(
        rng, {"rho": np.array([0.6]), "sigma": 1.0, "init_dist": {"mu": 0.0, "sigma": 1.25}}, (4000, 200))
    assert abs(np.corrcoef(ar[:, 100], ar[:, 101])[0, 1] - 0.6) < 0.05 and abs(ar[:, 150].var() - 1.5625) < 0.15
    walk = exmc.MvGaussianRandomWalk(0.0, cov=S, shape=(50, 3)).random(
        rng, {"mu": 0.0, "cov": S, "init_dist": {"mu": 0.0, "sigma": 1.0}}, (2000, 50, 3))
    np.testing.assert_allclose(np.cov(np.diff(walk, axis=1).reshape(-1, 3).T), S, rtol=0.05)


def test_prior_predictive_draws_every_new_family():
    """Ancestral sampling (parameters with a leading axis of draws) reaches each random()."""
    model = (exmc.Builder().rv("s", exmc.HalfNormal(1.0))
             .rv("t", exmc.Truncated(exmc.Normal(1.0, 2.0), 0.0, 3.0))
             .rv("m", exmc.NormalMixture(np.array([0.3, 0.7]), np.array([-1.0, 1.0]), np.array([1.0, 1.0])))
             .rv("rho", exmc.Uniform(-0.5, 0.5, shape=2)).rv("x", exmc.AR("rho", "s", shape=20))
             .rv("walk", exmc.MvGaussianRandomWalk(np.zeros(2), cov=np.eye(2), shape=(6, 2)))
             .rv("C", exmc.LKJCorr(3, 2.0)).rv("nu", exmc.Gamma(20.0, 2.0))
             .rv("v", exmc.MvStudentT("nu", np.zeros(3), scale=np.eye(3)))
             .obs("y", exmc.Mixture(np.array([0.5, 0.5]), [exmc.Normal("m", 1.0), exmc.Laplace(0.0, "s")]),
                  np.zeros(4))
             .obs("c", exmc.Censored(exmc.Normal("t", 1.0), 0.0, 2.0), np.ones(3)))
    idata = exmc.sample_prior_predictive(model, draws=4000, seed=1)
    prior, predictive = idata.prior, idata.prior_predictive
    assert prior["x"].shape == (1, 4000, 20) and prior["walk"].shape == (1, 4000, 6, 2)
    assert prior["C"].shape == (1, 4000, 3, 3) and predictive["y"].shape == (1, 4000, 4)
    assert prior["v"].shape == (1, 4000, 3) and abs(float(prior["v"].var()) - 1.27) < 0.15  # E[nu / (nu - 2)]
    t = stats.truncnorm(-0.5, 1.0, 1.0, 2.0)
    assert abs(float(prior["t"].mean()) - t.mean()) < 5 * t.std() / np.sqrt(4000)
    assert abs(float(prior["m"].mean()) - 0.4) < 5 * np.sqrt(1.84 / 4000)  # var = 2 - 0.4^2
    assert float(predictive["c"].min()) >= 0.0 and float(predictive["c"].max()) <= 2.0


# ---- missing data ----------------------------------------------------------------------------
def test_missing_values_become_a_latent_variable_with_a_warning():
    data = np.array([1.0, np.nan, 2.0, np.nan])
    with pytest.warns(exmc.ImputationWarning, match="'y': 2 of 4 values are missing .* y_unobserved"):
        model = exmc.Builder().rv("mu", exmc.Normal(0, 5)).obs("y", exmc.Normal("mu", 1.0), data)
    assert [(v.name, v.kind) for v in model.variables] == [
        ("mu", "rv"), ("y_observed", "obs"), ("y_unobserved", "rv"), ("y", "det")]
    cm = compile_model(model)
    z = np.array([0.5, 0.1, -0.3])
    out = cm.constrain(z[None])
    np.testing.assert_array_equal(out["y"][0], [1.0, 0.1, 2.0, -0.3])
    np.testing.assert_allclose(cm.logp_and_grad(z)[0], stats.norm(0, 5).logpdf(0.5)
                               + stats.norm(0.5, 1).logpdf([1.0, 0.1, 2.0, -0.3]).sum(), rtol=1e-12)


def test_an_expression_shared_by_two_variables_compiles_as_its_wire_form():
    """Imputation shares parameter expressions between y_observed and y_unobserved; the
    code (cached by the wire form's structure hash) must not depend on that sharing."""
    scale = exmc.math.exp(ref("a")) * 2.0 + 0.5  # constants: data whose layout would shift
    model = (exmc.Builder().rv("a", exmc.Normal(0, 1)).rv("b", exmc.Normal(0.25, scale))
             .obs("y", exmc.Normal("b", scale), np.array([0.5, -0.2])).rv("c", exmc.Normal(3.0, 1.5)))
    again = exmc.Model.from_msgpack(model.to_msgpack())
    z = np.array([0.3, -0.4, 0.1])
    assert compile_model(model).logp_and_grad(z)[0] == compile_model(again).logp_and_grad(z)[0]


def test_missing_values_in_a_matrix_take_their_column_parameters():
    data = np.array([[1.0, np.nan], [np.nan, 2.0], [0.5, -1.0]])
    with pytest.warns(exmc.ImputationWarning, match="2 of 6 values"):
        model = exmc.Builder().rv("mu", exmc.Normal(0, 5, shape=2)).obs("y", exmc.Normal("mu", 1.0), data)
    again = exmc.Model.from_msgpack(model.to_msgpack())
    cm = compile_model(again)
    z = np.array([0.5, -0.5, 0.1, -0.3])  # mu, then y_unobserved in row-major order
    y = cm.constrain(z[None])["y"][0]
    np.testing.assert_array_equal(y, [[1.0, 0.1], [-0.3, 2.0], [0.5, -1.0]])
    expected = stats.norm(0, 5).logpdf([0.5, -0.5]).sum() + stats.norm([0.5, -0.5], 1).logpdf(y).sum()
    np.testing.assert_allclose(cm.logp_and_grad(z)[0], expected, rtol=1e-12)


def test_wrappers_and_potentials_in_the_dsl():
    @exmc.model
    def wrapped():
        mu = exmc.Normal(0, 5, shape=2)
        exmc.Potential("pull", -mu ** 2)  # named by its first argument, as PyMC's
        y = exmc.Truncated(exmc.Normal(mu[0], 1.0), 0.0, None, observed=np.array([0.5, 1.0]))  # noqa: F841
        c = exmc.Mixture(np.array([0.5, 0.5]), [exmc.Normal(mu[1], 1.0), exmc.Normal(0.0, 3.0)],  # noqa: F841
                         observed=np.array([0.2]))
    model = wrapped()
    assert [(v.name, v.dist.family) for v in model.variables] == [
        ("mu", "Normal"), ("pull", "Potential"), ("y", "Truncated"), ("c", "Mixture")]
    assert exmc.Model.from_msgpack(model.to_msgpack()) == model


def test_missing_values_in_the_dsl_keep_the_names():
    @exmc.model
    def imputed():
        mu = exmc.Normal(0, 5)
        y = exmc.Normal(mu, 1.0, observed=np.array([np.nan, 1.0]))  # noqa: F841
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", exmc.ImputationWarning)
        model = imputed()
    assert {"y_unobserved", "y_observed", "y"} <= set(model.names)


# ---- sampled posteriors against known truths ---------------------------------------------------
RATE_DATA = np.random.default_rng(8).exponential(1 / 1.5, size=30)
CENSOR_AT = 1.0
MIXED = np.where(np.random.default_rng(9).uniform(size=40) < 0.3, -3.0, 3.0) \
    + np.random.default_rng(10).normal(size=40)


@pytest.fixture(scope="module")
def posterior():
    """One model of independent parts, each with a known posterior (one compile, one run)."""
    y = np.array([0.4, -1.2, 2.0, 0.7, np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", exmc.ImputationWarning)
        model = (exmc.Builder()
                 .rv("t", exmc.Truncated(exmc.Normal(1.0, 2.0), 0.0, 3.0))
                 .rv("m", exmc.NormalMixture(np.array([0.3, 0.7]), np.array([-1.0, 1.0]), np.array([1.0, 1.0])))
                 .rv("mu", exmc.Normal(0.0, 10.0))
                 .obs("y", exmc.Normal("mu", 1.0), y)
                 .rv("lam", exmc.Gamma(2.0, 1.0))
                 .obs("c", exmc.Censored(exmc.Exponential("lam"), upper=CENSOR_AT),
                      np.minimum(RATE_DATA, CENSOR_AT))
                 .rv("w", exmc.Beta(2.0, 2.0))
                 .obs("z", exmc.Mixture(exmc.math.stack([ref("w"), 1.0 - ref("w")]),
                                        exmc.Normal(np.array([-3.0, 3.0]), 1.0)), MIXED)
                 .rv("p", exmc.Normal(0.0, 10.0)).potential("pull", -0.5 * (ref("p") - 1.0) ** 2))
    idata = exmc.sample(model, chains=2, num_warmup=400, num_samples=1000, seed=5, progressbar=False)
    assert set(idata.observed_data.data_vars) == {"y_observed", "c", "z"}  # no Potential
    return idata.posterior


def truths():
    t = stats.truncnorm(-0.5, 1.0, 1.0, 2.0)
    m_mean, m_second = 0.3 * -1.0 + 0.7 * 1.0, 2.0
    v = 1 / (1 / 100 + 4)  # conjugate posterior of mu, then y_missing = mu + N(0, 1)
    y_mean = v * (0.4 - 1.2 + 2.0 + 0.7)
    # censored exponential: Gamma(2 + uncensored count, 1 + sum of min(y, U)), exactly
    a = 2.0 + np.sum(RATE_DATA < CENSOR_AT)
    b = 1.0 + np.minimum(RATE_DATA, CENSOR_AT).sum()
    # the mixture weight by quadrature of Beta(2, 2) times the likelihood
    grid = np.linspace(1e-6, 1 - 1e-6, 20001)
    log_post = stats.beta(2, 2).logpdf(grid) + np.log(
        grid[:, None] * stats.norm(-3, 1).pdf(MIXED) + (1 - grid[:, None]) * stats.norm(3, 1).pdf(MIXED)).sum(1)
    density = np.exp(log_post - log_post.max())
    density /= density.sum()
    p_var = 1 / (1 / 100 + 1)  # Normal(0, 10) prior times the potential's N(1, 1) kernel
    return np.array([t.mean(), t.var() + t.mean() ** 2, m_mean, m_second, y_mean, v + 1 + y_mean ** 2,
                     a / b, a * (a + 1) / b ** 2, (density * grid).sum(), (density * grid ** 2).sum(),
                     p_var, p_var + p_var ** 2])


def moments(post):
    t, m, y, lam, w, p = (post[k].values for k in ("t", "m", "y_unobserved", "lam", "w", "p"))
    return np.stack([t, t * t, m, m * m, y[..., 0], y[..., 0] ** 2, lam, lam * lam, w, w * w, p, p * p],
                    axis=-1)


LABELS = ["E[t]", "E[t^2]", "E[m]", "E[m^2]", "E[y_missing]", "E[y_missing^2]", "E[lam]", "E[lam^2]",
          "E[w]", "E[w^2]", "E[p]", "E[p^2]"]


def test_truncated_mixture_censored_and_imputed_posteriors_match_their_truths(posterior):
    assert_expectations_close(moments(posterior), truths(), LABELS)


def test_negative_control_untruncated_moments_fail(posterior):
    wrong = truths()
    wrong[:2] = [1.0, 5.0]  # Normal(1, 2) without the truncation
    with pytest.raises(AssertionError, match=r"E\[t\]"):
        assert_expectations_close(moments(posterior), wrong, LABELS)


def test_negative_control_censored_data_taken_as_exact_fail(posterior):
    wrong = truths()
    a, b = 2.0 + RATE_DATA.size, 1.0 + np.minimum(RATE_DATA, CENSOR_AT).sum()  # no censoring
    wrong[6:8] = [a / b, a * (a + 1) / b ** 2]
    with pytest.raises(AssertionError, match=r"E\[lam\]"):
        assert_expectations_close(moments(posterior), wrong, LABELS)
