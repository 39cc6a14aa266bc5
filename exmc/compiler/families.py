"""Family log-density kernels with exact gradients, one source for CPU and CUDA; their registry."""
import math
from typing import Callable, NamedTuple, Optional

from exmc.compiler.njit import kernel
from exmc.compiler.scalar import (LOG_2, LOG_PI, LOG_SQRT_2PI, digamma, log1mexp,
                                  log_normal_cdf, log_normal_cdf_derivative, sigmoid, softplus,
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

    Scalar families (``event_ndim == 0``): ``logp(x, p1, p2, ...) -> float`` and
    ``logp_grad(x, p1, ...) -> (logp, d/dx, d/dp1, ...)``; the same for
    ``logcdf``/``logccdf`` and their ``_grad`` twins, where registered (None
    otherwise).  Outside the support a logcdf is -inf or 0 with zero partials.

    Event families (``event_ndim >= 1``): the value and the array parameters are
    array views; ``logp_grad`` takes one gradient array per array argument (the
    value first, then the array parameters in order) after the parameters, ADDS
    the gradient into them, and returns the log density, or ``(logp, d/dp, ...)``
    for the scalar parameters when there are any.  A ``work`` array of shape
    ``work_shape(k)`` comes last where the kernel takes one.

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
    # Gamma, InverseGamma, Beta and StudentT have no logcdf here: their cdfs are incomplete
    # gamma / beta functions, whose shape-parameter derivatives have no cheap exact form.
    ("Gamma", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), gamma_logp, gamma_logp_grad,
        normalizer=(("alpha", "beta"), gamma_normalizer_grad, gamma_body_grad)),
    ("InverseGamma", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), inversegamma_logp, inversegamma_logp_grad,
        normalizer=(("alpha", "beta"), gamma_normalizer_grad, inversegamma_body_grad)),
    ("Beta", ("alpha", "beta")): _scalar(
        ("alpha", "beta"), beta_logp, beta_logp_grad,
        normalizer=(("alpha", "beta"), beta_normalizer_grad, beta_body_grad)),
    ("Uniform", ("lower", "upper")): _scalar(
        ("lower", "upper"), uniform_logp, uniform_logp_grad,
        (uniform_logcdf, uniform_logcdf_grad, uniform_logccdf, uniform_logccdf_grad)),
    ("StudentT", ("nu", "mu", "sigma")): _scalar(
        ("nu", "mu", "sigma"), studentt_logp, studentt_logp_grad,
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
    # Discrete families: no logcdf (Poisson's and Binomial's need incomplete gamma / beta).
    ("Bernoulli", ("p",)): _scalar(
        ("p",), bernoulli_p_logp, bernoulli_p_logp_grad, constant_args=("x",)),
    ("Bernoulli", ("logit_p",)): _scalar(
        ("logit_p",), bernoulli_logit_logp, bernoulli_logit_logp_grad, constant_args=("x",)),
    ("Binomial", ("n", "p")): _scalar(
        ("n", "p"), binomial_p_logp, binomial_p_logp_grad, constant_args=("x", "n")),
    ("Binomial", ("n", "logit_p")): _scalar(
        ("n", "logit_p"), binomial_logit_logp, binomial_logit_logp_grad,
        constant_args=("x", "n")),
    ("Poisson", ("mu",)): _scalar(("mu",), poisson_logp, poisson_logp_grad, constant_args=("x",)),
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
