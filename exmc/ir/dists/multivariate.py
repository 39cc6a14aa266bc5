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

class MvStudentT(Distribution):
    """MvStudentT(nu, mu, scale=... | tau=... | chol=...): a Student-t vector of size k.

    ``nu`` > 0 degrees of freedom, ``mu`` (..., k), and one of ``scale`` (k, k)
    symmetric positive definite (PyMC's Sigma), ``tau`` its inverse (a precision)
    or ``chol`` the lower Cholesky factor L of ``scale``::

        log p(x) = lgamma((nu + k) / 2) - lgamma(nu / 2) - k/2 log(nu pi) - sum log diag(L)
                   - (nu + k) / 2 log(1 + |L^-1 (x - mu)|^2 / nu)

    written with registry ops (a triangular solve), so it needs no kernel.
    """

    family = "MvStudentT"
    params = ("nu", "mu", "scale", "tau", "chol")
    defaults = {"scale": None, "tau": None, "chol": None}
    event_ndim = 1
    param_ndim = {"nu": 0, "mu": 1, "scale": 2, "tau": 2, "chol": 2}
    checks = (("nu", ">", 0.0),)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        given = [k for k in ("scale", "tau", "chol") if k in self.param_exprs]
        if len(given) != 1:
            raise TypeError(f"MvStudentT needs exactly one of scale, tau and chol, got "
                            f"{', '.join(given) or 'neither'}")

    def value_shape(self, param_shapes, shape, where):
        if param_shapes["nu"] != ():
            raise ModelError(f"{where}: MvStudentT's nu must be a scalar, got shape "
                             f"{param_shapes['nu']}")
        k = param_shapes["mu"][-1:]
        matrix = next(param_shapes[m] for m in ("scale", "tau", "chol") if m in param_shapes)
        if len(matrix) != 2 or matrix[0] != matrix[1] or (k and matrix[0] != k[0]):
            raise ModelError(f"{where}: MvStudentT needs mu of shape (k,) and a (k, k) matrix, "
                             f"got mu {param_shapes['mu']} and {matrix}")
        self.k = matrix[0]
        return super().value_shape(param_shapes, shape, where)

    def expand(self, value):
        from exmc import math as em
        nu, mu = self.param_exprs["nu"], self.param_exprs["mu"]
        k, given = self.k, self.param_exprs
        if "tau" in given:  # scale^-1 = M M^T: z = M^T (x - mu), log det L = -log det M
            factor = em.cholesky(given["tau"])
            z = em.dot(em.transpose(factor), em.transpose(value - mu))
        else:
            factor = given["chol"] if "chol" in given else em.cholesky(given["scale"])
            z = em.solve_triangular(factor, em.transpose(value - mu))  # (k,) or (k, n)
        squared = em.sum(z * z, axis=0)
        log_det = em.sum(em.log(em.sum(factor * np.eye(k), axis=1)))
        log_det = -log_det if "tau" in given else log_det
        const = (em.lgamma(0.5 * (nu + k)) - em.lgamma(0.5 * nu)
                 - 0.5 * k * em.log(nu * np.pi) - log_det)
        return [("loglik", const - 0.5 * (nu + k) * em.log1p(squared / nu))]

    def random(self, rng, v, size):
        mu = np.asarray(v["mu"], dtype=float)
        scale = v["scale"] if "scale" in v else np.linalg.inv(v["tau"]) if "tau" in v else None
        chol = np.asarray(v["chol"] if scale is None else np.linalg.cholesky(scale), dtype=float)
        size = _event_size(size, chol.shape[-1:], np.broadcast_shapes(mu.shape, chol.shape[-1:]))
        z = rng.standard_normal(size)
        nu = np.asarray(v["nu"], dtype=float)
        nu = nu[..., None] if nu.ndim else nu  # one per draw: against the event axis
        w = rng.chisquare(nu, size[:-1] + (1,)) / nu
        return mu + np.matmul(chol, z[..., None])[..., 0] / np.sqrt(w)


class LKJCorr(Distribution):
    """LKJCorr(n, eta): an (n, n) correlation matrix C with density proportional to det(C)^(eta - 1).

    The value is the matrix itself (PyMC's ``LKJCorr(..., return_matrix=True)``),
    sampled through the ``corr`` transform (Stan's canonical partial correlations,
    then C = L L^T); the density is over C's strictly lower elements, normalised
    (Lewandowski, Kurowicka and Joe 2009).
    """

    family = "LKJCorr"
    params = ("eta",)
    event_ndim = 2
    param_ndim = {"eta": 0}
    transform = "corr"
    checks = (("eta", ">", 0.0),)

    def __init__(self, n=None, eta=1.0, shape=None, **kwargs):
        if n is None and shape is not None:
            n = normalize_shape(shape)[-1]
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
            raise TypeError(f"LKJCorr needs n, an integer >= 2, got {n!r}")
        super().__init__(eta, shape=(int(n), int(n)), **kwargs)

    @classmethod
    def from_params(cls, params, shape):
        return cls(shape[-1], params["eta"], shape=shape)

    value_shape = LKJCorrCholesky.value_shape

    def expand(self, value):
        from exmc import math as em
        eta, n = self.param_exprs["eta"], self.shape[0]
        constant = (n - 1) * em.lgamma(eta + 0.5 * (n - 1))
        for j in range(1, n):
            constant = constant - 0.5 * j * np.log(np.pi) - em.lgamma(eta + 0.5 * (n - 1 - j))
        return [("logp", constant + (eta - 1.0) * em.logdet(value))]

    def random(self, rng, v, size):
        L = LKJCorrCholesky.random(self, rng, v, size)
        return np.matmul(L, np.swapaxes(L, -1, -2))


