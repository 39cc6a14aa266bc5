"""Distribution families, and the registry the IR uses to find a family by name."""
from exmc.ir.dists.base import Distribution, ModelError
from exmc.ir.dists.composite import AR, Custom, GaussianRandomWalk, MvGaussianRandomWalk, ZeroSumNormal
from exmc.ir.dists.continuous import (Beta, Cauchy, Exponential, Gamma, HalfCauchy, HalfNormal,
                                      InverseGamma, Laplace, LogNormal, Normal, StudentT, Uniform)
from exmc.ir.dists.discrete import Bernoulli, Binomial, Poisson
from exmc.ir.dists.continuous import (AsymmetricLaplace, Chi, ChiSquared, ExGaussian, Flat,
                                      Gumbel, HalfFlat, HalfStudentT, Kumaraswamy, Logistic,
                                      LogitNormal, Moyal, Pareto, Rice, SkewNormal, Triangular,
                                      TruncatedNormal, VonMises, Wald, Weibull)
from exmc.ir.dists.discrete import (BetaBinomial, DiscreteUniform, Geometric, HurdleGamma,
                                    HurdleLogNormal, HurdleNegativeBinomial, HurdlePoisson,
                                    NegativeBinomial, ZeroInflatedBinomial,
                                    ZeroInflatedNegativeBinomial, ZeroInflatedPoisson)
from exmc.ir.dists.discrete import (Categorical, DirichletMultinomial, Multinomial,
                                    OrderedLogistic, OrderedProbit)
from exmc.ir.dists.multivariate import CAR, ICAR, Dirichlet, LKJCorr, LKJCorrCholesky, MvNormal, MvStudentT
from exmc.ir.dists.wrappers import Censored, Mixture, NormalMixture, Potential, Truncated

FAMILIES = {cls.family: cls for cls in (
    Normal, HalfNormal, HalfCauchy, Exponential, Gamma, InverseGamma, Beta, Uniform, StudentT,
    Cauchy, LogNormal, Laplace, Bernoulli, Binomial, Poisson, GaussianRandomWalk, Custom,
    MvNormal, Dirichlet, LKJCorrCholesky, ZeroSumNormal,
    Flat, HalfFlat, HalfStudentT, Weibull, SkewNormal, VonMises, Gumbel, Logistic, LogitNormal,
    Pareto, Kumaraswamy, Triangular, Wald, ExGaussian, AsymmetricLaplace, Rice, Moyal,
    TruncatedNormal, ChiSquared, Chi,
    NegativeBinomial, BetaBinomial, Geometric, DiscreteUniform, ZeroInflatedPoisson,
    ZeroInflatedBinomial, ZeroInflatedNegativeBinomial, HurdlePoisson, HurdleNegativeBinomial,
    HurdleGamma, HurdleLogNormal, Categorical, OrderedLogistic, OrderedProbit, Multinomial,
    DirichletMultinomial,
    Truncated, Censored, Mixture, NormalMixture, Potential,
    MvStudentT, LKJCorr, CAR, ICAR, MvGaussianRandomWalk, AR)}

__all__ = ["Distribution", "ModelError", "FAMILIES", *FAMILIES]
