"""Discrete families (observed only: NUTS samples continuous parameters)."""
from exmc.ir.dists.base import Distribution


class _ProbabilityOrLogit(Distribution):
    """Shared parameter handling: exactly one of ``p`` and ``logit_p``."""

    checks = (("p", ">=", 0.0), ("p", "<=", 1.0))  # apply only when p is given

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        given = [k for k in ("p", "logit_p") if k in self.param_exprs]
        if len(given) != 1:
            raise TypeError(f"{self.family} needs exactly one of p and logit_p, got "
                            f"{', '.join(given) or 'neither'}")

    def probability(self, v):
        if "p" in v:
            return v["p"]
        import numpy as np
        return 1.0 / (1.0 + np.exp(-v["logit_p"]))


class Bernoulli(_ProbabilityOrLogit):
    """Bernoulli(p=...) or Bernoulli(logit_p=...): values 0 or 1."""

    family = "Bernoulli"
    params = ("p", "logit_p")
    defaults = {"p": None, "logit_p": None}
    discrete = True
    lower, upper, open_support = 0.0, 1.0, False

    def random(self, rng, v, size):
        return (rng.uniform(size=size) < self.probability(v)).astype(float)


class Binomial(_ProbabilityOrLogit):
    """Binomial(n, p=...) or Binomial(n, logit_p=...): successes out of ``n`` trials (data)."""

    family = "Binomial"
    params = ("n", "p", "logit_p")
    defaults = {"p": None, "logit_p": None}
    data_params = ("n",)
    discrete = True
    lower, upper, open_support = 0.0, "n", False

    def random(self, rng, v, size):
        return rng.binomial(v["n"].astype(int) if hasattr(v["n"], "astype") else int(v["n"]),
                            self.probability(v), size).astype(float)


class Poisson(Distribution):
    """Poisson(mu): counts with mean ``mu``."""

    family = "Poisson"
    params = ("mu",)
    discrete = True
    lower, open_support = 0.0, False
    checks = (("mu", ">", 0.0),)

    def random(self, rng, v, size):
        return rng.poisson(v["mu"], size).astype(float)
