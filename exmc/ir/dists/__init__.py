"""Distribution families, and the registry the IR uses to find a family by name."""
from exmc.ir.dists.base import Distribution, ModelError
from exmc.ir.dists.composite import Custom, GaussianRandomWalk, ZeroSumNormal
from exmc.ir.dists.continuous import (Beta, Cauchy, Exponential, Gamma, HalfCauchy, HalfNormal,
                                      InverseGamma, Laplace, LogNormal, Normal, StudentT, Uniform)
from exmc.ir.dists.discrete import Bernoulli, Binomial, Poisson
from exmc.ir.dists.multivariate import Dirichlet, LKJCorrCholesky, MvNormal
from exmc.ir.dists.wrappers import Censored, Mixture, NormalMixture, Potential, Truncated

FAMILIES = {cls.family: cls for cls in (
    Normal, HalfNormal, HalfCauchy, Exponential, Gamma, InverseGamma, Beta, Uniform, StudentT,
    Cauchy, LogNormal, Laplace, Bernoulli, Binomial, Poisson, GaussianRandomWalk, Custom,
    MvNormal, Dirichlet, LKJCorrCholesky, ZeroSumNormal,
    Truncated, Censored, Mixture, NormalMixture, Potential)}

__all__ = ["Distribution", "ModelError", "FAMILIES", *FAMILIES]
