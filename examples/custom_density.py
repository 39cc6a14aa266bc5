"""A custom log density as data: a banana-shaped target written with exmc.value and exmc.math."""
import arviz as az
from _args import parse

import exmc
from exmc import Builder, Custom, Normal, ref

if __name__ == "__main__":
    args = parse(__doc__)
    # x ~ Normal(0, 2); y | x has density exp(-(y - 0.5 x^2)^2 / 2): a curved ridge.
    model = (Builder()
             .rv("x", Normal(0.0, 2.0))
             .rv("y", Custom(logp=-0.5 * (exmc.value - 0.5 * ref("x") ** 2) ** 2)))
    idata = exmc.sample(model, num_samples=args.draws, num_warmup=args.warmup, chains=args.chains,
                        seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata))
    print("exact: E[x] = 0, E[y] = 0.5 E[x^2] = 2.0")
