"""Stable scalar special functions for family kernels, in ``math`` only so CUDA compiles them."""
import math

from exmc.compiler.njit import kernel

LOG_2 = math.log(2.0)
LOG_PI = math.log(math.pi)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
SQRT_2 = math.sqrt(2.0)
# Below this, log Phi(x) uses the asymptotic series: erfc(-x / sqrt 2) still has full
# relative precision here (as in scipy's log_ndtr), and the series has converged.
_NORMAL_TAIL = -20.0


@kernel
def sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@kernel
def softplus(x):
    """log(1 + exp(x)) without overflow for large x."""
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@kernel
def log1mexp(a):
    """log(1 - exp(-a)) for a > 0 (Maechler 2012, "Accurately computing log(1 - exp(-|a|))")."""
    if a <= LOG_2:
        return math.log(-math.expm1(-a))
    return math.log1p(-math.exp(-a))


@kernel
def logsumexp2(a, b):
    """log(exp(a) + exp(b)); -inf when both are -inf."""
    m = max(a, b)
    if m == -math.inf:
        return m
    return m + math.log1p(math.exp(-abs(a - b)))


@kernel
def xlogy(x, y):
    """x * log(y), 0 when x == 0 (so a Bernoulli term with zero count is 0 even at p = 0)."""
    if x == 0.0:
        return 0.0
    return x * math.log(y)


@kernel
def xlog1py(x, y):
    """x * log1p(y), 0 when x == 0."""
    if x == 0.0:
        return 0.0
    return x * math.log1p(y)


@kernel
def lgamma(x):
    return math.lgamma(x)


@kernel
def digamma(x):
    """psi(x) for x > 0: recurrence up to x >= 10, then the asymptotic series (error < 1e-13).

    kernels.py's version switches at 6, where the first omitted term is still 1e-11.
    """
    if not x > 0.0:
        return math.nan
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))))
    return result + math.log(x) - 0.5 / x - series


@kernel
def trigamma(x):
    """psi'(x) for x > 0: recurrence up to x >= 10, then the asymptotic series (error < 1e-13)."""
    if not x > 0.0:
        return math.nan
    result = 0.0
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    # 1/x + 1/(2x^2) + sum B_2n / x^(2n+1), Bernoulli numbers 1/6, -1/30, 1/42, -1/30, 5/66
    series = 1.0 + f * (1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f * (1.0 / 30 - f * (5.0 / 66)))))
    series /= x
    return result + series + 0.5 * f


@kernel
def erf(x):
    return math.erf(x)


@kernel
def erfc(x):
    return math.erfc(x)


@kernel
def _normal_tail_series(x):
    """S(x) with Phi(x) = phi(x) S(x) / (-x) for x <= -20: sum of (-1)^n (2n-1)!! / x^(2n).

    Abramowitz and Stegun 26.2.12.  The series is asymptotic, but at |x| >= 20 its
    12th term is below 1e-19.
    """
    inv = 1.0 / (x * x)
    term = 1.0
    total = 1.0
    for n in range(1, 13):
        term *= -(2.0 * n - 1.0) * inv
        total += term
    return total


@kernel
def log_normal_cdf(x):
    """log Phi(x), accurate in both tails (same split as scipy.special.log_ndtr)."""
    if x > 0.0:
        # Phi(x) = 1 - Phi(-x): log1p keeps the tiny upper-tail mass.
        return math.log1p(-0.5 * math.erfc(x / SQRT_2))
    if x > _NORMAL_TAIL:
        return math.log(0.5 * math.erfc(-x / SQRT_2))
    return -0.5 * x * x - LOG_SQRT_2PI - math.log(-x) + math.log(_normal_tail_series(x))


@kernel
def log_normal_cdf_derivative(x):
    """d/dx log Phi(x) = phi(x) / Phi(x), the inverse Mills ratio of -x, stable in both tails."""
    if x > _NORMAL_TAIL:
        return math.exp(-0.5 * x * x - LOG_SQRT_2PI) / (0.5 * math.erfc(-x / SQRT_2))
    return -x / _normal_tail_series(x)


