"""Continuous scalar families: log-density, exact partials, support and random draws.

Templates are numpy expressions over ``x`` and the parameter names (see
``base.py``).  Helpers available to them: ``np``, ``lgamma``, ``digamma``,
``sigmoid``, ``softplus`` and the constants ``LOG_2``, ``LOG_PI``,
``LOG_SQRT_2PI`` (all in ``exmc/compiler/kernels.py``).
"""
from exmc.ir.dists.base import Distribution


class Normal(Distribution):
    """Normal(mu, sigma): mean ``mu``, standard deviation ``sigma``."""

    family = "Normal"
    params = ("mu", "sigma")
    defaults = {"mu": 0.0, "sigma": 1.0}
    checks = ("sigma > 0",)
    setup = (("z", "(x - mu) / sigma"),)
    logp = "-0.5 * z * z - np.log(sigma) - LOG_SQRT_2PI"
    partials = {"x": "-z / sigma", "mu": "z / sigma", "sigma": "(z * z - 1.0) / sigma"}

    def random(self, rng, v, size):
        return rng.normal(v["mu"], v["sigma"], size)


class HalfNormal(Distribution):
    """HalfNormal(sigma): |Normal(0, sigma)| on [0, inf)."""

    family = "HalfNormal"
    params = ("sigma",)
    defaults = {"sigma": 1.0}
    lower, open_support = 0.0, False
    checks = ("sigma > 0",)
    setup = (("z", "x / sigma"),)
    logp = "-0.5 * z * z - np.log(sigma) + LOG_2 - LOG_SQRT_2PI"
    partials = {"x": "-z / sigma", "sigma": "(z * z - 1.0) / sigma"}

    def random(self, rng, v, size):
        return abs(rng.normal(0.0, v["sigma"], size))


class HalfCauchy(Distribution):
    """HalfCauchy(beta): |Cauchy(0, beta)| on [0, inf)."""

    family = "HalfCauchy"
    params = ("beta",)
    defaults = {"beta": 1.0}
    lower, open_support = 0.0, False
    checks = ("beta > 0",)
    setup = (("s", "beta * beta + x * x"),)
    logp = "LOG_2 - LOG_PI + np.log(beta) - np.log(s)"
    partials = {"x": "-2.0 * x / s", "beta": "1.0 / beta - 2.0 * beta / s"}

    def random(self, rng, v, size):
        return abs(v["beta"] * rng.standard_cauchy(size))


class Exponential(Distribution):
    """Exponential(lam): rate ``lam`` (mean 1 / lam), as in PyMC."""

    family = "Exponential"
    params = ("lam",)
    lower, open_support = 0.0, False
    checks = ("lam > 0",)
    logp = "np.log(lam) - lam * x"
    partials = {"x": "-lam + 0.0 * x", "lam": "1.0 / lam - x"}

    def random(self, rng, v, size):
        return rng.exponential(1.0 / v["lam"], size)


class Gamma(Distribution):
    """Gamma(alpha, beta): shape ``alpha``, rate ``beta`` (mean alpha / beta)."""

    family = "Gamma"
    params = ("alpha", "beta")
    lower = 0.0
    checks = ("alpha > 0", "beta > 0")
    setup = (("lx", "np.log(x)"),)
    logp = "alpha * np.log(beta) - lgamma(alpha) + (alpha - 1.0) * lx - beta * x"
    partials = {"x": "(alpha - 1.0) / x - beta",
                "alpha": "np.log(beta) - digamma(alpha) + lx",
                "beta": "alpha / beta - x"}

    def random(self, rng, v, size):
        return rng.gamma(v["alpha"], 1.0 / v["beta"], size)


class InverseGamma(Distribution):
    """InverseGamma(alpha, beta): 1 / Gamma(alpha, rate=beta)."""

    family = "InverseGamma"
    params = ("alpha", "beta")
    lower = 0.0
    checks = ("alpha > 0", "beta > 0")
    setup = (("lx", "np.log(x)"),)
    logp = "alpha * np.log(beta) - lgamma(alpha) - (alpha + 1.0) * lx - beta / x"
    partials = {"x": "(beta / x - alpha - 1.0) / x",
                "alpha": "np.log(beta) - digamma(alpha) - lx",
                "beta": "alpha / beta - 1.0 / x"}

    def random(self, rng, v, size):
        return 1.0 / rng.gamma(v["alpha"], 1.0 / v["beta"], size)


