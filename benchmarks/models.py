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
