"""Math functions for model expressions: ``exmc.math.exp(ref("a"))`` builds an expression.

Each function accepts expressions, DSL variables, variable names, numbers and
arrays, and returns an ``Expr``; the op registry (``exmc/ir/ops.py``) gives
each its shape rule, NumPy value and exact gradient.  The elementwise
functions of one argument are made from the registry itself.
"""
from exmc.ir.expr import Expr, as_expr
from exmc.ir.ops import REGISTRY


def _unary(op):
    def fn(x):
        return Expr(op, (as_expr(x),))
    fn.__name__ = op
    fn.__doc__ = REGISTRY[op].doc
    return fn


_ELEMENTWISE_UNARY = [name for name, op in REGISTRY.items()
                      if op.arity == 1 and op.scalar is not None and name not in ("neg",)]
globals().update({name: _unary(name) for name in _ELEMENTWISE_UNARY})
invlogit = globals()["sigmoid"]
gammaln = globals()["lgamma"]


def _axis(value):
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"axis must be an int or None, got {value!r}")
    return value


def sum(x, axis=None):  # noqa: A001 - mirrors numpy's name
    """Sum of all elements (axis=None, a scalar) or along ``axis``."""
    return Expr("sum", (as_expr(x),), _axis(axis))


def mean(x, axis=None):
    """Mean of all elements (axis=None) or along ``axis``."""
    return Expr("mean", (as_expr(x),), _axis(axis))


def logsumexp(x, axis=None):
    """log(sum(exp(x))) of all elements (axis=None) or along ``axis``, computed stably."""
    return Expr("logsumexp", (as_expr(x),), _axis(axis))


def cumsum(x, axis=None):
    """Cumulative sum along ``axis`` (axis=None: of the flattened array, as numpy)."""
    return Expr("cumsum", (as_expr(x),), _axis(axis))


def concatenate(arrays, axis=0):
    """Arrays joined along an existing ``axis``."""
    return Expr("concatenate", tuple(as_expr(a) for a in arrays), _axis(axis))


def stack(arrays, axis=0):
    """Arrays of one shape joined along a new ``axis``."""
    return Expr("stack", tuple(as_expr(a) for a in arrays), _axis(axis))


def transpose(x):
    """Axes reversed (the same as ``x.T``)."""
    return Expr("transpose", (as_expr(x),))


def dot(a, b):
    """Matrix or inner product of 1-d and 2-d operands, the same as ``a @ b``."""
    return Expr("matmul", (as_expr(a), as_expr(b)))


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` holds, else ``b`` (gradient flows to the chosen branch)."""
    return Expr("where", (as_expr(condition), as_expr(a), as_expr(b)))


switch = where


def clip(x, lower, upper):
    """Elementwise ``x`` limited to [lower, upper]."""
    return Expr("clip", (as_expr(x), as_expr(lower), as_expr(upper)))


def _binary(op):
    def fn(a, b):
        return Expr(op, (as_expr(a), as_expr(b)))
    fn.__name__ = op
    fn.__doc__ = REGISTRY[op].doc
    return fn


maximum, minimum = _binary("maximum"), _binary("minimum")
eq, ne, lt, le, gt, ge = (_binary(op) for op in ("eq", "ne", "lt", "le", "gt", "ge"))
logical_and, logical_or = _binary("logical_and"), _binary("logical_or")


def cholesky(a):
    """Lower Cholesky factor of a symmetric positive definite matrix."""
    return Expr("cholesky", (as_expr(a),))


def solve_triangular(a, b, lower=True):
    """x with ``a @ x = b`` for a lower (``lower=True``) or upper triangular ``a``."""
    return Expr("solve_triangular", (as_expr(a), as_expr(b)), bool(lower))


def logdet(a):
    """log det(a) of a symmetric positive definite matrix."""
    return Expr("logdet", (as_expr(a),))


__all__ = [*_ELEMENTWISE_UNARY, "invlogit", "gammaln", "sum", "mean", "logsumexp", "cumsum",
           "concatenate", "stack", "transpose", "dot", "where", "switch", "clip", "maximum",
           "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
           "cholesky", "solve_triangular", "logdet"]
