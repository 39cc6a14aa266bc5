"""One-compartment pharmacokinetics with Michaelis-Menten elimination and first-order absorption,
with exmc.math.ode_solve: posteriordb's one_comp_mm_elim_abs.

    dC/dt = [t > 0] exp(-k_a t) D k_a / V  -  (V_m / V) C / (K_m + C),   C(t0) = 0

and measured concentrations C_hat ~ LogNormal(log C, sigma).  The Stan model uses
a stiff (BDF) solver; this one is not stiff enough to need it, and RK45 is used.
``model`` is Stan's parameterisation; the script samples ``model_rotated``, the same
posterior in coordinates where its ridge runs along an axis (see its docstring).
"""
import arviz as az
import numpy as np
from _args import parse
from _posteriordb import load, print_reference

import exmc
from exmc import Builder, Custom, HalfCauchy, LogNormal, ref
from exmc import math as em

NAME = "one_comp_mm_elim_abs-one_comp_mm_elim_abs"
PARAMETERS = ("k_a", "K_m", "V_m", "sigma")


def concentration(data, k_a, k_m, v_m):
    """C at the measurement times: the ODE solved from C(t0) = 0."""
    dose, volume = float(data["D"]), float(data["V"])

    def dc_dt(t, c, k_a, k_m, v_m):
        absorbed = em.where(em.gt(t, 0.0), em.exp(-k_a * t) * dose * k_a / volume, 0.0)
        return em.stack([absorbed - (v_m / volume) * c[0] / (k_m + c[0])])

    c = em.ode_solve(dc_dt, np.zeros(1), np.asarray(data["times"], dtype=float),
                     params=[k_a, k_m, v_m], t0=float(data["t0"]), rtol=1e-6, atol=1e-6)
    return c.T[0]


def model(data):
    """Stan's parameterisation: k_a, K_m, V_m, sigma ~ HalfCauchy(1)."""
    builder = Builder()
    for name in PARAMETERS:
        builder.rv(name, HalfCauchy(1.0))
    return (builder.det("C", concentration(data, ref("k_a"), ref("K_m"), ref("V_m")))
            .obs("C_hat", LogNormal(em.log(ref("C")), ref("sigma")), np.asarray(data["C_hat"])))


def log_half_cauchy_of_log(x):
    """Log density of log X for X ~ HalfCauchy(1): log(2 / pi) - log(1 + X^2) + log X."""
    return np.log(2.0 / np.pi) - em.log1p(em.exp(2.0 * x)) + x


def model_rotated(data):
    """The same posterior sampled in (log K_m, log(V_m / K_m)).

    For large K_m and V_m the elimination is linear, (V_m / V) C / K_m, and the
    posterior is a ridge along constant V_m / K_m, diagonal in (log K_m, log V_m):
    a diagonal mass matrix fits it badly (divergences, a thin far tail).  In these
    coordinates the ridge runs along an axis.  The priors are unchanged: each
    log-scale HalfCauchy density (with its Jacobian) is written out, and the map
    (log K_m, log ratio) -> (log K_m, log V_m) has Jacobian 1.
    """
    log_k_m, log_ratio = ref("log_K_m"), ref("log_ratio")
    k_m, v_m = em.exp(log_k_m), em.exp(log_k_m + log_ratio)
    return (Builder().rv("k_a", HalfCauchy(1.0)).rv("sigma", HalfCauchy(1.0))
            .rv("log_K_m", Custom(logp=log_half_cauchy_of_log(exmc.value)))
            .rv("log_ratio", Custom(logp=0.0 * exmc.value))
            .potential("V_m_prior", log_half_cauchy_of_log(log_k_m + log_ratio))
            .det("K_m", k_m).det("V_m", v_m)
            .det("C", concentration(data, ref("k_a"), k_m, v_m))
            .obs("C_hat", LogNormal(em.log(ref("C")), ref("sigma")), np.asarray(data["C_hat"])))


def parameters(idata):
    return {name: idata.posterior[name].values for name in PARAMETERS}


if __name__ == "__main__":
    args = parse(__doc__, chains=2)
    idata = exmc.sample(model_rotated(load(NAME)["data"]), num_samples=args.draws, num_warmup=args.warmup,
                        chains=args.chains, seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata, var_names=list(PARAMETERS)))
    print_reference(idata, NAME, parameters)
