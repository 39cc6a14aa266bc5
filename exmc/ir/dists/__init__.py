"""Distribution families, and the registry the IR uses to find a family by name."""
from exmc.ir.dists.base import Distribution, ModelError
from exmc.ir.dists.composite import Custom, GaussianRandomWalk
from exmc.ir.dists.continuous import (Beta, Cauchy, Exponential, Gamma, HalfCauchy, HalfNormal,
                                      InverseGamma, Laplace, LogNormal, Normal, StudentT, Uniform)
from exmc.ir.dists.discrete import Bernoulli, Binomial, Poisson

FAMILIES = {cls.family: cls for cls in (
    Normal, HalfNormal, HalfCauchy, Exponential, Gamma, InverseGamma, Beta, Uniform, StudentT,
    Cauchy, LogNormal, Laplace, Bernoulli, Binomial, Poisson, GaussianRandomWalk, Custom)}

__all__ = ["Distribution", "ModelError", "FAMILIES", *FAMILIES]
