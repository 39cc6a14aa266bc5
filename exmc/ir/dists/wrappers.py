"""Distributions made from other families: Truncated, Censored, Mixture, NormalMixture, Potential.

Each is written, at lowering time, as an expression of the ``family_fn`` op (a
scalar family's log density, log cdf or log ccdf at every element, with the
family's exact kernel gradients) and of ordinary ops, so it needs no kernel of
its own and works for every family whose kernels ``exmc/compiler/families.py``
registers (a log cdf and log ccdf for Truncated and Censored).  Their log
densities are per observation (the ``"loglik"`` term), so an observed wrapper
has a pointwise log-likelihood like any family.
"""
from __future__ import annotations

import numpy as np

from exmc import math as em
from exmc.ir.dists.base import Distribution, ModelError
from exmc.ir.dists.composite import Custom
from exmc.ir.expr import Expr, as_expr

LOG_HALF = float(np.log(0.5))
TINY = 1e-300  # keeps log1mexp's unused branch (and its zero adjoint) finite


def kernel_of(dist: Distribution, need=(), role="wrapped"):
    """The compiled kernels of a scalar ``dist``; TypeError naming the family if it has none.

    ``need``: kernel functions that must exist ("logcdf", "logccdf").  The IR asks
    the compiler's registry here because that registry is what can be computed.
    """
    from exmc.compiler.families import KERNELS
    if isinstance(dist, type) and issubclass(dist, Distribution):
        raise TypeError(f"the {role} distribution must be called with its parameters, e.g. "
                        f"{dist.__name__}(...)")
    if not isinstance(dist, Distribution):
        raise TypeError(f"the {role} distribution must be a distribution such as Normal(0, 1), "
                        f"got {type(dist).__name__}")
    kernel = KERNELS.get((dist.family, tuple(dist.param_exprs)))
    if kernel is None or kernel.has_array_args:  # Categorical: a scalar value, a vector p
        raise TypeError(f"{dist.family} cannot be {role}: only scalar families with compiled "
                        f"kernels can")
    missing = [fn for fn in need if getattr(kernel, fn) is None]
    if missing:
        with_cdf = sorted({f for (f, _), k in KERNELS.items() if k.logcdf and k.logccdf})
        raise TypeError(f"{dist.family} has no {' or '.join(missing)}, so it cannot be {role}; "
                        f"families with both: {', '.join(with_cdf)}")
    return kernel


def family_fn(dist: Distribution, fn: str, x) -> Expr:
    """``dist``'s log density (fn "logp"), log cdf or log ccdf at each element of ``x``."""
    params = tuple(dist.param_exprs)
    return Expr("family_fn", (as_expr(x), *dist.param_exprs.values()), (dist.family, params, fn))


def _bound(value, sign):
    """None for an absent or infinite bound (PyMC's -inf / inf), else the value."""
    if value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and np.isinf(value) \
            and np.sign(value) == sign:
        return None
    return value


def _values(v):
    """The parameter values of a wrapped distribution from a wrapper's values dict entry."""
    return v if isinstance(v, dict) else {}


