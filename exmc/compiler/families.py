"""Family log-density kernels with exact gradients, one source for CPU and CUDA; their registry."""
import math
from typing import Callable, NamedTuple, Optional

from exmc.compiler.njit import kernel
from exmc.compiler.scalar import (LOG_2, LOG_PI, LOG_SQRT_2PI, bessel_i1_over_i0, digamma,
                                  digamma_rising, log1mexp, log_bessel_i0, log_beta_inc,
                                  log_gamma_inc, log_rising,
                                  log_normal_cdf,
                                  log_normal_cdf_derivative, logsumexp2, sigmoid, softplus,
                                  xlog1py, xlogy)

INF = math.inf
SQRT_2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@kernel
def _sign(d):
    return 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)


# ---- continuous scalar families ------------------------------------------------------------
@kernel
def normal_logp(x, mu, sigma):
    z = (x - mu) / sigma
    return -0.5 * z * z - math.log(sigma) - LOG_SQRT_2PI


@kernel
def normal_logp_grad(x, mu, sigma):
    z = (x - mu) / sigma
    return normal_logp(x, mu, sigma), -z / sigma, z / sigma, (z * z - 1.0) / sigma


@kernel
def normal_normalizer_grad(sigma):
    """The terms of ``normal_logp`` in sigma alone, and their derivative."""
    return -math.log(sigma) - LOG_SQRT_2PI, -1.0 / sigma


@kernel
def normal_body_grad(x, mu, sigma):
    """``normal_logp_grad`` less its normalizer in sigma."""
    z = (x - mu) / sigma
    return -0.5 * z * z, -z / sigma, z / sigma, z * z / sigma


@kernel
def normal_logcdf(x, mu, sigma):
    return log_normal_cdf((x - mu) / sigma)


@kernel
def normal_logcdf_grad(x, mu, sigma):
    z = (x - mu) / sigma
    d = log_normal_cdf_derivative(z) / sigma
    return log_normal_cdf(z), d, -d, -d * z


@kernel
def normal_logccdf(x, mu, sigma):
    return log_normal_cdf((mu - x) / sigma)


@kernel
def normal_logccdf_grad(x, mu, sigma):
    z = (mu - x) / sigma
    d = log_normal_cdf_derivative(z) / sigma
    return log_normal_cdf(z), -d, d, -d * z


@kernel
def halfnormal_logp(x, sigma):
    z = x / sigma
    return -0.5 * z * z - math.log(sigma) + LOG_2 - LOG_SQRT_2PI


@kernel
def halfnormal_logp_grad(x, sigma):
    z = x / sigma
    return halfnormal_logp(x, sigma), -z / sigma, (z * z - 1.0) / sigma


@kernel
def halfnormal_logcdf(x, sigma):
    if x <= 0.0:
        return -INF
    z = x / sigma
    # cdf = erf(z / sqrt 2): erf is relatively exact near 0, erfc keeps the upper tail.
    if z < 1.0:
        return math.log(math.erf(z / SQRT_2))
    return math.log1p(-math.erfc(z / SQRT_2))


@kernel
def halfnormal_logcdf_grad(x, sigma):
    if x <= 0.0:
        return -INF, 0.0, 0.0
    z = x / sigma
    d = SQRT_2_OVER_PI * math.exp(-0.5 * z * z) / math.erf(z / SQRT_2) / sigma
    return halfnormal_logcdf(x, sigma), d, -d * z


@kernel
def halfnormal_logccdf(x, sigma):
    if x <= 0.0:
        return 0.0
    return LOG_2 + log_normal_cdf(-x / sigma)


@kernel
def halfnormal_logccdf_grad(x, sigma):
    if x <= 0.0:
        return 0.0, 0.0, 0.0
    z = x / sigma
    d = -log_normal_cdf_derivative(-z) / sigma
    return LOG_2 + log_normal_cdf(-z), d, -d * z


@kernel
def halfcauchy_logp(x, beta):
    return LOG_2 - LOG_PI + math.log(beta) - math.log(beta * beta + x * x)


@kernel
def halfcauchy_logp_grad(x, beta):
    s = beta * beta + x * x
    return halfcauchy_logp(x, beta), -2.0 * x / s, 1.0 / beta - 2.0 * beta / s


# cdf = (2 / pi) atan(t), ccdf = (2 / pi) atan2(1, t): each computed directly, never as 1 - other.
@kernel
def halfcauchy_logcdf(x, beta):
    if x <= 0.0:
        return -INF
    t = x / beta
    if t < 1.0:
        return math.log(math.atan(t)) + LOG_2 - LOG_PI
    return math.log1p(-2.0 / math.pi * math.atan2(1.0, t))


@kernel
def halfcauchy_logcdf_grad(x, beta):
    if x <= 0.0:
        return -INF, 0.0, 0.0
    t = x / beta
    d = 1.0 / ((1.0 + t * t) * math.atan(t)) / beta
    return halfcauchy_logcdf(x, beta), d, -d * t


@kernel
def halfcauchy_logccdf(x, beta):
    if x <= 0.0:
        return 0.0
    return math.log(math.atan2(1.0, x / beta)) + LOG_2 - LOG_PI


@kernel
def halfcauchy_logccdf_grad(x, beta):
    if x <= 0.0:
        return 0.0, 0.0, 0.0
    t = x / beta
    d = -1.0 / ((1.0 + t * t) * math.atan2(1.0, t)) / beta
    return halfcauchy_logccdf(x, beta), d, -d * t


@kernel
def exponential_logp(x, lam):
    return math.log(lam) - lam * x


@kernel
def exponential_logp_grad(x, lam):
    return exponential_logp(x, lam), -lam, 1.0 / lam - x


@kernel
def exponential_logcdf(x, lam):
    if x <= 0.0:
        return -INF
    return log1mexp(lam * x)


@kernel
def exponential_logcdf_grad(x, lam):
    if x <= 0.0:
        return -INF, 0.0, 0.0
    d = 1.0 / math.expm1(lam * x)  # d/da log(1 - exp(-a)) at a = lam x
    return log1mexp(lam * x), d * lam, d * x


@kernel
def exponential_logccdf(x, lam):
    return -lam * max(x, 0.0)


@kernel
def exponential_logccdf_grad(x, lam):
    if x <= 0.0:
        return 0.0, 0.0, 0.0
    return -lam * x, -lam, -x


@kernel
def gamma_normalizer_grad(alpha, beta):
    """alpha log(beta) - lgamma(alpha) (Gamma's and InverseGamma's), with its partials."""
    return alpha * math.log(beta) - math.lgamma(alpha), math.log(beta) - digamma(alpha), alpha / beta


@kernel
def gamma_body_grad(x, alpha, beta):
    lx = math.log(x)
    return (alpha - 1.0) * lx - beta * x, (alpha - 1.0) / x - beta, lx, -x


@kernel
def gamma_logp(x, alpha, beta):
    return alpha * math.log(beta) - math.lgamma(alpha) + (alpha - 1.0) * math.log(x) - beta * x


@kernel
def gamma_logp_grad(x, alpha, beta):
    c, dca, dcb = gamma_normalizer_grad(alpha, beta)
    lp, dx, da, db = gamma_body_grad(x, alpha, beta)
    return lp + c, dx, da + dca, db + dcb


@kernel
def inversegamma_body_grad(x, alpha, beta):
    lx = math.log(x)
    return -(alpha + 1.0) * lx - beta / x, (beta / x - alpha - 1.0) / x, -lx, -1.0 / x


@kernel
def inversegamma_logp(x, alpha, beta):
    return alpha * math.log(beta) - math.lgamma(alpha) - (alpha + 1.0) * math.log(x) - beta / x


@kernel
def inversegamma_logp_grad(x, alpha, beta):
    c, dca, dcb = gamma_normalizer_grad(alpha, beta)
    lp, dx, da, db = inversegamma_body_grad(x, alpha, beta)
    return lp + c, dx, da + dca, db + dcb


@kernel
def beta_normalizer_grad(alpha, beta):
    """-log B(alpha, beta), with its partials."""
    d = digamma(alpha + beta)
    return (math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta),
            d - digamma(alpha), d - digamma(beta))


@kernel
def beta_body_grad(x, alpha, beta):
    lx, l1x = math.log(x), math.log1p(-x)
    return ((alpha - 1.0) * lx + (beta - 1.0) * l1x,
            (alpha - 1.0) / x - (beta - 1.0) / (1.0 - x), lx, l1x)


@kernel
def beta_logp(x, alpha, beta):
    return (math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
            + (alpha - 1.0) * math.log(x) + (beta - 1.0) * math.log1p(-x))


@kernel
def beta_logp_grad(x, alpha, beta):
    c, dca, dcb = beta_normalizer_grad(alpha, beta)
    lp, dx, da, db = beta_body_grad(x, alpha, beta)
    return lp + c, dx, da + dca, db + dcb


@kernel
def uniform_logp(x, lower, upper):
    return -math.log(upper - lower)


@kernel
def uniform_logp_grad(x, lower, upper):
    w = upper - lower
    return -math.log(w), 0.0, 1.0 / w, -1.0 / w


@kernel
def uniform_logcdf(x, lower, upper):
    if x <= lower:
        return -INF
    if x >= upper:
        return 0.0
    return math.log(x - lower) - math.log(upper - lower)


@kernel
def uniform_logcdf_grad(x, lower, upper):
    if x <= lower:
        return -INF, 0.0, 0.0, 0.0
    if x >= upper:
        return 0.0, 0.0, 0.0, 0.0
    a, w = 1.0 / (x - lower), 1.0 / (upper - lower)
    return uniform_logcdf(x, lower, upper), a, w - a, -w


@kernel
def uniform_logccdf(x, lower, upper):
    if x <= lower:
        return 0.0
    if x >= upper:
        return -INF
    return math.log(upper - x) - math.log(upper - lower)


@kernel
def uniform_logccdf_grad(x, lower, upper):
    if x <= lower:
        return 0.0, 0.0, 0.0, 0.0
    if x >= upper:
        return -INF, 0.0, 0.0, 0.0
    a, w = 1.0 / (upper - x), 1.0 / (upper - lower)
    return uniform_logccdf(x, lower, upper), -a, w, a - w


@kernel
def studentt_normalizer_grad(nu):
    """The terms of ``studentt_logp`` in nu alone, and their derivative."""
    value = math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu) - 0.5 * LOG_PI
    return value, 0.5 * (digamma(0.5 * (nu + 1.0)) - digamma(0.5 * nu)) - 0.5 / nu


@kernel
def studentt_body_grad(x, nu, mu, sigma):
    """``studentt_logp_grad`` less its normalizer in nu."""
    t = (x - mu) / sigma
    tt = t * t
    w = (nu + 1.0) / (nu + tt)
    lp = -math.log(sigma) - 0.5 * (nu + 1.0) * math.log1p(tt / nu)
    return lp, -w * t / sigma, -0.5 * math.log1p(tt / nu) + 0.5 * w * tt / nu, w * t / sigma, \
        (w * tt - 1.0) / sigma


@kernel
def studentt_logp(x, nu, mu, sigma):
    t = (x - mu) / sigma
    return (math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu)
            - 0.5 * LOG_PI - math.log(sigma) - 0.5 * (nu + 1.0) * math.log1p(t * t / nu))


@kernel
def studentt_logp_grad(x, nu, mu, sigma):
    c, dc = studentt_normalizer_grad(nu)
    lp, dx, dnu, dmu, dsigma = studentt_body_grad(x, nu, mu, sigma)
    return lp + c, dx, dnu + dc, dmu, dsigma


@kernel
def cauchy_logp(x, alpha, beta):
    t = (x - alpha) / beta
    return -LOG_PI - math.log(beta) - math.log1p(t * t)


@kernel
def cauchy_logp_grad(x, alpha, beta):
    t = (x - alpha) / beta
    d = beta * (1.0 + t * t)
    return (cauchy_logp(x, alpha, beta), -2.0 * t / d, 2.0 * t / d,
            (2.0 * t * t / (1.0 + t * t) - 1.0) / beta)


# Standard Cauchy: cdf(t) = atan2(1, -t) / pi exactly, with no cancellation in either tail.
@kernel
def _cauchy_standard_logcdf(t):
    if t < 0.0:
        return math.log(math.atan2(1.0, -t)) - LOG_PI
    return math.log1p(-math.atan2(1.0, t) / math.pi)


@kernel
def _cauchy_standard_logcdf_derivative(t):
    return 1.0 / ((1.0 + t * t) * math.atan2(1.0, -t))


@kernel
def cauchy_logcdf(x, alpha, beta):
    return _cauchy_standard_logcdf((x - alpha) / beta)


@kernel
def cauchy_logcdf_grad(x, alpha, beta):
    t = (x - alpha) / beta
    d = _cauchy_standard_logcdf_derivative(t) / beta
    return _cauchy_standard_logcdf(t), d, -d, -d * t


@kernel
def cauchy_logccdf(x, alpha, beta):
    return _cauchy_standard_logcdf((alpha - x) / beta)


