"""Continuous scalar families: parameters, support, checks and random draws (kernels: compiler/families.py)."""
from exmc.ir.dists.base import Distribution


class Normal(Distribution):
    """Normal(mu, sigma): mean ``mu``, standard deviation ``sigma``."""

    family = "Normal"
    params = ("mu", "sigma")
    defaults = {"mu": 0.0, "sigma": 1.0}
    checks = (("sigma", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.normal(v["mu"], v["sigma"], size)


class HalfNormal(Distribution):
    """HalfNormal(sigma): |Normal(0, sigma)| on [0, inf)."""

    family = "HalfNormal"
    params = ("sigma",)
    defaults = {"sigma": 1.0}
    lower, open_support = 0.0, False
    checks = (("sigma", ">", 0.0),)

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
    """Exponential(lam): rate ``lam`` (mean 1 / lam), as in PyMC."""

    family = "Exponential"
    params = ("lam",)
    lower, open_support = 0.0, False
    checks = (("lam", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.exponential(1.0 / v["lam"], size)


class Gamma(Distribution):
    """Gamma(alpha, beta): shape ``alpha``, rate ``beta`` (mean alpha / beta)."""

    family = "Gamma"
    params = ("alpha", "beta")
    lower = 0.0
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

    def random(self, rng, v, size):
        return rng.gamma(v["alpha"], 1.0 / v["beta"], size)


class InverseGamma(Distribution):
    """InverseGamma(alpha, beta): 1 / Gamma(alpha, rate=beta)."""

    family = "InverseGamma"
    params = ("alpha", "beta")
    lower = 0.0
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

    def random(self, rng, v, size):
        return 1.0 / rng.gamma(v["alpha"], 1.0 / v["beta"], size)


class Beta(Distribution):
    """Beta(alpha, beta) on (0, 1)."""

    family = "Beta"
    params = ("alpha", "beta")
    lower, upper = 0.0, 1.0
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

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
    """StudentT(nu, mu, sigma): degrees of freedom ``nu``, location, scale."""

    family = "StudentT"
    params = ("nu", "mu", "sigma")
    defaults = {"mu": 0.0, "sigma": 1.0}
    checks = (("nu", ">", 0.0), ("sigma", ">", 0.0))

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
    """LogNormal(mu, sigma): exp of Normal(mu, sigma)."""

    family = "LogNormal"
    params = ("mu", "sigma")
    defaults = {"mu": 0.0, "sigma": 1.0}
    lower = 0.0
    checks = (("sigma", ">", 0.0),)

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