class CAR(Distribution):
    """CAR(mu, W, alpha, tau): a conditional autoregressive vector (spatial models), as PyMC's.

    x ~ N(mu, (tau (D - alpha W))^-1) with ``W`` the (k, k) symmetric adjacency
    matrix (constant data), D = diag(row sums of W), ``alpha`` in (-1, 1) and
    ``tau`` > 0.  The log determinant uses the eigenvalues of D^-1/2 W D^-1/2,
    computed once (Jin, Carlin and Banerjee 2005).
    """

    family = "CAR"
    params = ("mu", "W", "alpha", "tau")
    data_params = ("W",)
    event_ndim = 1
    param_ndim = {"mu": 1, "W": 2, "alpha": 0, "tau": 0}
    checks = (("alpha", ">", -1.0), ("alpha", "<", 1.0), ("tau", ">", 0.0))

    def adjacency(self):
        W = self.param_exprs["W"]
        if W.op != "const":
            raise ModelError(f"{self.family}: W must be a constant array")
        W = np.asarray(W.value, dtype=float)
        if W.ndim != 2 or W.shape[0] != W.shape[1] or not np.allclose(W, W.T) \
                or np.any(W.sum(axis=1) <= 0):
            raise ModelError(f"{self.family}: W must be a symmetric (k, k) adjacency matrix in which "
                             f"every node has a neighbour")
        return W

    def value_shape(self, param_shapes, shape, where):
        try:
            W = self.adjacency()
        except ModelError as err:
            raise ModelError(f"{where}: {err}") from None
        shape = tuple(shape) if shape is not None else param_shapes["mu"][-1:] or W.shape[:1]
        if shape != W.shape[:1] or param_shapes["mu"] not in ((), shape):
            raise ModelError(f"{where}: {self.family} needs a value and mu of shape {W.shape[:1]} "
                             f"(W's size), got {shape} and mu {param_shapes['mu']}")
        return shape

    def expand(self, value):
        from exmc import math as em
        W = self.adjacency()
        d = W.sum(axis=1)
        scaled = W / np.sqrt(np.outer(d, d))
        eigenvalues = np.linalg.eigvalsh(scaled)
        mu, alpha, tau = (self.param_exprs[k] for k in ("mu", "alpha", "tau"))
        k = W.shape[0]
        r = value - mu
        quadratic = em.sum(d * r * r) - alpha * em.dot(r, em.dot(W, r))
        log_det = float(np.sum(np.log(d))) + em.sum(em.log1p(-alpha * eigenvalues))
        return [("logp", 0.5 * (k * em.log(tau) + log_det - tau * quadratic)
                 - 0.5 * k * np.log(2.0 * np.pi))]

    def random(self, rng, v, size):
        W = np.asarray(v["W"], dtype=float)
        precision = float(v["tau"]) * (np.diag(W.sum(axis=1)) - float(v["alpha"]) * W)
        chol = np.linalg.cholesky(np.linalg.inv(precision))
        size = _event_size(size, W.shape[:1], W.shape[:1])
        return np.asarray(v["mu"], dtype=float) + np.matmul(chol, rng.standard_normal(size)[..., None])[..., 0]


class ICAR(Distribution):
    """ICAR(W, sigma=1, zero_sum_stdev=0.001): the intrinsic CAR prior (Besag), as PyMC's.

    log p(x) = -sum over edges i~j of W_ij (x_i - x_j)^2 / (2 sigma^2) - (k - 1) log sigma
    + log N(sum x | 0, zero_sum_stdev * k): the pairwise differences with a soft
    sum-to-zero constraint (Morris et al. 2019).  ``W`` is the constant symmetric
    adjacency matrix.  The (k - 1) log sigma term (the pseudo-determinant of the
    precision) makes ``sigma`` learnable; PyMC omits it.
    """

    family = "ICAR"
    params = ("W", "sigma", "zero_sum_stdev")
    defaults = {"sigma": 1.0, "zero_sum_stdev": 0.001}
    data_params = ("W",)
    event_ndim = 1
    param_ndim = {"W": 2, "sigma": 0, "zero_sum_stdev": 0}
    checks = (("sigma", ">", 0.0), ("zero_sum_stdev", ">", 0.0))

    adjacency = CAR.adjacency

    def value_shape(self, param_shapes, shape, where):
        try:
            W = self.adjacency()
        except ModelError as err:
            raise ModelError(f"{where}: {err}") from None
        shape = tuple(shape) if shape is not None else W.shape[:1]
        if shape != W.shape[:1]:
            raise ModelError(f"{where}: ICAR needs a value of shape {W.shape[:1]} (W's size), "
                             f"got {shape}")
        return shape

    def expand(self, value):
        from exmc import math as em
        W = self.adjacency()
        sigma, stdev = self.param_exprs["sigma"], self.param_exprs["zero_sum_stdev"]
        k = W.shape[0]
        # sum over edges of W_ij (x_i - x_j)^2 = x^T (D - W) x: dense, so the code depends
        # on k alone (the structure hash leaves W's values out), never on the edge count
        squares = em.sum(W.sum(axis=1) * value * value) - em.dot(value, em.dot(W, value))
        spread = stdev * k
        zero_sum = (-0.5 * (em.sum(value) / spread) ** 2 - em.log(spread)
                    - 0.5 * np.log(2.0 * np.pi))
        return [("logp", -0.5 * squares / (sigma * sigma) - (k - 1) * em.log(sigma)
                 + zero_sum)]

    def random(self, rng, v, size):
        raise NotImplementedError("ICAR is improper and has no random-draw function")


__all__ = ["MvNormal", "Dirichlet", "LKJCorrCholesky", "MvStudentT", "LKJCorr", "CAR", "ICAR"]
