"""A two-state hidden Markov model with exmc.math.scan: posteriordb's hmm_example-hmm_example.

The forward algorithm in the log semiring: alpha_1 = log p(y_1 | state),
alpha_t[k] = logsumexp_j(alpha_{t-1}[j] + log A[j, k]) + log p(y_t | k), and
log p(y) = logsumexp(alpha_N), added to the density with Builder.potential.
Transition rows theta1, theta2 are uniform on the simplex; the emission means
0 < mu1 < mu2 (Stan's positive_ordered) have Normal(3, 1) and Normal(10, 1) densities.
"""
import arviz as az
import numpy as np
from _args import parse
from _posteriordb import load, print_reference

import exmc
from exmc import Builder, Custom, Dirichlet, ref
from exmc import math as em

NAME = "hmm_example-hmm_example"
LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def normal_logpdf(x, mu, sigma=1.0):
    return -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma) - LOG_SQRT_2PI


def model(data):
    y = np.asarray(data["y"], dtype=float)
    mu = em.stack([ref("mu1"), ref("mu2")])
    log_emission = normal_logpdf(y[:, None], mu)  # (N, K): log p(y_t | state k)
    log_transition = em.log(em.stack([ref("theta1"), ref("theta2")]))  # row j: from state j
    alpha = em.scan(lambda a, emission_t, log_a: em.logsumexp(a + log_a.T, axis=1) + emission_t,
                    log_emission[0], sequences=[log_emission[1:]], non_sequences=[log_transition])
    return (Builder()
            .rv("theta1", Dirichlet(np.ones(2))).rv("theta2", Dirichlet(np.ones(2)))
            .rv("mu1", Custom(logp=normal_logpdf(exmc.value, 3.0), support="positive"))
            .rv("mu2", Custom(logp=normal_logpdf(exmc.value, 10.0), support=(ref("mu1"), None)))
            .potential("forward", em.logsumexp(alpha[-1])))


def parameters(idata):
    post = idata.posterior
    out = {}
    for name in ("theta1", "theta2"):
        for k in range(2):
            out[f"{name}[{k + 1}]"] = post[name].values[..., k]
    out["mu[1]"], out["mu[2]"] = post["mu1"].values, post["mu2"].values
    return out


if __name__ == "__main__":
    args = parse(__doc__, chains=2)
    idata = exmc.sample(model(load(NAME)["data"]), num_samples=args.draws, num_warmup=args.warmup,
                        chains=args.chains, seed=args.seed, progressbar=not args.no_progress)
    print(az.summary(idata))
    print_reference(idata, NAME, parameters)