@kernel
def cauchy_logccdf_grad(x, alpha, beta):
    t = (alpha - x) / beta
    d = _cauchy_standard_logcdf_derivative(t) / beta
    return _cauchy_standard_logcdf(t), -d, d, -d * t


@kernel
def lognormal_logp(x, mu, sigma):
    lx = math.log(x)
    z = (lx - mu) / sigma
    return -0.5 * z * z - math.log(sigma) - LOG_SQRT_2PI - lx


@kernel
def lognormal_logp_grad(x, mu, sigma):
    z = (math.log(x) - mu) / sigma
    return lognormal_logp(x, mu, sigma), -(z / sigma + 1.0) / x, z / sigma, (z * z - 1.0) / sigma


@kernel
def lognormal_logcdf(x, mu, sigma):
    if x <= 0.0:
        return -INF
    return log_normal_cdf((math.log(x) - mu) / sigma)


@kernel
def lognormal_logcdf_grad(x, mu, sigma):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    z = (math.log(x) - mu) / sigma
    d = log_normal_cdf_derivative(z) / sigma
    return log_normal_cdf(z), d / x, -d, -d * z


@kernel
def lognormal_logccdf(x, mu, sigma):
    if x <= 0.0:
        return 0.0
    return log_normal_cdf((mu - math.log(x)) / sigma)


@kernel
def lognormal_logccdf_grad(x, mu, sigma):
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    z = (mu - math.log(x)) / sigma
    d = log_normal_cdf_derivative(z) / sigma
    return log_normal_cdf(z), -d / x, d, -d * z


@kernel
def laplace_logp(x, mu, b):
    return -math.log(2.0 * b) - abs(x - mu) / b


@kernel
def laplace_logp_grad(x, mu, b):
    d = x - mu
    return laplace_logp(x, mu, b), -_sign(d) / b, _sign(d) / b, (abs(d) / b - 1.0) / b


# Standard Laplace: cdf(s) = exp(s) / 2 below 0, 1 - exp(-s) / 2 above (log1p keeps that tail).
@kernel
def _laplace_standard_logcdf(s):
    if s < 0.0:
        return s - LOG_2
    return math.log1p(-0.5 * math.exp(-s))


@kernel
def _laplace_standard_logcdf_derivative(s):
    if s < 0.0:
        return 1.0
    e = 0.5 * math.exp(-s)
    return e / (1.0 - e)


@kernel
def laplace_logcdf(x, mu, b):
    return _laplace_standard_logcdf((x - mu) / b)


@kernel
def laplace_logcdf_grad(x, mu, b):
    s = (x - mu) / b
    d = _laplace_standard_logcdf_derivative(s) / b
    return _laplace_standard_logcdf(s), d, -d, -d * s


@kernel
def laplace_logccdf(x, mu, b):
    return _laplace_standard_logcdf((mu - x) / b)


@kernel
def laplace_logccdf_grad(x, mu, b):
    s = (mu - x) / b
    d = _laplace_standard_logcdf_derivative(s) / b
    return _laplace_standard_logcdf(s), -d, d, -d * s


# ---- continuous scalar families of PyMC beyond the first thirteen --------------------------
@kernel
def flat_logp(x):
    return 0.0


@kernel
def flat_logp_grad(x):
    return 0.0, 0.0


@kernel
def halfstudentt_logp(x, nu, sigma):
    return LOG_2 + studentt_logp(x, nu, 0.0, sigma)


@kernel
def halfstudentt_logp_grad(x, nu, sigma):
    lp, dx, dnu, _, dsigma = studentt_logp_grad(x, nu, 0.0, sigma)
    return LOG_2 + lp, dx, dnu, dsigma


@kernel
def weibull_logp(x, alpha, beta):
    lt = math.log(x / beta)
    return math.log(alpha / beta) + (alpha - 1.0) * lt - math.exp(alpha * lt)


@kernel
def weibull_logp_grad(x, alpha, beta):
    lt = math.log(x / beta)
    t = math.exp(alpha * lt)  # (x / beta)^alpha
    return (weibull_logp(x, alpha, beta), (alpha - 1.0 - alpha * t) / x,
            1.0 / alpha + lt * (1.0 - t), alpha * (t - 1.0) / beta)


# Weibull: cdf = 1 - exp(-t), t = (x / beta)^alpha; partials through t.
@kernel
def weibull_logcdf(x, alpha, beta):
    if x <= 0.0:
        return -INF
    return log1mexp(math.exp(alpha * math.log(x / beta)))


@kernel
def weibull_logcdf_grad(x, alpha, beta):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    lt = math.log(x / beta)
    t = math.exp(alpha * lt)
    d = t / math.expm1(t)  # t d/dt log(1 - exp(-t))
    return log1mexp(t), d * alpha / x, d * lt, -d * alpha / beta


@kernel
def weibull_logccdf(x, alpha, beta):
    if x <= 0.0:
        return 0.0
    return -math.exp(alpha * math.log(x / beta))


@kernel
def weibull_logccdf_grad(x, alpha, beta):
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    lt = math.log(x / beta)
    t = math.exp(alpha * lt)
    return -t, -t * alpha / x, -t * lt, t * alpha / beta


@kernel
def skewnormal_logp(x, alpha, mu, sigma):
    z = (x - mu) / sigma
    return LOG_2 + normal_logp(x, mu, sigma) + log_normal_cdf(alpha * z)


@kernel
def skewnormal_logp_grad(x, alpha, mu, sigma):
    z = (x - mu) / sigma
    m = log_normal_cdf_derivative(alpha * z)
    dx = (-z + m * alpha) / sigma
    return (skewnormal_logp(x, alpha, mu, sigma), dx, m * z, -dx,
            (z * z - 1.0 - m * alpha * z) / sigma)


@kernel
def vonmises_logp(x, mu, kappa):
    return kappa * math.cos(x - mu) - LOG_2 - LOG_PI - log_bessel_i0(kappa)


@kernel
def vonmises_logp_grad(x, mu, kappa):
    s = kappa * math.sin(x - mu)
    return (vonmises_logp(x, mu, kappa), -s, s,
            math.cos(x - mu) - bessel_i1_over_i0(kappa))


@kernel
def gumbel_logp(x, mu, beta):
    z = (x - mu) / beta
    return -z - math.exp(-z) - math.log(beta)


@kernel
def gumbel_logp_grad(x, mu, beta):
    z = (x - mu) / beta
    e = math.exp(-z)
    dx = (e - 1.0) / beta
    return gumbel_logp(x, mu, beta), dx, -dx, (z * (1.0 - e) - 1.0) / beta


# Gumbel: cdf = exp(-a) with a = exp(-z), so log cdf = -a and log ccdf = log(1 - exp(-a)).
@kernel
def gumbel_logcdf(x, mu, beta):
    return -math.exp(-(x - mu) / beta)


@kernel
def gumbel_logcdf_grad(x, mu, beta):
    z = (x - mu) / beta
    a = math.exp(-z)
    return -a, a / beta, -a / beta, -a * z / beta


@kernel
def gumbel_logccdf(x, mu, beta):
    return log1mexp(math.exp(-(x - mu) / beta))


@kernel
def gumbel_logccdf_grad(x, mu, beta):
    z = (x - mu) / beta
    a = math.exp(-z)
    d = a / math.expm1(a) / beta  # -(d/dz) log(1 - exp(-a)) / beta
    return log1mexp(a), -d, d, d * z


@kernel
def logistic_logp(x, mu, s):
    z = (x - mu) / s
    return -z - math.log(s) - 2.0 * softplus(-z)


@kernel
def logistic_logp_grad(x, mu, s):
    z = (x - mu) / s
    g = (1.0 - 2.0 * sigmoid(z)) / s
    return logistic_logp(x, mu, s), g, -g, -g * z - 1.0 / s


@kernel
def logistic_logcdf(x, mu, s):
    return -softplus(-(x - mu) / s)


@kernel
def logistic_logcdf_grad(x, mu, s):
    z = (x - mu) / s
    d = sigmoid(-z) / s
    return -softplus(-z), d, -d, -d * z


@kernel
def logistic_logccdf(x, mu, s):
    return -softplus((x - mu) / s)


@kernel
def logistic_logccdf_grad(x, mu, s):
    z = (x - mu) / s
    d = -sigmoid(z) / s
    return -softplus(z), d, -d, -d * z


@kernel
def logitnormal_logp(x, mu, sigma):
    lx, l1x = math.log(x), math.log1p(-x)
    return normal_logp(lx - l1x, mu, sigma) - lx - l1x


@kernel
def logitnormal_logp_grad(x, mu, sigma):
    lx, l1x = math.log(x), math.log1p(-x)
    lp, dy, dmu, dsigma = normal_logp_grad(lx - l1x, mu, sigma)
    return (lp - lx - l1x, dy / (x * (1.0 - x)) - 1.0 / x + 1.0 / (1.0 - x), dmu, dsigma)


@kernel
def logitnormal_logcdf(x, mu, sigma):
    if x <= 0.0:
        return -INF
    if x >= 1.0:
        return 0.0
    return normal_logcdf(math.log(x) - math.log1p(-x), mu, sigma)


@kernel
def logitnormal_logcdf_grad(x, mu, sigma):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    if x >= 1.0:
        return 0.0, 0.0, 0.0, 0.0
    lp, dy, dmu, dsigma = normal_logcdf_grad(math.log(x) - math.log1p(-x), mu, sigma)
    return lp, dy / (x * (1.0 - x)), dmu, dsigma


@kernel
def logitnormal_logccdf(x, mu, sigma):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return -INF
    return normal_logccdf(math.log(x) - math.log1p(-x), mu, sigma)


@kernel
def logitnormal_logccdf_grad(x, mu, sigma):
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    if x >= 1.0:
        return -INF, 0.0, 0.0, 0.0
    lp, dy, dmu, dsigma = normal_logccdf_grad(math.log(x) - math.log1p(-x), mu, sigma)
    return lp, dy / (x * (1.0 - x)), dmu, dsigma


@kernel
def pareto_logp(x, alpha, m):
    return math.log(alpha) + alpha * math.log(m) - (alpha + 1.0) * math.log(x)


@kernel
def pareto_logp_grad(x, alpha, m):
    return (pareto_logp(x, alpha, m), -(alpha + 1.0) / x, 1.0 / alpha + math.log(m / x),
            alpha / m)


# Pareto: ccdf = (m / x)^alpha = exp(-a), a = alpha log(x / m), for x >= m.
@kernel
def pareto_logcdf(x, alpha, m):
    if x <= m:
        return -INF
    return log1mexp(alpha * math.log(x / m))


@kernel
def pareto_logcdf_grad(x, alpha, m):
    if x <= m:
        return -INF, 0.0, 0.0, 0.0
    r = math.log(x / m)
    d = 1.0 / math.expm1(alpha * r)
    return log1mexp(alpha * r), d * alpha / x, d * r, -d * alpha / m


@kernel
def pareto_logccdf(x, alpha, m):
    if x <= m:
        return 0.0
    return -alpha * math.log(x / m)


@kernel
def pareto_logccdf_grad(x, alpha, m):
    if x <= m:
        return 0.0, 0.0, 0.0, 0.0
    return -alpha * math.log(x / m), -alpha / x, -math.log(x / m), alpha / m


@kernel
def kumaraswamy_logp(x, a, b):
    return (math.log(a) + math.log(b) + (a - 1.0) * math.log(x)
            + (b - 1.0) * math.log1p(-math.exp(a * math.log(x))))


@kernel
def kumaraswamy_logp_grad(x, a, b):
    lx = math.log(x)
    u = math.exp(a * lx)  # x^a
    r = u / (1.0 - u)
    return (kumaraswamy_logp(x, a, b), ((a - 1.0) - (b - 1.0) * a * r) / x,
            1.0 / a + lx - (b - 1.0) * r * lx, 1.0 / b + math.log1p(-u))


# Kumaraswamy: ccdf = (1 - x^a)^b = exp(-A), A = -b log(1 - x^a); partials through A.
@kernel
def kumaraswamy_logcdf(x, a, b):
    if x <= 0.0:
        return -INF
    if x >= 1.0:
        return 0.0
    return log1mexp(-b * math.log1p(-math.exp(a * math.log(x))))


@kernel
def kumaraswamy_logcdf_grad(x, a, b):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    if x >= 1.0:
        return 0.0, 0.0, 0.0, 0.0
    lx = math.log(x)
    u = math.exp(a * lx)
    A = -b * math.log1p(-u)
    d = 1.0 / math.expm1(A)
    r = u / (1.0 - u)
    return log1mexp(A), d * b * a * r / x, d * b * r * lx, -d * math.log1p(-u)


@kernel
def kumaraswamy_logccdf(x, a, b):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return -INF
    return b * math.log1p(-math.exp(a * math.log(x)))


@kernel
def kumaraswamy_logccdf_grad(x, a, b):
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    if x >= 1.0:
        return -INF, 0.0, 0.0, 0.0
    lx = math.log(x)
    u = math.exp(a * lx)
    r = u / (1.0 - u)
    return b * math.log1p(-u), -b * a * r / x, -b * r * lx, math.log1p(-u)


