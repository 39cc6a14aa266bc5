"""Family kernels and scalar helpers against scipy.stats, closed forms and finite differences."""
import math

import numba
import numpy as np
import pytest
from scipy import integrate, special, stats

from exmc.compiler import families, scalar
from exmc.compiler.families import KERNELS
from exmc.ir.dists import FAMILIES

RTOL_VALUE = 1e-10  # log densities against scipy
RTOL_GRAD = 1e-6  # analytic partials against central differences

# The tables are keyed by KERNELS' keys, and test_every_kernel_has_cases fails for a registered
# kernel without a case, so a new kernel cannot go untested.  Gradients are checked by central
# differences, step 1e-6 relative; the same checker must reject a deliberately wrong partial
# (the negative controls at the end).

# ---- cases: scipy reference (frozen distribution from the parameters), points (x, *params) ----
SCALAR_CASES = {
    ("Normal", ("mu", "sigma")): (
        lambda mu, sigma: stats.norm(mu, sigma),
        [(0.3, 0.1, 2.0), (-4.0, 1.0, 0.5), (12.0, -3.0, 7.0)]),
    ("HalfNormal", ("sigma",)): (
        lambda sigma: stats.halfnorm(scale=sigma),
        [(0.7, 1.3), (3.0, 0.5), (0.05, 2.0)]),
    ("HalfCauchy", ("beta",)): (
        lambda beta: stats.halfcauchy(scale=beta),
        [(0.7, 1.3), (25.0, 0.5), (0.05, 2.0)]),
    ("Exponential", ("lam",)): (
        lambda lam: stats.expon(scale=1.0 / lam),
        [(0.7, 1.3), (5.0, 0.2), (0.01, 3.0), (30.0, 1.5)]),
    ("Gamma", ("alpha", "beta")): (
        lambda alpha, beta: stats.gamma(alpha, scale=1.0 / beta),
        # the last two: beta x above alpha + 1, where the cdfs use the continued fraction
        [(0.7, 2.5, 1.3), (5.0, 0.6, 0.2), (0.01, 1.0, 3.0), (10.0, 2.0, 1.0),
         (105.0, 100.0, 1.0)]),
    ("InverseGamma", ("alpha", "beta")): (
        lambda alpha, beta: stats.invgamma(alpha, scale=beta),
        [(0.7, 2.5, 1.3), (5.0, 0.6, 0.2), (0.3, 3.0, 1.0), (0.1, 2.0, 1.5)]),
    ("Beta", ("alpha", "beta")): (
        lambda alpha, beta: stats.beta(alpha, beta),
        [(0.3, 2.0, 5.0), (0.9, 0.5, 0.7), (0.02, 1.5, 1.0)]),
    ("Uniform", ("lower", "upper")): (
        lambda lower, upper: stats.uniform(lower, upper - lower),
        [(0.3, 0.0, 1.0), (-2.0, -3.5, 4.0), (10.1, 10.0, 10.5)]),
    ("StudentT", ("nu", "mu", "sigma")): (
        lambda nu, mu, sigma: stats.t(nu, mu, sigma),
        # the last two: at the centre, and in a far tail (the cdfs' other branches)
        [(0.3, 4.0, 0.1, 2.0), (-7.0, 1.5, 1.0, 0.5), (2.0, 30.0, -1.0, 3.0),
         (1.0, 2.5, 1.0, 2.0), (60.0, 3.0, 0.0, 1.0)]),
    ("Cauchy", ("alpha", "beta")): (
        lambda alpha, beta: stats.cauchy(alpha, beta),
        [(0.3, 0.1, 2.0), (-7.0, 1.0, 0.5), (40.0, -1.0, 3.0)]),
    ("LogNormal", ("mu", "sigma")): (
        lambda mu, sigma: stats.lognorm(sigma, scale=math.exp(mu)),
        [(0.7, 0.1, 0.8), (5.0, -1.0, 2.0), (0.02, 0.5, 0.3)]),
    ("Laplace", ("mu", "b")): (
        lambda mu, b: stats.laplace(mu, b),
        [(0.3, 0.1, 2.0), (-4.0, 1.0, 0.5), (9.0, -1.0, 3.0)]),
    ("Bernoulli", ("p",)): (
        lambda p: stats.bernoulli(p),
        [(1.0, 0.3), (0.0, 0.3), (1.0, 0.97), (0.0, 0.01)]),
    ("Bernoulli", ("logit_p",)): (
        lambda logit_p: stats.bernoulli(special.expit(logit_p)),
        [(1.0, 0.4), (0.0, -2.0), (1.0, 5.0), (0.0, 3.0)]),
    ("Binomial", ("n", "p")): (
        lambda n, p: stats.binom(n, p),
        [(3.0, 10.0, 0.3), (0.0, 5.0, 0.6), (20.0, 20.0, 0.9), (95.0, 100.0, 0.5), (35.0, 100.0, 0.5)]),
    ("Binomial", ("n", "logit_p")): (
        lambda n, logit_p: stats.binom(n, special.expit(logit_p)),
        [(3.0, 10.0, -0.8), (0.0, 5.0, 0.4), (20.0, 20.0, 2.0)]),
    ("Poisson", ("mu",)): (
        lambda mu: stats.poisson(mu),
        [(0.0, 2.5), (7.0, 3.0), (40.0, 35.5), (12.0, 30.0), (90.0, 35.5)]),
}


class _Reference:
    """A scipy-like frozen distribution from formulas, for families scipy lacks."""

    dist = None

    def __init__(self, logpdf, logcdf=None, logsf=None):
        self.logpdf, self.logcdf, self.logsf = logpdf, logcdf, logsf