class Truncated(Distribution):
    """Truncated(dist, lower=None, upper=None): ``dist`` restricted to [lower, upper].

    log p(x) = log p_dist(x) - log(F(upper) - F(lower)) for lower <= x <= upper,
    the difference taken in whichever tail keeps it exact (through log1mexp of
    log cdfs, or of log ccdfs above the median).  ``dist`` is any scalar family
    with a log cdf and log ccdf; the bounds are numbers, arrays or expressions,
    and at least one is given (None, -inf or inf: no bound on that side).
    """

    family = "Truncated"
    params = ("dist", "lower", "upper")
    defaults = {"lower": None, "upper": None}
    dist_params = ("dist",)

    def __init__(self, dist, lower=None, upper=None, **kwargs):
        lower, upper = _bound(lower, -1), _bound(upper, 1)
        if lower is None and upper is None:
            raise TypeError("Truncated needs a lower or an upper bound")
        kernel_of(dist, ("logcdf", "logccdf"), "truncated")
        super().__init__(dist, lower, upper, **kwargs)
        self.discrete = dist.discrete
        self.open_support = dist.open_support
        self.lower = "lower" if lower is not None else dist.lower
        self.upper = "upper" if upper is not None else dist.upper

    @classmethod
    def from_params(cls, params, shape):
        return cls(params["dist"], params.get("lower"), params.get("upper"), shape=shape)

    def support_exprs(self):
        base_lower, base_upper = self.param_exprs["dist"].support_exprs()
        return (self.param_exprs.get("lower", base_lower), self.param_exprs.get("upper", base_upper))

    def parts(self):
        return (("dist", self.param_exprs["dist"]),)

    def log_normalizer(self):
        """log(F(upper) - F(lower)) as an expression of the bounds and the parameters."""
        dist, lower, upper = (self.param_exprs.get(k) for k in self.params)
        if dist.discrete and lower is not None:  # P(X >= lower) = P(X > lower - 1), as PyMC
            lower = lower - 1.0
        if upper is None:
            return family_fn(dist, "logccdf", lower)
        if lower is None:
            return family_fn(dist, "logcdf", upper)
        below_u, below_l = family_fn(dist, "logcdf", upper), family_fn(dist, "logcdf", lower)
        above_l, above_u = family_fn(dist, "logccdf", lower), family_fn(dist, "logccdf", upper)
        by_cdf = below_u + em.log1mexp(em.maximum(below_u - below_l, TINY))
        by_ccdf = above_l + em.log1mexp(em.maximum(above_l - above_u, TINY))
        return em.where(em.lt(above_l, LOG_HALF), by_ccdf, by_cdf)  # lower above the median

    def expand(self, value):
        dist = self.param_exprs["dist"]
        return [("loglik", family_fn(dist, "logp", value) - self.log_normalizer())]

    def random(self, rng, v, size):
        """The family's own draws kept where they fall inside the bounds; where too few do
        (a bound far in a tail), the inverse of the family's cdf at uniform draws.

        The inverse is found by bisection on the log cdf, or the log ccdf when the lower
        bound is above the median, so it stays exact deep in either tail.
        """
        dist, lower, upper = self.param_exprs["dist"], v.get("lower"), v.get("upper")
        values = _values(v["dist"])
        size = tuple(np.atleast_1d(size)) if size is not None else self.shape
        lo = np.broadcast_to(-np.inf if lower is None else lower, size)
        hi = np.broadcast_to(np.inf if upper is None else upper, size)
        out = np.full(size, np.nan)
        for _ in range(REJECTION_ROUNDS):
            todo = np.isnan(out)
            if not todo.any():
                return out
            draw = np.asarray(dist.random(rng, values, size), dtype=float)
            keep = todo & (draw >= lo) & (draw <= hi)
            out[keep] = draw[keep]
        todo = np.isnan(out)
        params = {k: np.broadcast_to(np.asarray(values[k], dtype=float), size)[todo]
                  for k in dist.param_exprs}
        out[todo] = _inverse_cdf(dist, params, lo[todo], hi[todo], rng.uniform(size=todo.sum()))
        return out


REJECTION_ROUNDS = 20  # then the inverse cdf for what is left: a bound far in a tail
BISECTIONS = 200       # halvings of a bracket: beyond float64 resolution from any width