# Triangular(lower, upper, c) in PyMC's argument order: rising on [lower, c], falling after.
@kernel
def triangular_logp(x, lower, upper, c):
    if x < c:
        return LOG_2 + math.log(x - lower) - math.log(upper - lower) - math.log(c - lower)
    return LOG_2 + math.log(upper - x) - math.log(upper - lower) - math.log(upper - c)


@kernel
def triangular_logp_grad(x, lower, upper, c):
    w = 1.0 / (upper - lower)
    lp = triangular_logp(x, lower, upper, c)
    if x < c:
        a, e = 1.0 / (x - lower), 1.0 / (c - lower)
        return lp, a, -a + w + e, -w, -e
    a, e = 1.0 / (upper - x), 1.0 / (upper - c)
    return lp, -a, w, a - w - e, e


@kernel
def triangular_logcdf(x, lower, upper, c):
    if x <= lower:
        return -INF
    if x >= upper:
        return 0.0
    if x <= c:
        return 2.0 * math.log(x - lower) - math.log(upper - lower) - math.log(c - lower)
    return math.log1p(-(upper - x) ** 2 / ((upper - lower) * (upper - c)))


@kernel
def triangular_logcdf_grad(x, lower, upper, c):
    if x <= lower:
        return -INF, 0.0, 0.0, 0.0, 0.0
    if x >= upper:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    lp = triangular_logcdf(x, lower, upper, c)
    w = 1.0 / (upper - lower)
    if x <= c:
        a, e = 1.0 / (x - lower), 1.0 / (c - lower)
        return lp, 2.0 * a, -2.0 * a + w + e, -w, -e
    a, e = 1.0 / (upper - x), 1.0 / (upper - c)
    q = (upper - x) ** 2 * w * e  # the ccdf
    d = -q / (1.0 - q)  # (d/dq log(1 - q)) q: partials of log q follow
    return lp, -2.0 * a * d, w * d, (2.0 * a - w - e) * d, e * d


@kernel
def triangular_logccdf(x, lower, upper, c):
    if x <= lower:
        return 0.0
    if x >= upper:
        return -INF
    if x <= c:
        return math.log1p(-(x - lower) ** 2 / ((upper - lower) * (c - lower)))
    return 2.0 * math.log(upper - x) - math.log(upper - lower) - math.log(upper - c)


@kernel
def triangular_logccdf_grad(x, lower, upper, c):
    if x <= lower:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    if x >= upper:
        return -INF, 0.0, 0.0, 0.0, 0.0
    lp = triangular_logccdf(x, lower, upper, c)
    w = 1.0 / (upper - lower)
    if x <= c:
        a, e = 1.0 / (x - lower), 1.0 / (c - lower)
        r = (x - lower) ** 2 * w * e  # the cdf
        d = -r / (1.0 - r)
        return lp, 2.0 * a * d, (-2.0 * a + w + e) * d, -w * d, -e * d
    a, e = 1.0 / (upper - x), 1.0 / (upper - c)
    return lp, -2.0 * a, w, 2.0 * a - w - e, e


@kernel
def wald_logp(x, mu, lam, alpha):
    y = x - alpha
    d = y - mu
    return (0.5 * (math.log(lam) - LOG_2 - LOG_PI) - 1.5 * math.log(y)
            - lam * d * d / (2.0 * y * mu * mu))


@kernel
def wald_logp_grad(x, mu, lam, alpha):
    y = x - alpha
    d = y - mu
    dy = -1.5 / y - 0.5 * lam * (1.0 / (mu * mu) - 1.0 / (y * y))
    return (wald_logp(x, mu, lam, alpha), dy, lam * d / (mu * mu * mu),
            0.5 / lam - d * d / (2.0 * y * mu * mu), -dy)


# Wald: cdf = Phi(a) + exp(E) Phi(b), a = s (y/mu - 1), b = -s (y/mu + 1), s = sqrt(lam / y),
# E = 2 lam / mu, y = x - alpha.  Each term is a log normal cdf, stable in both tails.
@kernel
def _wald_terms(x, mu, lam, alpha):
    """a, b, E and their partials in (y, mu, lam): (a, da_y, da_mu, da_lam, b, db_..., E)."""
    y = x - alpha
    s = math.sqrt(lam / y)
    a = s * (y / mu - 1.0)
    b = -s * (y / mu + 1.0)
    return (a, -a / (2.0 * y) + s / mu, -s * y / (mu * mu), a / (2.0 * lam),
            b, -b / (2.0 * y) - s / mu, s * y / (mu * mu), b / (2.0 * lam), 2.0 * lam / mu)


@kernel
def wald_logcdf_grad(x, mu, lam, alpha):
    if x <= alpha:
        return -INF, 0.0, 0.0, 0.0, 0.0
    a, da_y, da_mu, da_lam, b, db_y, db_mu, db_lam, e = _wald_terms(x, mu, lam, alpha)
    first, second = log_normal_cdf(a), e + log_normal_cdf(b)
    lp = logsumexp2(first, second)
    wa = math.exp(first - lp) * log_normal_cdf_derivative(a)
    wb = math.exp(second - lp)
    mb = wb * log_normal_cdf_derivative(b)
    dy = wa * da_y + mb * db_y
    return (lp, dy, wa * da_mu + mb * db_mu - wb * 2.0 * lam / (mu * mu),
            wa * da_lam + mb * db_lam + wb * 2.0 / mu, -dy)


@kernel
def wald_logcdf(x, mu, lam, alpha):
    return wald_logcdf_grad(x, mu, lam, alpha)[0]


@kernel
def wald_logccdf_grad(x, mu, lam, alpha):
    """log(Phi(-a) - exp(E) Phi(b)); the difference loses digits far in the upper tail."""
    if x <= alpha:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    a, da_y, da_mu, da_lam, b, db_y, db_mu, db_lam, e = _wald_terms(x, mu, lam, alpha)
    first, second = log_normal_cdf(-a), e + log_normal_cdf(b)
    r = math.exp(second - first)
    lp = first + math.log1p(-r)
    ma, mb = -log_normal_cdf_derivative(-a) / (1.0 - r), r * log_normal_cdf_derivative(b) / (1.0 - r)
    wb = r / (1.0 - r)
    dy = ma * da_y - mb * db_y
    return (lp, dy, ma * da_mu - mb * db_mu + wb * 2.0 * lam / (mu * mu),
            ma * da_lam - mb * db_lam - wb * 2.0 / mu, -dy)


@kernel
def wald_logccdf(x, mu, lam, alpha):
    return wald_logccdf_grad(x, mu, lam, alpha)[0]


@kernel
def exgaussian_logp(x, mu, sigma, nu):
    w = (x - mu) / sigma - sigma / nu
    return (-math.log(nu) + (mu - x) / nu + 0.5 * sigma * sigma / (nu * nu)
            + log_normal_cdf(w))


@kernel
def exgaussian_logp_grad(x, mu, sigma, nu):
    w = (x - mu) / sigma - sigma / nu
    m = log_normal_cdf_derivative(w)
    dx = -1.0 / nu + m / sigma
    return (exgaussian_logp(x, mu, sigma, nu), dx, -dx,
            sigma / (nu * nu) - m * ((x - mu) / (sigma * sigma) + 1.0 / nu),
            -1.0 / nu + (x - mu) / (nu * nu) - sigma * sigma / (nu * nu * nu) + m * sigma / (nu * nu))


# ExGaussian: ccdf = Phi(-z) + exp(C) Phi(w), a sum of positive terms, with z = (x - mu) / sigma,
# C = sigma^2 / (2 nu^2) - (x - mu) / nu and w = z - sigma / nu; cdf = Phi(z) - exp(C) Phi(w).
@kernel
def _exgaussian_terms(x, mu, sigma, nu):
    z = (x - mu) / sigma
    w = z - sigma / nu
    return z, w, 0.5 * sigma * sigma / (nu * nu) - (x - mu) / nu + log_normal_cdf(w)


@kernel
def exgaussian_logccdf(x, mu, sigma, nu):
    z, w, b = _exgaussian_terms(x, mu, sigma, nu)
    return logsumexp2(log_normal_cdf(-z), b)


@kernel
def exgaussian_logccdf_grad(x, mu, sigma, nu):
    z, w, b = _exgaussian_terms(x, mu, sigma, nu)
    a = log_normal_cdf(-z)
    lp = logsumexp2(a, b)
    pa, pb = math.exp(a - lp), math.exp(b - lp)
    ma, mb = -log_normal_cdf_derivative(-z), log_normal_cdf_derivative(w)  # d/dz, d/dw
    # partials of z, w and of C's non-Phi part in (x, mu, sigma, nu)
    dx = pa * ma / sigma + pb * (mb / sigma - 1.0 / nu)
    dsigma = pa * ma * (-z / sigma) + pb * (sigma / (nu * nu) + mb * (-z / sigma - 1.0 / nu))
    dnu = pb * (-sigma * sigma / (nu * nu * nu) + (x - mu) / (nu * nu) + mb * sigma / (nu * nu))
    return lp, dx, -dx, dsigma, dnu


@kernel
def exgaussian_logcdf(x, mu, sigma, nu):
    z, w, b = _exgaussian_terms(x, mu, sigma, nu)
    a = log_normal_cdf(z)
    return a + math.log1p(-math.exp(b - a))


@kernel
def exgaussian_logcdf_grad(x, mu, sigma, nu):
    z, w, b = _exgaussian_terms(x, mu, sigma, nu)
    a = log_normal_cdf(z)
    r = math.exp(b - a)
    lp = a + math.log1p(-r)
    pa, pb = 1.0 / (1.0 - r), -r / (1.0 - r)
    ma, mb = log_normal_cdf_derivative(z), log_normal_cdf_derivative(w)
    dx = pa * ma / sigma + pb * (mb / sigma - 1.0 / nu)
    dsigma = pa * ma * (-z / sigma) + pb * (sigma / (nu * nu) + mb * (-z / sigma - 1.0 / nu))
    dnu = pb * (-sigma * sigma / (nu * nu * nu) + (x - mu) / (nu * nu) + mb * sigma / (nu * nu))
    return lp, dx, -dx, dsigma, dnu


# AsymmetricLaplace(kappa, mu, b): rate b kappa above mu, b / kappa below (PyMC's form).
@kernel
def asymmetriclaplace_logp(x, kappa, mu, b):
    d = x - mu
    lp = math.log(b) - math.log(kappa + 1.0 / kappa)
    if d >= 0.0:
        return lp - d * b * kappa
    return lp + d * b / kappa


@kernel
def asymmetriclaplace_logp_grad(x, kappa, mu, b):
    d = x - mu
    dk = -(1.0 - 1.0 / (kappa * kappa)) / (kappa + 1.0 / kappa)
    lp = asymmetriclaplace_logp(x, kappa, mu, b)
    if d >= 0.0:
        return lp, -b * kappa, dk - d * b, b * kappa, 1.0 / b - d * kappa
    return lp, b / kappa, dk - d * b / (kappa * kappa), -b / kappa, 1.0 / b + d / kappa


# cdf below mu: kappa^2 / (1 + kappa^2) exp(b d / kappa); ccdf above: exp(-b kappa d) / (1 + kappa^2).
@kernel
def _asymmetriclaplace_tail_grad(x, kappa, mu, b, lower):
    """log of the tail mass on the far side of x (cdf if lower, else ccdf) where it is closed form."""
    d = x - mu
    k2 = kappa * kappa
    if lower:  # d < 0
        return (2.0 * math.log(kappa) - math.log1p(k2) + b * d / kappa, b / kappa,
                2.0 / kappa - 2.0 * kappa / (1.0 + k2) - b * d / k2, -b / kappa, d / kappa)
    return (-math.log1p(k2) - b * kappa * d, -b * kappa, -2.0 * kappa / (1.0 + k2) - b * d,
            b * kappa, -kappa * d)


@kernel
def asymmetriclaplace_logcdf(x, kappa, mu, b):
    return asymmetriclaplace_logcdf_grad(x, kappa, mu, b)[0]


@kernel
def asymmetriclaplace_logcdf_grad(x, kappa, mu, b):
    if x < mu:
        return _asymmetriclaplace_tail_grad(x, kappa, mu, b, True)
    t, dx, dk, dmu, db = _asymmetriclaplace_tail_grad(x, kappa, mu, b, False)
    e = math.exp(t)
    s = -e / (1.0 - e)
    return math.log1p(-e), s * dx, s * dk, s * dmu, s * db


@kernel
def asymmetriclaplace_logccdf(x, kappa, mu, b):
    return asymmetriclaplace_logccdf_grad(x, kappa, mu, b)[0]