def _half_student_t(nu, sigma):
    t = stats.t(nu, 0.0, sigma)
    return _Reference(lambda x: math.log(2.0) + t.logpdf(x),
                      lambda x: math.log(2.0 * t.cdf(x) - 1.0),  # 1 - 2 P(T > x)
                      lambda x: math.log(2.0) + t.logsf(x))


def _logit_normal(mu, sigma):
    n = stats.norm(mu, sigma)
    return _Reference(lambda x: n.logpdf(special.logit(x)) - math.log(x) - math.log1p(-x),
                      lambda x: n.logcdf(special.logit(x)), lambda x: n.logsf(special.logit(x)))


def _kumaraswamy(a, b):
    return _Reference(
        lambda x: math.log(a * b) + (a - 1) * math.log(x) + (b - 1) * math.log(1 - x ** a),
        lambda x: math.log(1 - (1 - x ** a) ** b), lambda x: b * math.log(1 - x ** a))


class _Mixed:
    """Zero-inflated (hurdle=False) or hurdle (True) law on a frozen scipy base."""

    dist = None

    def __init__(self, psi, base, hurdle):
        self.psi, self.base, self.hurdle = psi, base, hurdle

    def logpdf(self, x):
        psi, base = self.psi, self.base
        density = base.logpmf if isinstance(base.dist, stats.rv_discrete) else base.logpdf
        if self.hurdle:
            if x == 0:
                return math.log1p(-psi)
            cut = -math.log1p(-base.pmf(0)) if isinstance(base.dist, stats.rv_discrete) else 0.0
            return math.log(psi) + density(x) + cut
        if x == 0:
            return math.log((1 - psi) + psi * base.pmf(0))
        return math.log(psi) + density(x)


def _nbinom(mu, alpha):
    return stats.nbinom(alpha, alpha / (alpha + mu))


