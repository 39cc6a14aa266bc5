"""Families defined through other terms: Gaussian random walk and custom densities."""
import numpy as np

from exmc.ir.dists.base import Distribution
from exmc.ir.dists.continuous import Normal
from exmc.ir.expr import Expr, rewrite


class GaussianRandomWalk(Distribution):
    """GaussianRandomWalk(mu=0, sigma=1, init=Normal(0, 100), shape=T).

    ``x[0] ~ init`` and ``x[t] - x[t-1] ~ Normal(mu, sigma)`` for t >= 1; the
    drift ``mu`` and ``sigma`` are scalars (or expressions) shared by all steps.
    """

    family = "GaussianRandomWalk"
    params = ("mu", "sigma", "init")
    defaults = {"mu": 0.0, "sigma": 1.0, "init": None}
    dist_params = ("init",)
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "init" not in self.param_exprs:
            self.param_exprs["init"] = Normal(0.0, 100.0)
        if self.shape is None or len(self.shape) != 1:
            raise TypeError("GaussianRandomWalk needs a 1-d shape, e.g. shape=100")

    def expand(self, value):
        steps = Normal(self.param_exprs["mu"], self.param_exprs["sigma"])
        terms = [(self.param_exprs["init"], value[0])]
        if self.shape[0] > 1:
            terms.append((steps, value[1:] - value[:-1]))
        return terms

    def random(self, rng, v, size):
        init = self.param_exprs["init"]
        size = tuple(size) if size is not None else self.shape
        start = init.random(rng, v["init"], size[:-1] + (1,))
        steps = rng.normal(v["mu"], v["sigma"], size[:-1] + (size[-1] - 1,))
        return np.cumsum(np.concatenate([start, steps], axis=-1), axis=-1)


class Custom(Distribution):
    """Custom(logp=expr, support="real", shape=None): a density given as an expression.

    ``logp`` is an expression of ``exmc.value`` (this variable's value) and of
    other variables; it is summed if it has elements.  ``support`` is
    ``"real"``, ``"positive"``, ``"unit"`` or a ``(lower, upper)`` pair, and
    picks the transform.  It is data, so it serialises and distributes.
    """

    family = "Custom"
    params = ("logp", "lower", "upper")
    defaults = {"lower": None, "upper": None}
    SUPPORTS = {"real": (None, None), "positive": (0.0, None), "unit": (0.0, 1.0)}

    def __init__(self, logp, support="real", **kwargs):
        if isinstance(support, str):
            if support not in self.SUPPORTS:
                raise TypeError(f"Custom support must be one of {sorted(self.SUPPORTS)} or a "
                                f"(lower, upper) pair, got {support!r}")
            lower, upper = self.SUPPORTS[support]
        else:
            lower, upper = support
        super().__init__(logp, lower, upper, **kwargs)
        self.lower = None if lower is None else "lower"
        self.upper = None if upper is None else "upper"

    @classmethod
    def from_params(cls, params, shape):
        return cls(params["logp"], support=(params.get("lower"), params.get("upper")), shape=shape)

    def expand(self, value):
        return [("logp", substitute_value(self.param_exprs["logp"], value))]


def substitute_value(expr: Expr, value: Expr) -> Expr:
    """``expr`` with every ``exmc.value`` placeholder replaced by ``value``; sharing is kept."""
    return rewrite(expr, lambda leaf: value if leaf.op == "value" else leaf)


class ZeroSumNormal(Distribution):
    """ZeroSumNormal(sigma=1, shape=k): a normal vector constrained to sum to zero.

    The value lives on the (k - 1)-dimensional subspace of zero-sum vectors with
    density N(0, sigma^2 I) there (the projection of k independent normals), so
    each element has variance sigma^2 (k - 1) / k, as in PyMC.  It is sampled
    through the isometric zero-sum transform.
    """

    family = "ZeroSumNormal"
    params = ("sigma",)
    defaults = {"sigma": 1.0}
    transform = "zerosum"
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.shape is None or len(self.shape) != 1 or self.shape[0] < 2:
            raise TypeError("ZeroSumNormal needs a 1-d shape of at least 2, e.g. shape=5")

    def expand(self, value):
        from exmc import math as em
        sigma, k = self.param_exprs["sigma"], self.shape[0]
        z = value / sigma
        return [("logp", -0.5 * em.sum(z * z) - (k - 1) * (em.log(sigma) + LOG_SQRT_2PI))]

    def random(self, rng, v, size):
        size = tuple(size) if size is not None else self.shape
        x = rng.normal(0.0, 1.0, size) * v["sigma"]
        return x - x.mean(axis=-1, keepdims=True)


LOG_SQRT_2PI = 0.5 * float(np.log(2.0 * np.pi))

__all__ = ["GaussianRandomWalk", "Custom", "ZeroSumNormal"]
