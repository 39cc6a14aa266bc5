"""Evaluate an expression with NumPy (the registry's reference values), given the variables it refers to."""
from exmc.ir.expr import Expr, postorder
from exmc.ir.ops import evaluate_op


def evaluate(expr: Expr, values: dict, value=None):
    """Numeric value of ``expr``; ``values`` maps variable names to numbers or arrays.

    Shared subexpressions are evaluated once and nothing recurses, so deep
    expressions are fine.
    """
    results = {}
    for node in postorder(expr):
        if node.op == "const":
            out = node.value
        elif node.op == "ref":
            out = values[node.value]
        elif node.op == "value":
            out = value
        else:
            out = evaluate_op(node.op, [results[id(a)] for a in node.args], node.value)
        results[id(node)] = out
    return results[id(expr)]
