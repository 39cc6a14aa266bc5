"""ARMA(1, 1) with exmc.math.scan: posteriordb's arma-arma11, the moving-average error as a recursion.

    nu_t = mu + phi * y_{t-1} + theta * err_{t-1},   err_t = y_t - nu_t,   err_t ~ Normal(0, sigma)

with y_0 = mu and err_0 = 0 (as the Stan model assumes).  The recursion carries
err; the likelihood is y ~ Normal(y - err, sigma), which is err ~ Normal(0, sigma).
"""
import arviz as az
import numpy as np
from _args import parse
from _posteriordb import load, print_reference

import exmc
from exmc import Builder, HalfCauchy, Normal, ref
from exmc import math as em

NAME = "arma-arma11"


def model(data):
    y = np.asarray(data["y"], dtype=float)
    mu, phi, theta = ref("mu"), ref("phi"), ref("theta")
    y_before = em.concatenate([em.stack([mu]), y[:-1]])  # y_{t-1}, with y_0 = mu
    err = em.scan(lambda err_before, y_t, y_prev: y_t - (mu + phi * y_prev + theta * err_before),
                  0.0, sequences=[y, y_before])
    return (Builder()
            .rv("mu", Normal(0.0, 10.0)).rv("phi", Normal(0.0, 2.0)).rv("theta", Normal(0.0, 2.0))
            .rv("sigma", HalfCauchy(2.5))
            .obs("y", Normal(y - err, ref("sigma")), y))


def parameters(idata):
    post = idata.posterior
    return {name: post[name].values for name in ("mu", "phi", "theta", "sigma")}


if __name__ == "__main__":
    args = parse(__doc__, chains=2)
    idata = exmc.sample(model(load(NAME)["data"]), num_samples=args.draws, num_warmup=args.warmup,
                        chains=args.chains, seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata))
    print_reference(idata, NAME, parameters)
