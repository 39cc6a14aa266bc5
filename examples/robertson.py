"""Robertson's chemical kinetics, a classic stiff system, fitted with the stiff ODE solver.

    dy1/dt = -k1 y1 + k3 y2 y3
    dy2/dt =  k1 y1 - k3 y2 y3 - k2 y2^2        k = (0.04, 3e7, 1e4), y(0) = (1, 0, 0)
    dy3/dt =  k2 y2^2

The rates differ by nine orders of magnitude: an explicit solver (RK45) needs about
7,400 steps to reach t = 10 at rtol 1e-6, SDIRK4 (``method="bdf"``) 57.  The slow rate
k1 is unknown (log k1 ~ Normal(log 0.04 - 0.5, 1)); y1 and y3 are measured at eight
times from 0.1 to 1e4 with Normal noise (sd 0.01).  Data are simulated from a fixed
seed.  The script samples log k1 and compares its posterior mean and sd with a
quadrature of the compiled log density on a grid (the same reference the test
``tests/compiler/test_ode_stiff.py`` uses).
"""
import numpy as np
from _args import parse

import exmc
from exmc import Builder, Normal, ref
from exmc import math as em

RATES = (0.04, 3e7, 1e4)
TIMES = np.array([0.1, 0.4, 1.0, 4.0, 10.0, 100.0, 1e3, 1e4])
NOISE = 0.01


def species(log_k1):
    """The solution at TIMES, shape (8, 3), for the rate k1 = exp(log_k1)."""
    def rhs(t, y, k1):
        k3_term, k2_term = RATES[2] * y[1] * y[2], RATES[1] * y[1] * y[1]
        return em.stack([-k1 * y[0] + k3_term, k1 * y[0] - k3_term - k2_term, k2_term])
    return em.ode_solve(rhs, np.array([1.0, 0.0, 0.0]), TIMES, params=[em.exp(log_k1)],
                        method="bdf", rtol=1e-6, atol=1e-10)


def simulate(seed=0):
    """Measurements of y1 and y3 (rows) at TIMES (columns), shape (2, 8), from the true rates."""
    from exmc.ir.evaluate import evaluate
    y = evaluate(species(np.log(RATES[0])), {}).T[[0, 2]]
    return y + np.random.default_rng(seed).normal(0.0, NOISE, size=y.shape)


def model(observed):
    y = species(ref("log_k1")).T
    return (Builder().rv("log_k1", Normal(np.log(RATES[0]) - 0.5, 1.0))
            .obs("y", Normal(em.stack([y[0], y[2]]), NOISE), observed))


def grid_reference(compiled, lower=-4.5, upper=-2.0, points=2001):
    """Posterior mean and sd of log k1 by quadrature of the compiled density on a grid."""
    for _ in range(2):  # a coarse grid, then a fine one over mean +- 12 sd
        grid = np.linspace(lower, upper, points)
        logp = np.array([compiled.logp_and_grad(np.array([x]))[0] for x in grid])
        weights = np.exp(logp - logp.max())
        weights /= weights.sum()
        mean = weights @ grid
        sd = np.sqrt(weights @ (grid - mean) ** 2)
        lower, upper = mean - 12 * sd, mean + 12 * sd
    return mean, sd


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], draws=1000, warmup=500, chains=4)
    built = model(simulate())
    idata = exmc.sample(built, num_samples=args.draws, num_warmup=args.warmup, chains=args.chains,
                        seed=args.seed, progressbar=not args.no_progress)
    draws = idata.posterior["log_k1"].values
    mean, sd = grid_reference(exmc.compiler.compile_model(built))
    print(f"log k1: posterior mean {draws.mean():.4f}, sd {draws.std():.4f} "
          f"(grid quadrature: {mean:.4f}, {sd:.4f}; true value {np.log(RATES[0]):.4f})")