@kernel
def asymmetriclaplace_logccdf_grad(x, kappa, mu, b):
    if x >= mu:
        return _asymmetriclaplace_tail_grad(x, kappa, mu, b, False)
    t, dx, dk, dmu, db = _asymmetriclaplace_tail_grad(x, kappa, mu, b, True)
    e = math.exp(t)
    s = -e / (1.0 - e)
    return math.log1p(-e), s * dx, s * dk, s * dmu, s * db


@kernel
def rice_logp(x, nu, sigma):
    s2 = sigma * sigma
    return (math.log(x) - 2.0 * math.log(sigma) - (x * x + nu * nu) / (2.0 * s2)
            + log_bessel_i0(x * nu / s2))


@kernel
def rice_logp_grad(x, nu, sigma):
    s2 = sigma * sigma
    t = x * nu / s2
    r = bessel_i1_over_i0(t)
    return (rice_logp(x, nu, sigma), 1.0 / x - x / s2 + r * nu / s2, (r * x - nu) / s2,
            -2.0 / sigma + (x * x + nu * nu - 2.0 * r * x * nu) / (s2 * sigma))


@kernel
def moyal_logp(x, mu, sigma):
    z = (x - mu) / sigma
    return -0.5 * (z + math.exp(-z)) - math.log(sigma) - LOG_SQRT_2PI


@kernel
def moyal_logp_grad(x, mu, sigma):
    z = (x - mu) / sigma
    g = -0.5 * (1.0 - math.exp(-z)) / sigma
    return moyal_logp(x, mu, sigma), g, -g, -g * z - 1.0 / sigma


# Moyal: cdf = erfc(v) = 2 Phi(-sqrt2 v), ccdf = erf(v), with v = exp(-z / 2) / sqrt 2.
@kernel
def moyal_logcdf(x, mu, sigma):
    v = math.exp(-0.5 * (x - mu) / sigma) / SQRT_2
    return LOG_2 + log_normal_cdf(-SQRT_2 * v)


@kernel
def moyal_logcdf_grad(x, mu, sigma):
    z = (x - mu) / sigma
    v = math.exp(-0.5 * z) / SQRT_2
    dv = -SQRT_2 * log_normal_cdf_derivative(-SQRT_2 * v)  # d/dv
    g = dv * (-0.5 * v) / sigma  # d/dx through dv/dz = -v / 2
    return LOG_2 + log_normal_cdf(-SQRT_2 * v), g, -g, -g * z


@kernel
def moyal_logccdf(x, mu, sigma):
    v = math.exp(-0.5 * (x - mu) / sigma) / SQRT_2
    if v < 1.0:
        return math.log(math.erf(v))
    return math.log1p(-math.erfc(v))


@kernel
def moyal_logccdf_grad(x, mu, sigma):
    z = (x - mu) / sigma
    v = math.exp(-0.5 * z) / SQRT_2
    dv = 2.0 / math.sqrt(math.pi) * math.exp(-v * v) / math.erf(v)
    g = dv * (-0.5 * v) / sigma
    return moyal_logccdf(x, mu, sigma), g, -g, -g * z


@kernel
def _log_normal_mass_grad(a, b):
    """log(Phi(b) - Phi(a)) for a < b, with its partials in a and b; either may be infinite."""
    if b == INF:
        lz = log_normal_cdf(-a)
    elif a == -INF:
        lz = log_normal_cdf(b)
    elif a > 0.0:  # both in the upper tail: the same mass as Phi(-a) - Phi(-b)
        hi = log_normal_cdf(-a)
        lz = hi + log1mexp(hi - log_normal_cdf(-b))
    else:
        hi = log_normal_cdf(b)
        lz = hi + log1mexp(hi - log_normal_cdf(a))
    da = 0.0 if a == -INF else -math.exp(-0.5 * a * a - LOG_SQRT_2PI - lz)
    db = 0.0 if b == INF else math.exp(-0.5 * b * b - LOG_SQRT_2PI - lz)
    return lz, da, db


@kernel
def truncatednormal_logp_grad(x, mu, sigma, lower, upper):
    """Normal(mu, sigma) restricted to [lower, upper] (either bound may be infinite)."""
    lp, dx, dmu, dsigma = normal_logp_grad(x, mu, sigma)
    alpha, beta = (lower - mu) / sigma, (upper - mu) / sigma
    lz, ga, gb = _log_normal_mass_grad(alpha, beta)
    dsigma += ((ga * alpha if lower > -INF else 0.0) + (gb * beta if upper < INF else 0.0)) / sigma
    return lp - lz, dx, dmu + (ga + gb) / sigma, dsigma, -ga / sigma, -gb / sigma


@kernel
def _truncatednormal_tail_grad(x, mu, sigma, lower, upper, upper_tail):
    """log of the mass in [lower, x] (or [x, upper] if upper_tail) over that in [lower, upper]."""
    if x <= lower:
        return (0.0 if upper_tail else -INF), 0.0, 0.0, 0.0, 0.0, 0.0
    if x >= upper:
        return (-INF if upper_tail else 0.0), 0.0, 0.0, 0.0, 0.0, 0.0
    alpha, beta, z = (lower - mu) / sigma, (upper - mu) / sigma, (x - mu) / sigma
    lz, ga, gb = _log_normal_mass_grad(alpha, beta)
    if upper_tail:
        lm, gz, gu = _log_normal_mass_grad(z, beta)
        gl = 0.0
    else:
        lm, gl, gz = _log_normal_mass_grad(alpha, z)
        gu = 0.0
    # d/d(standardised bounds) of lm - lz; d alpha / dmu = -1 / sigma, d alpha / dsigma = -alpha / sigma
    fa, fb = gl - ga, gu - gb
    dsigma = -gz * z - (fa * alpha if lower > -INF else 0.0) - (fb * beta if upper < INF else 0.0)
    return (lm - lz, gz / sigma, -(gz + fa + fb) / sigma, dsigma / sigma, fa / sigma, fb / sigma)


@kernel
def truncatednormal_logp(x, mu, sigma, lower, upper):
    return truncatednormal_logp_grad(x, mu, sigma, lower, upper)[0]


@kernel
def truncatednormal_logcdf(x, mu, sigma, lower, upper):
    return _truncatednormal_tail_grad(x, mu, sigma, lower, upper, False)[0]


@kernel
def truncatednormal_logccdf(x, mu, sigma, lower, upper):
    return _truncatednormal_tail_grad(x, mu, sigma, lower, upper, True)[0]


@kernel
def truncatednormal_logcdf_grad(x, mu, sigma, lower, upper):
    return _truncatednormal_tail_grad(x, mu, sigma, lower, upper, False)


@kernel
def truncatednormal_logccdf_grad(x, mu, sigma, lower, upper):
    return _truncatednormal_tail_grad(x, mu, sigma, lower, upper, True)


@kernel
def chisquared_logp(x, nu):
    h = 0.5 * nu
    return -h * LOG_2 - math.lgamma(h) + (h - 1.0) * math.log(x) - 0.5 * x


@kernel
def chisquared_logp_grad(x, nu):
    h = 0.5 * nu
    return (chisquared_logp(x, nu), (h - 1.0) / x - 0.5,
            0.5 * (math.log(0.5 * x) - digamma(h)))


@kernel
def chi_logp(x, nu):
    h = 0.5 * nu
    return (1.0 - h) * LOG_2 - math.lgamma(h) + (nu - 1.0) * math.log(x) - 0.5 * x * x


@kernel
def chi_logp_grad(x, nu):
    return (chi_logp(x, nu), (nu - 1.0) / x - x,
            -0.5 * LOG_2 - 0.5 * digamma(0.5 * nu) + math.log(x))


# ---- discrete families (the value is data: its partial is 0) --------------------------------
@kernel
def bernoulli_p_logp(x, p):
    return xlogy(x, p) + xlog1py(1.0 - x, -p)


@kernel
def bernoulli_p_logp_grad(x, p):
    return bernoulli_p_logp(x, p), 0.0, x / p - (1.0 - x) / (1.0 - p)


@kernel
def bernoulli_logit_logp(x, logit_p):
    return x * logit_p - softplus(logit_p)


@kernel
def bernoulli_logit_logp_grad(x, logit_p):
    # softplus and sigmoid from one exponential: e = exp(-|l|) never overflows
    e = math.exp(-abs(logit_p))
    softplus_l = max(logit_p, 0.0) + math.log1p(e)
    sigmoid_l = 1.0 / (1.0 + e) if logit_p >= 0.0 else e / (1.0 + e)
    return x * logit_p - softplus_l, 0.0, x - sigmoid_l


@kernel
def _log_binomial_coefficient(n, x):
    return math.lgamma(n + 1.0) - math.lgamma(x + 1.0) - math.lgamma(n - x + 1.0)


@kernel
def binomial_p_logp(x, n, p):
    return _log_binomial_coefficient(n, x) + xlogy(x, p) + xlog1py(n - x, -p)


@kernel
def binomial_p_logp_grad(x, n, p):
    return binomial_p_logp(x, n, p), 0.0, 0.0, x / p - (n - x) / (1.0 - p)


@kernel
def binomial_logit_logp(x, n, logit_p):
    return _log_binomial_coefficient(n, x) + x * logit_p - n * softplus(logit_p)


@kernel
def binomial_logit_logp_grad(x, n, logit_p):
    return binomial_logit_logp(x, n, logit_p), 0.0, 0.0, x - n * sigmoid(logit_p)


@kernel
def poisson_logp(x, mu):
    return xlogy(x, mu) - mu - math.lgamma(x + 1.0)


@kernel
def poisson_logp_grad(x, mu):
    return poisson_logp(x, mu), 0.0, x / mu - 1.0


# Poisson and Binomial cdfs as sums of the pmf (k + 1 terms, or the upper tail's until they
# vanish), so each tail is summed directly and never found as 1 minus the other.  Their
# parameter derivatives are exact: dF(k; mu)/dmu = -pmf(k; mu) and
# dF(k; n, p)/dp = -n pmf(k; n - 1, p).
@kernel
def _poisson_log_tail(k, mu, upper):
    """log P(X <= k) (upper False) or log P(X > k) (upper True) for whole k >= 0."""
    acc = -INF
    if not upper:
        for j in range(int(k) + 1):
            acc = logsumexp2(acc, poisson_logp(float(j), mu))
        return acc
    j = k + 1.0
    while True:
        term = poisson_logp(j, mu)
        acc = logsumexp2(acc, term)
        if j > mu and term < acc - 40.0:  # past the mode, the rest is below e^-40 of the sum
            return acc
        j += 1.0


@kernel
def _poisson_tails(k, mu):
    """(log cdf, log ccdf) at whole k >= 0, each from the smaller tail's sum."""
    if k < mu:
        low = _poisson_log_tail(k, mu, False)
        return low, log1mexp(-low)
    high = _poisson_log_tail(k, mu, True)
    return log1mexp(-high), high


@kernel
def poisson_logcdf_grad(x, mu):
    k = math.floor(x)
    if k < 0.0:
        return -INF, 0.0, 0.0
    low, _ = _poisson_tails(k, mu)
    return low, 0.0, -math.exp(poisson_logp(k, mu) - low)


@kernel
def poisson_logccdf_grad(x, mu):
    k = math.floor(x)
    if k < 0.0:
        return 0.0, 0.0, 0.0
    _, high = _poisson_tails(k, mu)
    return high, 0.0, math.exp(poisson_logp(k, mu) - high)


@kernel
def poisson_logcdf(x, mu):
    return poisson_logcdf_grad(x, mu)[0]


@kernel
def poisson_logccdf(x, mu):
    return poisson_logccdf_grad(x, mu)[0]


@kernel
def _binomial_tails(k, n, p):
    """(log cdf, log ccdf) at whole 0 <= k < n: the tail on the smaller side summed."""
    acc = -INF
    if k < n * p:
        for j in range(int(k) + 1):
            acc = logsumexp2(acc, binomial_p_logp(float(j), n, p))
        return acc, log1mexp(-acc)
    for j in range(int(k) + 1, int(n) + 1):
        acc = logsumexp2(acc, binomial_p_logp(float(j), n, p))
    return log1mexp(-acc), acc


@kernel
def binomial_p_logcdf_grad(x, n, p):
    k = math.floor(x)
    if k < 0.0:
        return -INF, 0.0, 0.0, 0.0
    if k >= n:
        return 0.0, 0.0, 0.0, 0.0
    low, _ = _binomial_tails(k, n, p)
    return low, 0.0, 0.0, -n * math.exp(binomial_p_logp(k, n - 1.0, p) - low)


@kernel
def binomial_p_logccdf_grad(x, n, p):
    k = math.floor(x)
    if k < 0.0:
        return 0.0, 0.0, 0.0, 0.0
    if k >= n:
        return -INF, 0.0, 0.0, 0.0
    _, high = _binomial_tails(k, n, p)
    return high, 0.0, 0.0, n * math.exp(binomial_p_logp(k, n - 1.0, p) - high)


@kernel
def binomial_p_logcdf(x, n, p):
    return binomial_p_logcdf_grad(x, n, p)[0]


@kernel
def binomial_p_logccdf(x, n, p):
    return binomial_p_logccdf_grad(x, n, p)[0]


