"""Random-draw functions of every family agree with scipy's mean and variance."""
import numpy as np
import pytest
from scipy import stats

import exmc
from exmc.ir import dists

N = 40_000
CASES = [
    (dists.Normal(1.0, 2.0), {"mu": 1.0, "sigma": 2.0}, stats.norm(1.0, 2.0)),
    (dists.HalfNormal(2.0), {"sigma": 2.0}, stats.halfnorm(scale=2.0)),
    (dists.Exponential(3.0), {"lam": 3.0}, stats.expon(scale=1 / 3.0)),
    (dists.Gamma(2.0, 4.0), {"alpha": 2.0, "beta": 4.0}, stats.gamma(2.0, scale=0.25)),
    (dists.InverseGamma(5.0, 2.0), {"alpha": 5.0, "beta": 2.0}, stats.invgamma(5.0, scale=2.0)),
    (dists.Beta(2.0, 3.0), {"alpha": 2.0, "beta": 3.0}, stats.beta(2.0, 3.0)),
    (dists.Uniform(-1.0, 3.0), {"lower": -1.0, "upper": 3.0}, stats.uniform(-1.0, 4.0)),
    (dists.StudentT(6.0, 1.0, 2.0), {"nu": 6.0, "mu": 1.0, "sigma": 2.0}, stats.t(6.0, 1.0, 2.0)),
    (dists.LogNormal(0.2, 0.5), {"mu": 0.2, "sigma": 0.5}, stats.lognorm(0.5, scale=np.exp(0.2))),
    (dists.Laplace(1.0, 2.0), {"mu": 1.0, "b": 2.0}, stats.laplace(1.0, 2.0)),
    (dists.Bernoulli(p=0.3), {"p": 0.3}, stats.bernoulli(0.3)),
    (dists.Bernoulli(logit_p=0.5), {"logit_p": 0.5}, stats.bernoulli(1 / (1 + np.exp(-0.5)))),
    (dists.Binomial(10, p=0.3), {"n": np.float64(10), "p": 0.3}, stats.binom(10, 0.3)),
    (dists.Poisson(4.0), {"mu": 4.0}, stats.poisson(4.0)),
]


@pytest.mark.parametrize("dist, values, reference", CASES, ids=lambda c: getattr(c, "family", None))
def test_draws_match_scipy(dist, values, reference):
    x = dist.random(np.random.default_rng(0), values, N)
    mean, var = reference.mean(), reference.var()
    assert abs(x.mean() - mean) < 5 * np.sqrt(var / N)
    assert abs(x.var() - var) < 0.05 * var
    # Negative control: a shifted reference is rejected by the same check.
    assert abs(x.mean() - (mean + 0.1 * np.sqrt(var))) >= 5 * np.sqrt(var / N)


def test_heavy_tailed_families_by_median():
    rng = np.random.default_rng(1)
    cauchy = dists.Cauchy(1.0, 2.0).random(rng, {"alpha": 1.0, "beta": 2.0}, N)
    half = dists.HalfCauchy(2.0).random(rng, {"beta": 2.0}, N)
    assert abs(np.median(cauchy) - 1.0) < 0.05
    assert abs(np.median(half) - 2.0) < 0.06  # median of HalfCauchy(beta) is beta


def test_random_walk_and_custom():
    walk = dists.GaussianRandomWalk(sigma=0.5, init=dists.Normal(0.0, 1.0), shape=50)
    x = walk.random(np.random.default_rng(2), {"mu": 0.0, "sigma": 0.5, "init": {"mu": 0.0, "sigma": 1.0}},
                    (4000, 50))
    steps = np.diff(x, axis=-1)
    assert abs(steps.std() - 0.5) < 0.01 and abs(x[:, 0].std() - 1.0) < 0.05
    with pytest.raises(NotImplementedError, match="Custom has no random-draw function"):
        exmc.Custom(logp=exmc.value).random(np.random.default_rng(0), {}, 3)