# Below this argument the Bessel functions use their power series (all terms positive, so
# no cancellation); above it, Hankel's asymptotic series, whose terms keep shrinking until
# k ~ 2x (Abramowitz and Stegun 9.6.10 and 9.7.1).
_BESSEL_SERIES_MAX = 25.0


@kernel
def _bessel_i_series_tail(nu, x):
    """I_nu(x) / first_term - 1 by the power series, nu in {0, 1}, 0 <= x < 25.

    The first term is 1 for nu = 0 and x / 2 for nu = 1; returning the rest apart keeps
    log I_0 relatively exact for small x (log1p of it).
    """
    q = 0.25 * x * x
    term = 1.0
    total = 0.0
    for k in range(1, 500):
        term *= q / (k * (k + nu))
        total += term
        if term < 1e-17 * (1.0 + total):
            break
    return total


@kernel
def _bessel_i_scaled(nu, x):
    """exp(-x) I_nu(x) for nu in {0, 1} and x >= 0."""
    if x < _BESSEL_SERIES_MAX:
        first = 1.0 if nu == 0 else 0.5 * x
        return first * (1.0 + _bessel_i_series_tail(nu, x)) * math.exp(-x)
    mu = 4.0 * nu * nu
    term = 1.0
    total = 1.0
    for k in range(1, 60):
        term *= -(mu - (2.0 * k - 1.0) ** 2) / (8.0 * k * x)
        total += term
        if abs(term) < 1e-17 * abs(total):
            break
    return total / math.sqrt(2.0 * math.pi * x)


@kernel
def log_bessel_i0(x):
    """log I_0(x) for x >= 0, without overflow for large x."""
    if x < _BESSEL_SERIES_MAX:
        return math.log1p(_bessel_i_series_tail(0, x))
    return math.log(_bessel_i_scaled(0, x)) + x


@kernel
def bessel_i1_over_i0(x):
    """I_1(x) / I_0(x) for x >= 0: the derivative of log I_0(x)."""
    if x < _BESSEL_SERIES_MAX:
        return 0.5 * x * (1.0 + _bessel_i_series_tail(1, x)) / (1.0 + _bessel_i_series_tail(0, x))
    return _bessel_i_scaled(1, x) / _bessel_i_scaled(0, x)


_GAMMA_INC_TERMS = 20_000  # enough for shapes up to ~1e6 at x near the shape (~8 sqrt(a) terms)
_GAMMA_INC_EPS = 1e-16


