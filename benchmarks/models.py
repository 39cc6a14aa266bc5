"""The seven race models of MODELS.md, written with exmc's API (data from benchmarks/data)."""
import json
from pathlib import Path

import numpy as np

import exmc
from exmc import Bernoulli, Builder, Exponential, GaussianRandomWalk, HalfNormal, Normal, StudentT

DATA = Path(__file__).parent / "data"


def load(name):
    return {k: np.asarray(v) for k, v in json.loads((DATA / f"{name}.json").read_text()).items()}


def simple():
    d = load("simple")
    return (Builder()
            .rv("mu", Normal(0.0, 10.0))
            .rv("sigma", HalfNormal(1.0))
            .obs("y", Normal("mu", "sigma"), d["y"]))


def medium():
    d = load("medium")
    return (Builder()
            .rv("mu", Normal(0.0, 10.0))
            .rv("tau", HalfNormal(5.0))
            .rv("a1", Normal("mu", "tau"))
            .rv("a2", Normal("mu", "tau"))
            .rv("sigma", HalfNormal(2.0))
            .obs("y1", Normal("a1", "sigma"), d["y1"])
            .obs("y2", Normal("a2", "sigma"), d["y2"]))


def stress():
    d = load("stress")
    b = Builder().rv("mu_pop", Normal(0.0, 10.0)).rv("tau", HalfNormal(5.0))
    for g in (1, 2, 3):
        b.rv(f"a{g}", Normal("mu_pop", "tau")).rv(f"sigma{g}", HalfNormal(2.0))
        b.obs(f"y{g}", Normal(f"a{g}", f"sigma{g}"), d[f"y{g}"])
    return b


def eight_schools():
    d = load("eight_schools")
    return (Builder()
            .rv("mu", Normal(0.0, 5.0))
            .rv("tau", HalfNormal(5.0))
            .rv("theta", Normal("mu", "tau", shape=8))
            .obs("y", Normal("theta", d["sigma"]), d["y"]))


def funnel():
    return (Builder()
            .rv("y", Normal(0.0, 3.0))
            .rv("x", Normal(0.0, exmc.math.exp(exmc.ref("y") / 2.0), shape=9)))


def logistic():
    d = load("logistic")
    return (Builder()
            .rv("alpha", Normal(0.0, 10.0))
            .rv("beta", Normal(0.0, 10.0, shape=d["X"].shape[1]))
            .obs("y", Bernoulli(logit_p=exmc.ref("alpha") + d["X"] @ exmc.ref("beta")), d["y"]))


def sv():
    d = load("sv")
    T = d["r"].shape[0]
    return (Builder()
            .rv("sigma", Exponential(50.0))
            .rv("nu", Exponential(0.1))
            .rv("s", GaussianRandomWalk(sigma="sigma", init=Normal(0.0, "sigma"), shape=T))
            .obs("r", StudentT("nu", 0.0, exmc.math.exp(exmc.ref("s"))), d["r"]))


# The same models in the DSL, for the two-ways tests and for users to compare.
@exmc.model
def simple_dsl(y):
    mu = Normal(0.0, 10.0)
    sigma = HalfNormal(1.0)
    y = Normal(mu, sigma, observed=y)  # noqa: F841


@exmc.model
def eight_schools_dsl(y, sigma):
    mu = Normal(0.0, 5.0)
    tau = HalfNormal(5.0)
    theta = Normal(mu, tau, shape=8)
    y = Normal(theta, sigma, observed=y)  # noqa: F841


@exmc.model
def logistic_dsl(X, y):
    alpha = Normal(0.0, 10.0)
    beta = Normal(0.0, 10.0, shape=X.shape[1])
    y = Bernoulli(logit_p=alpha + X @ beta, observed=y)  # noqa: F841


MODELS = {"simple": simple, "medium": medium, "stress": stress, "eight_schools": eight_schools,
          "funnel": funnel, "logistic": logistic, "sv": sv}


