"""Discrete families (observed only: NUTS samples continuous parameters)."""
import warnings

import numpy as np

from exmc.ir.dists.base import Distribution, ModelError
from exmc.ir.expr import as_expr


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


def _mu_alpha_or_n_p(dist):
    """NegativeBinomial's (mu, alpha) or PyMC's (n, p): kept as mu = n (1 - p) / p, alpha = n."""
    from exmc.ir.dists.continuous import combine
    p = dist.param_exprs
    given = [k for k in ("mu", "alpha", "p", "n") if k in p]
    if sorted(given) == ["n", "p"]:
        prob = p["p"]
        if prob.op == "const" and not np.all((prob.value > 0) & (prob.value <= 1)):
            raise ValueError(f"{dist.family} needs 0 < p <= 1, got p={prob.value!r}")
        n = p.pop("n")
        p["mu"] = combine(lambda n, q: n * (1.0 - q) / q, n, p.pop("p"))
        p["alpha"] = n
    elif sorted(given) != ["alpha", "mu"]:
        raise TypeError(f"{dist.family} needs mu and alpha, or n and p; got "
                        f"{', '.join(given) or 'none'}")
    dist.param_exprs = {k: p[k] for k in dist.params if k in p}


def _negative_binomial_draws(rng, mu, alpha, size):
    return rng.poisson(rng.gamma(alpha, mu / alpha, size)).astype(float)


