"""GARCH(1, 1) with exmc.math.scan: posteriordb's garch-garch11, the volatility as a recursion.

    sigma_1 = sigma1 (data),   sigma_t^2 = alpha0 + alpha1 (y_{t-1} - mu)^2 + beta1 sigma_{t-1}^2

and y_t ~ Normal(mu, sigma_t).  As in the Stan model, mu and alpha0 > 0 are flat,
alpha1 is uniform on (0, 1) and beta1 flat on (0, 1 - alpha1) (a bound that is a
variable: no 1/(1 - alpha1) density, exactly Stan's implicit prior).
"""
import arviz as az
import numpy as np
from _args import parse
from _posteriordb import load, print_reference

import exmc
from exmc import Builder, Custom, Flat, HalfFlat, Normal, Uniform, ref
from exmc import math as em

NAME = "garch-garch11"


def model(data):
    y = np.asarray(data["y"], dtype=float)
    mu, alpha0, alpha1, beta1 = ref("mu"), ref("alpha0"), ref("alpha1"), ref("beta1")
    # the recursion runs on variances: sigma_t^2 for t = 2..T from the data before t
    variance = em.scan(lambda v, y_prev: alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * v,
                       float(data["sigma1"]) ** 2, sequences=[y[:-1]])
    sigma = em.concatenate([np.array([float(data["sigma1"])]), em.sqrt(variance)])
    return (Builder()
            .rv("mu", Flat()).rv("alpha0", HalfFlat()).rv("alpha1", Uniform(0.0, 1.0))
            .rv("beta1", Custom(logp=0.0 * exmc.value, support=(0.0, 1.0 - alpha1)))
            .obs("y", Normal(mu, sigma), y))


def parameters(idata):
    post = idata.posterior
    return {name: post[name].values for name in ("mu", "alpha0", "alpha1", "beta1")}


if __name__ == "__main__":
    args = parse(__doc__, chains=2)
    idata = exmc.sample(model(load(NAME)["data"]), num_samples=args.draws, num_warmup=args.warmup,
                        chains=args.chains, seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata))
    print_reference(idata, NAME, parameters)