# Points include values near the support's edges and large and small parameters.
PYMC_SCALAR_CASES = {
    ("Flat", ()): (lambda: _Reference(lambda x: 0.0), [(0.3,), (-1e6,)]),
    ("HalfFlat", ()): (lambda: _Reference(lambda x: 0.0), [(0.3,), (1e6,)]),
    ("HalfStudentT", ("nu", "sigma")): (
        _half_student_t, [(0.7, 3.0, 1.3), (0.01, 1.0, 2.0), (40.0, 30.0, 5.0)]),
    ("Weibull", ("alpha", "beta")): (
        lambda alpha, beta: stats.weibull_min(alpha, scale=beta),
        [(0.7, 1.5, 1.3), (0.01, 0.8, 2.0), (6.0, 3.0, 2.0), (1e-3, 2.0, 1.0)]),
    ("SkewNormal", ("alpha", "mu", "sigma")): (
        lambda alpha, mu, sigma: stats.skewnorm(alpha, mu, sigma),
        [(0.3, 2.0, 0.1, 2.0), (-1.0, -3.0, 0.5, 0.7), (4.0, 0.0, 1.0, 1.5), (-6.0, 5.0, 0.0, 1.0)]),
    ("VonMises", ("mu", "kappa")): (
        lambda mu, kappa: stats.vonmises(kappa, loc=mu),
        [(0.3, 0.1, 2.0), (-3.0, 1.0, 0.05), (3.1, -2.0, 30.0), (0.2, 0.0, 400.0)]),
    ("Gumbel", ("mu", "beta")): (
        lambda mu, beta: stats.gumbel_r(mu, beta),
        [(0.3, 0.1, 2.0), (-4.0, 1.0, 0.8), (30.0, -1.0, 3.0)]),
    ("Logistic", ("mu", "s")): (
        lambda mu, s: stats.logistic(mu, s),
        [(0.3, 0.1, 2.0), (-30.0, 1.0, 0.8), (20.0, -1.0, 3.0)]),
    ("LogitNormal", ("mu", "sigma")): (
        _logit_normal, [(0.3, 0.1, 0.9), (0.999, -1.0, 2.0), (0.01, 0.5, 0.4)]),
    ("Pareto", ("alpha", "m")): (
        lambda alpha, m: stats.pareto(alpha, scale=m),
        [(2.0, 3.0, 1.5), (1.01, 0.5, 1.0), (400.0, 1.2, 2.0)]),
    ("Kumaraswamy", ("a", "b")): (
        _kumaraswamy, [(0.3, 2.0, 5.0), (0.9, 0.5, 0.7), (0.02, 1.5, 3.0)]),
    ("Triangular", ("lower", "upper", "c")): (
        lambda lower, upper, c: stats.triang((c - lower) / (upper - lower), lower, upper - lower),
        [(0.3, 0.0, 1.0, 0.5), (0.8, 0.0, 1.0, 0.5), (-2.0, -3.5, 4.0, 1.0), (3.9, -3.5, 4.0, 1.0)]),
    ("Wald", ("mu", "lam", "alpha")): (
        lambda mu, lam, alpha: stats.invgauss(mu / lam, loc=alpha, scale=lam),
        [(0.7, 1.0, 2.0, 0.0), (3.0, 0.5, 0.3, 1.0), (0.05, 2.0, 4.0, -0.1)]),
    ("ExGaussian", ("mu", "sigma", "nu")): (
        lambda mu, sigma, nu: stats.exponnorm(nu / sigma, mu, sigma),
        [(0.3, 0.1, 2.0, 1.0), (-3.0, 1.0, 0.5, 3.0), (9.0, 0.0, 1.0, 0.5), (0.5, 0.0, 1.0, 4.0)]),
    ("AsymmetricLaplace", ("kappa", "mu", "b")): (
        lambda kappa, mu, b: stats.laplace_asymmetric(kappa, mu, 1.0 / b),
        [(0.3, 2.0, 0.1, 1.5), (-4.0, 0.5, 1.0, 0.5), (9.0, 1.0, -1.0, 3.0)]),
    ("Rice", ("nu", "sigma")): (
        lambda nu, sigma: stats.rice(nu / sigma, scale=sigma),
        [(0.7, 1.0, 1.3), (3.0, 0.01, 2.0), (40.0, 35.0, 1.5), (0.05, 2.0, 0.5)]),
    ("Moyal", ("mu", "sigma")): (
        lambda mu, sigma: stats.moyal(mu, sigma),
        [(0.3, 0.1, 2.0), (-4.0, 1.0, 1.5), (25.0, -1.0, 3.0)]),
    ("TruncatedNormal", ("mu", "sigma", "lower", "upper")): (
        lambda mu, sigma, lower, upper: stats.truncnorm(
            (lower - mu) / sigma, (upper - mu) / sigma, mu, sigma),
        [(0.3, 0.1, 2.0, -1.0, 3.0), (5.5, 0.0, 1.0, 5.0, 7.0), (-6.5, 0.0, 1.0, -7.0, -6.0),
         (0.5, 1.0, 0.5, 0.0, math.inf), (-0.2, 2.0, 3.0, -math.inf, 0.0)]),
    ("ChiSquared", ("nu",)): (lambda nu: stats.chi2(nu), [(0.7, 3.0), (0.01, 1.5), (40.0, 30.0)]),
    ("Chi", ("nu",)): (lambda nu: stats.chi(nu), [(0.7, 3.0), (0.01, 1.5), (6.0, 30.0)]),
    ("NegativeBinomial", ("mu", "alpha")): (
        _nbinom, [(0.0, 2.5, 1.3), (7.0, 3.0, 0.4), (40.0, 35.5, 200.0)]),
    ("BetaBinomial", ("alpha", "beta", "n")): (
        lambda alpha, beta, n: stats.betabinom(n, alpha, beta),
        [(3.0, 2.0, 5.0, 10.0), (0.0, 0.5, 0.7, 5.0), (20.0, 1.5, 1.0, 20.0)]),
    ("Geometric", ("p",)): (lambda p: stats.geom(p), [(1.0, 0.3), (4.0, 0.6), (30.0, 0.05)]),
    ("DiscreteUniform", ("lower", "upper")): (
        lambda lower, upper: stats.randint(lower, upper + 1),
        [(3.0, 1.0, 6.0), (-2.0, -4.0, 10.0), (5.0, 0.0, 9.0)]),
    ("ZeroInflatedPoisson", ("psi", "mu")): (
        lambda psi, mu: _Mixed(psi, stats.poisson(mu), False),
        [(0.0, 0.7, 2.5), (3.0, 0.4, 3.0), (0.0, 0.2, 0.01)]),
    ("ZeroInflatedBinomial", ("psi", "n", "p")): (
        lambda psi, n, p: _Mixed(psi, stats.binom(n, p), False),
        [(0.0, 0.7, 10.0, 0.3), (3.0, 0.4, 5.0, 0.6), (0.0, 0.9, 20.0, 0.05)]),
    ("ZeroInflatedNegativeBinomial", ("psi", "mu", "alpha")): (
        lambda psi, mu, alpha: _Mixed(psi, _nbinom(mu, alpha), False),
        [(0.0, 0.7, 2.5, 1.3), (7.0, 0.4, 3.0, 0.4), (0.0, 0.5, 0.2, 30.0)]),
    ("HurdlePoisson", ("psi", "mu")): (
        lambda psi, mu: _Mixed(psi, stats.poisson(mu), True),
        [(0.0, 0.7, 2.5), (3.0, 0.4, 3.0), (1.0, 0.2, 0.01)]),
    ("HurdleNegativeBinomial", ("psi", "mu", "alpha")): (
        lambda psi, mu, alpha: _Mixed(psi, _nbinom(mu, alpha), True),
        [(0.0, 0.7, 2.5, 1.3), (7.0, 0.4, 3.0, 0.4), (1.0, 0.5, 0.2, 30.0)]),
    ("HurdleGamma", ("psi", "alpha", "beta")): (
        lambda psi, alpha, beta: _Mixed(psi, stats.gamma(alpha, scale=1.0 / beta), True),
        [(0.0, 0.7, 2.5, 1.3), (0.7, 0.4, 3.0, 0.4), (5.0, 0.5, 0.2, 3.0)]),
    ("HurdleLogNormal", ("psi", "mu", "sigma")): (
        lambda psi, mu, sigma: _Mixed(psi, stats.lognorm(sigma, scale=math.exp(mu)), True),
        [(0.0, 0.7, 0.1, 0.8), (0.7, 0.4, -1.0, 2.0), (5.0, 0.5, 0.5, 0.3)]),
}
SCALAR_CASES.update(PYMC_SCALAR_CASES)


def _random_matrix(k, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, k))
    return a @ a.T + k * np.eye(k)


def _mvnormal_args(k, seed, chol):
    rng = np.random.default_rng(seed + 100)
    cov = _random_matrix(k, seed)
    x, mu = rng.normal(size=k), rng.normal(size=k)
    return (x, mu, np.linalg.cholesky(cov) if chol else cov)


def _correlation_cholesky(k, seed):
    cov = _random_matrix(k, seed)
    d = 1.0 / np.sqrt(np.diag(cov))
    return np.linalg.cholesky(cov * d[:, None] * d[None, :])