def _inverse_cdf(dist, params, lower, upper, u):
    """The value at probability ``u`` of ``dist`` restricted to [lower, upper] (1-d arrays of
    one length, parameters by name), found by bisection on its log cdf or log ccdf."""
    kernel = kernel_of(dist, ("logcdf", "logccdf"), "truncated")
    names = tuple(dist.param_exprs)
    logcdf, logccdf = np.frompyfunc(kernel.logcdf, 1 + len(names), 1), \
        np.frompyfunc(kernel.logccdf, 1 + len(names), 1)
    args = [params[k] for k in names]

    def log_f(x, upper_tail):  # log F(x), or -log S(x): both increase with x
        return np.where(upper_tail, -logccdf(x, *args).astype(float),
                        logcdf(x, *args).astype(float))

    step_down = 1.0 if dist.discrete else 0.0  # P(X >= lower) = S(lower - 1) for integers
    upper_tail = logccdf(np.where(np.isfinite(lower), lower, 0.0), *args).astype(float) < LOG_HALF
    upper_tail &= np.isfinite(lower)
    with np.errstate(divide="ignore", invalid="ignore"):
        at_lower = np.where(np.isfinite(lower), log_f(lower - step_down, upper_tail),
                            np.where(upper_tail, 0.0, -np.inf))
        at_upper = np.where(np.isfinite(upper), log_f(upper, upper_tail),
                            np.where(upper_tail, np.inf, 0.0))
        # F(x) = F(u) (1 - (1 - p)(1 - F(l) / F(u))), S(x) = S(l) (1 - p (1 - S(u) / S(l)))
        target = np.where(
            upper_tail,
            at_lower - np.log1p(-u * -np.expm1(at_lower - at_upper)),
            at_upper + np.log1p(-(1.0 - u) * -np.expm1(at_lower - at_upper)))
    # A finite bracket [a, b] with log_f(a) < target <= log_f(b): from a finite bound, steps
    # doubling outward (at most 1100 doublings: past float64's range).
    a = np.where(np.isfinite(lower), lower - step_down, np.nan)
    b = np.where(np.isfinite(upper), upper, np.nan)
    for side, other, sign in ((a, b, -1.0), (b, a, 1.0)):
        missing = np.isnan(side)
        width = np.maximum(1.0, np.abs(np.where(missing, other, 0.0)))
        point = other.copy()
        for _ in range(1100):
            if not missing.any():
                break
            point = np.where(missing, other + sign * width, point)
            reached = log_f(point, upper_tail) < target if sign < 0 else \
                log_f(point, upper_tail) >= target
            side[missing & reached] = point[missing & reached]
            missing &= ~reached
            width *= 2.0
    for _ in range(BISECTIONS):
        middle = 0.5 * (a + b)
        if dist.discrete:
            middle = np.floor(middle)
        above = log_f(middle, upper_tail) >= target
        a, b = np.where(above, a, middle), np.where(above, middle, b)
        if np.all(b - a <= (1.0 if dist.discrete else 4e-16 * np.maximum(abs(a), abs(b)))):
            break
    return b


class Censored(Distribution):
    """Censored(dist, lower=None, upper=None): observations of ``dist`` clipped to [lower, upper].

    An observation at or below ``lower`` has probability F(lower), at or above
    ``upper`` 1 - F(upper), and between them the density of ``dist`` (PyMC's
    Censored).  Observed only: its value is part discrete.
    """

    family = "Censored"
    params = ("dist", "lower", "upper")
    defaults = {"lower": None, "upper": None}
    dist_params = ("dist",)
    observed_only = True

    def __init__(self, dist, lower=None, upper=None, **kwargs):
        lower, upper = _bound(lower, -1), _bound(upper, 1)
        need = (("logcdf",) if lower is not None else ()) + (("logccdf",) if upper is not None else ())
        kernel_of(dist, need, "censored")
        super().__init__(dist, lower, upper, **kwargs)
        self.discrete = dist.discrete
        self.open_support = False  # data on a bound are the censored ones
        self.lower = "lower" if lower is not None else dist.lower
        self.upper = "upper" if upper is not None else dist.upper

    @classmethod
    def from_params(cls, params, shape):
        return cls(params["dist"], params.get("lower"), params.get("upper"), shape=shape)

    support_exprs = Truncated.support_exprs
    parts = Truncated.parts

    def expand(self, value):
        dist, lower, upper = (self.param_exprs.get(k) for k in self.params)
        logp = family_fn(dist, "logp", value)
        if upper is not None:  # the mass at or above upper: for counts, above upper - 1
            above = family_fn(dist, "logccdf", upper - 1.0 if dist.discrete else upper)
            logp = em.where(em.ge(value, upper), above, logp)
        if lower is not None:
            logp = em.where(em.le(value, lower), family_fn(dist, "logcdf", lower), logp)
        return [("loglik", logp)]

    def random(self, rng, v, size):
        """Draws of ``dist`` clipped to the bounds."""
        dist = self.param_exprs["dist"]
        draw = np.asarray(dist.random(rng, _values(v["dist"]), size), dtype=float)
        lower = -np.inf if v.get("lower") is None else v["lower"]
        upper = np.inf if v.get("upper") is None else v["upper"]
        return np.clip(draw, lower, upper)


