"""Numerical helpers that generated model code calls: stable elementwise functions and shape helpers.

Elementwise functions are Numba ufuncs, so one name serves scalars and arrays
inside compiled code.  ``total`` and ``fill`` let the code generator reduce or
expand a template result without knowing whether it is a scalar or an array.
"""
import math

import numpy as np
from numba import njit, types, vectorize
from numba.extending import overload

LOG_2 = math.log(2.0)
LOG_PI = math.log(math.pi)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@vectorize(["float64(float64)"], cache=True)
def sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@vectorize(["float64(float64)"], cache=True)
def softplus(x):
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@vectorize(["float64(float64)"], cache=True)
def lgamma(x):
    return math.lgamma(x)


@vectorize(["float64(float64)"], cache=True)
def digamma(x):
    """psi(x) for x > 0: recurrence up to x >= 6, then the asymptotic series (error < 1e-12)."""
    if not x > 0.0:
        return math.nan
    result = 0.0
    while x < 6.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f * (1.0 / 132)))))
    return result + math.log(x) - 0.5 / x - series


def total(value, count):
    """Sum of ``value`` as if broadcast to ``count`` elements."""
    return np.sum(np.broadcast_to(value, (count,))) if np.ndim(value) == 0 else np.sum(value)


@overload(total)
def _total(value, count):
    if isinstance(value, types.Array):
        return lambda value, count: np.sum(value)
    return lambda value, count: value * count


def fill(value, shape):
    """``value`` broadcast to an array of ``shape`` (a copy for scalars, as is for arrays)."""
    return np.broadcast_to(value, shape).copy() if np.ndim(value) == 0 else value


@overload(fill)
def _fill(value, shape):
    if isinstance(value, types.Array):
        return lambda value, shape: value
    return lambda value, shape: np.full(shape, value)


@njit(cache=True)
def scatter_add(target, index, values):
    """target[index[j]] += values[j], with repeated indices accumulating."""
    for j in range(index.shape[0]):
        target[index[j]] += values[j]
    return target


def all_true(condition):
    return bool(np.all(condition))


@overload(all_true)
def _all_true(condition):
    if isinstance(condition, types.Array):
        return lambda condition: np.all(condition)
    return lambda condition: bool(condition)
