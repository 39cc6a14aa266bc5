"""Reference posterior of a negative-binomial regression from a long nutpie run (PyMC model).

    python benchmarks/nb_regression_reference.py

Writes benchmarks/data/nb_regression_reference.json: the data, and each parameter's
posterior mean, sd and MCSE of the mean from 4 chains x 25,000 draws (2,000 warmup), for
tests/samplers/test_conjugate_posteriors.py to compare exmc's posterior with.
"""
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "data" / "nb_regression_reference.json"


def data():
    rng = np.random.default_rng(16)
    x = rng.normal(size=100)
    mu = np.exp(1.0 + 0.5 * x)
    alpha = 3.0
    y = rng.negative_binomial(alpha, alpha / (alpha + mu))  # numpy's (n, p): mean mu
    return x, y.astype(float)


def main():
    import arviz as az
    import nutpie
    import pymc as pm

    x, y = data()
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 2.0)
        b = pm.Normal("b", 0.0, 2.0)
        alpha = pm.HalfNormal("alpha", 5.0)
        pm.NegativeBinomial("y", mu=pm.math.exp(a + b * x), alpha=alpha, observed=y)
    idata = nutpie.sample(nutpie.compile_pymc_model(model), draws=25_000, tune=2_000,
                          chains=4, seed=16, progress_bar=False)
    post = idata.posterior
    reference = {name: {"mean": float(post[name].mean()), "sd": float(post[name].std()),
                        "mcse_mean": float(az.mcse(post[name], method="mean")[name])}
                 for name in ("a", "b", "alpha")}
    OUT.write_text(json.dumps({"source": "nutpie 4 x 25,000 draws of the PyMC model in "
                                         "benchmarks/nb_regression_reference.py, seed 16",
                               "x": x.tolist(), "y": y.tolist(), "posterior": reference},
                              indent=1))
    print(json.dumps(reference, indent=1))


if __name__ == "__main__":
    main()