class Mixture(Distribution):
    """Mixture(w, comp_dists): log p(x) = logsumexp_k(log w_k + log p_k(x)), computed stably.

    ``w`` (..., K) are the weights (positive, summing to 1 along the last axis;
    a Dirichlet variable, typically).  ``comp_dists`` is a list of K scalar
    distributions, or one distribution whose parameters' last axis indexes the
    K components (``Normal(mu=[-1, 1], sigma=1)``), as in PyMC.
    """

    family = "Mixture"
    params = ("w", "comp_dists")
    dist_params = ("comp_dists",)
    param_ndim = {"w": 1}
    checks = (("w", ">=", 0.0),)

    def __init__(self, w, comp_dists, **kwargs):
        for comp in comp_dists if isinstance(comp_dists, (list, tuple)) else [comp_dists]:
            kernel_of(comp, (), "a mixture component")
        super().__init__(w, comp_dists, **kwargs)
        comps = self.components
        self.discrete = all(c.discrete for c in comps)
        if len({c.discrete for c in comps}) > 1:
            raise TypeError("Mixture components must be all continuous or all discrete")
        self.open_support = all(c.open_support for c in comps)
        lowers = {c.lower if not isinstance(c.lower, str) else "param" for c in comps}
        uppers = {c.upper if not isinstance(c.upper, str) else "param" for c in comps}
        # The support is the union of the components': a common numeric bound, or none.
        self.lower = float(min(lowers)) if None not in lowers and "param" not in lowers else None
        self.upper = float(max(uppers)) if None not in uppers and "param" not in uppers else None

    @property
    def components(self):
        comps = self.param_exprs["comp_dists"]
        return comps if isinstance(comps, list) else [comps]

    @classmethod
    def from_params(cls, params, shape):
        return cls(params["w"], params["comp_dists"], shape=shape)

    def parts(self):
        comps = self.param_exprs["comp_dists"]
        if isinstance(comps, list):
            return tuple((f"comp_dists[{n}]", c) for n, c in enumerate(comps))
        return (("comp_dists", comps),)

    def value_shape(self, param_shapes, shape, where):
        k = param_shapes["w"][-1:] if param_shapes["w"] else ()
        if not k:
            raise ModelError(f"{where}: Mixture's w needs a last axis of the K components, got "
                             f"shape {param_shapes['w']}")
        batch = [param_shapes["w"][:-1]]
        listed = isinstance(self.param_exprs.get("comp_dists"), list)
        if listed and len(self.components) != k[0]:
            raise ModelError(f"{where}: Mixture has {len(self.components)} components but w has "
                             f"{k[0]} weights")
        for key, s in param_shapes.items():
            if key == "w":
                continue
            if not listed:  # one distribution: its last axis indexes the components
                if s and s[-1] not in (1, k[0]):
                    raise ModelError(f"{where}: Mixture component parameter {key} has shape {s}, "
                                     f"whose last axis should be the {k[0]} components")
                s = s[:-1]
            batch.append(s)
        try:
            batch = tuple(np.broadcast_shapes(*batch))
        except ValueError:
            raise ModelError(f"{where}: Mixture parameter shapes {dict(param_shapes)} do not "
                             f"broadcast") from None
        if shape is None:
            return batch
        try:
            fits = tuple(np.broadcast_shapes(tuple(shape), batch)) == tuple(shape)
        except ValueError:
            fits = False
        if not fits:
            raise ModelError(f"{where}: Mixture parameter shapes {dict(param_shapes)} do not fit "
                             f"the variable's shape {tuple(shape)}")
        return tuple(shape)

    def component_logps(self, value):
        """(..., K) expression: each component's log density at each element of ``value``."""
        comps = self.param_exprs["comp_dists"]
        if isinstance(comps, list):
            return em.stack([family_fn(c, "logp", value) for c in comps], axis=-1)
        return family_fn(comps, "logp", em.stack([value], axis=-1))

    def expand(self, value):
        log_w = em.log(self.param_exprs["w"])
        return [("loglik", em.logsumexp(log_w + self.component_logps(value), axis=-1))]

    def random(self, rng, v, size):
        """Draws by choosing a component with probability w, then drawing from it."""
        size = tuple(np.atleast_1d(size)) if size is not None else self.shape
        w = np.asarray(v["w"], dtype=float)
        k = w.shape[-1]
        w = np.broadcast_to(w, size + (k,))
        u = rng.uniform(size=size + (1,))
        choice = np.minimum((np.cumsum(w, axis=-1) < u * w.sum(-1, keepdims=True)).sum(-1), k - 1)
        comps = self.param_exprs["comp_dists"]
        if isinstance(comps, list):
            draws = np.stack([np.broadcast_to(c.random(rng, _values(vc), size), size)
                              for c, vc in zip(comps, v["comp_dists"])], axis=-1)
        else:
            values = {}
            for key, val in v["comp_dists"].items():
                val = np.asarray(val, dtype=float)
                # the components' axis is last: a parameter without it gains one before it
                values[key] = val[..., None, :] if 0 < val.ndim <= len(size) else val
            draws = comps.random(rng, values, size + (k,))
        return np.take_along_axis(np.asarray(draws, dtype=float), choice[..., None], -1)[..., 0]