@kernel
def binomial_logit_logcdf_grad(x, n, logit_p):
    lp, dx, dn, dp = binomial_p_logcdf_grad(x, n, sigmoid(logit_p))
    return lp, dx, dn, dp * sigmoid(logit_p) * sigmoid(-logit_p)


@kernel
def binomial_logit_logccdf_grad(x, n, logit_p):
    lp, dx, dn, dp = binomial_p_logccdf_grad(x, n, sigmoid(logit_p))
    return lp, dx, dn, dp * sigmoid(logit_p) * sigmoid(-logit_p)


@kernel
def binomial_logit_logcdf(x, n, logit_p):
    return binomial_logit_logcdf_grad(x, n, logit_p)[0]


@kernel
def binomial_logit_logccdf(x, n, logit_p):
    return binomial_logit_logccdf_grad(x, n, logit_p)[0]


# ---- discrete families of PyMC beyond the first three (observed only) -----------------------
@kernel
def negativebinomial_logp(x, mu, alpha):
    return (log_rising(alpha, x) - math.lgamma(x + 1.0)
            - alpha * math.log1p(mu / alpha) + xlogy(x, mu) - x * math.log(alpha + mu))


@kernel
def negativebinomial_logp_grad(x, mu, alpha):
    s = alpha + mu
    return (negativebinomial_logp(x, mu, alpha), 0.0, x / mu - (x + alpha) / s,
            digamma_rising(alpha, x) - math.log1p(mu / alpha) + (mu - x) / s)


@kernel
def _negativebinomial_log_zero_grad(mu, alpha):
    """log P(X = 0) = -alpha log(1 + mu / alpha), with its partials in mu and alpha."""
    return (-alpha * math.log1p(mu / alpha), -alpha / (alpha + mu),
            -math.log1p(mu / alpha) + mu / (alpha + mu))


@kernel
def _log_binomial_beta(x, n, alpha, beta):
    return log_rising(alpha, x) + log_rising(beta, n - x) - log_rising(alpha + beta, n)


@kernel
def betabinomial_logp(x, alpha, beta, n):
    return _log_binomial_coefficient(n, x) + _log_binomial_beta(x, n, alpha, beta)


@kernel
def betabinomial_logp_grad(x, alpha, beta, n):
    d = -digamma_rising(alpha + beta, n)
    return (betabinomial_logp(x, alpha, beta, n), 0.0,
            d + digamma_rising(alpha, x), d + digamma_rising(beta, n - x), 0.0)


@kernel
def geometric_logp(x, p):
    return math.log(p) + (x - 1.0) * math.log1p(-p)


@kernel
def geometric_logp_grad(x, p):
    return geometric_logp(x, p), 0.0, 1.0 / p - (x - 1.0) / (1.0 - p)


# Geometric: P(X > k) = (1 - p)^k for whole k >= 0; the cdf is 1 minus it.
@kernel
def geometric_logcdf(x, p):
    k = math.floor(x)
    if k < 1.0:
        return -INF
    return log1mexp(-k * math.log1p(-p))


@kernel
def geometric_logcdf_grad(x, p):
    k = math.floor(x)
    if k < 1.0:
        return -INF, 0.0, 0.0
    a = -k * math.log1p(-p)
    return log1mexp(a), 0.0, k / (1.0 - p) / math.expm1(a)


@kernel
def geometric_logccdf(x, p):
    return max(math.floor(x), 0.0) * math.log1p(-p)


@kernel
def geometric_logccdf_grad(x, p):
    k = max(math.floor(x), 0.0)
    return k * math.log1p(-p), 0.0, -k / (1.0 - p)


@kernel
def discreteuniform_logp(x, lower, upper):
    return -math.log(upper - lower + 1.0)


@kernel
def discreteuniform_logp_grad(x, lower, upper):
    w = 1.0 / (upper - lower + 1.0)
    return -math.log(upper - lower + 1.0), 0.0, w, -w


@kernel
def discreteuniform_logcdf(x, lower, upper):
    return discreteuniform_logcdf_grad(x, lower, upper)[0]


@kernel
def discreteuniform_logcdf_grad(x, lower, upper):
    k = math.floor(x)
    if k < lower:
        return -INF, 0.0, 0.0, 0.0
    if k >= upper:
        return 0.0, 0.0, 0.0, 0.0
    w = 1.0 / (upper - lower + 1.0)
    return (math.log(k - lower + 1.0) + math.log(w), 0.0, w - 1.0 / (k - lower + 1.0), -w)


@kernel
def discreteuniform_logccdf(x, lower, upper):
    return discreteuniform_logccdf_grad(x, lower, upper)[0]


@kernel
def discreteuniform_logccdf_grad(x, lower, upper):
    k = math.floor(x)
    if k < lower:
        return 0.0, 0.0, 0.0, 0.0
    if k >= upper:
        return -INF, 0.0, 0.0, 0.0
    w = 1.0 / (upper - lower + 1.0)
    return math.log(upper - k) + math.log(w), 0.0, w, 1.0 / (upper - k) - w


@kernel
def _zero_inflated_zero_grad(psi, log_zero):
    """log((1 - psi) + psi P0) given log P0, its partial in psi and the weight of P0's partials."""
    lp = logsumexp2(math.log1p(-psi), math.log(psi) + log_zero)
    return lp, (math.exp(log_zero) - 1.0) * math.exp(-lp), math.exp(math.log(psi) + log_zero - lp)


@kernel
def zeroinflatedpoisson_logp(x, psi, mu):
    return zeroinflatedpoisson_logp_grad(x, psi, mu)[0]


@kernel
def zeroinflatedpoisson_logp_grad(x, psi, mu):
    if x == 0.0:
        lp, dpsi, w = _zero_inflated_zero_grad(psi, -mu)
        return lp, 0.0, dpsi, -w
    return math.log(psi) + poisson_logp(x, mu), 0.0, 1.0 / psi, x / mu - 1.0


@kernel
def zeroinflatedbinomial_logp(x, psi, n, p):
    return zeroinflatedbinomial_logp_grad(x, psi, n, p)[0]


@kernel
def zeroinflatedbinomial_logp_grad(x, psi, n, p):
    if x == 0.0:
        lp, dpsi, w = _zero_inflated_zero_grad(psi, xlog1py(n, -p))
        return lp, 0.0, dpsi, 0.0, -w * n / (1.0 - p)
    lp, _, _, dp = binomial_p_logp_grad(x, n, p)
    return math.log(psi) + lp, 0.0, 1.0 / psi, 0.0, dp


@kernel
def zeroinflatednegativebinomial_logp(x, psi, mu, alpha):
    return zeroinflatednegativebinomial_logp_grad(x, psi, mu, alpha)[0]


@kernel
def zeroinflatednegativebinomial_logp_grad(x, psi, mu, alpha):
    if x == 0.0:
        l0, d0mu, d0alpha = _negativebinomial_log_zero_grad(mu, alpha)
        lp, dpsi, w = _zero_inflated_zero_grad(psi, l0)
        return lp, 0.0, dpsi, w * d0mu, w * d0alpha
    lp, _, dmu, dalpha = negativebinomial_logp_grad(x, mu, alpha)
    return math.log(psi) + lp, 0.0, 1.0 / psi, dmu, dalpha


# Hurdle families (PyMC's): P(0) = 1 - psi; non-zero values follow the base family, whose own
# mass at zero is cut off (discrete bases) or nil (continuous bases).
@kernel
def hurdlepoisson_logp(x, psi, mu):
    return hurdlepoisson_logp_grad(x, psi, mu)[0]


@kernel
def hurdlepoisson_logp_grad(x, psi, mu):
    if x == 0.0:
        return math.log1p(-psi), 0.0, -1.0 / (1.0 - psi), 0.0
    return (math.log(psi) + poisson_logp(x, mu) - log1mexp(mu), 0.0, 1.0 / psi,
            x / mu - 1.0 - 1.0 / math.expm1(mu))


@kernel
def hurdlenegativebinomial_logp(x, psi, mu, alpha):
    return hurdlenegativebinomial_logp_grad(x, psi, mu, alpha)[0]


@kernel
def hurdlenegativebinomial_logp_grad(x, psi, mu, alpha):
    if x == 0.0:
        return math.log1p(-psi), 0.0, -1.0 / (1.0 - psi), 0.0, 0.0
    l0, d0mu, d0alpha = _negativebinomial_log_zero_grad(mu, alpha)
    lp, _, dmu, dalpha = negativebinomial_logp_grad(x, mu, alpha)
    # minus log(1 - P0): d/d(log P0) of it is P0 / (1 - P0) = 1 / expm1(-log P0)
    r = 1.0 / math.expm1(-l0)
    return (math.log(psi) + lp - log1mexp(-l0), 0.0, 1.0 / psi, dmu + r * d0mu,
            dalpha + r * d0alpha)


@kernel
def hurdlegamma_logp(x, psi, alpha, beta):
    return hurdlegamma_logp_grad(x, psi, alpha, beta)[0]


@kernel
def hurdlegamma_logp_grad(x, psi, alpha, beta):
    if x == 0.0:
        return math.log1p(-psi), 0.0, -1.0 / (1.0 - psi), 0.0, 0.0
    lp, _, dalpha, dbeta = gamma_logp_grad(x, alpha, beta)
    return math.log(psi) + lp, 0.0, 1.0 / psi, dalpha, dbeta


@kernel
def hurdlelognormal_logp(x, psi, mu, sigma):
    return hurdlelognormal_logp_grad(x, psi, mu, sigma)[0]


@kernel
def hurdlelognormal_logp_grad(x, psi, mu, sigma):
    if x == 0.0:
        return math.log1p(-psi), 0.0, -1.0 / (1.0 - psi), 0.0, 0.0
    lp, _, dmu, dsigma = lognormal_logp_grad(x, mu, sigma)
    return math.log(psi) + lp, 0.0, 1.0 / psi, dmu, dsigma


# ---- discrete families with vector parameters (observed only) ------------------------------
# Categorical, OrderedLogistic and OrderedProbit: a scalar value (a category index) and a
# vector parameter.  They take the event families' calling convention (array parameters as
# views, their gradients added into arrays); the value's partial is 0.0.
@kernel
def categorical_p_logp(x, p):
    """log p[x] / sum(p) (PyMC normalises p); -inf for an index outside 0..k-1."""
    k = int(x)
    if k < 0 or k >= p.shape[0]:
        return -INF
    total = 0.0
    for i in range(p.shape[0]):
        total += p[i]
    return math.log(p[k]) - math.log(total)


@kernel
def categorical_p_logp_grad(x, p, gp):
    k = int(x)
    if k < 0 or k >= p.shape[0]:
        return -INF, 0.0
    total = 0.0
    for i in range(p.shape[0]):
        total += p[i]
    for i in range(p.shape[0]):
        gp[i] -= 1.0 / total
    gp[k] += 1.0 / p[k]
    return math.log(p[k]) - math.log(total), 0.0


@kernel
def _logsumexp_vector(v):
    top = -INF
    for i in range(v.shape[0]):
        top = max(top, v[i])
    total = 0.0
    for i in range(v.shape[0]):
        total += math.exp(v[i] - top)
    return top + math.log(total)


@kernel
def categorical_logit_logp(x, logit_p):
    k = int(x)
    if k < 0 or k >= logit_p.shape[0]:
        return -INF
    return logit_p[k] - _logsumexp_vector(logit_p)


@kernel
def categorical_logit_logp_grad(x, logit_p, gl):
    k = int(x)
    if k < 0 or k >= logit_p.shape[0]:
        return -INF, 0.0
    lse = _logsumexp_vector(logit_p)
    for i in range(logit_p.shape[0]):
        gl[i] -= math.exp(logit_p[i] - lse)
    gl[k] += 1.0
    return logit_p[k] - lse, 0.0


@kernel
def orderedlogistic_logp_grad(x, eta, cutpoints, gc):
    """log P(y = x) with P(y <= k) = sigmoid(c_k - eta); -inf unless c increases where used.

    The middle categories use log(sigmoid(a) - sigmoid(b)) = -softplus(-a) - softplus(b)
    + log(1 - exp(b - a)) with a = eta - c[x-1] > b = eta - c[x], free of cancellation.
    """
    m = cutpoints.shape[0]
    k = int(x)
    if k < 0 or k > m:
        return -INF, 0.0, 0.0
    if k == 0:
        a = eta - cutpoints[0]
        s = sigmoid(a)
        gc[0] += s
        return -softplus(a), 0.0, -s
    if k == m:
        a = eta - cutpoints[m - 1]
        s = sigmoid(-a)
        gc[m - 1] -= s
        return -softplus(-a), 0.0, s
    a, b = eta - cutpoints[k - 1], eta - cutpoints[k]
    if not a > b:
        return -INF, 0.0, 0.0
    e = 1.0 / math.expm1(a - b)
    da, db = sigmoid(-a) + e, -sigmoid(b) - e
    gc[k - 1] -= da
    gc[k] -= db
    return -softplus(-a) - softplus(b) + log1mexp(a - b), 0.0, da + db


