"""Transforms from the unconstrained real line to a variable's support, with log-Jacobians.

Each transform exists twice: as expressions (``constrain_exprs``), which the
code generator differentiates like any other expression, and as numpy
functions (``forward``, ``inverse``) for initial values and tests.

| support          | x = forward(z)                          | log |dx/dz|                                 |
|------------------|-----------------------------------------|---------------------------------------------|
| real             | z                                       | 0                                           |
| (lower, inf)     | lower + exp(z)                          | z                                           |
| (-inf, upper)    | upper - exp(z)                          | z                                           |
| (lower, upper)   | lower + (upper - lower) * sigmoid(z)    | log(upper - lower) - softplus(-z) - softplus(z) |
"""
import numpy as np
from scipy.special import expit, logit

from exmc import math as em
from exmc.ir.expr import Expr


def kind(lower, upper):
    """Name of the transform for these bounds (each None or not)."""
    if lower is None and upper is None:
        return "identity"
    if upper is None:
        return "lower"
    if lower is None:
        return "upper"
    return "interval"


def _is_const(e, v):
    return isinstance(e, Expr) and e.op == "const" and np.ndim(e.value) == 0 and e.value == v


def constrain_exprs(z: Expr, lower, upper):
    """(x, log_jacobian) as elementwise expressions of ``z`` and the bound expressions."""
    k = kind(lower, upper)
    if k == "identity":
        return z, None
    if k == "lower":
        return (em.exp(z) if _is_const(lower, 0.0) else lower + em.exp(z)), z
    if k == "upper":
        return upper - em.exp(z), z
    edges = -em.softplus(-z) - em.softplus(z)
    if _is_const(lower, 0.0) and _is_const(upper, 1.0):
        return em.sigmoid(z), edges
    width = upper - lower
    return lower + width * em.sigmoid(z), em.log(width) + edges


def forward(z, lower=None, upper=None):
    """Numeric x = forward(z) for bound values (None where unbounded)."""
    k = kind(lower, upper)
    if k == "identity":
        return z
    if k == "lower":
        return lower + np.exp(z)
    if k == "upper":
        return upper - np.exp(z)
    return lower + (upper - lower) * expit(z)


def inverse(x, lower=None, upper=None):
    """Numeric z = inverse(x); raises ValueError for x outside the open support."""
    x = np.asarray(x, dtype=float)
    k = kind(lower, upper)
    if k == "identity":
        return x
    inside = True
    if lower is not None:
        inside = inside & (x > lower)
    if upper is not None:
        inside = inside & (x < upper)
    if not np.all(inside):
        raise ValueError(f"value outside the open support ({lower}, {upper})")
    if k == "lower":
        return np.log(x - lower)
    if k == "upper":
        return np.log(upper - x)
    return logit((x - lower) / (upper - lower))