@kernel
def log_gamma_inc(a, x):
    """Regularized incomplete gamma functions in logs, with their exact derivatives:
    (log P(a, x), log Q(a, x), d log P / da, d log Q / da, d log P / dx, d log Q / dx)
    for a > 0, x > 0 (P the lower, Q = 1 - P the upper).

    Below x = a + 1 the series of P, above it the continued fraction of Q (Numerical
    Recipes' split; Lentz's method), each differentiated in ``a`` term by term alongside
    (forward mode: the derivative of the very sum or fraction evaluated, converged as
    tightly as the value).  The x-derivatives are the density over P or Q.
    """
    log_x = math.log(x)
    # log of x^(a-1) e^-x / Gamma(a): the density of Gamma(a, 1) at x
    log_density = (a - 1.0) * log_x - x - math.lgamma(a)
    if x < a + 1.0:
        # P = x^a e^-x / Gamma(a + 1) * sum_n t_n, t_0 = 1, t_n = t_(n-1) x / (a + n)
        term, dterm, total, dtotal = 1.0, 0.0, 1.0, 0.0
        for n in range(1, _GAMMA_INC_TERMS):
            ratio = x / (a + n)
            dterm = (dterm - term / (a + n)) * ratio
            term *= ratio
            total += term
            dtotal += dterm
            if term < total * _GAMMA_INC_EPS and abs(dterm) <= abs(dtotal) * _GAMMA_INC_EPS:
                break
        log_p = a * log_x - x - math.lgamma(a + 1.0) + math.log(total)
        dlog_p = log_x - digamma(a + 1.0) + dtotal / total
        log_q = log1mexp(-log_p) if log_p < 0.0 else -math.inf
        dlog_q = -math.exp(log_p - log_q) * dlog_p
    else:
        # Q = x^a e^-x / Gamma(a) * h, h = 1 / (b0 - 1 (1 - a) / (b1 - 2 (2 - a) / (b2 - ...)))
        tiny = 1e-300
        b = x + 1.0 - a
        c, dc = 1.0 / tiny, 0.0
        d = 1.0 / b
        dd = d * d  # d/da of 1 / b with db/da = -1
        log_h, dlog_h = math.log(d), dd / d
        for i in range(1, _GAMMA_INC_TERMS):
            an, dan = -i * (i - a), float(i)
            b += 2.0
            u = an * d + b
            du = dan * d + an * dd - 1.0
            if abs(u) < tiny:
                u = tiny
            d = 1.0 / u
            dd = -du * d * d
            v = b + an / c
            dc = -1.0 + dan / c - an * dc / (c * c)
            c = v if abs(v) >= tiny else tiny
            step = d * c
            dstep = dd * c + d * dc
            log_h += math.log(step)
            dlog_h += dstep / step
            if abs(step - 1.0) < _GAMMA_INC_EPS and abs(dstep / step) <= abs(dlog_h) * _GAMMA_INC_EPS:
                break
        log_q = a * log_x - x - math.lgamma(a) + log_h
        dlog_q = log_x - digamma(a) + dlog_h
        log_p = log1mexp(-log_q) if log_q < 0.0 else -math.inf
        dlog_p = -math.exp(log_q - log_p) * dlog_q
    return (log_p, log_q, dlog_p, dlog_q, math.exp(log_density - log_p),
            -math.exp(log_density - log_q))