@kernel
def orderedlogistic_logp(x, eta, cutpoints):
    m = cutpoints.shape[0]
    k = int(x)
    if k < 0 or k > m:
        return -INF
    if k == 0:
        return -softplus(eta - cutpoints[0])
    if k == m:
        return -softplus(cutpoints[m - 1] - eta)
    a, b = eta - cutpoints[k - 1], eta - cutpoints[k]
    if not a > b:
        return -INF
    return -softplus(-a) - softplus(b) + log1mexp(a - b)


@kernel
def orderedprobit_logp_grad(x, eta, cutpoints, sigma, gc):
    """log P(y = x) = log(Phi((c[x] - eta) / sigma) - Phi((c[x-1] - eta) / sigma)), c[-1] = -inf
    and c[m] = inf; -inf unless c increases where used."""
    m = cutpoints.shape[0]
    k = int(x)
    if k < 0 or k > m:
        return -INF, 0.0, 0.0, 0.0
    lo = (cutpoints[k - 1] - eta) / sigma if k > 0 else -INF
    hi = (cutpoints[k] - eta) / sigma if k < m else INF
    if not hi > lo:
        return -INF, 0.0, 0.0, 0.0
    lp, glo, ghi = _log_normal_mass_grad(lo, hi)
    dsigma = 0.0
    if k > 0:
        gc[k - 1] += glo / sigma
        dsigma -= glo * lo / sigma
    if k < m:
        gc[k] += ghi / sigma
        dsigma -= ghi * hi / sigma
    return lp, 0.0, -(glo + ghi) / sigma, dsigma


@kernel
def orderedprobit_logp(x, eta, cutpoints, sigma):
    m = cutpoints.shape[0]
    k = int(x)
    if k < 0 or k > m:
        return -INF
    lo = (cutpoints[k - 1] - eta) / sigma if k > 0 else -INF
    hi = (cutpoints[k] - eta) / sigma if k < m else INF
    if not hi > lo:
        return -INF
    return _log_normal_mass_grad(lo, hi)[0]


@kernel
def _count_total(x):
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i]
    return total


@kernel
def multinomial_logp(x, n, p):
    """log Multinomial(x | n, p / sum(p)) for counts x (k,); -inf unless sum(x) = n."""
    if _count_total(x) != n:
        return -INF
    lp = math.lgamma(n + 1.0) - n * math.log(_count_total(p))
    for i in range(x.shape[0]):
        lp += xlogy(x[i], p[i]) - math.lgamma(x[i] + 1.0)
    return lp


@kernel
def multinomial_logp_grad(x, n, p, gx, gp):
    """``multinomial_logp``, its p-gradient added into gp (gx untouched: the value is data)."""
    if _count_total(x) != n:
        return -INF, 0.0
    total = _count_total(p)
    for i in range(x.shape[0]):
        gp[i] += (x[i] / p[i] if x[i] != 0.0 else 0.0) - n / total
    return multinomial_logp(x, n, p), 0.0


@kernel
def dirichletmultinomial_logp(x, n, a):
    """log DirichletMultinomial(x | n, a) for counts x (k,); -inf unless sum(x) = n."""
    if _count_total(x) != n:
        return -INF
    # differences of lgamma as log rising factorials: exact at large concentrations too
    lp = math.lgamma(n + 1.0) - log_rising(_count_total(a), n)
    for i in range(x.shape[0]):
        lp += log_rising(a[i], x[i]) - math.lgamma(x[i] + 1.0)
    return lp


@kernel
def dirichletmultinomial_logp_grad(x, n, a, gx, ga):
    if _count_total(x) != n:
        return -INF, 0.0
    d = -digamma_rising(_count_total(a), n)
    for i in range(x.shape[0]):
        ga[i] += d + digamma_rising(a[i], x[i])
    return dirichletmultinomial_logp(x, n, a), 0.0


# ---- multivariate families -------------------------------------------------------------------
@kernel
def cholesky_lower(A, L):
    """Factor A = L L^T into L (k, k) from A's lower triangle; False unless A is positive definite.

    Cholesky-Crout, column by column; L's upper triangle is set to 0 so a scratch
    buffer can hold it.
    """
    k = A.shape[0]
    for j in range(k):
        s = A[j, j]
        for m in range(j):
            s -= L[j, m] * L[j, m]
        if not s > 0.0:  # also catches nan
            return False
        d = math.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, k):
            t = A[i, j]
            for m in range(j):
                t -= L[i, m] * L[j, m]
            L[i, j] = t / d
        for i in range(j):
            L[i, j] = 0.0
    return True


@kernel
def cholesky_adjoint(L, gL, gA):
    """Reverse mode of ``cholesky_lower``: add A's adjoint, given L's adjoint gL, into tril(gA).

    The loops of ``cholesky_lower`` run backwards, statement by statement
    (the unblocked reverse algorithm of Murray 2016, "Differentiation of the
    Cholesky decomposition", arXiv:1602.07527, after Giles 2008).  ``gL`` is
    overwritten (it accumulates the adjoints of earlier columns), so no scratch
    is needed.  gA's upper triangle is untouched: the factor never reads it.
    """
    k = L.shape[0]
    for j in range(k - 1, -1, -1):
        d = L[j, j]
        for i in range(k - 1, j, -1):
            # L[i, j] = (A[i, j] - sum_m L[i, m] L[j, m]) / d
            g = gL[i, j] / d
            gA[i, j] += g
            for m in range(j):
                gL[i, m] -= g * L[j, m]
                gL[j, m] -= g * L[i, m]
            gL[j, j] -= g * L[i, j]
        # L[j, j] = sqrt(A[j, j] - sum_m L[j, m]^2)
        g = 0.5 * gL[j, j] / d
        gA[j, j] += g
        for m in range(j):
            gL[j, m] -= 2.0 * g * L[j, m]


@kernel
def mvnormal_chol_logp(x, mu, L, work):
    """log N(x | mu, L L^T) for x, mu (k,), L lower-triangular (k, k); work (2, k), row 0 used.

    z = L^-1 (x - mu) by forward substitution (only L's lower triangle is read).
    """
    k = x.shape[0]
    z = work[0]
    lp = -k * LOG_SQRT_2PI
    for i in range(k):
        s = x[i] - mu[i]
        for j in range(i):
            s -= L[i, j] * z[j]
        z[i] = s / L[i, i]
        lp -= 0.5 * z[i] * z[i] + math.log(L[i, i])
    return lp


@kernel
def mvnormal_chol_logp_grad(x, mu, L, gx, gmu, gL, work):
    """``mvnormal_chol_logp``, its gradient added into gx, gmu and gL's lower triangle; work (2, k).

    With z = L^-1 (x - mu) and w = L^-T z:  d/dx = -w, d/dmu = w,
    d/dL = tril(w z^T) - diag(1 / L_ii)  (dz = -L^-1 dL z).
    """
    k = x.shape[0]
    lp = mvnormal_chol_logp(x, mu, L, work)
    z, w = work[0], work[1]
    for i in range(k - 1, -1, -1):
        s = z[i]
        for j in range(i + 1, k):
            s -= L[j, i] * w[j]
        w[i] = s / L[i, i]
    for i in range(k):
        gx[i] -= w[i]
        gmu[i] += w[i]
        for j in range(i):
            gL[i, j] += w[i] * z[j]
        gL[i, i] += w[i] * z[i] - 1.0 / L[i, i]
    return lp


@kernel
def mvnormal_cov_logp(x, mu, cov, work):
    """log N(x | mu, cov) through the Cholesky factor; -inf if cov is not positive definite.

    work (2k + 2, k): rows [0, k) hold L, rows [2k, 2k + 2) the chol kernel's work.
    Only cov's lower triangle is read.
    """
    k = x.shape[0]
    L = work[:k]
    if not cholesky_lower(cov, L):
        return -INF
    return mvnormal_chol_logp(x, mu, L, work[2 * k:])


@kernel
def mvnormal_cov_logp_grad(x, mu, cov, gx, gmu, gcov, work):
    """``mvnormal_cov_logp`` with its gradient added into gx, gmu and gcov's lower triangle.

    work (2k + 2, k): L in rows [0, k), L's adjoint in [k, 2k), then the chol kernel's work.
    Nothing is added when cov is not positive definite.
    """
    k = x.shape[0]
    L, gL = work[:k], work[k:2 * k]
    if not cholesky_lower(cov, L):
        return -INF
    for i in range(k):
        for j in range(k):
            gL[i, j] = 0.0
    lp = mvnormal_chol_logp_grad(x, mu, L, gx, gmu, gL, work[2 * k:])
    cholesky_adjoint(L, gL, gcov)
    return lp


@kernel
def dirichlet_logp(x, a):
    """log Dirichlet(x | a) for x on the simplex, x and a (k,)."""
    total = 0.0
    lp = 0.0
    for i in range(x.shape[0]):
        total += a[i]
        lp += (a[i] - 1.0) * math.log(x[i]) - math.lgamma(a[i])
    return lp + math.lgamma(total)


@kernel
def dirichlet_logp_grad(x, a, gx, ga):
    """``dirichlet_logp`` with its gradient added into gx and ga (x's components taken as free)."""
    total = 0.0
    for i in range(x.shape[0]):
        total += a[i]
    d = digamma(total)
    for i in range(x.shape[0]):
        gx[i] += (a[i] - 1.0) / x[i]
        ga[i] += d - digamma(a[i]) + math.log(x[i])
    return dirichlet_logp(x, a)


@kernel
def _lkj_constant(eta, k):
    """log normalising constant of LKJ(eta) in dimension k and its eta-derivative.

    Lewandowski, Kurowicka and Joe (2009), theorem 5, in the form of Stan math's
    do_lkj_constant (eta != 1 branch, which is also exact at eta == 1).
    """
    km1 = k - 1
    c = km1 * math.lgamma(eta + 0.5 * km1)
    dc = km1 * digamma(eta + 0.5 * km1)
    for j in range(1, k):
        c -= 0.5 * j * LOG_PI + math.lgamma(eta + 0.5 * (km1 - j))
        dc -= digamma(eta + 0.5 * (km1 - j))
    return c, dc


@kernel
def lkj_corr_cholesky_logp(L, eta):
    """log density of L (k, k), the Cholesky factor of a correlation matrix, under LKJ(eta).

    Stan math's lkj_corr_cholesky_lpdf with its constant: det(L L^T)^(eta - 1) times
    the Jacobian prod_i L_ii^(k - i - 1), i >= 1, with respect to L's strictly lower
    elements; only the diagonal enters.
    """
    k = L.shape[0]
    lp = _lkj_constant(eta, k)[0]
    for i in range(1, k):
        lp += (k - i - 1 + 2.0 * (eta - 1.0)) * math.log(L[i, i])
    return lp


@kernel
def lkj_corr_cholesky_logp_grad(L, eta, gL):
    """(logp, d/deta) of ``lkj_corr_cholesky_logp``; d/dL (diagonal only) is added into gL."""
    k = L.shape[0]
    lp, deta = _lkj_constant(eta, k)
    for i in range(1, k):
        coefficient = k - i - 1 + 2.0 * (eta - 1.0)
        log_diagonal = math.log(L[i, i])
        lp += coefficient * log_diagonal
        deta += 2.0 * log_diagonal
        gL[i, i] += coefficient / L[i, i]
    return lp, deta


# ---- cdfs that are incomplete gamma functions (Gamma, InverseGamma, ChiSquared, Chi) --------
@kernel
def gamma_logcdf(x, alpha, beta):
    if x <= 0.0:
        return -INF
    return log_gamma_inc(alpha, beta * x)[0]


@kernel
def gamma_logcdf_grad(x, alpha, beta):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    log_p, _, dlog_p_da, _, dlog_p_dz, _ = log_gamma_inc(alpha, beta * x)
    return log_p, dlog_p_dz * beta, dlog_p_da, dlog_p_dz * x


@kernel
def gamma_logccdf(x, alpha, beta):
    if x <= 0.0:
        return 0.0
    return log_gamma_inc(alpha, beta * x)[1]


@kernel
def gamma_logccdf_grad(x, alpha, beta):
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    _, log_q, _, dlog_q_da, _, dlog_q_dz = log_gamma_inc(alpha, beta * x)
    return log_q, dlog_q_dz * beta, dlog_q_da, dlog_q_dz * x


@kernel
def inversegamma_logcdf(x, alpha, beta):
    if x <= 0.0:
        return -INF
    return log_gamma_inc(alpha, beta / x)[1]  # P(X <= x) = P(1/X >= 1/x), 1/X ~ Gamma(alpha, beta)


@kernel
def inversegamma_logcdf_grad(x, alpha, beta):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    _, log_q, _, dlog_q_da, _, dlog_q_dz = log_gamma_inc(alpha, beta / x)
    return log_q, -dlog_q_dz * beta / (x * x), dlog_q_da, dlog_q_dz / x