class NegativeBinomial(Distribution):
    """NegativeBinomial(mu, alpha) or (n=..., p=...): counts with mean ``mu`` and variance
    mu + mu^2 / alpha; PyMC's n, p become alpha = n, mu = n (1 - p) / p."""

    family = "NegativeBinomial"
    params = ("mu", "alpha", "p", "n")
    defaults = {"mu": None, "alpha": None, "p": None, "n": None}
    discrete = True
    lower, open_support = 0.0, False
    checks = (("mu", ">=", 0.0), ("alpha", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _mu_alpha_or_n_p(self)

    def random(self, rng, v, size):
        return _negative_binomial_draws(rng, v["mu"], v["alpha"], size)


class BetaBinomial(Distribution):
    """BetaBinomial(alpha, beta, n): Binomial(n, p) with p ~ Beta(alpha, beta); ``n`` is data."""

    family = "BetaBinomial"
    params = ("alpha", "beta", "n")
    data_params = ("n",)
    discrete = True
    lower, upper, open_support = 0.0, "n", False
    checks = (("alpha", ">", 0.0), ("beta", ">", 0.0))

    def random(self, rng, v, size):
        return rng.binomial(np.asarray(v["n"]).astype(int),
                            rng.beta(v["alpha"], v["beta"], size)).astype(float)


class Geometric(Distribution):
    """Geometric(p): the number of trials up to and including the first success (1, 2, ...)."""

    family = "Geometric"
    params = ("p",)
    discrete = True
    lower, open_support = 1.0, False
    checks = (("p", ">", 0.0), ("p", "<=", 1.0))

    def random(self, rng, v, size):
        return rng.geometric(v["p"], size).astype(float)


class DiscreteUniform(Distribution):
    """DiscreteUniform(lower, upper): the integers lower, ..., upper, equally likely."""

    family = "DiscreteUniform"
    params = ("lower", "upper")
    discrete = True
    lower, upper, open_support = "lower", "upper", False
    checks = (("upper", ">=", "lower"),)

    def random(self, rng, v, size):
        return rng.integers(np.asarray(v["lower"]).astype(int),
                            np.asarray(v["upper"]).astype(int), size, endpoint=True).astype(float)


class _ZeroModel(Distribution):
    """Zero-inflated and hurdle families: ``psi`` in [0, 1] weighs the base family."""

    discrete = True
    lower, open_support = 0.0, False


class ZeroInflatedPoisson(_ZeroModel):
    """ZeroInflatedPoisson(psi, mu): 0 with probability 1 - psi, else Poisson(mu)."""

    family = "ZeroInflatedPoisson"
    params = ("psi", "mu")
    checks = (("psi", ">=", 0.0), ("psi", "<=", 1.0), ("mu", ">", 0.0))

    def random(self, rng, v, size):
        return np.where(rng.uniform(size=size) < v["psi"], rng.poisson(v["mu"], size), 0.0)


class ZeroInflatedBinomial(_ZeroModel):
    """ZeroInflatedBinomial(psi, n, p): 0 with probability 1 - psi, else Binomial(n, p)."""

    family = "ZeroInflatedBinomial"
    params = ("psi", "n", "p")
    data_params = ("n",)
    upper = "n"
    checks = (("psi", ">=", 0.0), ("psi", "<=", 1.0), ("p", ">=", 0.0), ("p", "<=", 1.0))

    def random(self, rng, v, size):
        draws = rng.binomial(np.asarray(v["n"]).astype(int), v["p"], size)
        return np.where(rng.uniform(size=size) < v["psi"], draws, 0.0)


class ZeroInflatedNegativeBinomial(_ZeroModel):
    """ZeroInflatedNegativeBinomial(psi, mu, alpha) or (psi, n=..., p=...): 0 with probability
    1 - psi, else NegativeBinomial."""

    family = "ZeroInflatedNegativeBinomial"
    params = ("psi", "mu", "alpha", "p", "n")
    defaults = {"mu": None, "alpha": None, "p": None, "n": None}
    checks = (("psi", ">=", 0.0), ("psi", "<=", 1.0), ("mu", ">", 0.0), ("alpha", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _mu_alpha_or_n_p(self)

    def random(self, rng, v, size):
        draws = _negative_binomial_draws(rng, v["mu"], v["alpha"], size)
        return np.where(rng.uniform(size=size) < v["psi"], draws, 0.0)


def _nonzero_draws(draw, size):
    """Draws of ``draw(n)`` (an array of n) rejected until non-zero, elementwise to ``size``."""
    out = np.asarray(draw())
    for _ in range(1000):
        zero = out == 0
        if not zero.any():
            return out
        out = np.where(zero, draw(), out)
    raise RuntimeError("hurdle draws: the base family gave zeros 1000 times running")


class HurdlePoisson(_ZeroModel):
    """HurdlePoisson(psi, mu): 0 with probability 1 - psi, else Poisson(mu) given it is non-zero."""

    family = "HurdlePoisson"
    params = ("psi", "mu")
    checks = (("psi", ">=", 0.0), ("psi", "<=", 1.0), ("mu", ">", 0.0))

    def random(self, rng, v, size):
        draws = _nonzero_draws(lambda: rng.poisson(v["mu"], size), size)
        return np.where(rng.uniform(size=size) < v["psi"], draws, 0.0)


class HurdleNegativeBinomial(_ZeroModel):
    """HurdleNegativeBinomial(psi, mu, alpha) or (psi, n=..., p=...): 0 with probability
    1 - psi, else NegativeBinomial given it is non-zero."""

    family = "HurdleNegativeBinomial"
    params = ("psi", "mu", "alpha", "p", "n")
    defaults = {"mu": None, "alpha": None, "p": None, "n": None}
    checks = (("psi", ">=", 0.0), ("psi", "<=", 1.0), ("mu", ">", 0.0), ("alpha", ">", 0.0))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _mu_alpha_or_n_p(self)

    def random(self, rng, v, size):
        draws = _nonzero_draws(lambda: _negative_binomial_draws(rng, v["mu"], v["alpha"], size), size)
        return np.where(rng.uniform(size=size) < v["psi"], draws, 0.0)


class HurdleGamma(_ZeroModel):
    """HurdleGamma(psi, alpha, beta) or (psi, mu=..., sigma=...): 0 with probability 1 - psi,
    else Gamma.  Observed only: the value is continuous but has an atom at 0."""

    family = "HurdleGamma"
    params = ("psi", "alpha", "beta", "mu", "sigma")
    defaults = {"alpha": None, "beta": None, "mu": None, "sigma": None}
    discrete, observed_only = False, True
    checks = (("psi", ">=", 0.0), ("psi", "<=", 1.0), ("alpha", ">", 0.0), ("beta", ">", 0.0))

    def __init__(self, *args, **kwargs):
        from exmc.ir.dists.continuous import mean_and_sd
        super().__init__(*args, **kwargs)
        mean_and_sd(self, lambda mu, sigma: (mu * mu / (sigma * sigma), mu / (sigma * sigma)))

    def random(self, rng, v, size):
        draws = rng.gamma(v["alpha"], 1.0 / v["beta"], size)
        return np.where(rng.uniform(size=size) < v["psi"], draws, 0.0)


class HurdleLogNormal(_ZeroModel):
    """HurdleLogNormal(psi, mu=0, sigma=1) or (psi, mu, tau=...): 0 with probability 1 - psi,
    else LogNormal.  Observed only, as HurdleGamma."""

    family = "HurdleLogNormal"
    params = ("psi", "mu", "sigma", "tau")
    defaults = {"mu": 0.0, "sigma": None, "tau": None}
    discrete, observed_only = False, True
    checks = (("psi", ">=", 0.0), ("psi", "<=", 1.0), ("sigma", ">", 0.0))

    def __init__(self, *args, **kwargs):
        from exmc.ir.dists.continuous import scale_or_precision
        super().__init__(*args, **kwargs)
        scale_or_precision(self)

    def random(self, rng, v, size):
        draws = rng.lognormal(v["mu"], v["sigma"], size)
        return np.where(rng.uniform(size=size) < v["psi"], draws, 0.0)


# ---- families with a vector parameter ------------------------------------------------------
def _probabilities_sum_to_one(dist, key):
    """PyMC's handling of constant probabilities: negative ones refused, others rescaled to sum 1."""
    value = dist.param_exprs.get(key)
    if value is None or value.op != "const":
        return
    p = np.asarray(value.value, dtype=float)
    if np.any(p < 0):
        raise ValueError(f"{dist.family} needs {key} >= 0, got {key}={p!r}")
    total = p.sum(axis=-1, keepdims=True)
    if not np.allclose(total, 1.0):
        shown = np.squeeze(total)
        shown = f"{float(shown):g}" if shown.ndim == 0 else str(shown.tolist())
        warnings.warn(f"{dist.family}: {key} sums to {shown}, not 1; it is rescaled",
                      UserWarning, stacklevel=3)
        dist.param_exprs[key] = as_expr(p / total)


def _categorical_draws(rng, p, size):
    """Category indices of shape ``size`` for probability vectors p (..., k) (rows sum to 1)."""
    p = np.asarray(p, dtype=float)
    size = tuple(p.shape[:-1]) if size is None else ((size,) if np.isscalar(size) else tuple(size))
    cumulative = np.cumsum(np.broadcast_to(p, size + p.shape[-1:]), axis=-1)
    u = rng.uniform(size=size)[..., None] * cumulative[..., -1:]
    return np.minimum((u >= cumulative).sum(axis=-1), p.shape[-1] - 1).astype(float)


class Categorical(_ProbabilityOrLogit):
    """Categorical(p=...) or Categorical(logit_p=...): an index 0..k-1 with p (..., k).

    ``p`` is normalised to sum 1 (PyMC rescales constant ``p``, with a warning);
    ``logit_p`` gives p = softmax(logit_p).
    """

    family = "Categorical"
    params = ("p", "logit_p")
    defaults = {"p": None, "logit_p": None}
    param_ndim = {"p": 1, "logit_p": 1}
    discrete = True
    lower, open_support = 0.0, False
    checks = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _probabilities_sum_to_one(self, "p")

    def support_exprs(self):
        vector = self.param_exprs.get("p", self.param_exprs.get("logit_p"))
        k = np.shape(vector.value)[-1] if vector.op == "const" and np.ndim(vector.value) else None
        return as_expr(0.0), None if k is None else as_expr(float(k - 1))

    def random(self, rng, v, size):
        if "p" in v:
            p = np.asarray(v["p"], dtype=float)
            p = p / p.sum(axis=-1, keepdims=True)
        else:
            logits = np.asarray(v["logit_p"], dtype=float)
            p = np.exp(logits - logits.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
        return _categorical_draws(rng, p, size)


class OrderedLogistic(Distribution):
    """OrderedLogistic(eta, cutpoints): an index 0..K-1 with P(y <= k) = sigmoid(c_k - eta).

    ``cutpoints`` (..., K-1) must increase (give them an ordered prior); ``eta`` is the
    linear predictor.
    """

    family = "OrderedLogistic"
    params = ("eta", "cutpoints")
    param_ndim = {"cutpoints": 1}
    discrete = True
    lower, open_support = 0.0, False

    def support_exprs(self):
        c = self.param_exprs["cutpoints"]
        k = np.shape(c.value)[-1] if c.op == "const" and np.ndim(c.value) else None
        return as_expr(0.0), None if k is None else as_expr(float(k))

    def cumulative(self, v):
        eta = np.asarray(v["eta"], dtype=float)[..., None]
        return 1.0 / (1.0 + np.exp(-(np.asarray(v["cutpoints"], dtype=float) - eta)))

    def random(self, rng, v, size):
        below = self.cumulative(v)  # P(y <= k), k = 0..K-2
        ones = np.ones(below.shape[:-1] + (1,))
        p = np.diff(np.concatenate([0.0 * ones, below, ones], axis=-1), axis=-1)
        return _categorical_draws(rng, np.clip(p, 0.0, None), size)


class OrderedProbit(OrderedLogistic):
    """OrderedProbit(eta, cutpoints, sigma=1): P(y <= k) = Phi((c_k - eta) / sigma)."""

    family = "OrderedProbit"
    params = ("eta", "cutpoints", "sigma")
    defaults = {"sigma": 1.0}
    checks = (("sigma", ">", 0.0),)

    def cumulative(self, v):
        from scipy.special import ndtr
        eta = np.asarray(v["eta"], dtype=float)[..., None]
        sigma = np.asarray(v["sigma"], dtype=float)[..., None]
        return ndtr((np.asarray(v["cutpoints"], dtype=float) - eta) / sigma)


def _counts_sum_to_n(dist, data, where):
    """ModelError unless each row of counts (..., k) sums to its n (a batch of n broadcasts)."""
    totals = np.asarray(data).sum(axis=-1)
    n = np.asarray(dist.param_exprs["n"].value, dtype=float)
    wrong = np.broadcast_to(totals != n, np.broadcast_shapes(totals.shape, n.shape))
    if np.any(wrong):
        row = int(np.flatnonzero(wrong.ravel())[0])
        raise ModelError(f"{where}: {dist.family} counts must sum to n along the last axis; row "
                         f"{row} sums to {np.broadcast_to(totals, wrong.shape).ravel()[row]:g}, "
                         f"n = {np.broadcast_to(n, wrong.shape).ravel()[row]:g}")


class Multinomial(Distribution):
    """Multinomial(n, p): counts (..., k) summing to ``n`` (data); ``p`` (..., k) is normalised."""

    family = "Multinomial"
    params = ("n", "p")
    data_params = ("n",)
    event_ndim = 1
    param_ndim = {"p": 1}
    discrete = True
    lower, open_support = 0.0, False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _probabilities_sum_to_one(self, "p")

    def check_observed(self, data, where):
        _counts_sum_to_n(self, data, where)

    def random(self, rng, v, size):
        p = np.asarray(v["p"], dtype=float)
        p = p / p.sum(axis=-1, keepdims=True)
        size = tuple(p.shape) if size is None else tuple(size)
        n = np.broadcast_to(np.asarray(v["n"]).astype(int), size[:-1]) if size[:-1] else \
            int(np.asarray(v["n"]).ravel()[0])
        return rng.multinomial(n, np.broadcast_to(p, size)).astype(float)


class DirichletMultinomial(Distribution):
    """DirichletMultinomial(n, a): Multinomial(n, p) counts with p ~ Dirichlet(a); ``n`` is data."""

    family = "DirichletMultinomial"
    params = ("n", "a")
    data_params = ("n",)
    event_ndim = 1
    param_ndim = {"a": 1}
    discrete = True
    lower, open_support = 0.0, False
    checks = (("a", ">", 0.0),)

    def check_observed(self, data, where):
        _counts_sum_to_n(self, data, where)

    def random(self, rng, v, size):
        a = np.asarray(v["a"], dtype=float)
        size = tuple(a.shape) if size is None else tuple(size)
        g = rng.standard_gamma(np.broadcast_to(a, size))
        p = g / g.sum(axis=-1, keepdims=True)
        n = np.broadcast_to(np.asarray(v["n"]).astype(int), size[:-1]) if size[:-1] else \
            int(np.asarray(v["n"]).ravel()[0])
        return rng.multinomial(n, p).astype(float)
