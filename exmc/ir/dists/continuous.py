"""Continuous scalar families: parameters, support, checks and random draws (kernels: compiler/families.py)."""
import math

import numpy as np

from exmc.ir.dists.base import Distribution
from exmc.ir.expr import as_expr


class Normal(Distribution):
    """Normal(mu=0, sigma=1) or (mu, tau=1 / sigma^2): mean ``mu``, standard deviation ``sigma``."""

    family = "Normal"
    params = ("mu", "sigma", "tau")
    defaults = {"mu": 0.0, "sigma": None, "tau": None}
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale_or_precision(self)

    def random(self, rng, v, size):
        return rng.normal(v["mu"], v["sigma"], size)


class HalfNormal(Distribution):
    """HalfNormal(sigma=1) or (tau=1 / sigma^2): |Normal(0, sigma)| on [0, inf)."""

    family = "HalfNormal"
    params = ("sigma", "tau")
    defaults = {"sigma": None, "tau": None}
    lower, open_support = 0.0, False
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale_or_precision(self)

    def random(self, rng, v, size):
        return abs(rng.normal(0.0, v["sigma"], size))


class HalfCauchy(Distribution):
    """HalfCauchy(beta): |Cauchy(0, beta)| on [0, inf)."""

    family = "HalfCauchy"
    params = ("beta",)
    defaults = {"beta": 1.0}
    lower, open_support = 0.0, False
    checks = (("beta", ">", 0.0),)

    def random(self, rng, v, size):
        return abs(v["beta"] * rng.standard_cauchy(size))