def _simplex(k, seed):
    x = np.random.default_rng(seed).uniform(0.2, 1.0, size=k)
    return x / x.sum()


def _lkj_reference(L, eta):
    """det(R)^(eta - 1) times the Jacobian prod L_ii^(k-i-1), normalised by LKJ 2009 eqs. 15-16."""
    k = L.shape[0]
    R = L @ L.T
    log_c = 0.0
    for i in range(1, k):
        d = k - i
        b = eta + 0.5 * (d - 1)
        log_c -= d * special.betaln(b, b) + (2.0 * eta - 2.0 + d) * d * math.log(2.0)
    jacobian = sum((k - i - 1) * math.log(L[i, i]) for i in range(1, k))
    return log_c + (eta - 1.0) * np.linalg.slogdet(R)[1] + jacobian


def _mvnormal_reference(x, mu, L_or_cov, chol):
    cov = L_or_cov @ L_or_cov.T if chol else L_or_cov
    return stats.multivariate_normal(mu, cov).logpdf(x)


EVENT_CASES = {
    ("MvNormal", ("mu", "chol")): (
        lambda x, mu, L: _mvnormal_reference(x, mu, L, True),
        [_mvnormal_args(k, k, True) for k in (1, 3, 4)]),
    ("MvNormal", ("mu", "cov")): (
        lambda x, mu, cov: _mvnormal_reference(x, mu, cov, False),
        [_mvnormal_args(k, k, False) for k in (1, 3, 4)]),
    ("Dirichlet", ("a",)): (
        lambda x, a: stats.dirichlet(a).logpdf(x),
        [(_simplex(k, k), np.random.default_rng(k).uniform(0.4, 3.0, size=k)) for k in (2, 3, 5)]),
    ("LKJCorrCholesky", ("eta",)): (
        _lkj_reference,
        [(_correlation_cholesky(k, k), eta)
         for k, eta in ((2, 0.7), (3, 1.0), (4, 2.5), (5, 1.3))]),
}


def _ordered_probabilities(eta, cutpoints, cdf):
    below = np.concatenate([[0.0], cdf(cutpoints - eta), [1.0]])
    return np.diff(below)


# Counts and indices are data; the vector parameters vary in size and scale.
PYMC_EVENT_CASES = {
    ("Categorical", ("p",)): (
        lambda x, p: math.log(p[int(x)] / p.sum()),
        [(2.0, np.array([0.2, 0.3, 0.5])), (0.0, np.array([0.7, 0.1, 0.1, 0.1])),
         (1.0, np.array([0.4, 1.1]))]),
    ("Categorical", ("logit_p",)): (
        lambda x, logit_p: logit_p[int(x)] - special.logsumexp(logit_p),
        [(2.0, np.array([0.2, -1.3, 0.5])), (0.0, np.array([30.0, 1.0, -4.0, 0.0]))]),
    ("OrderedLogistic", ("eta", "cutpoints")): (
        lambda x, eta, c: math.log(_ordered_probabilities(eta, c, special.expit)[int(x)]),
        [(0.0, 0.3, np.array([-1.0, 0.5, 2.0])), (2.0, -0.4, np.array([-1.0, 0.5, 2.0])),
         (3.0, 1.5, np.array([-1.0, 0.5, 2.0])), (1.0, 8.0, np.array([-2.0, 1.0]))]),
    ("OrderedProbit", ("eta", "cutpoints", "sigma")): (
        lambda x, eta, c, sigma: math.log(_ordered_probabilities(
            eta, c, lambda z: stats.norm.cdf(z / sigma))[int(x)]),
        [(0.0, 0.3, np.array([-1.0, 0.5, 2.0]), 1.0), (2.0, -0.4, np.array([-1.0, 0.5, 2.0]), 0.7),
         (3.0, 1.5, np.array([-1.0, 0.5, 2.0]), 2.0), (1.0, 3.0, np.array([-2.0, 1.0]), 0.5)]),
    ("Multinomial", ("n", "p")): (
        lambda x, n, p: stats.multinomial(int(n), p / p.sum()).logpmf(x),
        [(np.array([2.0, 0.0, 3.0]), 5.0, np.array([0.3, 0.2, 0.5])),
         (np.array([10.0, 7.0]), 17.0, np.array([0.4, 0.9]))]),
    ("DirichletMultinomial", ("n", "a")): (
        lambda x, n, a: stats.dirichlet_multinomial(a, int(n)).logpmf(x),
        [(np.array([2.0, 0.0, 3.0]), 5.0, np.array([0.3, 2.0, 1.5])),
         (np.array([10.0, 7.0]), 17.0, np.array([4.0, 0.9]))]),
}
EVENT_CASES.update(PYMC_EVENT_CASES)

SCALAR_KEYS = [key for key, kernel in KERNELS.items() if not kernel.has_array_args]
EVENT_KEYS = [key for key, kernel in KERNELS.items() if kernel.has_array_args]
CDF_KEYS = [key for key in SCALAR_KEYS if KERNELS[key].logcdf is not None]


def _id(key):
    return f"{key[0]}({','.join(key[1])})"


# ---- the checker: central differences on one argument (or one element of an array argument) --
def finite_difference(f, args, slot, index=None):
    """(d f / d args[slot][index], f(args)) by central differences, step 1e-6 relative."""
    value = args[slot] if index is None else args[slot][index]
    h = 1e-6 * max(abs(value), 1.0)

    def at(step):
        shifted = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        if index is None:
            shifted[slot] = value + step
        else:
            shifted[slot][index] = value + step
        return f(*shifted)

    return (at(h) - at(-h)) / (2.0 * h), f(*args)


