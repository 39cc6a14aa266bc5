"""Transforms from unconstrained free values to a variable's support, as objects.

A transform knows its free (unconstrained) shape, which may be smaller than
the constrained shape (a simplex of K values has K - 1 free ones), and writes
its constraining map and log-Jacobian as expressions of registry ops, so the
emitter differentiates them like any other expression.  Its NumPy forward is
that same expression evaluated; only the inverse is written apart.

| transform  | free shape | x = forward(z)                                   | log-Jacobian                     |
|------------|------------|--------------------------------------------------|----------------------------------|
| identity   | (...)      | z                                                | 0                                |
| lower      | (...)      | lower + exp(z)                                   | z                                |
| upper      | (...)      | upper - exp(z)                                   | z                                |
| interval   | (...)      | lower + (upper - lower) * sigmoid(z)             | log(upper - lower) - softplus(-z) - softplus(z) |
| simplex    | (K-1,)     | softmax([z, 0])                                  | sum(z) - K logsumexp([z, 0]) (= sum log x) |
| circular   | (2, ...)   | atan2(z[0], z[1])                                | -sum(z^2) / 2 (makes z proper)   |
| ordered    | (K,)       | cumsum([z[0], exp(z[1:])])                       | sum(z[1:])                       |
| zerosum    | (K-1,)     | [z, f] - m, with s = sum z, m = s / (sqrt K + K), f = m - s / sqrt K | 0 (an isometry) |
| corr_cholesky, corr | (n(n-1)/2,) | L from canonical partial correlations; corr: L L^T | see CholeskyCorr, CorrMatrix |

The simplex's log-Jacobian is that of z -> x[:K-1] (the free coordinates of the
simplex), the zero-sum one's that of z onto the zero-sum subspace (PyMC's
ZeroSumTransform).  Vector transforms act on a 1-d variable.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logit

from exmc import math as em
from exmc.ir.dists.base import ModelError
from exmc.ir.evaluate import evaluate
from exmc.ir.expr import Expr, as_expr, ref


class Transform:
    """Base class: the identity on the real line."""

    name = "identity"
    vector = False  # acts on a whole 1-d value rather than elementwise

    def free_shape(self, shape):
        return tuple(shape)

    def constrained_shape(self, free_shape):
        """The inverse of ``free_shape``."""
        return tuple(free_shape)

    def constrain_exprs(self, z: Expr, lower, upper, shape=None):
        """(x, log_jacobian or None) as expressions of ``z`` and the bound expressions."""
        return z, None

    def forward(self, z, lower=None, upper=None):
        """Numeric x = forward(z): the expression of ``constrain_exprs`` evaluated."""
        z = np.asarray(z, dtype=float)
        x, _ = self.constrain_exprs(ref("z"), _const(lower), _const(upper),
                                    self.constrained_shape(z.shape))
        return evaluate(x, {"z": z})

    def inverse(self, x, lower=None, upper=None):
        """Numeric z = inverse(x); ValueError for x outside the support."""
        return np.asarray(x, dtype=float)

    def check_shape(self, shape, where):
        if self.vector and (len(shape) != 1 or shape[0] < 1):
            raise ModelError(f"{where}: the {self.name} transform needs a 1-d variable, "
                             f"got shape {shape}")


def _const(bound):
    return None if bound is None else as_expr(bound)


def _inside(x, lower, upper):
    inside = True
    if lower is not None:
        inside = inside & (x > lower)
    if upper is not None:
        inside = inside & (x < upper)
    if not np.all(inside):
        raise ValueError(f"value outside the open support ({lower}, {upper})")


class Lower(Transform):
    name = "lower"

    def constrain_exprs(self, z, lower, upper, shape=None):
        return lower + em.exp(z), z

    def inverse(self, x, lower=None, upper=None):
        x = np.asarray(x, dtype=float)
        _inside(x, lower, None)
        return np.log(x - lower)


class Upper(Transform):
    name = "upper"

    def constrain_exprs(self, z, lower, upper, shape=None):
        return upper - em.exp(z), z

    def inverse(self, x, lower=None, upper=None):
        x = np.asarray(x, dtype=float)
        _inside(x, None, upper)
        return np.log(upper - x)


class Interval(Transform):
    name = "interval"

    def constrain_exprs(self, z, lower, upper, shape=None):
        width = upper - lower
        # log(w s (1 - s)) written so it stays finite where s (1 - s) underflows
        return lower + width * em.sigmoid(z), em.log(width) - em.softplus(-z) - em.softplus(z)

    def inverse(self, x, lower=None, upper=None):
        x = np.asarray(x, dtype=float)
        _inside(x, lower, upper)
        return logit((x - lower) / (upper - lower))


class Circular(Transform):
    """Angles on [-pi, pi], as Stan's unit vectors: two free values y = (y1, y2) per angle,
    x = atan2(y1, y2), with the term -|y|^2 / 2 that makes the free density proper (the
    radius a Rayleigh variable, the angle the model's law).  A chain crosses the cut at
    +-pi as anywhere else, and nothing drifts: with one free value per angle (PyMC's
    CircularTransform) the density is periodic on the whole line, the free value wanders
    over periods, and the adapted metric grows without bound."""

    name = "circular"

    def free_shape(self, shape):
        return (2, *shape)

    def constrained_shape(self, free_shape):
        return tuple(free_shape[1:])

    def constrain_exprs(self, z, lower, upper, shape=None):
        return em.arctan2(z[0], z[1]), -0.5 * em.sum(z * z)

    def inverse(self, x, lower=None, upper=None):
        x = np.asarray(x, dtype=float)
        if not np.all(np.abs(x) <= np.pi):
            raise ValueError("value outside the circle's [-pi, pi]")
        return np.stack([np.sin(x), np.cos(x)])


class LastImplied(Transform):
    """A vector transform whose last value is implied by the others (k values, k - 1 free)."""

    vector = True

    def free_shape(self, shape):
        return (shape[0] - 1,)

    def constrained_shape(self, free_shape):
        return (free_shape[0] + 1,)


class Simplex(LastImplied):
    name = "simplex"

    def constrain_exprs(self, z, lower, upper, shape=None):
        k = shape[0]
        y = em.concatenate([z, np.zeros(1)])
        lse = em.logsumexp(y)
        return em.exp(y - lse), em.sum(z) - k * lse

    def inverse(self, x, lower=None, upper=None):
        x = np.asarray(x, dtype=float)
        if np.any(x <= 0) or abs(np.sum(x) - 1.0) > 1e-8:
            raise ValueError("value is not on the open simplex (positive, summing to 1)")
        return np.log(x[:-1]) - np.log(x[-1])


class Ordered(Transform):
    name = "ordered"
    vector = True

    def constrain_exprs(self, z, lower, upper, shape=None):
        if shape[0] == 1:
            return z, None
        return em.cumsum(em.concatenate([z[:1], em.exp(z[1:])])), em.sum(z[1:])

    def inverse(self, x, lower=None, upper=None):
        x = np.asarray(x, dtype=float)
        if np.any(np.diff(x) <= 0):
            raise ValueError("value is not strictly increasing")
        return np.concatenate([x[:1], np.log(np.diff(x))])


class ZeroSum(LastImplied):
    name = "zerosum"

    def constrain_exprs(self, z, lower, upper, shape=None):
        root = float(np.sqrt(shape[0]))
        total = em.sum(z)
        norm = total / (root + shape[0])
        fill = em.stack([norm - total / root])
        return em.concatenate([z, fill]) - norm, None

    def inverse(self, x, lower=None, upper=None):
        x = np.asarray(x, dtype=float)
        if abs(np.sum(x)) > 1e-8 * max(1.0, np.max(np.abs(x))):
            raise ValueError("value does not sum to zero")
        root = np.sqrt(x.shape[0])
        norm = -x[-1] * root / (root + x.shape[0])
        return x[:-1] + norm


class CholeskyCorr(Transform):
    """Cholesky factor of a correlation matrix from n(n-1)/2 free values (Stan's).

    z -> c = tanh(z) (canonical partial correlations) -> L by ``corr_cholesky``.
    The log-Jacobian over L's strictly lower entries is sum_k w_k log(1 - c_k^2),
    with w = 1 + (i - 1 - l) / 2 for the element in row i, column l: the tanh's
    derivative, and the sqrt(1 - sum) factor of every later element of the row.
    """

    name = "corr_cholesky"

    def free_shape(self, shape):
        return (shape[0] * (shape[0] - 1) // 2,)

    def constrained_shape(self, free_shape):
        n = int(round((1 + (1 + 8 * free_shape[0]) ** 0.5) / 2))
        return (n, n)

    @staticmethod
    def weights(n):
        return np.array([1.0 + 0.5 * (i - 1 - l) for i in range(1, n) for l in range(i)])

    def constrain_exprs(self, z, lower, upper, shape=None):
        n = shape[0]
        x = Expr("corr_cholesky", (em.tanh(z),), n)
        log_one_minus_c2 = 2.0 * np.log(2.0) - 2.0 * z - 2.0 * em.softplus(-2.0 * z)
        return x, em.sum(self.weights(n) * log_one_minus_c2)

    def inverse(self, x, lower=None, upper=None):
        L = np.asarray(x, dtype=float)
        n = L.shape[-1]
        if L.shape != (n, n) or not np.allclose(np.sum(L * L, axis=1), 1.0) or np.any(np.diag(L) <= 0):
            raise ValueError("value is not the Cholesky factor of a correlation matrix")
        z = []
        for i in range(1, n):
            total = 0.0
            for j in range(i):
                z.append(np.arctanh(L[i, j] / np.sqrt(1.0 - total)))
                total += L[i, j] ** 2
        return np.array(z)


class CorrMatrix(CholeskyCorr):
    """A correlation matrix C = L L^T, with L from ``CholeskyCorr``.

    The log-Jacobian adds that of L -> C over the strictly lower elements,
    sum_i (n - i - 1) log L_ii for rows i >= 1 (the factor Stan's
    ``lkj_corr_cholesky`` density carries).
    """

    name = "corr"

    def constrain_exprs(self, z, lower, upper, shape=None):
        n = shape[0]
        L, log_jacobian = super().constrain_exprs(z, lower, upper, shape)
        weights = np.array([0.0] + [n - i - 1.0 for i in range(1, n)])
        log_diagonal = em.log(em.sum(L * np.eye(n), axis=1))
        return em.dot(L, em.transpose(L)), log_jacobian + em.sum(weights * log_diagonal)

    def inverse(self, x, lower=None, upper=None):
        C = np.asarray(x, dtype=float)
        if C.ndim != 2 or not np.allclose(C, C.T) or not np.allclose(np.diag(C), 1.0):
            raise ValueError("value is not a correlation matrix")
        try:
            L = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            raise ValueError("value is not a positive definite correlation matrix") from None
        return super().inverse(L)


IDENTITY = Transform()
BY_BOUNDS = {(False, False): IDENTITY, (True, False): Lower(), (False, True): Upper(),
             (True, True): Interval()}
VECTOR = {t.name: t for t in (Simplex(), Ordered(), ZeroSum(), CholeskyCorr(), CorrMatrix())}
TRANSFORMS = {**{t.name: t for t in BY_BOUNDS.values()}, **VECTOR, "circular": Circular()}


def kind(lower, upper):
    """Name of the bounds transform for these bounds (each None or not)."""
    return BY_BOUNDS[(lower is not None, upper is not None)].name


def transform_for(dist):
    """(Transform, lower Expr | None, upper Expr | None) that maps R^free onto ``dist``'s support."""
    lower, upper = dist.support_exprs()
    named = getattr(dist, "transform", None)
    if named is not None:
        return TRANSFORMS[named], lower, upper
    return BY_BOUNDS[(lower is not None, upper is not None)], lower, upper


# Functional forms for bounds (used by tests and the point map).
def constrain_exprs(z, lower, upper):
    return BY_BOUNDS[(lower is not None, upper is not None)].constrain_exprs(z, lower, upper)


def forward(z, lower=None, upper=None):
    return BY_BOUNDS[(lower is not None, upper is not None)].forward(z, lower, upper)


def inverse(x, lower=None, upper=None):
    return BY_BOUNDS[(lower is not None, upper is not None)].inverse(x, lower, upper)
