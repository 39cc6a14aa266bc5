"""Lotka-Volterra predator-prey ODE with exmc.math.ode_solve: posteriordb's hudson_lynx_hare-lotka_volterra.

    du/dt = (alpha - beta v) u,   dv/dt = (-gamma + delta u) v

solved by adaptive RK45 from z_init at t = 0 to the 20 yearly counts of hares and
lynxes (Hudson's Bay Company), observed with log-normal error.
"""
import arviz as az
import numpy as np
from _args import parse
from _posteriordb import load, print_reference

import exmc
from exmc import Builder, LogNormal, TruncatedNormal, ref
from exmc import math as em

NAME = "hudson_lynx_hare-lotka_volterra"


def dz_dt(t, z, theta):
    u, v = z[0], z[1]
    alpha, beta, gamma, delta = theta[0], theta[1], theta[2], theta[3]
    return em.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


def model(data):
    y, y_init = np.asarray(data["y"], dtype=float), np.asarray(data["y_init"], dtype=float)
    z = em.ode_solve(dz_dt, ref("z_init"), np.asarray(data["ts"], dtype=float),
                     params=[ref("theta")], rtol=1e-6, atol=1e-6)
    return (Builder()
            .rv("theta", TruncatedNormal(mu=np.array([1.0, 0.05, 1.0, 0.05]),
                                         sigma=np.array([0.5, 0.05, 0.5, 0.05]), lower=0.0))
            .rv("z_init", LogNormal(np.log(10.0), 1.0, shape=2))
            .rv("sigma", LogNormal(-1.0, 1.0, shape=2))
            .det("z", z)
            .obs("y_init", LogNormal(em.log(ref("z_init")), ref("sigma")), y_init)
            .obs("y", LogNormal(em.log(ref("z")), ref("sigma")), y))


def parameters(idata):
    post, out = idata.posterior, {}
    for name, size in (("theta", 4), ("z_init", 2), ("sigma", 2)):
        for k in range(size):
            out[f"{name}[{k + 1}]"] = post[name].values[..., k]
    return out


if __name__ == "__main__":
    args = parse(__doc__, chains=2)
    idata = exmc.sample(model(load(NAME)["data"]), num_samples=args.draws, num_warmup=args.warmup,
                        chains=args.chains, seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata, var_names=["theta", "z_init", "sigma"]))
    print_reference(idata, NAME, parameters)