@kernel
def _beta_fraction(a, b, x):
    """log of the continued fraction of I_x(a, b) (Numerical Recipes' betacf, by Lentz's
    method) with its derivatives in a and b, carried term by term: (log h, dlog h / da,
    dlog h / db).  It converges fast for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    u = 1.0 - (a + b) * x / (a + 1.0)
    du_a = -x * (1.0 - b) / ((a + 1.0) * (a + 1.0))
    du_b = -x / (a + 1.0)
    if abs(u) < tiny:
        u = tiny
    d = 1.0 / u
    dd_a, dd_b = -du_a * d * d, -du_b * d * d
    c, dc_a, dc_b = 1.0, 0.0, 0.0
    log_h, dlog_h_a, dlog_h_b = math.log(d), dd_a / d, dd_b / d
    for m in range(1, _GAMMA_INC_TERMS):
        for odd in range(2):
            if odd == 0:  # d_2m = m (b - m) x / ((a + 2m - 1)(a + 2m))
                den = (a + 2.0 * m - 1.0) * (a + 2.0 * m)
                coef = m * (b - m) * x / den
                coef_a = coef * (-1.0 / (a + 2.0 * m - 1.0) - 1.0 / (a + 2.0 * m))
                coef_b = m * x / den
            else:  # d_2m+1 = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
                den = (a + 2.0 * m) * (a + 2.0 * m + 1.0)
                coef = -(a + m) * (a + b + m) * x / den
                coef_a = coef * (1.0 / (a + m) + 1.0 / (a + b + m) - 1.0 / (a + 2.0 * m)
                                 - 1.0 / (a + 2.0 * m + 1.0))
                coef_b = -(a + m) * x / den
            u = 1.0 + coef * d
            du_a = coef_a * d + coef * dd_a
            du_b = coef_b * d + coef * dd_b
            if abs(u) < tiny:
                u = tiny
            d = 1.0 / u
            dd_a, dd_b = -du_a * d * d, -du_b * d * d
            v = 1.0 + coef / c
            dc_a = coef_a / c - coef * dc_a / (c * c)
            dc_b = coef_b / c - coef * dc_b / (c * c)
            c = v if abs(v) >= tiny else tiny
            step = d * c
            log_h += math.log(step)
            dlog_h_a += dd_a / d + dc_a / c
            dlog_h_b += dd_b / d + dc_b / c
        if (abs(step - 1.0) < _GAMMA_INC_EPS
                and abs(dd_a / d + dc_a / c) <= abs(dlog_h_a) * _GAMMA_INC_EPS + 1e-300
                and abs(dd_b / d + dc_b / c) <= abs(dlog_h_b) * _GAMMA_INC_EPS + 1e-300):
            break
    return log_h, dlog_h_a, dlog_h_b


@kernel
def log_beta_inc(a, b, x):
    """The regularized incomplete beta function in logs, with its exact derivatives:
    (log I, log(1 - I), d log I / da, d log I / db, d log(1 - I) / da, d log(1 - I) / db,
    d log I / dx, d log(1 - I) / dx) of I = I_x(a, b), for a, b > 0 and 0 < x < 1.

    The continued fraction of I_x(a, b) where it converges fast, else that of
    I_(1-x)(b, a) = 1 - I_x(a, b); each differentiated in a and b alongside (forward mode).
    """
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    log_x, log_1mx = math.log(x), math.log1p(-x)
    psi_ab = digamma(a + b)
    log_density = (a - 1.0) * log_x + (b - 1.0) * log_1mx - log_beta  # Beta(a, b) at x
    if x < (a + 1.0) / (a + b + 2.0):
        log_h, dh_a, dh_b = _beta_fraction(a, b, x)
        log_i = a * log_x + b * log_1mx - math.log(a) - log_beta + log_h
        di_a = log_x - 1.0 / a - digamma(a) + psi_ab + dh_a
        di_b = log_1mx - digamma(b) + psi_ab + dh_b
        log_j = log1mexp(-log_i) if log_i < 0.0 else -math.inf
        ratio = math.exp(log_i - log_j)
        dj_a, dj_b = -ratio * di_a, -ratio * di_b
    else:
        log_h, dh_b, dh_a = _beta_fraction(b, a, 1.0 - x)  # its first argument is our b
        log_j = b * log_1mx + a * log_x - math.log(b) - log_beta + log_h
        dj_b = log_1mx - 1.0 / b - digamma(b) + psi_ab + dh_b
        dj_a = log_x - digamma(a) + psi_ab + dh_a
        log_i = log1mexp(-log_j) if log_j < 0.0 else -math.inf
        ratio = math.exp(log_j - log_i)
        di_a, di_b = -ratio * dj_a, -ratio * dj_b
    return (log_i, log_j, di_a, di_b, dj_a, dj_b, math.exp(log_density - log_i),
            -math.exp(log_density - log_j))


_RISING_ASYMPTOTIC = 1e5  # above it lgamma(a) is so large that a difference loses digits


@kernel
def log_rising(a, x):
    """lgamma(a + x) - lgamma(a) for a > 0, x >= 0, without the cancellation of the
    difference at large a (where lgamma(a) ~ a log a swamps it): there Stirling's series
    is differenced term by term, (a - 1/2) log1p(x / a) + x log(a + x) - x + S(a + x) - S(a)."""
    if a < _RISING_ASYMPTOTIC:
        return math.lgamma(a + x) - math.lgamma(a)
    b = a + x
    return ((a - 0.5) * math.log1p(x / a) + x * math.log(b) - x
            + (1.0 / b - 1.0 / a) / 12.0 - (1.0 / (b * b * b) - 1.0 / (a * a * a)) / 360.0)


@kernel
def digamma_rising(a, x):
    """digamma(a + x) - digamma(a), the derivative of ``log_rising`` in a, likewise
    differenced term by term at large a."""
    if a < _RISING_ASYMPTOTIC:
        return digamma(a + x) - digamma(a)
    b = a + x
    return (math.log1p(x / a) - 0.5 * (1.0 / b - 1.0 / a)
            - (1.0 / (b * b) - 1.0 / (a * a)) / 12.0 + (1.0 / b ** 4 - 1.0 / a ** 4) / 120.0)