class NormalMixture(Mixture):
    """NormalMixture(w, mu, sigma): Mixture(w, Normal(mu, sigma)) with ``mu``, ``sigma`` (..., K)."""

    family = "NormalMixture"
    params = ("w", "mu", "sigma")
    dist_params = ()
    param_ndim = {"w": 1, "mu": 1, "sigma": 1}
    checks = (("w", ">=", 0.0), ("sigma", ">", 0.0))

    def __init__(self, w, mu, sigma, **kwargs):
        Distribution.__init__(self, w, mu, sigma, **kwargs)
        self.discrete, self.open_support, self.lower, self.upper = False, True, None, None

    @classmethod
    def from_params(cls, params, shape):
        return cls(params["w"], params["mu"], params["sigma"], shape=shape)

    @property
    def components(self):
        from exmc.ir.dists.continuous import Normal
        return [Normal(self.param_exprs["mu"], self.param_exprs["sigma"])]

    def parts(self):
        return ()

    def value_shape(self, param_shapes, shape, where):
        shapes = {"w": param_shapes["w"], "comp_dists.mu": param_shapes["mu"],
                  "comp_dists.sigma": param_shapes["sigma"]}
        return Mixture.value_shape(self, shapes, shape, where)

    def component_logps(self, value):
        return family_fn(self.components[0], "logp", em.stack([value], axis=-1))

    def random(self, rng, v, size):
        comps = {"mu": v["mu"], "sigma": v["sigma"]}
        return Mixture.random(self._as_mixture(), rng, {"w": v["w"], "comp_dists": comps}, size)

    def _as_mixture(self):
        out = Mixture.__new__(Mixture)
        out.param_exprs = {"w": self.param_exprs["w"], "comp_dists": self.components[0]}
        out.shape = self.shape
        return out


class Potential(Custom):
    """A term added to the model's log density (PyMC's ``pm.Potential``); not traced.

    Use ``Builder.potential(name, expr)``, or inside ``@exmc.model``
    ``Potential(name, expr)``.  ``expr`` is summed if it has elements.
    """

    family = "Potential"

    def __init__(self, name_or_logp, logp=None, **kwargs):
        if logp is None:  # Potential(expr), as Builder.potential and the wire make it
            super().__init__(name_or_logp, **kwargs)
        else:
            if not isinstance(name_or_logp, str):
                raise TypeError(f"Potential(name, expr) needs a name first, got "
                                f"{type(name_or_logp).__name__}")
            super().__init__(logp, name=name_or_logp, observed=np.zeros(()), **kwargs)

    @classmethod
    def from_params(cls, params, shape):
        return cls(params["logp"], shape=shape)


__all__ = ["Truncated", "Censored", "Mixture", "NormalMixture", "Potential"]
