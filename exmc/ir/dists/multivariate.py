"""Multivariate families: a value with event dimensions (a vector, a Cholesky factor)."""
import numpy as np

from exmc.ir.dists.base import Distribution, ModelError, normalize_shape


class MvNormal(Distribution):
    """MvNormal(mu, cov=...) or MvNormal(mu, chol=...): a normal vector of size k.

    ``mu`` (..., k); ``cov`` (k, k) symmetric positive definite (only its lower
    triangle is read) or ``chol`` (k, k) its lower Cholesky factor, as in PyMC.
    A computed ``cov`` is factorised in the model (differentiably); a constant one
    once, when the model is compiled.
    """

    family = "MvNormal"
    params = ("mu", "cov", "chol")
    defaults = {"cov": None, "chol": None}
    event_ndim = 1
    param_ndim = {"mu": 1, "cov": 2, "chol": 2}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        given = [k for k in ("cov", "chol") if k in self.param_exprs]
        if len(given) != 1:
            raise TypeError(f"MvNormal needs exactly one of cov and chol, got "
                            f"{', '.join(given) or 'neither'}")

    def value_shape(self, param_shapes, shape, where):
        k = param_shapes["mu"][-1:] if param_shapes["mu"] else None
        matrix = param_shapes.get("cov", param_shapes.get("chol"))
        if len(matrix) != 2 or matrix[0] != matrix[1] or (k and matrix[0] != k[0]):
            raise ModelError(f"{where}: MvNormal needs mu of shape (k,) and a (k, k) matrix, got "
                             f"mu {param_shapes['mu']} and {matrix}")
        return super().value_shape(param_shapes, shape, where)

    def expand(self, value):
        if "chol" in self.param_exprs:
            return [(self, value)]
        from exmc import math as em
        chol = MvNormal(self.param_exprs["mu"], chol=em.cholesky(self.param_exprs["cov"]))
        return [(chol, value)]

    def random(self, rng, v, size):
        """Draws of shape ``size`` (batch shape, then k); ``mu`` and the matrix may carry
        batch axes in front of their event axes (one matrix per draw)."""
        chol = np.asarray(v["chol"] if "chol" in v else np.linalg.cholesky(v["cov"]), dtype=float)
        mu = np.asarray(v["mu"], dtype=float)
        size = _event_size(size, mu.shape[-1:] or chol.shape[-1:], mu.shape)
        z = rng.standard_normal(size)
        return mu + np.matmul(chol, z[..., None])[..., 0]


class Dirichlet(Distribution):
    """Dirichlet(a): a point of the simplex of size k (positive, summing to 1); ``a`` (k,) > 0."""

    family = "Dirichlet"
    params = ("a",)
    event_ndim = 1
    param_ndim = {"a": 1}
    transform = "simplex"
    checks = (("a", ">", 0.0),)

    def random(self, rng, v, size):
        """Draws of shape ``size`` (batch shape, then k); ``a`` may carry batch axes."""
        a = np.asarray(v["a"], dtype=float)
        size = _event_size(size, a.shape[-1:], a.shape)
        if a.ndim == 1:  # NumPy's own sampler, exact for small concentrations too
            return rng.dirichlet(a, size[:-1] or None)
        g = rng.standard_gamma(np.broadcast_to(a, size))
        return g / g.sum(axis=-1, keepdims=True)


class LKJCorrCholesky(Distribution):
    """LKJCorrCholesky(eta, n): the lower Cholesky factor (n, n) of an LKJ(eta) correlation matrix.

    The density is that of Stan's ``lkj_corr_cholesky`` (over the factor's
    strictly lower entries); ``LKJCholeskyCov`` builds a covariance factor from it.
    """

    family = "LKJCorrCholesky"
    params = ("eta",)
    event_ndim = 2
    param_ndim = {"eta": 0}
    transform = "corr_cholesky"
    checks = (("eta", ">", 0.0),)

    def __init__(self, eta=1.0, n=None, shape=None, **kwargs):
        if n is None and shape is not None:
            n = normalize_shape(shape)[-1]
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
            raise TypeError(f"LKJCorrCholesky needs n, an integer >= 2, got {n!r}")
        super().__init__(eta, shape=(int(n), int(n)), **kwargs)

    def value_shape(self, param_shapes, shape, where):
        if param_shapes["eta"] != ():
            raise ModelError(f"{where}: LKJCorrCholesky's eta must be a scalar, got shape "
                             f"{param_shapes['eta']}")
        return tuple(shape)

    def random(self, rng, v, size):
        """Draws by the onion method (Lewandowski, Kurowicka and Joe 2009, section 3.2).

        ``size``: the batch shape then (n, n); ``eta`` a number or an array of the batch shape.
        All draws are made at once, one row of the factor after another.
        """
        n = self.shape[0]
        size = _event_size(size, (n, n), np.shape(v["eta"]) + (n, n))
        batch = size[:-2]
        eta = np.broadcast_to(np.asarray(v["eta"], dtype=float), batch)
        out = np.zeros(batch + (n, n))
        out[..., 0, 0] = 1.0
        beta = eta + (n - 2) / 2.0
        r = 2.0 * rng.beta(beta, beta) - 1.0
        out[..., 1, 0], out[..., 1, 1] = r, np.sqrt(1.0 - r * r)
        for k in range(2, n):
            beta = beta - 0.5
            y = rng.beta(k / 2.0, beta)
            u = rng.standard_normal(batch + (k,))
            u /= np.linalg.norm(u, axis=-1, keepdims=True)
            out[..., k, :k] = np.sqrt(y)[..., None] * u
            out[..., k, k] = np.sqrt(1.0 - y)
        return out


def _event_size(size, event_shape, implied):
    """The full shape of a draw: ``size`` as given (an int: that many draws of the event),
    or the parameters' own shape ``implied`` when None."""
    if size is None:
        return tuple(implied)
    if isinstance(size, (int, np.integer)):
        return (int(size),) + tuple(event_shape)
    return tuple(size)

__all__ = ["MvNormal", "Dirichlet", "LKJCorrCholesky"]