class Exponential(Distribution):
    """Exponential(lam) or (scale=1 / lam): rate ``lam`` (mean 1 / lam), as in PyMC."""

    family = "Exponential"
    params = ("lam", "scale")
    defaults = {"lam": None, "scale": None}
    lower, open_support = 0.0, False
    checks = (("lam", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        positive(self, "scale")
        alternative(self, "lam", "scale", lambda scale: 1.0 / scale)
        if "lam" not in self.param_exprs:
            raise TypeError("Exponential needs lam or scale")

    def random(self, rng, v, size):
        return rng.exponential(1.0 / v["lam"], size)


class Gamma(Distribution):
    """Gamma(alpha, beta) or (mu=mean, sigma=sd): shape ``alpha``, rate ``beta`` (mean alpha / beta)."""

    family = "Gamma"
    params = ("alpha", "beta", "mu", "sigma")
    defaults = {"alpha": None, "beta": None, "mu": None, "sigma": None}
    lower = 0.0
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mean_and_sd(self, lambda mu, sigma: (mu * mu / (sigma * sigma), mu / (sigma * sigma)))

    def random(self, rng, v, size):
        return rng.gamma(v["alpha"], 1.0 / v["beta"], size)


class InverseGamma(Distribution):
    """InverseGamma(alpha, beta) or (mu=mean, sigma=sd): 1 / Gamma(alpha, rate=beta)."""

    family = "InverseGamma"
    params = ("alpha", "beta", "mu", "sigma")
    defaults = {"alpha": None, "beta": None, "mu": None, "sigma": None}
    lower = 0.0
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        mean_and_sd(self, lambda mu, sigma: (2.0 + mu * mu / (sigma * sigma),
                                             mu * (1.0 + mu * mu / (sigma * sigma))))

    def random(self, rng, v, size):
        return 1.0 / rng.gamma(v["alpha"], 1.0 / v["beta"], size)


class Beta(Distribution):
    """Beta(alpha, beta) on (0, 1), or PyMC's (mu=mean, sigma=sd) or (mu, nu=alpha + beta)."""

    family = "Beta"
    params = ("alpha", "beta", "mu", "sigma", "nu")
    defaults = {"alpha": None, "beta": None, "mu": None, "sigma": None, "nu": None}
    lower, upper = 0.0, 1.0
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        p = self.param_exprs
        if sorted(p) == ["mu", "nu"]:  # the concentration nu = alpha + beta
            mu, nu = p.pop("mu"), p.pop("nu")
            p["alpha"] = combine(lambda mu, nu: mu * nu, mu, nu)
            p["beta"] = combine(lambda mu, nu: (1.0 - mu) * nu, mu, nu)
        elif "nu" in p:
            raise TypeError("Beta takes nu only with mu")
        # else (mu, sigma): kappa = alpha + beta = mu (1 - mu) / sigma^2 - 1
        mean_and_sd(self, lambda mu, sigma: (mu * (mu * (1.0 - mu) / (sigma * sigma) - 1.0),
                                             (1.0 - mu) * (mu * (1.0 - mu) / (sigma * sigma) - 1.0)))

    def random(self, rng, v, size):
        return rng.beta(v["alpha"], v["beta"], size)


class Uniform(Distribution):
    """Uniform(lower, upper); the bounds may be other variables."""

    family = "Uniform"
    params = ("lower", "upper")
    defaults = {"lower": 0.0, "upper": 1.0}
    lower, upper = "lower", "upper"
    open_support = False
    checks = (("upper", ">", "lower"),)

    def random(self, rng, v, size):
        return rng.uniform(v["lower"], v["upper"], size)


class StudentT(Distribution):
    """StudentT(nu, mu=0, sigma=1) or (nu, mu, lam=1 / sigma^2): degrees of freedom, location, scale."""

    family = "StudentT"
    params = ("nu", "mu", "sigma", "lam")
    defaults = {"mu": 0.0, "sigma": None, "lam": None}
    checks = (("nu", ">", 0.0), ("sigma", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale_or_precision(self, "sigma", "lam")

    def random(self, rng, v, size):
        return v["mu"] + v["sigma"] * rng.standard_t(v["nu"], size)


class Cauchy(Distribution):
    """Cauchy(alpha, beta): location ``alpha``, scale ``beta``."""

    family = "Cauchy"
    params = ("alpha", "beta")
    defaults = {"alpha": 0.0, "beta": 1.0}
    checks = (("beta", ">", 0.0),)

    def random(self, rng, v, size):
        return v["alpha"] + v["beta"] * rng.standard_cauchy(size)


class LogNormal(Distribution):
    """LogNormal(mu=0, sigma=1) or (mu, tau=1 / sigma^2): exp of Normal(mu, sigma)."""

    family = "LogNormal"
    params = ("mu", "sigma", "tau")
    defaults = {"mu": 0.0, "sigma": None, "tau": None}
    lower = 0.0
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale_or_precision(self)

    def random(self, rng, v, size):
        return rng.lognormal(v["mu"], v["sigma"], size)


class Laplace(Distribution):
    """Laplace(mu, b): location ``mu``, scale ``b``."""

    family = "Laplace"
    params = ("mu", "b")
    defaults = {"mu": 0.0, "b": 1.0}
    checks = (("b", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.laplace(v["mu"], v["b"], size)


# ---- PyMC's alternative parameterisations, turned into the kernel's own ----------------------
def alternative(dist, keep, instead, convert, default=None):
    """Replace parameter ``instead`` (if given) by ``keep = convert(instead)``, in PyMC's order.

    At most one of the two may be given; with neither, ``keep`` gets ``default`` (None: the
    caller fills it).  A constant is converted here, so the family's checks still see a
    number; a variable's is converted by an expression.
    """
    given = dist.param_exprs
    if keep in given and instead in given:
        raise TypeError(f"{dist.family} takes {keep} or {instead}, not both")
    if instead in given:
        given[keep] = combine(convert, given.pop(instead))
    elif keep not in given and default is not None:
        given[keep] = as_expr(default)
    dist.param_exprs = {k: given[k] for k in dist.params if k in given}


def combine(fn, *exprs):
    """fn of parameter expressions: evaluated now when all are constants, else an expression."""
    if all(e.op == "const" for e in exprs):
        return as_expr(np.asarray(fn(*(np.asarray(e.value, dtype=float) for e in exprs))))
    return fn(*exprs)


def positive(dist, name):
    """ValueError if constant parameter ``name`` has an entry that is not > 0 (before a conversion)."""
    value = dist.param_exprs.get(name)
    if value is not None and value.op == "const" and not np.all(np.asarray(value.value) > 0):
        raise ValueError(f"{dist.family} needs {name} > 0, got {name}={value.value!r}")


def scale_or_precision(dist, scale="sigma", precision="tau", default=1.0):
    """PyMC's ``sigma`` or ``tau = 1 / sigma^2`` (``lam`` for StudentT): the kernels take the scale."""
    positive(dist, precision)
    alternative(dist, scale, precision, lambda tau: tau ** -0.5, default)


def mean_and_sd(dist, shape_and_rate):
    """PyMC's (mu, sigma) alternative to (alpha, beta): both of one pair, converted to the other."""
    p = dist.param_exprs
    pairs = [k for k in ("alpha", "beta", "mu", "sigma") if k in p]
    if pairs == ["mu", "sigma"]:
        positive(dist, "sigma")
        mu, sigma = p.pop("mu"), p.pop("sigma")
        p["alpha"] = combine(lambda m, s: shape_and_rate(m, s)[0], mu, sigma)
        p["beta"] = combine(lambda m, s: shape_and_rate(m, s)[1], mu, sigma)
    elif pairs != ["alpha", "beta"]:
        raise TypeError(f"{dist.family} needs alpha and beta, or mu and sigma; got "
                        f"{', '.join(pairs) or 'none'}")
    dist.param_exprs = {k: p[k] for k in dist.params if k in p}


class Flat(Distribution):
    """Flat(): the improper uniform density on the real line (log density 0); no random draws."""

    family = "Flat"
    params = ()


class HalfFlat(Distribution):
    """HalfFlat(): the improper uniform density on (0, inf); no random draws."""

    family = "HalfFlat"
    params = ()
    lower = 0.0


class HalfStudentT(Distribution):
    """HalfStudentT(nu=1, sigma=1) or (nu, lam=1 / sigma^2): |StudentT(nu, 0, sigma)|."""

    family = "HalfStudentT"
    params = ("nu", "sigma", "lam")
    defaults = {"nu": 1.0, "sigma": None, "lam": None}
    lower, open_support = 0.0, False
    checks = (("nu", ">", 0.0), ("sigma", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale_or_precision(self, "sigma", "lam")

    def random(self, rng, v, size):
        return abs(v["sigma"] * rng.standard_t(v["nu"], size))


class Weibull(Distribution):
    """Weibull(alpha, beta): shape ``alpha``, scale ``beta``."""

    family = "Weibull"
    params = ("alpha", "beta")
    lower = 0.0
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

    def random(self, rng, v, size):
        return v["beta"] * rng.weibull(v["alpha"], size)


class SkewNormal(Distribution):
    """SkewNormal(alpha=1, mu=0, sigma=1) or (alpha, mu, tau): 2 phi(z) Phi(alpha z) / sigma."""

    family = "SkewNormal"
    params = ("alpha", "mu", "sigma", "tau")
    defaults = {"alpha": 1.0, "mu": 0.0, "sigma": None, "tau": None}
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale_or_precision(self)

    def random(self, rng, v, size):
        delta = v["alpha"] / np.sqrt(1.0 + v["alpha"] ** 2)
        u0, u1 = rng.standard_normal(size), rng.standard_normal(size)
        z = delta * abs(u0) + np.sqrt(1.0 - delta ** 2) * u1  # Azzalini's representation
        return v["mu"] + v["sigma"] * z


class VonMises(Distribution):
    """VonMises(mu=0, kappa=1): circular, on [-pi, pi] (sampled through the circular
    transform: two free values per angle, so a chain goes round through +-pi)."""

    family = "VonMises"
    params = ("mu", "kappa")
    defaults = {"mu": 0.0, "kappa": 1.0}
    lower, upper, open_support = -math.pi, math.pi, False
    transform = "circular"
    checks = (("kappa", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.vonmises(v["mu"], v["kappa"], size)


class Gumbel(Distribution):
    """Gumbel(mu, beta): location ``mu``, scale ``beta`` (the maximum's extreme-value law)."""

    family = "Gumbel"
    params = ("mu", "beta")
    checks = (("beta", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.gumbel(v["mu"], v["beta"], size)


class Logistic(Distribution):
    """Logistic(mu=0, s=1): location ``mu``, scale ``s``."""

    family = "Logistic"
    params = ("mu", "s")
    defaults = {"mu": 0.0, "s": 1.0}
    checks = (("s", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.logistic(v["mu"], v["s"], size)


class LogitNormal(Distribution):
    """LogitNormal(mu=0, sigma=1) or (mu, tau): logit(x) ~ Normal(mu, sigma), on (0, 1)."""

    family = "LogitNormal"
    params = ("mu", "sigma", "tau")
    defaults = {"mu": 0.0, "sigma": None, "tau": None}
    lower, upper = 0.0, 1.0
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        scale_or_precision(self)

    def random(self, rng, v, size):
        return 1.0 / (1.0 + np.exp(-rng.normal(v["mu"], v["sigma"], size)))


class Pareto(Distribution):
    """Pareto(alpha, m): shape ``alpha``, scale ``m``, on [m, inf)."""

    family = "Pareto"
    params = ("alpha", "m")
    lower, open_support = "m", False
    checks = (("alpha", ">", 0.0), ("m", ">", 0.0))

    def random(self, rng, v, size):
        return v["m"] * (1.0 + rng.pareto(v["alpha"], size))  # numpy's is the Lomax law


class Kumaraswamy(Distribution):
    """Kumaraswamy(a, b): a b x^(a-1) (1 - x^a)^(b-1) on (0, 1)."""

    family = "Kumaraswamy"
    params = ("a", "b")
    lower, upper = 0.0, 1.0
    checks = (("a", ">", 0.0), ("b", ">", 0.0))

    def random(self, rng, v, size):
        u = rng.uniform(size=size)
        return (-np.expm1(np.log1p(-u) / v["b"])) ** (1.0 / v["a"])


class Triangular(Distribution):
    """Triangular(lower=0, upper=1, c=0.5): PyMC's argument order; mode ``c``."""

    family = "Triangular"
    params = ("lower", "upper", "c")
    defaults = {"lower": 0.0, "upper": 1.0, "c": 0.5}
    lower, upper, open_support = "lower", "upper", False
    checks = (("upper", ">", "lower"), ("c", ">=", "lower"), ("c", "<=", "upper"))

    def random(self, rng, v, size):
        u = rng.uniform(size=size)
        lower, upper, c = v["lower"], v["upper"], v["c"]
        w, left = upper - lower, (c - lower) / (upper - lower)
        return np.where(u < left, lower + np.sqrt(u * w * (c - lower)),
                        upper - np.sqrt((1.0 - u) * w * (upper - c)))


class Wald(Distribution):
    """Wald(mu, lam, phi, alpha=0): the inverse Gaussian shifted by ``alpha``; PyMC's choices:
    ``mu`` alone (lam = 1), ``mu`` and ``lam``, ``mu`` and ``phi = lam / mu``, ``lam`` and ``phi``."""

    family = "Wald"
    params = ("mu", "lam", "phi", "alpha")
    defaults = {"mu": None, "lam": None, "phi": None, "alpha": 0.0}
    lower = "alpha"
    checks = (("mu", ">", 0.0), ("lam", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        p = self.param_exprs
        given = tuple(k for k in ("mu", "lam", "phi") if k in p)
        if given == ("mu", "phi"):
            p["lam"] = combine(lambda mu, phi: mu * phi, p["mu"], p.pop("phi"))
        elif given == ("lam", "phi"):
            p["mu"] = combine(lambda lam, phi: lam / phi, p["lam"], p.pop("phi"))
        elif given == ("mu",):
            p["lam"] = as_expr(1.0)
        elif given != ("mu", "lam"):
            raise TypeError("Wald needs mu alone, mu and lam, mu and phi, or lam and phi; got "
                            f"{', '.join(given) or 'none'}")
        self.param_exprs = {k: p[k] for k in self.params if k in p}

    def random(self, rng, v, size):
        return v["alpha"] + rng.wald(v["mu"], v["lam"], size)


class ExGaussian(Distribution):
    """ExGaussian(mu=0, sigma=1, nu): Normal(mu, sigma) plus an exponential of mean ``nu``."""

    family = "ExGaussian"
    params = ("mu", "sigma", "nu")
    defaults = {"mu": 0.0, "sigma": 1.0}
    checks = (("sigma", ">", 0.0), ("nu", ">", 0.0))

    def random(self, rng, v, size):
        return rng.normal(v["mu"], v["sigma"], size) + rng.exponential(v["nu"], size)


class AsymmetricLaplace(Distribution):
    """AsymmetricLaplace(kappa, mu, b) or (mu, b, q=quantile): rate b kappa above mu, b / kappa
    below; ``q`` gives kappa = sqrt(q / (1 - q)) (quantile regression)."""

    family = "AsymmetricLaplace"
    params = ("kappa", "mu", "b", "q")
    defaults = {"kappa": None, "q": None}
    checks = (("kappa", ">", 0.0), ("b", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        q = self.param_exprs.get("q")
        if q is not None and q.op == "const" and not np.all((q.value > 0) & (q.value < 1)):
            raise ValueError(f"AsymmetricLaplace needs 0 < q < 1, got q={q.value!r}")
        alternative(self, "kappa", "q", lambda q: (q / (1.0 - q)) ** 0.5)
        if "kappa" not in self.param_exprs:
            raise TypeError("AsymmetricLaplace needs kappa or q")

    def random(self, rng, v, size):
        kappa, b = v["kappa"], v["b"]
        below = rng.uniform(size=size) < kappa ** 2 / (1.0 + kappa ** 2)
        e = rng.exponential(1.0, size)
        return v["mu"] + np.where(below, -e * kappa / b, e / (kappa * b))


class Rice(Distribution):
    """Rice(nu, sigma=1) or (b=nu / sigma, sigma): the length of a 2-d normal vector off the origin."""

    family = "Rice"
    params = ("nu", "sigma", "b")
    defaults = {"nu": None, "sigma": 1.0, "b": None}
    lower = 0.0
    checks = (("nu", ">=", 0.0), ("sigma", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        p = self.param_exprs
        if ("nu" in p) == ("b" in p):
            raise TypeError("Rice needs exactly one of nu and b")
        if "b" in p:
            p["nu"] = combine(lambda b, sigma: b * sigma, p.pop("b"), p["sigma"])
        self.param_exprs = {k: p[k] for k in self.params if k in p}

    def random(self, rng, v, size):
        a = rng.normal(v["nu"], v["sigma"], size)
        b = rng.normal(0.0, v["sigma"], size)
        return np.hypot(a, b)


class Moyal(Distribution):
    """Moyal(mu=0, sigma=1): exp(-(z + exp(-z)) / 2) / sqrt(2 pi) / sigma, z = (x - mu) / sigma."""

    family = "Moyal"
    params = ("mu", "sigma")
    defaults = {"mu": 0.0, "sigma": 1.0}
    checks = (("sigma", ">", 0.0),)

    def random(self, rng, v, size):
        return v["mu"] - v["sigma"] * np.log(rng.chisquare(1.0, size))  # exp(-z) ~ chi^2(1)


class TruncatedNormal(Distribution):
    """TruncatedNormal(mu=0, sigma=1, tau=None, lower=None, upper=None): Normal restricted to
    [lower, upper]; an absent bound is infinite and the transform follows the bounds given."""

    family = "TruncatedNormal"
    params = ("mu", "sigma", "tau", "lower", "upper")
    defaults = {"mu": 0.0, "sigma": None, "tau": None, "lower": None, "upper": None}
    lower, upper, open_support = "lower", "upper", False
    checks = (("sigma", ">", 0.0), ("upper", ">", "lower"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, infinite in (("lower", -math.inf), ("upper", math.inf)):
            self.param_exprs.setdefault(name, as_expr(infinite))
        scale_or_precision(self)

    def support_exprs(self):
        def bound(name):
            e = self.param_exprs[name]
            return None if e.op == "const" and np.all(np.isinf(e.value)) else e
        return bound("lower"), bound("upper")

    def random(self, rng, v, size):
        from scipy.stats import truncnorm
        mu, sigma = v["mu"], v["sigma"]
        return truncnorm.rvs((v["lower"] - mu) / sigma, (v["upper"] - mu) / sigma, loc=mu,
                             scale=sigma, size=size, random_state=rng)


class ChiSquared(Distribution):
    """ChiSquared(nu): Gamma(nu / 2, rate 1 / 2)."""

    family = "ChiSquared"
    params = ("nu",)
    lower = 0.0
    checks = (("nu", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.chisquare(v["nu"], size)


class Chi(Distribution):
    """Chi(nu): the square root of a ChiSquared(nu) variable."""

    family = "Chi"
    params = ("nu",)
    lower = 0.0
    checks = (("nu", ">", 0.0),)

    def random(self, rng, v, size):
        return np.sqrt(rng.chisquare(v["nu"], size))
