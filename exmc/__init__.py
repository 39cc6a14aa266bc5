"""exmc: probabilistic programming with a compiled NUTS sampler and an OTP-style runtime."""
from exmc import math
from exmc.ir import Builder, Deterministic, Model, ModelError, model, ref, value
from exmc.ir.dists import (Bernoulli, Beta, Binomial, Cauchy, Custom, Exponential, Gamma,
                           GaussianRandomWalk, HalfCauchy, HalfNormal, InverseGamma, Laplace,
                           LKJCorrCholesky, LogNormal, MvNormal, Dirichlet, Normal, Poisson,
                           StudentT, Uniform, ZeroSumNormal)
from exmc.ir.dists import Censored, Mixture, NormalMixture, Potential, Truncated
from exmc.ir.dists import AR, CAR, ICAR, LKJCorr, MvGaussianRandomWalk, MvStudentT
from exmc.ir.builder import ImputationWarning
from exmc.ir.dists import (AsymmetricLaplace, BetaBinomial, Chi, ChiSquared, DiscreteUniform,
                           ExGaussian, Flat, Geometric, Gumbel, HalfFlat, HalfStudentT,
                           HurdleGamma, HurdleLogNormal, HurdleNegativeBinomial, HurdlePoisson,
                           Kumaraswamy, Logistic, LogitNormal, Moyal, NegativeBinomial, Pareto,
                           Rice, SkewNormal, Triangular, TruncatedNormal, VonMises, Wald,
                           Weibull, ZeroInflatedBinomial, ZeroInflatedNegativeBinomial,
                           ZeroInflatedPoisson)
from exmc.ir.dists import (Categorical, DirichletMultinomial, Multinomial, OrderedLogistic,
                           OrderedProbit)

__version__ = "0.1.0"
_PYMC_SCALAR_FAMILIES = [
    "AsymmetricLaplace", "BetaBinomial", "Chi", "ChiSquared", "DiscreteUniform", "ExGaussian",
    "Flat", "Geometric", "Gumbel", "HalfFlat", "HalfStudentT", "HurdleGamma", "HurdleLogNormal",
    "HurdleNegativeBinomial", "HurdlePoisson", "Kumaraswamy", "Logistic", "LogitNormal", "Moyal",
    "NegativeBinomial", "Pareto", "Rice", "SkewNormal", "Triangular", "TruncatedNormal",
    "VonMises", "Wald", "Weibull", "ZeroInflatedBinomial", "ZeroInflatedNegativeBinomial",
    "ZeroInflatedPoisson", "Categorical", "DirichletMultinomial", "Multinomial", "OrderedLogistic",
    "OrderedProbit"]

__all__ = ["math", "Builder", "Deterministic", "Model", "ModelError", "model", "ref", "value",
           "Bernoulli", "Beta", "Binomial", "Cauchy", "Custom", "Exponential", "Gamma",
           "GaussianRandomWalk", "HalfCauchy", "HalfNormal", "InverseGamma", "Laplace",
           "LogNormal", "Normal", "Poisson", "StudentT", "Uniform", "MvNormal", "Dirichlet",
           "LKJCorrCholesky", "ZeroSumNormal",
           "Truncated", "Censored", "Mixture", "NormalMixture", "Potential", "ImputationWarning",
           "AR", "CAR", "ICAR", "LKJCorr", "MvGaussianRandomWalk", "MvStudentT"]
__all__ += _PYMC_SCALAR_FAMILIES

from exmc.runtime.sample import SamplingError, sample, sample_stream  # noqa: E402  (the runtime builds on the IR)
from exmc.runtime.diagnostics import SamplingWarning  # noqa: E402
from exmc.runtime.checkpoint import resume  # noqa: E402
from exmc.samplers.smc import sample_smc  # noqa: E402

__all__ += ["sample_smc"]
from exmc.runtime.predictive import (compute_log_likelihood, sample_posterior_predictive,  # noqa: E402
                                     sample_prior_predictive)

__all__ += ["compute_log_likelihood", "sample_posterior_predictive", "sample_prior_predictive"]

from exmc import distributed  # noqa: E402  exmc.distributed.sample_chains
from exmc.samplers.advi import fit  # noqa: E402
from exmc.samplers.pathfinder import pathfinder  # noqa: E402

__all__ += ["fit", "pathfinder", "distributed", "SamplingError", "SamplingWarning", "resume", "sample", "sample_stream"]


def __getattr__(name):
    """``exmc.NegBinomial`` and other names exmc lacks: an error naming the closest ones."""
    import difflib

    from exmc.ir.dists import FAMILIES

    if name.startswith("_"):
        raise AttributeError(f"module 'exmc' has no attribute {name!r}")
    close = difflib.get_close_matches(name, list(dict.fromkeys([*FAMILIES, *__all__])), n=3,
                                    cutoff=0.6)
    hint = (f"; the closest: {', '.join(close)}" if close else
            f"; exmc's families: {', '.join(sorted(FAMILIES))}" if name[:1].isupper() else "")
    raise AttributeError(f"module 'exmc' has no attribute {name!r}{hint}")
