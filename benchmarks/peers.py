"""The race models written for PyMC (used by race.py and compile_time.py for PyMC and nutpie).

The seven of MODELS.md, the 3-predictor regression and the scale set; needs the bench extra.
"""

from benchmarks.models import EXTRA, SCALE, load, regression_data, scale_data


def pymc_model(name):
    if name in SCALE or name in EXTRA:
        return pymc_scale_model(name)
    import pymc as pm

    d = load(name) if name != "funnel" else {}
    with pm.Model() as model:
        if name == "simple":
            mu = pm.Normal("mu", 0.0, 10.0)
            sigma = pm.HalfNormal("sigma", 1.0)
            pm.Normal("y", mu, sigma, observed=d["y"])
        elif name == "medium":
            mu = pm.Normal("mu", 0.0, 10.0)
            tau = pm.HalfNormal("tau", 5.0)
            a1 = pm.Normal("a1", mu, tau)
            a2 = pm.Normal("a2", mu, tau)
            sigma = pm.HalfNormal("sigma", 2.0)
            pm.Normal("y1", a1, sigma, observed=d["y1"])
            pm.Normal("y2", a2, sigma, observed=d["y2"])
        elif name == "stress":
            mu_pop = pm.Normal("mu_pop", 0.0, 10.0)
            tau = pm.HalfNormal("tau", 5.0)
            for g in (1, 2, 3):
                a = pm.Normal(f"a{g}", mu_pop, tau)
                s = pm.HalfNormal(f"sigma{g}", 2.0)
                pm.Normal(f"y{g}", a, s, observed=d[f"y{g}"])
        elif name == "eight_schools":
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfNormal("tau", 5.0)
            theta = pm.Normal("theta", mu, tau, shape=8)
            pm.Normal("y", theta, d["sigma"], observed=d["y"])
        elif name == "funnel":
            y = pm.Normal("y", 0.0, 3.0)
            pm.Normal("x", 0.0, pm.math.exp(y / 2.0), shape=9)
        elif name == "logistic":
            alpha = pm.Normal("alpha", 0.0, 10.0)
            beta = pm.Normal("beta", 0.0, 10.0, shape=d["X"].shape[1])
            pm.Bernoulli("y", logit_p=alpha + pm.math.dot(d["X"], beta), observed=d["y"])
        elif name == "sv":
            T = len(d["r"])
            sigma = pm.Exponential("sigma", 50.0)
            nu = pm.Exponential("nu", 0.1)
            s = pm.GaussianRandomWalk("s", sigma=sigma, init_dist=pm.Normal.dist(0.0, sigma),
                                      shape=T)
            pm.StudentT("r", nu=nu, mu=0.0, sigma=pm.math.exp(s), observed=d["r"])
        else:
            raise KeyError(name)
    return model


def pymc_scale_model(name):
    """The regression and the scale models of benchmarks.models (same data, same priors)."""
    import pymc as pm

    with pm.Model() as model:
        if name == "regression":
            d = regression_data()
            a = pm.Normal("a", 0.0, 10.0)
            b = pm.Normal("b", 0.0, 10.0, shape=3)
            sigma = pm.HalfNormal("sigma", 2.0)
            pm.Normal("y", a + pm.math.dot(d["X"], b), sigma, observed=d["y"])
        elif name in ("logistic_5k", "logistic_50k"):
            d = scale_data(name)
            alpha = pm.Normal("alpha", 0.0, 10.0)
            beta = pm.Normal("beta", 0.0, 10.0, shape=d["X"].shape[1])
            pm.Bernoulli("y", logit_p=alpha + pm.math.dot(d["X"], beta), observed=d["y"])
        elif name == "hierarchical":
            d = scale_data(name)
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfNormal("tau", 5.0)
            a = pm.Normal("a", mu, tau, shape=d["groups"])
            sigma = pm.HalfNormal("sigma", 2.0)
            pm.Normal("y", a[d["idx"]], sigma, observed=d["y"])
        elif name == "sv_1000":
            d = scale_data(name)
            T = len(d["r"])
            sigma = pm.Exponential("sigma", 50.0)
            nu = pm.Exponential("nu", 0.1)
            s = pm.GaussianRandomWalk("s", sigma=sigma, init_dist=pm.Normal.dist(0.0, sigma),
                                      shape=T)
            pm.StudentT("r", nu=nu, mu=0.0, sigma=pm.math.exp(s), observed=d["r"])
        else:
            raise KeyError(name)
    return model


def free_names(name):
    """Free variable names of each race model (the same in both libraries)."""
    return {"regression": ["a", "b", "sigma"], "logistic_5k": ["alpha", "beta"],
            "logistic_50k": ["alpha", "beta"], "hierarchical": ["mu", "tau", "a", "sigma"],
            "sv_1000": ["sigma", "nu", "s"],
            "simple": ["mu", "sigma"], "medium": ["mu", "tau", "a1", "a2", "sigma"],
            "stress": ["mu_pop", "tau", "a1", "sigma1", "a2", "sigma2", "a3", "sigma3"],
            "eight_schools": ["mu", "tau", "theta"], "funnel": ["y", "x"],
            "logistic": ["alpha", "beta"], "sv": ["sigma", "nu", "s"]}[name]


__all__ = ["pymc_model", "pymc_scale_model", "free_names"]