def assert_partial(f, args, slot, analytic, index=None, label=""):
    """analytic within RTOL_GRAD of the central difference (absolute floor for rounding in f)."""
    numeric, value = finite_difference(f, args, slot, index)
    tolerance = RTOL_GRAD * abs(numeric) + 1e-8 * (1.0 + abs(value))
    assert abs(analytic - numeric) <= tolerance, (
        f"{label} argument {slot}{'' if index is None else list(index)}: "
        f"analytic {analytic!r}, finite difference {numeric!r}")


def check_scalar_gradient(logp, logp_grad, args, constant_slots=(), label=""):
    """logp_grad(*args) = (logp, one partial per argument); constant slots have partial 0.0."""
    out = logp_grad(*args)
    assert len(out) == len(args) + 1, label
    np.testing.assert_allclose(out[0], logp(*args), rtol=1e-14, err_msg=label)
    for slot, partial in enumerate(out[1:]):
        if slot in constant_slots or not np.isfinite(args[slot]):  # an infinite bound is fixed
            assert partial == 0.0, f"{label} argument {slot}: partial of a constant"
        else:
            assert_partial(logp, args, slot, partial, label=label)


PREFILL = 0.25  # gradients must be added to what the arrays already hold


def _work(kernel, k):
    return () if kernel.work_shape is None else (np.full(kernel.work_shape(k), np.nan),)


def _event_size(args):
    """k, the length of the first array argument (the value's, unless it is a scalar index)."""
    return next(np.shape(a)[0] for a in args if np.ndim(a))


def check_event_gradient(kernel, args, logp_grad=None, label=""):
    """Array gradients added into the arrays passed in, scalar partials returned after logp."""
    logp_grad = logp_grad or kernel.logp_grad
    k = _event_size(args)
    ranks = (kernel.event_ndim,) + kernel.param_ndim
    constant = [slot for slot, name in enumerate(("x",) + kernel.params)
                if name in kernel.constant_args]  # data: counts, an index, n
    grads = [np.full(np.shape(a), PREFILL) for a, r in zip(args, ranks) if r > 0]
    out = logp_grad(*args, *grads, *_work(kernel, k))
    value, scalar_partials = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
    assert len(scalar_partials) == ranks.count(0), label

    def logp(*a):
        return kernel.logp(*a, *_work(kernel, k))

    np.testing.assert_allclose(value, logp(*args), rtol=1e-14, err_msg=label)
    array_grads, partials = iter(grads), iter(scalar_partials)
    for slot, rank in enumerate(ranks):
        if rank == 0:
            partial = next(partials)
            if slot in constant:
                assert partial == 0.0, f"{label} argument {slot}: partial of data"
            else:
                assert_partial(logp, args, slot, partial, label=label)
            continue
        grad = next(array_grads) - PREFILL
        if slot in constant:
            assert not grad.any(), f"{label} argument {slot}: gradient of data"
            continue
        for index in np.ndindex(grad.shape):
            assert_partial(logp, args, slot, grad[index], index, label=label)


# ---- the registry agrees with the IR ---------------------------------------------------------
def test_every_kernel_has_cases():
    assert set(KERNELS) == set(SCALAR_CASES) | set(EVENT_CASES)


def test_every_ir_family_has_a_kernel_or_expands():
    """A family either has kernels or is defined through other terms (``expand``: random
    walks, custom densities, wrappers such as Truncated, mixtures)."""
    from exmc.ir.dists.base import Distribution
    composite = {name for name, cls in FAMILIES.items() if cls.expand is not Distribution.expand}
    assert set(FAMILIES) - composite <= {family for family, _ in KERNELS}


@pytest.mark.parametrize("key", SCALAR_KEYS, ids=_id)
def test_scalar_kernel_matches_ir_parameters(key):
    family, given = key
    kernel, cls = KERNELS[key], FAMILIES[family]
    assert kernel.params == given
    assert list(given) == [p for p in cls.params if p in given], "PyMC's parameter order"
    assert kernel.param_ndim == (0,) * len(given)
    observed_only = cls.discrete or getattr(cls, "observed_only", False)  # the value is data
    expected = (("x",) if observed_only else ()) + tuple(p for p in cls.data_params if p in given)
    assert kernel.constant_args == expected


@pytest.mark.parametrize("key", list(KERNELS), ids=_id)
def test_every_kernel_compiles_on_the_cpu(key):
    kernel = KERNELS[key]
    cases = (EVENT_CASES if kernel.has_array_args else SCALAR_CASES)[key][1]
    args = cases[0]
    work = _work(kernel, _event_size(args)) if kernel.has_array_args else ()
    ranks = (kernel.event_ndim,) + kernel.param_ndim
    grads = [np.zeros(np.shape(a)) for a, r in zip(args, ranks) if r > 0]
    for name in ("logp", "logp_grad", "logcdf", "logcdf_grad", "logccdf", "logccdf_grad"):
        fn = getattr(kernel, name)
        if fn is None:
            continue
        assert isinstance(fn, numba.core.registry.CPUDispatcher), name
        if name == "logp_grad" and kernel.has_array_args:
            fn(*args, *grads, *work)
        else:
            fn(*args, *work)
        assert fn.signatures, f"{name} did not compile"