@kernel
def inversegamma_logccdf(x, alpha, beta):
    if x <= 0.0:
        return 0.0
    return log_gamma_inc(alpha, beta / x)[0]


@kernel
def inversegamma_logccdf_grad(x, alpha, beta):
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    log_p, _, dlog_p_da, _, dlog_p_dz, _ = log_gamma_inc(alpha, beta / x)
    return log_p, -dlog_p_dz * beta / (x * x), dlog_p_da, dlog_p_dz / x


@kernel
def chisquared_logcdf(x, nu):
    return gamma_logcdf(x, 0.5 * nu, 0.5)


@kernel
def chisquared_logcdf_grad(x, nu):
    value, dx, dalpha, _ = gamma_logcdf_grad(x, 0.5 * nu, 0.5)
    return value, dx, 0.5 * dalpha


@kernel
def chisquared_logccdf(x, nu):
    return gamma_logccdf(x, 0.5 * nu, 0.5)


@kernel
def chisquared_logccdf_grad(x, nu):
    value, dx, dalpha, _ = gamma_logccdf_grad(x, 0.5 * nu, 0.5)
    return value, dx, 0.5 * dalpha


@kernel
def chi_logcdf(x, nu):
    return chisquared_logcdf(x * x, nu) if x > 0.0 else -INF  # X^2 ~ ChiSquared(nu)


@kernel
def chi_logcdf_grad(x, nu):
    if x <= 0.0:
        return -INF, 0.0, 0.0
    value, dx, dnu = chisquared_logcdf_grad(x * x, nu)
    return value, 2.0 * x * dx, dnu


@kernel
def chi_logccdf(x, nu):
    return chisquared_logccdf(x * x, nu) if x > 0.0 else 0.0


@kernel
def chi_logccdf_grad(x, nu):
    if x <= 0.0:
        return 0.0, 0.0, 0.0
    value, dx, dnu = chisquared_logccdf_grad(x * x, nu)
    return value, 2.0 * x * dx, dnu


# ---- cdfs that are incomplete beta functions (Beta, StudentT, HalfStudentT, NegativeBinomial)
@kernel
def beta_logcdf(x, alpha, beta):
    if x <= 0.0:
        return -INF
    if x >= 1.0:
        return 0.0
    return log_beta_inc(alpha, beta, x)[0]


@kernel
def beta_logcdf_grad(x, alpha, beta):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    if x >= 1.0:
        return 0.0, 0.0, 0.0, 0.0
    r = log_beta_inc(alpha, beta, x)
    return r[0], r[6], r[2], r[3]


@kernel
def beta_logccdf(x, alpha, beta):
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return -INF
    return log_beta_inc(alpha, beta, x)[1]


@kernel
def beta_logccdf_grad(x, alpha, beta):
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    if x >= 1.0:
        return -INF, 0.0, 0.0, 0.0
    r = log_beta_inc(alpha, beta, x)
    return r[1], r[7], r[4], r[5]


@kernel
def _studentt_tail_grad(t, nu):
    """log P(T > t) for T ~ StudentT(nu) and t >= 0, with its partials in t and nu:
    P(T > t) = I_z(nu / 2, 1 / 2) / 2, z = nu / (nu + t^2), through the complement
    I_(1 - z)(1 / 2, nu / 2) when z is near 1 (1 - z = t^2 / (nu + t^2) keeps its digits)."""
    if t <= 0.0:  # P = 1/2 for every nu; the slope is minus the density at 0
        log_density0 = (math.lgamma(0.5 * nu + 0.5) - math.lgamma(0.5 * nu)
                        - 0.5 * math.log(nu) - 0.5 * LOG_PI)
        return -LOG_2, -2.0 * math.exp(log_density0), 0.0
    s = nu + t * t
    if nu / s > 0.5:
        r = log_beta_inc(0.5, 0.5 * nu, t * t / s)
        log_i, di_shape, di_w = r[1], r[5], r[7]
        dw_dt, dw_dnu = 2.0 * t * nu / (s * s), -t * t / (s * s)
    else:
        r = log_beta_inc(0.5 * nu, 0.5, nu / s)
        log_i, di_shape, di_w = r[0], r[2], r[6]
        dw_dt, dw_dnu = -2.0 * t * nu / (s * s), t * t / (s * s)
    return log_i - LOG_2, di_w * dw_dt, 0.5 * di_shape + di_w * dw_dnu


@kernel
def _studentt_standard_logcdf_grad(t, nu):
    """log P(T <= t) with its partials in t and nu."""
    tail, d_abs, d_nu = _studentt_tail_grad(abs(t), nu)
    if t < 0.0:
        return tail, -d_abs, d_nu
    other = log1mexp(-tail)
    ratio = math.exp(tail - other)
    return other, -ratio * d_abs, -ratio * d_nu


@kernel
def studentt_logcdf(x, nu, mu, sigma):
    return _studentt_standard_logcdf_grad((x - mu) / sigma, nu)[0]


@kernel
def studentt_logcdf_grad(x, nu, mu, sigma):
    t = (x - mu) / sigma
    value, dt, dnu = _studentt_standard_logcdf_grad(t, nu)
    return value, dt / sigma, dnu, -dt / sigma, -dt * t / sigma


@kernel
def studentt_logccdf(x, nu, mu, sigma):
    return _studentt_standard_logcdf_grad((mu - x) / sigma, nu)[0]


@kernel
def studentt_logccdf_grad(x, nu, mu, sigma):
    t = (mu - x) / sigma
    value, dt, dnu = _studentt_standard_logcdf_grad(t, nu)
    return value, -dt / sigma, dnu, dt / sigma, -dt * t / sigma


@kernel
def halfstudentt_logccdf_grad(x, nu, sigma):
    """P(X > x) = 2 P(T > x / sigma)."""
    if x <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    t = x / sigma
    tail, dt, dnu = _studentt_tail_grad(t, nu)
    return LOG_2 + tail, dt / sigma, dnu, -dt * t / sigma


@kernel
def halfstudentt_logccdf(x, nu, sigma):
    return halfstudentt_logccdf_grad(x, nu, sigma)[0]


@kernel
def halfstudentt_logcdf_grad(x, nu, sigma):
    if x <= 0.0:
        return -INF, 0.0, 0.0, 0.0
    upper, dx, dnu, dsigma = halfstudentt_logccdf_grad(x, nu, sigma)
    value = log1mexp(-upper)
    ratio = -math.exp(upper - value)
    return value, ratio * dx, ratio * dnu, ratio * dsigma


@kernel
def halfstudentt_logcdf(x, nu, sigma):
    return halfstudentt_logcdf_grad(x, nu, sigma)[0]


@kernel
def _negativebinomial_cdf_terms(x, mu, alpha):
    """(log_beta_inc at p = alpha / (alpha + mu) for P(X <= k) = I_p(alpha, k + 1), dp/dmu,
    dp/dalpha)."""
    s = alpha + mu
    return (log_beta_inc(alpha, math.floor(x) + 1.0, alpha / s), -alpha / (s * s),
            mu / (s * s))


@kernel
def negativebinomial_logcdf(x, mu, alpha):
    if x < 0.0:
        return -INF
    return _negativebinomial_cdf_terms(x, mu, alpha)[0][0]


@kernel
def negativebinomial_logcdf_grad(x, mu, alpha):
    if x < 0.0:
        return -INF, 0.0, 0.0, 0.0
    r, dp_dmu, dp_dalpha = _negativebinomial_cdf_terms(x, mu, alpha)
    return r[0], 0.0, r[6] * dp_dmu, r[2] + r[6] * dp_dalpha


@kernel
def negativebinomial_logccdf(x, mu, alpha):
    if x < 0.0:
        return 0.0
    return _negativebinomial_cdf_terms(x, mu, alpha)[0][1]


@kernel
def negativebinomial_logccdf_grad(x, mu, alpha):
    if x < 0.0:
        return 0.0, 0.0, 0.0, 0.0
    r, dp_dmu, dp_dalpha = _negativebinomial_cdf_terms(x, mu, alpha)
    return r[1], 0.0, r[7] * dp_dmu, r[4] + r[7] * dp_dalpha


# ---- registry ----------------------------------------------------------------------------------
class FamilyKernel(NamedTuple):
    """The kernels of one family with one choice of parameters, as ``KERNELS`` registers them.

    Every kernel uses ``math``, scalar arithmetic, loops and indexing of the
    arrays passed in, and nothing else (no NumPy calls, no allocation, no
    exceptions), so the same Python functions (``fn.py_func``) compile under
    Numba on the CPU and, unchanged, as numba.cuda device functions; the
    helpers they call are @njit functions, which numba.cuda compiles for the
    device when called from device code.  Formulas and parameterisations are
    PyMC's (those of the former templates in ``exmc/ir/dists``).

    Scalar families (no array argument): ``logp(x, p1, p2, ...) -> float`` and
    ``logp_grad(x, p1, ...) -> (logp, d/dx, d/dp1, ...)``; the same for
    ``logcdf``/``logccdf`` and their ``_grad`` twins, where registered (None
    otherwise).  Outside the support a logcdf is -inf or 0 with zero partials.

    Event families (``has_array_args``: ``event_ndim >= 1``, or an array parameter as
    Categorical's ``p``): the value and the array parameters are array views;
    ``logp_grad`` takes one gradient array per array argument (the value first, then
    the array parameters in order) after the parameters, ADDS the gradient into them,
    and returns the log density, or ``(logp, d/da, ...)`` for the scalar arguments (a
    scalar value first) when there are any.  A ``work`` array of shape ``work_shape(k)``
    comes last where the kernel takes one.

    Attributes
    ----------
    params : tuple of str
        The kernel's arguments after the value, in the IR family's (PyMC's) order.
    param_ndim : tuple of int
        Rank of each parameter.
    constant_args : tuple of str
        Arguments ("x" or a parameter name) whose partial is identically 0.0: a
        discrete value, a data-only parameter (Binomial's ``n``).
    work_shape : callable or None
        ``work_shape(k)`` is the shape of the float64 work array for event size k;
        None when the kernel takes none.
    """

    params: tuple
    logp: Callable
    logp_grad: Callable
    logcdf: Optional[Callable] = None
    logcdf_grad: Optional[Callable] = None
    logccdf: Optional[Callable] = None
    logccdf_grad: Optional[Callable] = None
    event_ndim: int = 0
    param_ndim: tuple = ()
    constant_args: tuple = ()
    work_shape: Optional[Callable] = None
    # Optional split of a scalar family's density into terms in some parameters alone
    # (normalizer(those) -> (value, partials...)) and the rest (body_grad, with
    # logp_grad's signature): when those parameters are one value for a whole
    # batch, the emitter evaluates the normalizer (lgamma, digamma) once.
    normalizer_params: tuple = ()
    normalizer_grad: Optional[Callable] = None
    body_grad: Optional[Callable] = None

    @property
    def has_array_args(self):
        """True when the value or a parameter is an array: the event calling convention.

        Categorical's value is a scalar but its ``p`` a vector, so it is called as the
        event families are (array views, gradients added into arrays).
        """
        return self.event_ndim > 0 or any(self.param_ndim)


def _scalar(params, logp, logp_grad, cdf=(None,) * 4, constant_args=(), normalizer=None):
    split = {} if normalizer is None else dict(zip(
        ("normalizer_params", "normalizer_grad", "body_grad"), normalizer))
    return FamilyKernel(params, logp, logp_grad, *cdf, event_ndim=0,
                        param_ndim=(0,) * len(params), constant_args=constant_args, **split)


