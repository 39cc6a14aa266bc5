"""PyMC's parameterisations and bad input for the families of the scalar modules.

Alternatives (tau, lam, scale, mu/sigma, n/p, phi, q, b) are converted when a distribution
is built; with a variable the conversion is an expression, checked here through one
compiled model against scipy (values, gradient and pointwise log-likelihood).
"""
import math

import numpy as np
import pytest
from scipy import special, stats

import exmc
from exmc import Builder, ModelError, ref
from exmc.compiler import compile_model


@pytest.mark.parametrize("build, error, message", [
    (lambda: exmc.Normal(0, sigma=1, tau=1), TypeError, "Normal takes sigma or tau, not both"),
    (lambda: exmc.HalfStudentT(3, lam=-1.0), ValueError, "HalfStudentT needs lam > 0"),
    (lambda: exmc.Exponential(), TypeError, "Exponential needs lam or scale"),
    (lambda: exmc.Gamma(alpha=2.0, sigma=1.0), TypeError, "Gamma needs alpha and beta, or mu and sigma"),
    (lambda: exmc.Wald(lam=2.0), TypeError, "Wald needs mu alone, mu and lam, mu and phi"),
    (lambda: exmc.AsymmetricLaplace(mu=0.0, b=1.0), TypeError, "AsymmetricLaplace needs kappa or q"),
    (lambda: exmc.AsymmetricLaplace(mu=0.0, b=1.0, q=1.5), ValueError, "0 < q < 1"),
    (lambda: exmc.Rice(nu=1.0, b=1.0), TypeError, "Rice needs exactly one of nu and b"),
    (lambda: exmc.Beta(alpha=1.0, nu=2.0), TypeError, "Beta takes nu only with mu"),
    (lambda: exmc.NegativeBinomial(mu=3.0), TypeError, "needs mu and alpha, or n and p"),
    (lambda: exmc.NegativeBinomial(n=3.0, p=1.5), ValueError, "0 < p <= 1"),
    (lambda: exmc.Categorical(p=[0.5, 0.5], logit_p=[0.0, 0.0]), TypeError, "exactly one of p"),
    (lambda: exmc.Categorical(p=np.array([0.5, -0.1, 0.6])), ValueError, "Categorical needs p >= 0"),
    (lambda: exmc.Triangular(0.0, 1.0, 0.5, 2.0), TypeError, "at most 3 positional parameters"),
])
def test_bad_parameters_raise_at_once(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize("model, message", [
    (lambda: Builder().rv("w", exmc.Weibull(-1.0, 1.0)), "Weibull needs alpha > 0, got alpha=-1.0"),
    (lambda: Builder().rv("t", exmc.Triangular(0.0, 1.0, c=2.0)), "Triangular needs c <= upper"),
    (lambda: Builder().rv("t", exmc.TruncatedNormal(0.0, 1.0, lower=2.0, upper=1.0)),
     "TruncatedNormal needs upper > lower"),
    (lambda: Builder().rv("k", exmc.NegativeBinomial(mu=3.0, alpha=2.0)),
     "'k': NegativeBinomial is discrete and can only be observed"),
    (lambda: Builder().rv("h", exmc.HurdleGamma(0.5, 2.0, 1.0)), "'h': HurdleGamma can only be observed"),
    (lambda: Builder().rv("a", exmc.Normal()).obs("y", exmc.Geometric(0.3), np.array([1.0, 0.0])),
     "outside the support of Geometric"),
    (lambda: Builder().rv("a", exmc.Normal()).obs("y", exmc.Categorical(p=np.array([0.2, 0.8])), np.array([0.0, 2.0])),
     "outside the support of Categorical"),
    (lambda: Builder().rv("a", exmc.Normal()).obs("y", exmc.BetaBinomial(1.0, 1.0, 3), np.array([1.5])), "must be integers"),
    (lambda: Builder().rv("a", exmc.Normal()).obs("y", exmc.Pareto(2.0, 1.0), np.array([0.5])), "outside the support of Pareto"),
    (lambda: Builder().rv("a", exmc.Normal(shape=3)).obs(
        "y", exmc.Multinomial(np.array([10, 9]), exmc.math.exp(ref("a"))),
        np.array([[3.0, 5.0, 2.0], [3.0, 5.0, 2.0]])),
     "'y': Multinomial counts must sum to n along the last axis; row 1 sums to 10, n = 9"),
    (lambda: Builder().rv("a", exmc.Normal()).obs(
        "y", exmc.DirichletMultinomial(4, np.ones(2)), np.array([1.0, 2.0])), "row 0 sums to 3, n = 4"),
])
def test_bad_models_name_the_variable_and_the_problem(model, message):
    with pytest.raises(ModelError, match=message):
        model().validate()


def test_constant_alternatives_convert_at_build_time():
    assert float(exmc.Normal(0, tau=4.0).param_exprs["sigma"].value) == 0.5
    assert float(exmc.StudentT(3, lam=0.25).param_exprs["sigma"].value) == 2.0
    assert float(exmc.Exponential(scale=4.0).param_exprs["lam"].value) == 0.25
    gamma = exmc.Gamma(mu=2.0, sigma=0.5).param_exprs
    assert (float(gamma["alpha"].value), float(gamma["beta"].value)) == (16.0, 8.0)
    nb = exmc.NegativeBinomial(n=3.0, p=0.25).param_exprs
    assert (float(nb["mu"].value), float(nb["alpha"].value)) == (9.0, 3.0)
    assert float(exmc.AsymmetricLaplace(mu=0, b=1, q=0.2).param_exprs["kappa"].value) == 0.5
    beta = exmc.Beta(mu=0.25, nu=8.0).param_exprs
    assert (float(beta["alpha"].value), float(beta["beta"].value)) == (2.0, 6.0)
    with pytest.warns(UserWarning, match="p sums to 2, not 1; it is rescaled"):
        p = exmc.Categorical(p=np.array([0.5, 1.5])).param_exprs["p"].value
    np.testing.assert_allclose(p, [0.25, 0.75])


# ---- alternatives given variables: one compiled model against scipy ------------------------
Y = np.array([0.3, -1.2, 2.0])
COUNTS = np.array([0.0, 4.0, 1.0])
CATEGORIES = np.array([0.0, 2.0, 2.0, 1.0])


def _alternatives_model():
    return (Builder()
            .rv("t", exmc.Gamma(2.0, 2.0))
            .rv("q", exmc.Beta(2.0, 2.0))
            .rv("m", exmc.Normal(0.0, 1.0, shape=3))
            .obs("y_tau", exmc.Normal(0.5, tau=ref("t")), Y)
            .obs("y_lam", exmc.StudentT(4.0, 0.0, lam=ref("t")), Y)
            .obs("y_nb", exmc.NegativeBinomial(n=ref("t"), p=ref("q")), COUNTS)
            .obs("y_wald", exmc.Wald(mu=ref("t"), phi=2.0), np.array([0.5, 1.5]))
            .obs("y_al", exmc.AsymmetricLaplace(mu=0.0, b=1.0, q=ref("q")), Y)
            .obs("y_cat", exmc.Categorical(logit_p=ref("m")), CATEGORIES))


def _reference(t, q, m):
    """Log-likelihood terms by scipy, in the model's order."""
    kappa = math.sqrt(q / (1 - q))
    return {
        "y_tau": stats.norm(0.5, t ** -0.5).logpdf(Y),
        "y_lam": stats.t(4.0, 0.0, t ** -0.5).logpdf(Y),
        "y_nb": stats.nbinom(t, q).logpmf(COUNTS),
        "y_wald": stats.invgauss(t / (2 * t), scale=2 * t).logpdf([0.5, 1.5]),
        "y_al": stats.laplace_asymmetric(kappa, 0.0, 1.0).logpdf(Y),
        "y_cat": (m - special.logsumexp(m))[CATEGORIES.astype(int)],
    }


def test_alternatives_of_variables_match_scipy_with_exact_gradients():
    compiled = compile_model(_alternatives_model())
    z = np.array([0.3, -0.4, 0.2, -0.5, 1.1])  # log t, logit q, m
    t, q, m = math.exp(z[0]), special.expit(z[1]), z[2:]
    terms = _reference(t, q, m)
    prior = (stats.gamma(2.0, scale=0.5).logpdf(t) + z[0] + stats.beta(2, 2).logpdf(q)
             + math.log(q * (1 - q)) + stats.norm.logpdf(m).sum())
    logp, grad, status = compiled.logp_and_grad(z)
    assert status == 0
    assert logp == pytest.approx(prior + sum(v.sum() for v in terms.values()), rel=1e-10)
    for i in range(z.size):
        h = 1e-6
        up, down = z.copy(), z.copy()
        up[i] += h
        down[i] -= h
        numeric = (compiled.logp_and_grad(up)[0] - compiled.logp_and_grad(down)[0]) / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-6, abs=1e-7), f"partial {i}"
    pointwise = compiled.log_likelihood(z[None, :])
    for name, value in terms.items():
        np.testing.assert_allclose(pointwise[name][0], value, rtol=1e-10, err_msg=name)