def _cuda_or_skip():
    """numba.cuda if it can compile PTX here (NVVM, e.g. ``numba-cuda[cu12]``; no GPU needed)."""
    try:
        from numba import cuda
        cuda.compile_ptx(scalar.sigmoid.py_func, (numba.float64,), device=True, cc=(7, 0))
    except Exception as error:  # no numba.cuda, no NVVM, no toolkit: nothing to compile with
        pytest.skip(f"no CUDA compiler here: {type(error).__name__}")
    return cuda


@pytest.mark.parametrize("key", list(KERNELS), ids=_id)
def test_every_kernel_compiles_unchanged_as_a_cuda_device_function(key):
    """The same Python functions (``py_func``) compile for CUDA, calling their @njit helpers."""
    cuda, kernel = _cuda_or_skip(), KERNELS[key]
    ranks = (kernel.event_ndim,) + kernel.param_ndim
    types = [numba.float64 if r == 0 else numba.types.Array(numba.float64, r, "C") for r in ranks]
    work = [numba.types.Array(numba.float64, 2, "C")] if kernel.work_shape else []
    signatures = {"logp": types + work,
                  "logp_grad": types + [t for t in types if t != numba.float64] + work
                  if kernel.has_array_args else types}
    for name in ("logcdf", "logcdf_grad", "logccdf", "logccdf_grad"):
        signatures[name] = types
    for name, signature in signatures.items():
        fn = getattr(kernel, name)
        if fn is not None:
            cuda.compile_ptx(fn.py_func, tuple(signature), device=True, cc=(7, 0))


# ---- scalar families -------------------------------------------------------------------------
def _logpdf(frozen, x):
    return frozen.logpmf(x) if isinstance(frozen.dist, stats.rv_discrete) else frozen.logpdf(x)


@pytest.mark.parametrize("key", SCALAR_KEYS, ids=_id)
def test_scalar_logp_matches_scipy(key):
    reference, points = SCALAR_CASES[key]
    for x, *params in points:
        np.testing.assert_allclose(KERNELS[key].logp(x, *params),
                                   _logpdf(reference(*params), x), rtol=RTOL_VALUE,
                                   err_msg=f"{_id(key)} at {(x, *params)}")


@pytest.mark.parametrize("key", [k for k in SCALAR_KEYS if KERNELS[k].normalizer_grad is not None],
                         ids=_id)
