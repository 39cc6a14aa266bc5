"""The main job: eight schools with NUTS, written both ways, summarised with ArviZ.

    python examples/quickstart.py            # 4 chains x (1000 warmup + 1000 draws)
"""
import time

import arviz as az
import numpy as np
from _args import parse

import exmc
from exmc import Builder, HalfNormal, Normal

y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])

# The Builder: strings refer to other variables.
built = (Builder()
         .rv("mu", Normal(0.0, 5.0))
         .rv("tau", HalfNormal(5.0))
         .rv("theta", Normal("mu", "tau", shape=8))
         .obs("y", Normal("theta", sigma), y))


# The DSL: variables are named by assignment; the same IR comes out.
@exmc.model
def eight_schools(y, sigma):
    mu = Normal(0.0, 5.0)
    tau = HalfNormal(5.0)
    theta = Normal(mu, tau, shape=8)
    y = Normal(theta, sigma, observed=y)  # noqa: F841


if __name__ == "__main__":
    args = parse(__doc__)
    model = eight_schools(y, sigma)
    assert model == built
    start = time.perf_counter()
    idata = exmc.sample(model, num_samples=args.draws, num_warmup=args.warmup, chains=args.chains,
                        seed=args.seed, target_accept=0.9, progressbar=not args.no_progress)
    wall = time.perf_counter() - start
    print(az.summary(idata, var_names=["mu", "tau", "theta"]))
    stats = idata.sample_stats
    print(f"\ncompile {idata.attrs['compile_time']:.2f} s, sampling {idata.attrs['sampling_time']:.2f} s "
          f"({wall:.2f} s in all); divergences {int(stats.diverging.sum())}; "
          f"mean leapfrog steps per draw {float(stats.n_steps.mean()):.1f}")