# ---- beyond the seven: the 3-predictor regression of the compile-time goal, and the scale set ----
# Data are made here, deterministically (fixed seeds), so nothing is downloaded or stored.
def _rng(seed):
    return np.random.default_rng(seed)


def regression_data():
    g = _rng(11)
    X = g.normal(size=(100, 3))
    y = 0.5 + X @ np.array([1.0, -2.0, 0.5]) + g.normal(0.0, 0.7, size=100)
    return {"X": X, "y": y}


def regression():
    """Linear regression with 3 predictors: ``y ~ Normal(a + X @ b, sigma)``."""
    d = regression_data()
    return (Builder()
            .rv("a", Normal(0.0, 10.0))
            .rv("b", Normal(0.0, 10.0, shape=3))
            .rv("sigma", HalfNormal(2.0))
            .obs("y", Normal(exmc.ref("a") + d["X"] @ exmc.ref("b"), "sigma"), d["y"]))


EXTRA = {"regression": regression}

_scale_cache = {}


def scale_data(name):
    """Data of a scale model (made once per process, deterministic)."""
    if name in _scale_cache:
        return _scale_cache[name]
    if name.startswith("logistic_"):
        n, p, seed = {"logistic_5k": (5000, 50, 21), "logistic_50k": (50000, 100, 22)}[name]
        g = _rng(seed)
        X = g.normal(size=(n, p))
        beta = g.normal(0.0, 0.3, size=p)
        eta = 0.3 + X @ beta
        y = (g.uniform(size=n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
        d = {"X": X, "y": y}
    elif name == "hierarchical":
        g = _rng(23)
        groups, n = 1000, 20000
        idx = g.permutation(np.repeat(np.arange(groups), n // groups))
        a = 1.0 + 0.5 * g.normal(size=groups)
        d = {"idx": idx, "y": a[idx] + g.normal(0.0, 1.0, size=n), "groups": groups}
    elif name == "sv_1000":
        g = _rng(24)  # as make_data.py's sv, 1,000 steps
        T, sigma, nu = 1000, 0.15, 10.0
        s = np.cumsum(g.normal(0.0, sigma, size=T))
        d = {"r": np.exp(s) * g.standard_t(nu, size=T)}
    else:
        raise KeyError(name)
    _scale_cache[name] = d
    return d


def _logistic_scale(name):
    d = scale_data(name)
    return (Builder()
            .rv("alpha", Normal(0.0, 10.0))
            .rv("beta", Normal(0.0, 10.0, shape=d["X"].shape[1]))
            .obs("y", Bernoulli(logit_p=exmc.ref("alpha") + d["X"] @ exmc.ref("beta")), d["y"]))


def logistic_5k():
    """Logistic regression, 5,000 observations x 50 predictors."""
    return _logistic_scale("logistic_5k")


def logistic_50k():
    """Logistic regression, 50,000 observations x 100 predictors."""
    return _logistic_scale("logistic_50k")


def hierarchical():
    """1,000 groups, 20,000 observations indexed by group, centered."""
    d = scale_data("hierarchical")
    return (Builder()
            .rv("mu", Normal(0.0, 5.0))
            .rv("tau", HalfNormal(5.0))
            .rv("a", Normal("mu", "tau", shape=d["groups"]))
            .rv("sigma", HalfNormal(2.0))
            .obs("y", Normal(exmc.ref("a")[d["idx"]], "sigma"), d["y"]))


def sv_1000():
    """Stochastic volatility (as ``sv``) over 1,000 steps."""
    d = scale_data("sv_1000")
    T = d["r"].shape[0]
    return (Builder()
            .rv("sigma", Exponential(50.0))
            .rv("nu", Exponential(0.1))
            .rv("s", GaussianRandomWalk(sigma="sigma", init=Normal(0.0, "sigma"), shape=T))
            .obs("r", StudentT("nu", 0.0, exmc.math.exp(exmc.ref("s"))), d["r"]))


SCALE = {"logistic_5k": logistic_5k, "logistic_50k": logistic_50k, "hierarchical": hierarchical,
         "sv_1000": sv_1000}