def test_normalizer_and_body_add_up_to_logp_grad(key):
    """The split the emitter uses for batch-wide parameters gives logp_grad exactly."""
    kernel = KERNELS[key]
    names = ("x",) + kernel.params
    for args in SCALAR_CASES[key][1]:
        body = kernel.body_grad(*args)
        normalizer = kernel.normalizer_grad(*(args[names.index(p)] for p in kernel.normalizer_params))
        total = [body[0] + normalizer[0]] + list(body[1:])
        for p, partial in zip(kernel.normalizer_params, normalizer[1:]):
            total[names.index(p) + 1] += partial
        np.testing.assert_allclose(total, kernel.logp_grad(*args), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("key", SCALAR_KEYS, ids=_id)
def test_scalar_logp_grad_matches_finite_differences(key):
    kernel = KERNELS[key]
    names = ("x",) + kernel.params
    constant = [names.index(name) for name in kernel.constant_args]
    for args in SCALAR_CASES[key][1]:
        check_scalar_gradient(kernel.logp, kernel.logp_grad, args, constant,
                              f"{_id(key)} at {args}")


@pytest.mark.parametrize("key", CDF_KEYS, ids=_id)
def test_logcdf_and_logccdf_match_scipy(key):
    kernel, (reference, points) = KERNELS[key], SCALAR_CASES[key]
    for x, *params in points:
        frozen = reference(*params)
        label = f"{_id(key)} at {(x, *params)}"
        # atol: where a tail holds almost all the mass, scipy's discrete logcdf/logsf is
        # log of a probability rounded near 1 (the kernels sum the other tail instead)
        np.testing.assert_allclose(kernel.logcdf(x, *params), frozen.logcdf(x),
                                   rtol=RTOL_VALUE, atol=1e-14, err_msg=label)
        np.testing.assert_allclose(kernel.logccdf(x, *params), frozen.logsf(x),
                                   rtol=RTOL_VALUE, atol=1e-14, err_msg=label)


@pytest.mark.parametrize("key", CDF_KEYS, ids=_id)
def test_logcdf_and_logccdf_gradients_match_finite_differences(key):
    kernel = KERNELS[key]
    names = ("x",) + kernel.params
    constant = [names.index(name) for name in kernel.constant_args]  # a discrete value
    for args in SCALAR_CASES[key][1]:
        for name in ("logcdf", "logccdf"):
            fn, grad = getattr(kernel, name), getattr(kernel, f"{name}_grad")
            if fn(*args) == -math.inf:  # a discrete value at the top of the support: ccdf 0
                assert grad(*args)[1:] == (0.0,) * len(args), f"{name} {args}"
                continue
            check_scalar_gradient(fn, grad, args, constant, f"{name} {args}")


@pytest.mark.parametrize("key", [k for k in CDF_KEYS
                                 if FAMILIES[k[0]].lower is not None], ids=_id)
def test_cdf_outside_the_support(key):
    """Below the support the cdf is 0, above it 1 (bounds may name parameters, as for Uniform)."""
    kernel, cls = KERNELS[key], FAMILIES[key[0]]
    x, *params = SCALAR_CASES[key][1][0]
    named = dict(zip(kernel.params, params))
    lower = named.get(cls.lower, cls.lower)
    zeros = (0.0,) * (len(params) + 1)
    assert kernel.logcdf(lower - 1.0, *params) == -math.inf
    assert kernel.logcdf_grad(lower - 1.0, *params) == (-math.inf, *zeros)
    assert kernel.logccdf(lower - 1.0, *params) == 0.0
    assert kernel.logccdf_grad(lower - 1.0, *params) == (0.0, *zeros)
    if cls.upper is not None:
        upper = named.get(cls.upper, cls.upper)
        assert kernel.logcdf_grad(upper + 1.0, *params) == (0.0, *zeros)
        assert kernel.logccdf_grad(upper + 1.0, *params) == (-math.inf, *zeros)


@pytest.mark.parametrize("z", [-38.0, -25.0, -8.0, 8.0, 25.0])
def test_normal_cdfs_in_the_tails(z):
    """Far tails, where log(cdf) computed naively is -inf or 0."""
    x, mu, sigma = 1.0 + 2.0 * z, 1.0, 2.0
    # atol: at |z| = 38 the upper tail's mass is subnormal and scipy rounds it to 0
    np.testing.assert_allclose(families.normal_logcdf(x, mu, sigma), stats.norm.logcdf(z),
                               rtol=RTOL_VALUE, atol=1e-300)
    np.testing.assert_allclose(families.normal_logccdf(x, mu, sigma), stats.norm.logsf(z),
                               rtol=RTOL_VALUE, atol=1e-300)
    check_scalar_gradient(families.normal_logcdf, families.normal_logcdf_grad, (x, mu, sigma))
    check_scalar_gradient(families.normal_logccdf, families.normal_logccdf_grad, (x, mu, sigma))


# ---- event families --------------------------------------------------------------------------
@pytest.mark.parametrize("key", EVENT_KEYS, ids=_id)
def test_event_logp_matches_reference(key):
    kernel, (reference, points) = KERNELS[key], EVENT_CASES[key]
    for args in points:
        np.testing.assert_allclose(kernel.logp(*args, *_work(kernel, _event_size(args))),
                                   reference(*args), rtol=RTOL_VALUE)


@pytest.mark.parametrize("key", EVENT_KEYS, ids=_id)
def test_event_logp_grad_matches_finite_differences(key):
    for i, args in enumerate(EVENT_CASES[key][1]):
        check_event_gradient(KERNELS[key], args, label=f"{_id(key)} case {i}")


def test_mvnormal_cov_not_positive_definite_is_minus_infinity():
    kernel = KERNELS["MvNormal", ("mu", "cov")]
    cov = np.array([[1.0, 2.0], [2.0, 1.0]])
    x, g = np.zeros(2), np.zeros(2)
    assert kernel.logp(x, x, cov, np.zeros(kernel.work_shape(2))) == -math.inf
    gcov = np.zeros((2, 2))
    assert kernel.logp_grad(x, x, cov, g, g, gcov, np.zeros(kernel.work_shape(2))) == -math.inf
    assert not g.any() and not gcov.any()


@pytest.mark.parametrize("eta", [0.7, 1.0, 2.5])
def test_lkj_normalises_in_two_and_three_dimensions(eta):
    """Brute force: the density integrates to 1 over the free elements of L."""
    def density2(r):
        return math.exp(families.lkj_corr_cholesky_logp(
            np.array([[1.0, 0.0], [r, math.sqrt(1.0 - r * r)]]), eta))

    total, _ = integrate.quad(density2, -1.0, 1.0, epsabs=0.0, epsrel=1e-12, limit=200)
    assert total == pytest.approx(1.0, rel=1e-9)

    # k = 3: row 1 is (r, sqrt(1 - r^2)); row 2's free pair lies in the unit disk and the
    # density depends on it through its radius only, so integrate 2 pi rho d rho.
    def density3(rho, r):
        L = np.array([[1.0, 0.0, 0.0], [r, math.sqrt(1.0 - r * r), 0.0],
                      [rho, 0.0, math.sqrt(1.0 - rho * rho)]])
        return 2.0 * math.pi * rho * math.exp(families.lkj_corr_cholesky_logp(L, eta))

    total, _ = integrate.dblquad(density3, -1.0, 1.0, 0.0, 1.0, epsabs=0.0, epsrel=1e-11)
    assert total == pytest.approx(1.0, rel=1e-8)


# ---- Cholesky and its adjoint ----------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 5])
def test_cholesky_lower_matches_numpy(k):
    A = _random_matrix(k, k)
    L = np.full((k, k), np.nan)  # scratch with junk: the upper triangle must be cleared
    assert families.cholesky_lower(A, L)
    np.testing.assert_allclose(L, np.linalg.cholesky(A), rtol=1e-13, atol=1e-14)
    assert not families.cholesky_lower(np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros((2, 2)))
    assert not families.cholesky_lower(np.array([[np.nan]]), np.zeros((1, 1)))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_cholesky_adjoint_matches_finite_differences(k):
    """f(A) = sum(W * chol(A)) for a fixed lower-triangular W: gA = adjoint with gL = W."""
    A = _random_matrix(k, k)
    W = np.tril(np.random.default_rng(k).normal(size=(k, k)))

    def f(A):
        L = np.zeros((k, k))
        families.cholesky_lower(A, L)
        return float(np.sum(W * L))

    L = np.zeros((k, k))
    families.cholesky_lower(A, L)
    gA = np.full((k, k), PREFILL)
    families.cholesky_adjoint(L, W.copy(), gA)
    gA -= PREFILL
    for index in np.ndindex(k, k):
        assert_partial(f, (A,), 0, gA[index], index, label="cholesky adjoint")
    assert not np.triu(gA, 1).any()


# ---- scalar helpers ----------------------------------------------------------------------------
def test_log_normal_cdf_matches_log_ndtr_over_both_tails():
    xs = np.concatenate([np.linspace(-40.0, 40.0, 4001), [-20.0, -19.999, -20.001, 0.0]])
    got = np.array([scalar.log_normal_cdf(x) for x in xs])
    # atol: beyond x = 37.5 both are subnormal, where no relative precision is left
    np.testing.assert_allclose(got, special.log_ndtr(xs), rtol=RTOL_VALUE, atol=1e-300)


def test_log_normal_cdf_derivative_is_the_mills_ratio():
    xs = np.concatenate([np.linspace(-40.0, 38.0, 3901), [-20.0, -20.001]])
    got = np.array([scalar.log_normal_cdf_derivative(x) for x in xs])
    expected = np.exp(-0.5 * xs * xs - scalar.LOG_SQRT_2PI - special.log_ndtr(xs))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    for x in (-35.0, -20.5, -19.5, -3.0, 0.0, 4.0):
        assert_partial(scalar.log_normal_cdf, (x,), 0, scalar.log_normal_cdf_derivative(x))


def test_log1mexp_on_both_sides_of_log_2():
    small = np.array([1e-300, 1e-20, 1e-8, 0.01, 0.5, 0.69, scalar.LOG_2])
    large = np.array([0.7, 1.0, 3.0])
    huge = np.array([40.0, 100.0, 700.0])
    for a in small:  # here -expm1(-a) is exact to rounding, 1 - exp(-a) would not be
        assert scalar.log1mexp(a) == pytest.approx(math.log(-math.expm1(-a)), rel=1e-15)
    for a in large:
        assert scalar.log1mexp(a) == pytest.approx(math.log(1.0 - math.exp(-a)), rel=1e-14)
    for a in huge:  # log(1 - e) = -e - e^2 / 2 - ... for tiny e
        e = math.exp(-a)
        assert scalar.log1mexp(a) == pytest.approx(-e - 0.5 * e * e, rel=1e-15)


def test_small_scalar_helpers():
    xs = np.array([-800.0, -30.0, -1.5, 0.0, 0.7, 30.0, 800.0])
    for x in xs:
        assert scalar.sigmoid(x) == pytest.approx(special.expit(x), rel=1e-15, abs=1e-300)
        assert scalar.softplus(x) == pytest.approx(np.logaddexp(0.0, x), rel=1e-15, abs=1e-300)
        assert scalar.erf(x / 10) == pytest.approx(special.erf(x / 10), rel=1e-15)
        assert scalar.erfc(x / 10) == pytest.approx(special.erfc(x / 10), rel=1e-14, abs=1e-300)
    for a, b in [(1.0, 2.0), (-1000.0, -1001.0), (-math.inf, 3.0), (-math.inf, -math.inf),
                 (800.0, 800.0)]:
        assert scalar.logsumexp2(a, b) == np.logaddexp(a, b)
    for x, y in [(0.0, 0.0), (2.0, 0.3), (0.0, -1.0)]:
        assert scalar.xlogy(x, y) == special.xlogy(x, y)
        assert scalar.xlog1py(x, y) == special.xlog1py(x, y)
    assert scalar.lgamma(4.5) == pytest.approx(special.gammaln(4.5), rel=1e-15)
    assert (scalar.LOG_2, scalar.LOG_PI, scalar.LOG_SQRT_2PI) == pytest.approx(
        (np.log(2), np.log(np.pi), 0.5 * np.log(2 * np.pi)), rel=1e-16)


def test_digamma_and_trigamma_match_scipy():
    xs = np.exp(np.linspace(-6.0, 6.0, 241))
    for x in xs:
        assert scalar.digamma(x) == pytest.approx(special.digamma(x), rel=1e-12, abs=1e-12)
        assert scalar.trigamma(x) == pytest.approx(special.polygamma(1, x), rel=1e-12)
    assert math.isnan(scalar.digamma(0.0)) and math.isnan(scalar.trigamma(-1.0))


# ---- negative controls: the checkers above must reject a wrong partial --------------------------
def test_negative_control_scalar_partial_missing_a_term():
    def wrong(x, mu, sigma):  # d/dsigma without its -1/sigma term
        logp, dx, dmu, dsigma = families.normal_logp_grad(x, mu, sigma)
        return logp, dx, dmu, dsigma + 1.0 / sigma

    with pytest.raises(AssertionError, match="argument 2:"):
        check_scalar_gradient(families.normal_logp, wrong, (0.3, 0.1, 2.0))


def test_negative_control_scalar_partial_off_by_1e_4():
    def wrong(x, nu, mu, sigma):
        logp, dx, dnu, dmu, dsigma = families.studentt_logp_grad(x, nu, mu, sigma)
        return logp, dx, dnu * (1.0 + 1e-4), dmu, dsigma

    with pytest.raises(AssertionError, match="argument 1"):
        check_scalar_gradient(families.studentt_logp, wrong, (0.3, 4.0, 0.1, 2.0))


def test_negative_control_event_gradient():
    kernel = KERNELS["MvNormal", ("mu", "chol")]

    def wrong(x, mu, L, gx, gmu, gL, work):  # gL's diagonal without the -1/L_ii term
        lp = kernel.logp_grad(x, mu, L, gx, gmu, gL, work)
        for i in range(L.shape[0]):
            gL[i, i] += 1.0 / L[i, i]
        return lp

    with pytest.raises(AssertionError, match=r"argument 2\[0, 0\]"):
        check_event_gradient(kernel, EVENT_CASES["MvNormal", ("mu", "chol")][1][1], wrong)
