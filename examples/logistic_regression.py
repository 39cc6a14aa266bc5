"""Logistic regression with an expression likelihood: y ~ Bernoulli(logit_p = alpha + X @ beta)."""
import arviz as az
import numpy as np
from _args import parse

import exmc
from exmc import Bernoulli, Builder, Normal, ref

if __name__ == "__main__":
    args = parse(__doc__)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    beta_true = np.array([1.0, -2.0, 0.5, 0.0])
    y = (rng.uniform(size=300) < 1 / (1 + np.exp(-(0.3 + X @ beta_true)))).astype(float)
    model = (Builder()
             .rv("alpha", Normal(0.0, 10.0))
             .rv("beta", Normal(0.0, 10.0, shape=4))
             .det("p_first", exmc.math.sigmoid(ref("alpha") + X[0] @ ref("beta")))
             .obs("y", Bernoulli(logit_p=ref("alpha") + X @ ref("beta")), y))
    idata = exmc.sample(model, num_samples=args.draws, num_warmup=args.warmup, chains=args.chains,
                        seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata))
    print("true beta:", beta_true)