class Beta(Distribution):
    """Beta(alpha, beta) on (0, 1)."""

    family = "Beta"
    params = ("alpha", "beta")
    lower, upper = 0.0, 1.0
    checks = ("alpha > 0", "beta > 0")
    setup = (("lx", "np.log(x)"), ("l1x", "np.log1p(-x)"))
    logp = ("lgamma(alpha + beta) - lgamma(alpha) - lgamma(beta)"
            " + (alpha - 1.0) * lx + (beta - 1.0) * l1x")
    partials = {"x": "(alpha - 1.0) / x - (beta - 1.0) / (1.0 - x)",
                "alpha": "digamma(alpha + beta) - digamma(alpha) + lx",
                "beta": "digamma(alpha + beta) - digamma(beta) + l1x"}

    def random(self, rng, v, size):
        return rng.beta(v["alpha"], v["beta"], size)


class Uniform(Distribution):
    """Uniform(lower, upper); the bounds may be other variables."""

    family = "Uniform"
    params = ("lower", "upper")
    defaults = {"lower": 0.0, "upper": 1.0}
    lower, upper = "lower", "upper"
    open_support = False
    checks = ("upper > lower",)
    logp = "-np.log(upper - lower) + 0.0 * x"
    partials = {"x": "0.0 * x", "lower": "1.0 / (upper - lower) + 0.0 * x",
                "upper": "-1.0 / (upper - lower) + 0.0 * x"}

    def random(self, rng, v, size):
        return rng.uniform(v["lower"], v["upper"], size)


class StudentT(Distribution):
    """StudentT(nu, mu, sigma): degrees of freedom ``nu``, location, scale."""

    family = "StudentT"
    params = ("nu", "mu", "sigma")
    defaults = {"mu": 0.0, "sigma": 1.0}
    checks = ("nu > 0", "sigma > 0")
    setup = (("t", "(x - mu) / sigma"),
             ("tt", "t * t"),
             ("w", "(nu + 1.0) / (nu + tt)"),
             ("l1", "np.log1p(tt / nu)"))
    logp = ("lgamma(0.5 * (nu + 1.0)) - lgamma(0.5 * nu) - 0.5 * np.log(nu) - 0.5 * LOG_PI"
            " - np.log(sigma) - 0.5 * (nu + 1.0) * l1")
    partials = {"x": "-w * t / sigma", "mu": "w * t / sigma",
                "sigma": "(w * tt - 1.0) / sigma",
                "nu": ("0.5 * (digamma(0.5 * (nu + 1.0)) - digamma(0.5 * nu)) - 0.5 / nu"
                       " - 0.5 * l1 + 0.5 * w * tt / nu")}

    def random(self, rng, v, size):
        return v["mu"] + v["sigma"] * rng.standard_t(v["nu"], size)


class Cauchy(Distribution):
    """Cauchy(alpha, beta): location ``alpha``, scale ``beta``."""

    family = "Cauchy"
    params = ("alpha", "beta")
    defaults = {"alpha": 0.0, "beta": 1.0}
    checks = ("beta > 0",)
    setup = (("t", "(x - alpha) / beta"), ("d", "beta * (1.0 + t * t)"))
    logp = "-LOG_PI - np.log(beta) - np.log1p(t * t)"
    partials = {"x": "-2.0 * t / d", "alpha": "2.0 * t / d",
                "beta": "(2.0 * t * t / (1.0 + t * t) - 1.0) / beta"}

    def random(self, rng, v, size):
        return v["alpha"] + v["beta"] * rng.standard_cauchy(size)


class LogNormal(Distribution):
    """LogNormal(mu, sigma): exp of Normal(mu, sigma)."""

    family = "LogNormal"
    params = ("mu", "sigma")
    defaults = {"mu": 0.0, "sigma": 1.0}
    lower = 0.0
    checks = ("sigma > 0",)
    setup = (("lx", "np.log(x)"), ("z", "(lx - mu) / sigma"))
    logp = "-0.5 * z * z - np.log(sigma) - LOG_SQRT_2PI - lx"
    partials = {"x": "-(z / sigma + 1.0) / x", "mu": "z / sigma",
                "sigma": "(z * z - 1.0) / sigma"}

    def random(self, rng, v, size):
        return rng.lognormal(v["mu"], v["sigma"], size)


class Laplace(Distribution):
    """Laplace(mu, b): location ``mu``, scale ``b``."""

    family = "Laplace"
    params = ("mu", "b")
    defaults = {"mu": 0.0, "b": 1.0}
    checks = ("b > 0",)
    setup = (("d", "x - mu"),)
    logp = "-np.log(2.0 * b) - np.abs(d) / b"
    partials = {"x": "-np.sign(d) / b", "mu": "np.sign(d) / b",
                "b": "(np.abs(d) / b - 1.0) / b"}

    def random(self, rng, v, size):
        return rng.laplace(v["mu"], v["b"], size)
