"""Stochastic volatility (the race's sv model): a Gaussian random walk of log scales, Student-t returns."""
import json
from pathlib import Path

import arviz as az
import numpy as np
from _args import parse

import exmc
from exmc import Builder, Exponential, GaussianRandomWalk, Normal, StudentT, ref

if __name__ == "__main__":
    args = parse(__doc__, chains=2)
    data = json.loads((Path(__file__).parent.parent / "benchmarks" / "data" / "sv.json").read_text())
    r = np.asarray(data["r"])
    model = (Builder()
             .rv("sigma", Exponential(50.0))
             .rv("nu", Exponential(0.1))
             .rv("s", GaussianRandomWalk(sigma="sigma", init=Normal(0.0, "sigma"), shape=len(r)))
             .det("volatility", exmc.math.exp(ref("s")))
             .obs("r", StudentT("nu", 0.0, exmc.math.exp(ref("s"))), r))
    idata = exmc.sample(model, num_samples=args.draws, num_warmup=args.warmup, chains=args.chains,
                        seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata, var_names=["sigma", "nu"]))
    print(f"true sigma {data['true_sigma']}, true nu {data['true_nu']}")
