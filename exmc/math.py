"""Math functions for model expressions: ``exmc.math.exp(ref("a"))`` builds an expression.

Each function accepts expressions, DSL variables, variable names, numbers and
arrays, and returns an ``Expr``; the compiler knows the gradient of each.
"""
from exmc.ir.expr import Expr, as_expr


def _unary(op, doc):
    def fn(x):
        return Expr(op, (as_expr(x),))
    fn.__name__ = op
    fn.__doc__ = doc
    return fn


exp = _unary("exp", "Elementwise e**x.")
log = _unary("log", "Elementwise natural logarithm.")
log1p = _unary("log1p", "Elementwise log(1 + x), accurate for small x.")
expm1 = _unary("expm1", "Elementwise exp(x) - 1, accurate for small x.")
sqrt = _unary("sqrt", "Elementwise square root.")
sigmoid = _unary("sigmoid", "Elementwise logistic function 1 / (1 + exp(-x)).")
invlogit = sigmoid
logit = _unary("logit", "Elementwise log(x / (1 - x)).")
tanh = _unary("tanh", "Elementwise hyperbolic tangent.")
softplus = _unary("softplus", "Elementwise log(1 + exp(x)), computed stably.")
abs = _unary("abs", "Elementwise absolute value.")  # noqa: A001 - mirrors numpy's name
sum = _unary("sum", "Sum of all elements (a scalar).")  # noqa: A001


def dot(a, b):
    """Matrix or inner product, the same as ``a @ b``."""
    return Expr("matmul", (as_expr(a), as_expr(b)))


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` holds, else ``b`` (gradient flows to the chosen branch)."""
    return Expr("where", (as_expr(condition), as_expr(a), as_expr(b)))


__all__ = ["exp", "log", "log1p", "expm1", "sqrt", "sigmoid", "invlogit", "logit", "tanh",
           "softplus", "abs", "sum", "dot", "where"]
