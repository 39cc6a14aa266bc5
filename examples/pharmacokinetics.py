"""One-compartment pharmacokinetics with Michaelis-Menten elimination and first-order absorption,
with exmc.math.ode_solve: posteriordb's one_comp_mm_elim_abs.

    dC/dt = [t > 0] exp(-k_a t) D k_a / V  -  (V_m / V) C / (K_m + C),   C(t0) = 0

and measured concentrations C_hat ~ LogNormal(log C, sigma).  The Stan model uses
a stiff (BDF) solver; this one is not stiff enough to need it, and RK45 is used.
"""
import arviz as az
import numpy as np
from _args import parse
from _posteriordb import load, print_reference

import exmc
from exmc import Builder, HalfCauchy, LogNormal, ref
from exmc import math as em

NAME = "one_comp_mm_elim_abs-one_comp_mm_elim_abs"
PARAMETERS = ("k_a", "K_m", "V_m", "sigma")


def model(data):
    dose, volume = float(data["D"]), float(data["V"])

    def dc_dt(t, c, k_a, k_m, v_m):
        absorbed = em.where(em.gt(t, 0.0), em.exp(-k_a * t) * dose * k_a / volume, 0.0)
        return em.stack([absorbed - (v_m / volume) * c[0] / (k_m + c[0])])

    c = em.ode_solve(dc_dt, np.zeros(1), np.asarray(data["times"], dtype=float),
                     params=[ref("k_a"), ref("K_m"), ref("V_m")], t0=float(data["t0"]),
                     rtol=1e-6, atol=1e-6)
    builder = Builder()
    for name in PARAMETERS:
        builder.rv(name, HalfCauchy(1.0))
    return (builder.det("C", c.T[0])
            .obs("C_hat", LogNormal(em.log(ref("C")), ref("sigma")), np.asarray(data["C_hat"])))


def parameters(idata):
    return {name: idata.posterior[name].values for name in PARAMETERS}


if __name__ == "__main__":
    args = parse(__doc__, chains=2)
    idata = exmc.sample(model(load(NAME)["data"]), num_samples=args.draws, num_warmup=args.warmup,
                        chains=args.chains, seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata, var_names=list(PARAMETERS)))
    print_reference(idata, NAME, parameters)
