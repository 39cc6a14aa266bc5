"""Evaluate an expression with numpy, given values of the variables it refers to."""
import numpy as np
from scipy.special import expit, logit

from exmc.ir.expr import Expr, index_to_python

UNARY = {"neg": np.negative, "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
         "sqrt": np.sqrt, "sigmoid": expit, "logit": logit, "tanh": np.tanh,
         "softplus": lambda a: np.logaddexp(0.0, a),
         "abs": np.abs, "sum": np.sum}
BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
          "pow": np.power, "matmul": np.matmul, "lt": np.less, "le": np.less_equal,
          "gt": np.greater, "ge": np.greater_equal}


def evaluate(expr: Expr, values: dict, value=None):
    """Numeric value of ``expr``; ``values`` maps variable names to numbers or arrays."""
    op = expr.op
    if op == "const":
        return expr.value
    if op == "ref":
        return values[expr.value]
    if op == "value":
        return value
    args = [evaluate(a, values, value) for a in expr.args]
    if op in UNARY:
        return UNARY[op](args[0])
    if op in BINARY:
        return BINARY[op](args[0], args[1])
    if op == "where":
        return np.where(*args)
    if op == "index":
        return np.asarray(args[0])[index_to_python(expr.value)]
    raise ValueError(f"cannot evaluate operation {op!r}")