def test_discrete_cdfs_in_censored_and_truncated_counts():
    """A count censored at ``upper`` has P(X >= upper); one truncated below at ``lower`` is
    normalised by P(X >= lower) (PyMC's rules for discrete families)."""
    y = np.array([0.0, 3.0, 5.0, 5.0])
    z = np.array([1.0, 2.0, 6.0])
    model = (Builder().rv("mu", exmc.Gamma(2.0, 0.5))
             .obs("c", exmc.Censored(exmc.Poisson(ref("mu")), upper=5.0), y)
             .obs("t", exmc.Truncated(exmc.Poisson(ref("mu")), lower=1.0), z)
             .obs("g", exmc.Censored(exmc.Geometric(0.3), lower=2.0, upper=4.0), np.array([2.0, 3.0, 4.0])))
    compiled = compile_model(model)
    mu = 3.5
    pointwise = compiled.log_likelihood(np.array([[math.log(mu)]]))
    poisson, geometric = stats.poisson(mu), stats.geom(0.3)
    np.testing.assert_allclose(pointwise["c"][0], [poisson.logpmf(0), poisson.logpmf(3),
                                                   poisson.logsf(4), poisson.logsf(4)], rtol=1e-10)
    np.testing.assert_allclose(pointwise["t"][0], poisson.logpmf(z) - poisson.logsf(0), rtol=1e-10)
    np.testing.assert_allclose(pointwise["g"][0], [geometric.logcdf(2), geometric.logpmf(3),
                                                   geometric.logsf(3)], rtol=1e-10)