KERNELS = {
    ("Normal", ("mu", "sigma")): _scalar(
        ("mu", "sigma"), normal_logp, normal_logp_grad,
        (normal_logcdf, normal_logcdf_grad, normal_logccdf, normal_logccdf_grad),
        normalizer=(("sigma",), normal_normalizer_grad, normal_body_grad)),
    ("HalfNormal", ("sigma",)): _scalar(
        ("sigma",), halfnormal_logp, halfnormal_logp_grad,
        (halfnormal_logcdf, halfnormal_logcdf_grad, halfnormal_logccdf, halfnormal_logccdf_grad)),
    ("HalfCauchy", ("beta",)): _scalar(
        ("beta",), halfcauchy_logp, halfcauchy_logp_grad,
        (halfcauchy_logcdf, halfcauchy_logcdf_grad, halfcauchy_logccdf, halfcauchy_logccdf_grad)),
    ("Exponential", ("lam",)): _scalar(
        ("lam",), exponential_logp, exponential_logp_grad,
        (exponential_logcdf, exponential_logcdf_grad,
         exponential_logccdf, exponential_logccdf_grad)),
    ("Gamma", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), gamma_logp, gamma_logp_grad,
        (gamma_logcdf, gamma_logcdf_grad, gamma_logccdf, gamma_logccdf_grad),
        normalizer=(("alpha", "beta"), gamma_normalizer_grad, gamma_body_grad)),
    ("InverseGamma", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), inversegamma_logp, inversegamma_logp_grad,
        (inversegamma_logcdf, inversegamma_logcdf_grad, inversegamma_logccdf,
         inversegamma_logccdf_grad),
        normalizer=(("alpha", "beta"), gamma_normalizer_grad, inversegamma_body_grad)),
    ("Beta", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), beta_logp, beta_logp_grad,
        (beta_logcdf, beta_logcdf_grad, beta_logccdf, beta_logccdf_grad),
        normalizer=(("alpha", "beta"), beta_normalizer_grad, beta_body_grad)),
    ("Uniform", ("lower", "upper")): _scalar(
        ("lower", "upper"), uniform_logp, uniform_logp_grad,
        (uniform_logcdf, uniform_logcdf_grad, uniform_logccdf, uniform_logccdf_grad)),
    ("StudentT", ("nu", "mu", "sigma")): _scalar(
        ("nu", "mu", "sigma"), studentt_logp, studentt_logp_grad,
        (studentt_logcdf, studentt_logcdf_grad, studentt_logccdf, studentt_logccdf_grad),
        normalizer=(("nu",), studentt_normalizer_grad, studentt_body_grad)),
    ("Cauchy", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), cauchy_logp, cauchy_logp_grad,
        (cauchy_logcdf, cauchy_logcdf_grad, cauchy_logccdf, cauchy_logccdf_grad)),
    ("LogNormal", ("mu", "sigma")): _scalar(
        ("mu", "sigma"), lognormal_logp, lognormal_logp_grad,
        (lognormal_logcdf, lognormal_logcdf_grad, lognormal_logccdf, lognormal_logccdf_grad)),
    ("Laplace", ("mu", "b")): _scalar(
        ("mu", "b"), laplace_logp, laplace_logp_grad,
        (laplace_logcdf, laplace_logcdf_grad, laplace_logccdf, laplace_logccdf_grad)),
    # Discrete families: Poisson's and Binomial's cdfs are sums of their pmf.
    ("Bernoulli", ("p",)): _scalar(
        ("p",), bernoulli_p_logp, bernoulli_p_logp_grad, constant_args=("x",)),
    ("Bernoulli", ("logit_p",)): _scalar(
        ("logit_p",), bernoulli_logit_logp, bernoulli_logit_logp_grad, constant_args=("x",)),
    ("Binomial", ("n", "p")): _scalar(
        ("n", "p"), binomial_p_logp, binomial_p_logp_grad,
        (binomial_p_logcdf, binomial_p_logcdf_grad, binomial_p_logccdf, binomial_p_logccdf_grad),
        constant_args=("x", "n")),
    ("Binomial", ("n", "logit_p")): _scalar(
        ("n", "logit_p"), binomial_logit_logp, binomial_logit_logp_grad,
        (binomial_logit_logcdf, binomial_logit_logcdf_grad, binomial_logit_logccdf,
         binomial_logit_logccdf_grad), constant_args=("x", "n")),
    ("Poisson", ("mu",)): _scalar(
        ("mu",), poisson_logp, poisson_logp_grad,
        (poisson_logcdf, poisson_logcdf_grad, poisson_logccdf, poisson_logccdf_grad),
        constant_args=("x",)),
    # PyMC's further scalar families; without a logcdf where the cdf is a Bessel-type
    # integral or Owen's T (SkewNormal, VonMises, Rice).  Flat and HalfFlat are improper: logp 0 on their support.
    ("Flat", ()): _scalar((), flat_logp, flat_logp_grad),
    ("HalfFlat", ()): _scalar((), flat_logp, flat_logp_grad),
    ("HalfStudentT", ("nu", "sigma")): _scalar(
        ("nu", "sigma"), halfstudentt_logp, halfstudentt_logp_grad,
        (halfstudentt_logcdf, halfstudentt_logcdf_grad, halfstudentt_logccdf,
         halfstudentt_logccdf_grad)),
    ("Weibull", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), weibull_logp, weibull_logp_grad,
        (weibull_logcdf, weibull_logcdf_grad, weibull_logccdf, weibull_logccdf_grad)),
    ("SkewNormal", ("alpha", "mu", "sigma")): _scalar(
        ("alpha", "mu", "sigma"), skewnormal_logp, skewnormal_logp_grad),
    ("VonMises", ("mu", "kappa")): _scalar(("mu", "kappa"), vonmises_logp, vonmises_logp_grad),
    ("Gumbel", ("mu", "beta")): _scalar(
        ("mu", "beta"), gumbel_logp, gumbel_logp_grad,
        (gumbel_logcdf, gumbel_logcdf_grad, gumbel_logccdf, gumbel_logccdf_grad)),
    ("Logistic", ("mu", "s")): _scalar(
        ("mu", "s"), logistic_logp, logistic_logp_grad,
        (logistic_logcdf, logistic_logcdf_grad, logistic_logccdf, logistic_logccdf_grad)),
    ("LogitNormal", ("mu", "sigma")): _scalar(
        ("mu", "sigma"), logitnormal_logp, logitnormal_logp_grad,
        (logitnormal_logcdf, logitnormal_logcdf_grad, logitnormal_logccdf,
         logitnormal_logccdf_grad)),
    ("Pareto", ("alpha", "m")): _scalar(
        ("alpha", "m"), pareto_logp, pareto_logp_grad,
        (pareto_logcdf, pareto_logcdf_grad, pareto_logccdf, pareto_logccdf_grad)),
    ("Kumaraswamy", ("a", "b")): _scalar(
        ("a", "b"), kumaraswamy_logp, kumaraswamy_logp_grad,
        (kumaraswamy_logcdf, kumaraswamy_logcdf_grad, kumaraswamy_logccdf,
         kumaraswamy_logccdf_grad)),
    ("Triangular", ("lower", "upper", "c")): _scalar(
        ("lower", "upper", "c"), triangular_logp, triangular_logp_grad,
        (triangular_logcdf, triangular_logcdf_grad, triangular_logccdf, triangular_logccdf_grad)),
    ("Wald", ("mu", "lam", "alpha")): _scalar(
        ("mu", "lam", "alpha"), wald_logp, wald_logp_grad,
        (wald_logcdf, wald_logcdf_grad, wald_logccdf, wald_logccdf_grad)),
    ("ExGaussian", ("mu", "sigma", "nu")): _scalar(
        ("mu", "sigma", "nu"), exgaussian_logp, exgaussian_logp_grad,
        (exgaussian_logcdf, exgaussian_logcdf_grad, exgaussian_logccdf, exgaussian_logccdf_grad)),
    ("AsymmetricLaplace", ("kappa", "mu", "b")): _scalar(
        ("kappa", "mu", "b"), asymmetriclaplace_logp, asymmetriclaplace_logp_grad,
        (asymmetriclaplace_logcdf, asymmetriclaplace_logcdf_grad, asymmetriclaplace_logccdf,
         asymmetriclaplace_logccdf_grad)),
    ("Rice", ("nu", "sigma")): _scalar(("nu", "sigma"), rice_logp, rice_logp_grad),
    ("Moyal", ("mu", "sigma")): _scalar(
        ("mu", "sigma"), moyal_logp, moyal_logp_grad,
        (moyal_logcdf, moyal_logcdf_grad, moyal_logccdf, moyal_logccdf_grad)),
    # an absent bound is an infinite constant (the IR's default)
    ("TruncatedNormal", ("mu", "sigma", "lower", "upper")): _scalar(
        ("mu", "sigma", "lower", "upper"), truncatednormal_logp, truncatednormal_logp_grad,
        (truncatednormal_logcdf, truncatednormal_logcdf_grad, truncatednormal_logccdf,
         truncatednormal_logccdf_grad)),
    ("ChiSquared", ("nu",)): _scalar(
        ("nu",), chisquared_logp, chisquared_logp_grad,
        (chisquared_logcdf, chisquared_logcdf_grad, chisquared_logccdf, chisquared_logccdf_grad)),
    ("Chi", ("nu",)): _scalar(
        ("nu",), chi_logp, chi_logp_grad,
        (chi_logcdf, chi_logcdf_grad, chi_logccdf, chi_logccdf_grad)),
    ("NegativeBinomial", ("mu", "alpha")): _scalar(
        ("mu", "alpha"), negativebinomial_logp, negativebinomial_logp_grad,
        (negativebinomial_logcdf, negativebinomial_logcdf_grad, negativebinomial_logccdf,
         negativebinomial_logccdf_grad), constant_args=("x",)),
    ("BetaBinomial", ("alpha", "beta", "n")): _scalar(
        ("alpha", "beta", "n"), betabinomial_logp, betabinomial_logp_grad,
        constant_args=("x", "n")),
    ("Geometric", ("p",)): _scalar(
        ("p",), geometric_logp, geometric_logp_grad,
        (geometric_logcdf, geometric_logcdf_grad, geometric_logccdf, geometric_logccdf_grad),
        constant_args=("x",)),
    ("DiscreteUniform", ("lower", "upper")): _scalar(
        ("lower", "upper"), discreteuniform_logp, discreteuniform_logp_grad,
        (discreteuniform_logcdf, discreteuniform_logcdf_grad, discreteuniform_logccdf,
         discreteuniform_logccdf_grad), constant_args=("x",)),
    ("ZeroInflatedPoisson", ("psi", "mu")): _scalar(
        ("psi", "mu"), zeroinflatedpoisson_logp, zeroinflatedpoisson_logp_grad,
        constant_args=("x",)),
    ("ZeroInflatedBinomial", ("psi", "n", "p")): _scalar(
        ("psi", "n", "p"), zeroinflatedbinomial_logp, zeroinflatedbinomial_logp_grad,
        constant_args=("x", "n")),
    ("ZeroInflatedNegativeBinomial", ("psi", "mu", "alpha")): _scalar(
        ("psi", "mu", "alpha"), zeroinflatednegativebinomial_logp,
        zeroinflatednegativebinomial_logp_grad, constant_args=("x",)),
    ("HurdlePoisson", ("psi", "mu")): _scalar(
        ("psi", "mu"), hurdlepoisson_logp, hurdlepoisson_logp_grad, constant_args=("x",)),
    ("HurdleNegativeBinomial", ("psi", "mu", "alpha")): _scalar(
        ("psi", "mu", "alpha"), hurdlenegativebinomial_logp, hurdlenegativebinomial_logp_grad,
        constant_args=("x",)),
    ("HurdleGamma", ("psi", "alpha", "beta")): _scalar(
        ("psi", "alpha", "beta"), hurdlegamma_logp, hurdlegamma_logp_grad, constant_args=("x",)),
    ("HurdleLogNormal", ("psi", "mu", "sigma")): _scalar(
        ("psi", "mu", "sigma"), hurdlelognormal_logp, hurdlelognormal_logp_grad,
        constant_args=("x",)),
    ("Categorical", ("p",)): FamilyKernel(
        ("p",), categorical_p_logp, categorical_p_logp_grad, param_ndim=(1,),
        constant_args=("x",)),
    ("Categorical", ("logit_p",)): FamilyKernel(
        ("logit_p",), categorical_logit_logp, categorical_logit_logp_grad, param_ndim=(1,),
        constant_args=("x",)),
    ("OrderedLogistic", ("eta", "cutpoints")): FamilyKernel(
        ("eta", "cutpoints"), orderedlogistic_logp, orderedlogistic_logp_grad,
        param_ndim=(0, 1), constant_args=("x",)),
    ("OrderedProbit", ("eta", "cutpoints", "sigma")): FamilyKernel(
        ("eta", "cutpoints", "sigma"), orderedprobit_logp, orderedprobit_logp_grad,
        param_ndim=(0, 1, 0), constant_args=("x",)),
    ("Multinomial", ("n", "p")): FamilyKernel(
        ("n", "p"), multinomial_logp, multinomial_logp_grad, event_ndim=1, param_ndim=(0, 1),
        constant_args=("x", "n")),
    ("DirichletMultinomial", ("n", "a")): FamilyKernel(
        ("n", "a"), dirichletmultinomial_logp, dirichletmultinomial_logp_grad, event_ndim=1,
        param_ndim=(0, 1), constant_args=("x", "n")),
    ("MvNormal", ("mu", "chol")): FamilyKernel(
        ("mu", "chol"), mvnormal_chol_logp, mvnormal_chol_logp_grad, event_ndim=1,
        param_ndim=(1, 2), work_shape=lambda k: (2, k)),
    ("MvNormal", ("mu", "cov")): FamilyKernel(
        ("mu", "cov"), mvnormal_cov_logp, mvnormal_cov_logp_grad, event_ndim=1,
        param_ndim=(1, 2), work_shape=lambda k: (2 * k + 2, k)),
    ("Dirichlet", ("a",)): FamilyKernel(
        ("a",), dirichlet_logp, dirichlet_logp_grad, event_ndim=1, param_ndim=(1,)),
    # The correlation part of PyMC's LKJCholeskyCov (value: the (k, k) Cholesky factor).
    ("LKJCorrCholesky", ("eta",)): FamilyKernel(
        ("eta",), lkj_corr_cholesky_logp, lkj_corr_cholesky_logp_grad, event_ndim=2,
        param_ndim=(0,)),
}
