"""Families defined through other terms: Gaussian random walk and custom densities."""
import numpy as np

from exmc.ir.dists.base import Distribution
from exmc.ir.dists.continuous import Normal
from exmc.ir.expr import Expr, rewrite


class GaussianRandomWalk(Distribution):
    """GaussianRandomWalk(mu=0, sigma=1, init=Normal(0, 100), shape=T or (B, T)).

    ``x[0] ~ init`` and ``x[t] - x[t-1] ~ Normal(mu, sigma)`` for t >= 1; the
    drift ``mu`` and ``sigma`` are scalars shared by all steps or vectors of one
    value per step, shape (T - 1,), as PyMC broadcasts them against the innovations.
    With shape (B, T), B independent walks along the last axis (PyMC's batch), ``mu``
    and ``sigma`` scalars or one per walk, shape (B,).
    """

    family = "GaussianRandomWalk"
    params = ("mu", "sigma", "init")
    defaults = {"mu": 0.0, "sigma": 1.0, "init": None}
    dist_params = ("init",)
    param_ndim = {"mu": 0, "sigma": 0}  # shapes checked by value_shape: per step, not per value
    checks = (("sigma", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "init" not in self.param_exprs:
            self.param_exprs["init"] = Normal(0.0, 100.0)
        _time_shape(self, "GaussianRandomWalk")

    def parts(self):
        return (("init", self.param_exprs["init"]),)

    def value_shape(self, param_shapes, shape, where):
        from exmc.ir.dists.base import ModelError
        batch = self.shape[:-1]
        each = f"one per walk, shape {batch}" if batch else \
            f"one value per step, shape {(self.shape[0] - 1,)}"
        for key, s in param_shapes.items():
            allowed = ((), (1,)) + ((batch,) if batch else ((self.shape[0] - 1,),))
            if key.startswith("init."):
                allowed = ((), (1,)) + ((batch,) if batch else ())
            if s not in allowed:
                raise ModelError(f"{where}: GaussianRandomWalk's {key} must be a scalar or "
                                 f"{each}, got shape {s}")
        return self.shape

    def expand(self, value):
        steps = Normal(self.param_exprs["mu"], self.param_exprs["sigma"])
        by_time = value.T  # (T,) or (T, B): time first, so rows index it
        terms = [(self.param_exprs["init"], by_time[0])]
        if self.shape[-1] > 1:
            terms.append((steps, by_time[1:] - by_time[:-1]))
        return terms

    def random(self, rng, v, size):
        init = self.param_exprs["init"]
        size = tuple(size) if size is not None else self.shape
        start = np.asarray(init.random(rng, v["init"], size[:-1]), dtype=float)[..., None]
        mu, sigma = (np.asarray(v[k], dtype=float) for k in ("mu", "sigma"))
        if len(self.shape) == 2:  # one per walk: against the steps' last axis
            mu, sigma = (a[..., None] if a.ndim else a for a in (mu, sigma))
        steps = rng.normal(mu, sigma, size[:-1] + (size[-1] - 1,))
        return np.cumsum(np.concatenate([start, steps], axis=-1), axis=-1)


def _time_shape(dist, name):
    """TypeError unless ``dist`` has a shape (T,) or (B, T): time on the last axis."""
    if dist.shape is None or len(dist.shape) not in (1, 2):
        raise TypeError(f"{name} needs a shape T or (B, T) (B series along the last axis), "
                        f"e.g. shape=100 or shape=(3, 100)")


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


class MvGaussianRandomWalk(Distribution):
    """MvGaussianRandomWalk(mu, cov=... or chol=..., init_dist=Normal(0, 100), shape=(T, k)).

    A random walk of vectors: ``x[0] ~ init_dist`` and ``x[t] - x[t-1] ~
    MvNormal(mu, cov)`` (vector innovations) for t >= 1, as PyMC's.
    """

    family = "MvGaussianRandomWalk"
    params = ("mu", "cov", "chol", "init_dist")
    defaults = {"mu": 0.0, "cov": None, "chol": None, "init_dist": None}
    dist_params = ("init_dist",)
    event_ndim = 2
    param_ndim = {"mu": 1, "cov": 2, "chol": 2}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "init_dist" not in self.param_exprs:
            self.param_exprs["init_dist"] = Normal(0.0, 100.0)
        if len([k for k in ("cov", "chol") if k in self.param_exprs]) != 1:
            raise TypeError("MvGaussianRandomWalk needs exactly one of cov and chol")
        if self.shape is None or len(self.shape) != 2:
            raise TypeError("MvGaussianRandomWalk needs a shape (T, k), e.g. shape=(100, 3)")

    def parts(self):
        return (("init_dist", self.param_exprs["init_dist"]),)

    def value_shape(self, param_shapes, shape, where):
        from exmc.ir.dists.base import ModelError
        k = self.shape[1]
        matrix = param_shapes.get("cov", param_shapes.get("chol"))
        if param_shapes["mu"] not in ((), (k,)) or matrix != (k, k):
            raise ModelError(f"{where}: MvGaussianRandomWalk of shape {self.shape} needs mu of "
                             f"shape ({k},) and a ({k}, {k}) matrix, got mu {param_shapes['mu']} "
                             f"and {matrix}")
        return self.shape

    def expand(self, value):
        from exmc.ir.dists.multivariate import MvNormal
        given = {k: v for k, v in self.param_exprs.items() if k in ("cov", "chol")}
        steps = MvNormal(self.param_exprs["mu"] + np.zeros(self.shape[1]), **given)
        terms = [(self.param_exprs["init_dist"], value[0])]
        if self.shape[0] > 1:
            terms += steps.expand(value[1:] - value[:-1])
        return terms

    def random(self, rng, v, size):
        from exmc.ir.dists.multivariate import MvNormal
        size = tuple(size) if size is not None else self.shape
        init = self.param_exprs["init_dist"]
        start = np.broadcast_to(init.random(rng, v["init_dist"], size[:-2] + (1, size[-1])),
                                size[:-2] + (1, size[-1]))
        # a parameter with a leading axis of draws (ancestral sampling) gains the step axis
        mu = np.asarray(v["mu"], dtype=float)
        given = {k: np.asarray(v[k], dtype=float) for k in ("cov", "chol") if k in v}
        given = {k: m[..., None, :, :] if m.ndim > 2 else m for k, m in given.items()}
        mu = mu[..., None, :] if mu.ndim > 1 else mu
        steps = MvNormal.random(self, rng, {"mu": mu, **given}, size[:-2] + (size[-2] - 1, size[-1]))
        return np.cumsum(np.concatenate([start, steps], axis=-2), axis=-2)


class AR(Distribution):
    """AR(rho, sigma=1 or tau, constant=False, init_dist=Normal(0, 100), shape=T or (B, T)).

    x[t] = c + sum_{i=1..p} rho_i x[t-i] + eps_t, eps_t ~ Normal(0, sigma), for
    t >= p, and ``x[:p] ~ init_dist``; as PyMC's AR, with ``constant=True`` the
    first element of ``rho`` is c and p = len(rho) - 1.  ``rho`` is a vector
    (constant or a variable) whose length gives the order; ``ar_order``, if
    given, is checked against it.  With shape (B, T), B independent series along the
    last axis (PyMC's batch): ``rho`` shared, shape (p,), or one row per series, (B, p);
    ``sigma`` and the constant scalars or one per series, (B,).
    """

    family = "AR"
    params = ("rho", "sigma", "init_dist", "constant")
    defaults = {"sigma": 1.0, "init_dist": None, "constant": None}
    dist_params = ("init_dist",)
    event_ndim = 1
    param_ndim = {"rho": 1, "sigma": 0, "constant": 0}
    checks = (("sigma", ">", 0.0),)

    def __init__(self, rho, sigma=None, tau=None, constant=False, init_dist=None, ar_order=None,
                 **kwargs):
        from exmc.ir.expr import as_expr
        if sigma is not None and tau is not None:
            raise TypeError("AR takes sigma or tau, not both")
        sigma = as_expr(tau) ** -0.5 if tau is not None else 1.0 if sigma is None else sigma
        if isinstance(constant, bool):  # PyMC's form: rho[0] is the constant
            rho, constant = (as_expr(rho)[1:], as_expr(rho)[0]) if constant else (rho, None)
        self.ar_order = ar_order
        init_dist = Normal(0.0, 100.0) if init_dist is None else init_dist
        super().__init__(rho, sigma, init_dist, constant, **kwargs)
        _time_shape(self, "AR")

    @classmethod
    def from_params(cls, params, shape):
        return cls(params["rho"], params.get("sigma"), constant=params.get("constant"),
                   init_dist=params.get("init_dist"), shape=shape)

    def parts(self):
        return (("init_dist", self.param_exprs["init_dist"]),)

    def value_shape(self, param_shapes, shape, where):
        from exmc.ir.dists.base import ModelError
        rho, batch, n = param_shapes["rho"], self.shape[:-1], self.shape[-1]
        for key in ("sigma", "constant"):
            if param_shapes.get(key, ()) not in ((), batch):
                raise ModelError(f"{where}: AR's {key} must be a scalar"
                                 f"{f' or one per series, shape {batch}' if batch else ''}, "
                                 f"got shape {param_shapes[key]}")
        if len(rho) not in (1, 1 + len(batch)) or tuple(rho[:-1]) not in ((), batch) \
                or not 1 <= rho[-1] < n:
            raise ModelError(f"{where}: AR's rho must be a vector of 1 to {n - 1} coefficients "
                             f"(the order){f', or one such row per series {batch}' if batch else ''}"
                             f", got shape {rho}")
        if self.ar_order is not None and self.ar_order != rho[-1]:
            raise ModelError(f"{where}: AR has ar_order={self.ar_order} but {rho[-1]} "
                             f"coefficients in rho (besides the constant)")
        self.order = rho[-1]  # from rho's shape, which the structure hash keeps
        return self.shape

    def expand(self, value):
        p, n = self.order, self.shape[-1]
        by_time = value.T  # (T,) or (T, B): time first, so rows index it
        lags = self.param_exprs["rho"].T  # (p,) or (p, B): lag first, each row per series
        mean = self.param_exprs.get("constant", 0.0)
        for i in range(1, p + 1):
            mean = mean + lags[i - 1] * by_time[p - i:n - i]
        return [(self.param_exprs["init_dist"], by_time[:p]),
                (Normal(mean, self.param_exprs["sigma"]), by_time[p:])]

    def random(self, rng, v, size):
        size = tuple(size) if size is not None else self.shape
        rho = np.asarray(v["rho"], dtype=float)
        p = rho.shape[-1]
        x = np.zeros(size)
        x[..., :p] = self.param_exprs["init_dist"].random(rng, v["init_dist"], size[:-1] + (p,))
        c = np.asarray(0.0 if v.get("constant") is None else v["constant"], dtype=float)
        noise = rng.normal(0.0, 1.0, size) * np.asarray(v["sigma"], dtype=float)[..., None]
        for t in range(p, size[-1]):
            x[..., t] = c + np.sum(rho[..., ::-1] * x[..., t - p:t], axis=-1) + noise[..., t]
        return x


LOG_SQRT_2PI = 0.5 * float(np.log(2.0 * np.pi))

__all__ = ["GaussianRandomWalk", "Custom", "ZeroSumNormal", "MvGaussianRandomWalk", "AR"]
