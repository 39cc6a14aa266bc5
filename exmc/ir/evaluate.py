"""Evaluate an expression with NumPy (the registry's reference values), given the variables it refers to.

``evaluate`` takes one point; ``evaluate_batched`` many at once (predictive sampling).
"""
import numpy as np

from exmc.ir.expr import Expr, postorder
from exmc.ir.ops import REGISTRY, evaluate_op, index_to_python, normalize_axis, op_shape


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


# ---- many points at once ---------------------------------------------------------------------
def evaluate_batched(expr: Expr, values: dict, shapes: dict):
    """Value of ``expr`` at many points at once, every array with a leading batch axis.

    Parameters
    ----------
    expr : Expr
    values : dict
        Variable name -> array of shape (n, *shape) or (1, *shape) (the same at every point).
    shapes : dict
        Variable name -> its shape at one point (the model's validated shapes).

    Returns
    -------
    ndarray of shape (n or 1, *shape of expr).  Constants get a batch axis of size 1,
    so data is never copied per point.  Each op's rule (``BATCHED``) moves the op's
    axes one place right; the op registry's own NumPy function does the arithmetic.
    """
    results, static = {}, {}
    for node in postorder(expr):
        if node.op == "const":
            shape, out = np.shape(node.value), np.asarray(node.value, dtype=float)[None]
        elif node.op == "ref":
            shape, out = tuple(shapes[node.value]), values[node.value]
        elif node.op == "value":
            raise ValueError("exmc.value has no value outside Custom(logp=...)")
        else:
            arg_shapes = [static[id(a)] for a in node.args]
            shape = op_shape(node.op, arg_shapes, node.value, f"{node.op}")
            with np.errstate(all="ignore"):
                out = evaluate_op_batched(node.op, [results[id(a)] for a in node.args],
                                          arg_shapes, node.value, shape)
        results[id(node)], static[id(node)] = out, shape
    return results[id(expr)]


def evaluate_op_batched(op, args, arg_shapes, attr, shape):
    """The value of ``op`` on batched ``args`` (each (n or 1, *its shape)): (n or 1, *shape)."""
    args = [np.asarray(a, dtype=float) for a in args]
    spec = REGISTRY[op]
    if spec.layout is None:  # elementwise: line each argument's axes up with the result's
        return spec.numpy(_lined_up(args, arg_shapes, shape), attr)
    return BATCHED.get(spec.layout, _each_point)(op, args, arg_shapes, attr)


def _lined_up(args, shapes, shape):
    """Batched arguments with ones inserted after the batch axis, to broadcast to ``shape``."""
    return [a.reshape(a.shape[:1] + (1,) * (len(shape) - len(s)) + tuple(s))
            for a, s in zip(args, shapes)]


def _family_fn(op, args, shapes, attr):
    """A family's kernel at each element: elementwise, though the compiler lays it out apart."""
    return REGISTRY[op].numpy(_lined_up(args, shapes, np.broadcast_shapes(*shapes)), attr)


def _reshape(op, args, shapes, shape):
    return args[0].reshape(args[0].shape[:1] + tuple(shape))


def _reduce(op, args, shapes, axis):
    ndim = len(shapes[0])
    axes = tuple(range(1, ndim + 1)) if axis is None else normalize_axis(axis, ndim, op) + 1
    return REGISTRY[op].numpy(args, axes)


def _cumsum(op, args, shapes, axis):
    (x,) = args
    if axis is None:
        return np.cumsum(x.reshape(x.shape[0], -1), axis=1)
    return np.cumsum(x, axis=normalize_axis(axis, len(shapes[0]), op) + 1)


def _matmul(op, args, shapes, attr):
    (a, b), (sa, sb) = args, shapes
    out = np.matmul(a if len(sa) == 2 else a[:, None, :], b if len(sb) == 2 else b[..., None])
    if len(sb) == 1:
        out = out[..., 0]
    return out[:, 0] if len(sa) == 1 else out


def _index(op, args, shapes, index):
    return args[0][(slice(None), index_to_python(index))]


def _concatenate(op, args, shapes, axis):
    n = max(a.shape[0] for a in args)
    args = [np.broadcast_to(a, (n,) + a.shape[1:]) for a in args]
    ndim = len(shapes[0]) + (op == "stack")
    return REGISTRY[op].numpy(args, normalize_axis(axis, ndim, op) + 1)


def _transpose(op, args, shapes, attr):
    return np.transpose(args[0], (0,) + tuple(range(len(shapes[0]), 0, -1)))


def _cholesky(op, args, shapes, attr):
    return np.linalg.cholesky(args[0])


def _logdet(op, args, shapes, attr):
    sign, value = np.linalg.slogdet(args[0])
    return np.where(sign > 0, value, np.nan)


def _solve_triangular(op, args, shapes, lower):
    a, b = args
    a = np.tril(a) if lower else np.triu(a)
    vector = len(shapes[1]) == 1
    out = np.linalg.solve(a, b[..., None] if vector else b)
    return out[..., 0] if vector else out


def _corr_cholesky(op, args, shapes, n):
    """``ops.corr_cholesky_numpy`` for every row of z (batch, n(n-1)/2) at once."""
    (z,) = args
    L, k = np.zeros(z.shape[:1] + (n, n)), 0
    L[:, 0, 0] = 1.0
    for i in range(1, n):
        total = np.zeros(z.shape[0])
        for j in range(i):
            L[:, i, j] = z[:, k] * np.sqrt(1.0 - total)
            total = total + L[:, i, j] ** 2
            k += 1
        L[:, i, i] = np.sqrt(1.0 - total)
    return L


def _each_point(op, args, shapes, attr):
    """An op with no batched rule: the registry's NumPy value one point at a time (slower)."""
    n = max(a.shape[0] for a in args)
    return np.stack([REGISTRY[op].numpy([a[min(i, len(a) - 1)] for a in args], attr)
                     for i in range(n)])


#: Batched rule of each structural layout (elementwise ops need none); any other layout is
#: evaluated by ``_each_point``.
BATCHED = {"reduce": _reduce, "cumsum": _cumsum, "matmul": _matmul, "index": _index,
           "concatenate": _concatenate, "transpose": _transpose, "cholesky": _cholesky,
           "logdet": _logdet, "solve_triangular": _solve_triangular,
           "corr_cholesky": _corr_cholesky, "reshape": _reshape, "family_fn": _family_fn}
