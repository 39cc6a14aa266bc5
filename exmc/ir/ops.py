"""The op registry: every expression operation declared once (arity, shape rule, NumPy value, code).

An ``Op`` is everything the rest of exmc needs to know about one operation:

- ``arity`` (``VARIADIC`` for concatenate and stack) and ``shape(arg_shapes, attr, where)``,
  used by the IR to validate a model before anything is compiled;
- ``numpy(args, attr)``, the reference value, used by ``evaluate``, constant
  folding, predictive sampling and tests;
- how the compiler writes it.  An elementwise op gives one scalar expression
  ``scalar`` over its arguments ``a``, ``b``, ``c`` and one partial derivative
  per argument (written with the arguments and the output ``o``; ``None`` for
  arguments that carry no gradient, such as a condition).  The emitter turns
  those into allocation-free loops with broadcasting.  Any other op names its
  ``layout``: a structural rule in ``exmc/compiler/emit.py`` that writes its
  forward and adjoint loops (reductions, matrix products, indexing, ...).

Names in scalar code: ``math``, and ``S`` for ``exmc/compiler/scalar.py``.
To add an op: one entry here, one function in ``exmc.math``; a structural op
also needs its rule in ``exmc/compiler/emit.py``.  See ``docs/compiler.md``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy import special

from exmc.ir import recursion

VARIADIC = -1


class OpError(ValueError):
    """An operation applied to arguments it cannot take (the message says where and why)."""


class Op(NamedTuple):
    name: str
    arity: int
    shape: Callable  # (arg_shapes, attr, where) -> shape
    numpy: Callable  # (args, attr) -> value
    scalar: str | None = None  # elementwise forward code over a, b, c
    partials: tuple = ()  # elementwise d o / d arg code, or None where no gradient flows
    layout: str | None = None  # structural rule name in the emitter
    doc: str = ""


REGISTRY: dict[str, Op] = {}


def declare(op: Op):
    REGISTRY[op.name] = op
    return op


# ---- shape rules -----------------------------------------------------------------------------
def size_of(shape):
    return int(np.prod(shape)) if shape else 1


def broadcast_shape(shapes, where):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        shown = " and ".join(str(tuple(s)) for s in shapes)
        raise OpError(f"{where}: shapes {shown} do not broadcast") from None


def _elementwise_shape(shapes, attr, where):
    return broadcast_shape(shapes, where)


def normalize_axis(axis, ndim, where):
    if axis is None:
        return None
    if not isinstance(axis, int) or isinstance(axis, bool) or not -ndim <= axis < max(ndim, 1):
        raise OpError(f"{where}: axis {axis!r} does not fit an array of {ndim} dimensions")
    return axis % ndim if ndim else 0


def _reduce_shape(shapes, axis, where):
    (shape,) = shapes
    if axis is None:
        return ()
    axis = normalize_axis(axis, len(shape), where)
    if not shape:
        raise OpError(f"{where}: cannot reduce a scalar along axis {axis}")
    return shape[:axis] + shape[axis + 1:]


def _cumsum_shape(shapes, axis, where):
    (shape,) = shapes
    if axis is None:
        return (size_of(shape),)
    normalize_axis(axis, len(shape), where)
    return shape


def _matmul_shape(shapes, attr, where):
    a, b = shapes
    if len(a) not in (1, 2) or len(b) not in (1, 2) or a[-1] != b[0]:
        raise OpError(f"{where}: matrix product of shapes {a} and {b} does not fit "
                      f"(need 1-d or 2-d operands with matching inner size)")
    return a[:-1] + b[1:]


def index_to_python(index):
    """The Python index object that a normalised index stands for."""
    if isinstance(index, tuple):
        return slice(*index[1:])
    return index


def _index_shape(shapes, index, where):
    (shape,) = shapes
    if shape == ():
        raise OpError(f"{where}: cannot index a scalar")
    if isinstance(index, np.ndarray) and index.size and not (
            -shape[0] <= index.min() and index.max() < shape[0]):
        raise OpError(f"{where}: index array has values outside [-{shape[0]}, {shape[0]})")
    try:
        # a zero-stride view: no memory of the (possibly huge) indexed shape
        return np.broadcast_to(0.0, shape)[index_to_python(index)].shape
    except IndexError as err:
        raise OpError(f"{where}: index {index!r} does not fit shape {shape}: {err}") from None


def axes_to_python(entries):
    """The Python index tuple that a normalised multi-axis index stands for."""
    return tuple(e if isinstance(e, np.ndarray) else None if e == "newaxis"
                 else Ellipsis if e == "..." else index_to_python(e) for e in entries)


def _index_axes_shape(shapes, entries, where):
    (shape,) = shapes
    index = axes_to_python(entries)
    for axis, e in enumerate(e for e in index if e is not None and e is not Ellipsis):
        if isinstance(e, np.ndarray) and e.size and axis < len(shape) and not (
                -shape[axis] <= e.min() and e.max() < shape[axis]):
            raise OpError(f"{where}: index array has values outside [-{shape[axis]}, "
                          f"{shape[axis]}) for axis {axis}")
    try:
        return np.broadcast_to(0.0, shape)[index].shape
    except IndexError as err:
        raise OpError(f"{where}: index {index!r} does not fit shape {shape}: {err}") from None


def _concatenate_shape(shapes, axis, where):
    if not shapes or any(s == () for s in shapes):
        raise OpError(f"{where}: concatenate needs one or more arrays (not scalars)")
    axis = normalize_axis(axis, len(shapes[0]), where)
    rest = [s[:axis] + s[axis + 1:] for s in shapes]
    if any(len(s) != len(shapes[0]) for s in shapes) or any(r != rest[0] for r in rest):
        raise OpError(f"{where}: cannot concatenate shapes {shapes} along axis {axis}")
    return shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1:]


def _stack_shape(shapes, axis, where):
    if not shapes or any(s != shapes[0] for s in shapes):
        raise OpError(f"{where}: stack needs one or more arrays of one shape, got {shapes}")
    axis = normalize_axis(axis, len(shapes[0]) + 1, where)
    return shapes[0][:axis] + (len(shapes),) + shapes[0][axis:]


def _transpose_shape(shapes, attr, where):
    return tuple(reversed(shapes[0]))


def _square(shape, where, what):
    if len(shape) != 2 or shape[0] != shape[1]:
        raise OpError(f"{where}: {what} needs a square matrix, got shape {shape}")


def _cholesky_shape(shapes, attr, where):
    _square(shapes[0], where, "cholesky")
    return shapes[0]


def _logdet_shape(shapes, attr, where):
    _square(shapes[0], where, "logdet")
    return ()


def _solve_shape(shapes, attr, where):
    a, b = shapes
    _square(a, where, "solve_triangular")
    if len(b) not in (1, 2) or b[0] != a[0]:
        raise OpError(f"{where}: solve_triangular of a {a} matrix needs a right-hand side with "
                      f"{a[0]} rows, got shape {b}")
    return b


# ---- NumPy references of the scalar helpers --------------------------------------------------
def _log1mexp(a):
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a < np.log(2.0), np.log(-np.expm1(-a)), np.log1p(-np.exp(-a)))


def _logsumexp(x, axis):
    return special.logsumexp(x, axis=axis)


def _solve_triangular(a, b, lower):
    from scipy.linalg import solve_triangular
    return solve_triangular(a, b, lower=lower)


def _logdet(a):
    sign, value = np.linalg.slogdet(a)
    return value if sign > 0 else np.nan


# ---- the registry ----------------------------------------------------------------------------
def _elementwise(name, arity, numpy, scalar, partials, doc):
    declare(Op(name, arity, _elementwise_shape, lambda args, attr: numpy(*args), scalar,
               partials, None, doc))


_UNARY = [
    # name, numpy, scalar code, d o / d a, doc
    ("neg", np.negative, "-a", "-1.0", "Elementwise -x."),
    ("exp", np.exp, "math.exp(a)", "o", "Elementwise e**x."),
    ("log", np.log, "math.log(a)", "1.0 / a", "Elementwise natural logarithm."),
    ("log1p", np.log1p, "math.log1p(a)", "1.0 / (1.0 + a)", "Elementwise log(1 + x)."),
    ("expm1", np.expm1, "math.expm1(a)", "o + 1.0", "Elementwise exp(x) - 1."),
    ("sqrt", np.sqrt, "math.sqrt(a)", "0.5 / o", "Elementwise square root."),
    ("sigmoid", special.expit, "S.sigmoid(a)", "o * (1.0 - o)",
     "Elementwise logistic function 1 / (1 + exp(-x))."),
    ("logit", special.logit, "(math.log(a) - math.log1p(-a))", "1.0 / (a * (1.0 - a))",
     "Elementwise log(x / (1 - x))."),
    ("tanh", np.tanh, "math.tanh(a)", "1.0 - o * o", "Elementwise hyperbolic tangent."),
    ("softplus", lambda a: np.logaddexp(0.0, a), "S.softplus(a)", "S.sigmoid(a)",
     "Elementwise log(1 + exp(x)), computed stably."),
    ("abs", np.abs, "abs(a)", "(1.0 if a > 0.0 else (-1.0 if a < 0.0 else 0.0))",
     "Elementwise absolute value."),
    ("lgamma", special.gammaln, "math.lgamma(a)", "S.digamma(a)",
     "Elementwise log |Gamma(x)|."),
    ("digamma", special.digamma, "S.digamma(a)", "S.trigamma(a)",
     "Elementwise digamma function psi(x) = d/dx log Gamma(x), for x > 0."),
    ("erf", special.erf, "math.erf(a)", "1.1283791670955126 * math.exp(-a * a)",
     "Elementwise error function."),
    ("erfc", special.erfc, "math.erfc(a)", "-1.1283791670955126 * math.exp(-a * a)",
     "Elementwise complementary error function 1 - erf(x)."),
    ("log_normal_cdf", special.log_ndtr, "S.log_normal_cdf(a)", "S.log_normal_cdf_derivative(a)",
     "Elementwise log Phi(x), the log of the standard normal CDF, stable in both tails."),
    ("log1mexp", _log1mexp, "S.log1mexp(a)", "1.0 / math.expm1(a)",
     "Elementwise log(1 - exp(-x)) for x > 0, stable (Maechler 2012)."),
    ("logical_not", np.logical_not, "(0.0 if a != 0.0 else 1.0)", None,
     "Elementwise logical not (1.0 or 0.0)."),
    ("sin", np.sin, "math.sin(a)", "math.cos(a)", "Elementwise sine."),
    ("cos", np.cos, "math.cos(a)", "-math.sin(a)", "Elementwise cosine."),
    ("tan", np.tan, "math.tan(a)", "1.0 + o * o", "Elementwise tangent."),
    ("arcsin", np.arcsin, "math.asin(a)", "1.0 / math.sqrt(1.0 - a * a)",
     "Elementwise inverse sine, on [-pi/2, pi/2]."),
    ("arccos", np.arccos, "math.acos(a)", "-1.0 / math.sqrt(1.0 - a * a)",
     "Elementwise inverse cosine, on [0, pi]."),
    ("arctan", np.arctan, "math.atan(a)", "1.0 / (1.0 + a * a)",
     "Elementwise inverse tangent, on (-pi/2, pi/2)."),
    ("sinh", np.sinh, "math.sinh(a)", "math.cosh(a)", "Elementwise hyperbolic sine."),
    ("cosh", np.cosh, "math.cosh(a)", "math.sinh(a)", "Elementwise hyperbolic cosine."),
    ("arcsinh", np.arcsinh, "math.asinh(a)", "1.0 / math.sqrt(a * a + 1.0)",
     "Elementwise inverse hyperbolic sine."),
    ("arccosh", np.arccosh, "math.acosh(a)", "1.0 / math.sqrt(a * a - 1.0)",
     "Elementwise inverse hyperbolic cosine, for x >= 1."),
    ("arctanh", np.arctanh, "math.atanh(a)", "1.0 / (1.0 - a * a)",
     "Elementwise inverse hyperbolic tangent, for |x| < 1."),
]
for _name, _np, _code, _partial, _doc in _UNARY:
    _elementwise(_name, 1, _np, _code, (_partial,), _doc)

_BINARY = [
    ("add", np.add, "(a + b)", ("1.0", "1.0"), "Elementwise x + y."),
    ("sub", np.subtract, "(a - b)", ("1.0", "-1.0"), "Elementwise x - y."),
    ("mul", np.multiply, "(a * b)", ("b", "a"), "Elementwise x * y."),
    ("div", np.divide, "(a / b)", ("1.0 / b", "-o / b"), "Elementwise x / y."),
    ("pow", np.power, "(a ** b)", ("b * a ** (b - 1.0)", "(o * math.log(a) if o != 0.0 else 0.0)"),
     "Elementwise x ** y."),
    ("maximum", np.maximum, "max(a, b)", ("(1.0 if a >= b else 0.0)", "(0.0 if a >= b else 1.0)"),
     "Elementwise larger of x and y (the gradient goes to x on ties)."),
    ("minimum", np.minimum, "min(a, b)", ("(1.0 if a <= b else 0.0)", "(0.0 if a <= b else 1.0)"),
     "Elementwise smaller of x and y (the gradient goes to x on ties)."),
    ("lt", np.less, "(1.0 if a < b else 0.0)", (None, None), "Elementwise x < y (1.0 or 0.0)."),
    ("le", np.less_equal, "(1.0 if a <= b else 0.0)", (None, None), "Elementwise x <= y."),
    ("gt", np.greater, "(1.0 if a > b else 0.0)", (None, None), "Elementwise x > y."),
    ("ge", np.greater_equal, "(1.0 if a >= b else 0.0)", (None, None), "Elementwise x >= y."),
    ("eq", np.equal, "(1.0 if a == b else 0.0)", (None, None), "Elementwise x == y."),
    ("ne", np.not_equal, "(1.0 if a != b else 0.0)", (None, None), "Elementwise x != y."),
    ("logical_and", np.logical_and, "(1.0 if (a != 0.0 and b != 0.0) else 0.0)", (None, None),
     "Elementwise logical and (1.0 or 0.0)."),
    ("logical_or", np.logical_or, "(1.0 if (a != 0.0 or b != 0.0) else 0.0)", (None, None),
     "Elementwise logical or (1.0 or 0.0)."),
    ("arctan2", np.arctan2, "math.atan2(a, b)", ("b / (a * a + b * b)", "-a / (a * a + b * b)"),
     "Elementwise angle of the point (x2, x1), x1 = y first as NumPy: on [-pi, pi]."),
]
for _name, _np, _code, _partial, _doc in _BINARY:
    _elementwise(_name, 2, _np, _code, _partial, _doc)

_elementwise("where", 3, lambda c, a, b: np.where(c, a, b), "(b if a != 0.0 else c)",
             (None, "(1.0 if a != 0.0 else 0.0)", "(0.0 if a != 0.0 else 1.0)"),
             "Elementwise a where the condition holds, else b; the gradient flows to the "
             "chosen branch.")
# Arguments are named a, b, c in order: where(a=condition, b=then, c=else).
_elementwise("clip", 3, np.clip, "min(max(a, b), c)",
             ("(1.0 if b < a < c else 0.0)", "(1.0 if a <= b else 0.0)",
              "(1.0 if a >= c and a > b else 0.0)"),
             "Elementwise x limited to [lower, upper]; the gradient flows to whichever is chosen.")

declare(Op("sum", 1, lambda s, axis, where: _reduce_shape(s, axis, where),
           lambda args, axis: np.sum(args[0], axis=axis), layout="reduce",
           doc="Sum of the elements, of all (axis=None) or along one axis."))
declare(Op("mean", 1, lambda s, axis, where: _reduce_shape(s, axis, where),
           lambda args, axis: np.mean(args[0], axis=axis), layout="reduce",
           doc="Mean of the elements, of all (axis=None) or along one axis."))
declare(Op("logsumexp", 1, lambda s, axis, where: _reduce_shape(s, axis, where),
           lambda args, axis: _logsumexp(args[0], axis), layout="reduce",
           doc="log(sum(exp(x))) computed stably, of all elements or along one axis."))
declare(Op("cumsum", 1, _cumsum_shape,
           lambda args, axis: np.cumsum(args[0], axis=axis), layout="cumsum",
           doc="Cumulative sum along an axis (axis=None: of the flattened array)."))
declare(Op("matmul", 2, _matmul_shape, lambda args, attr: np.matmul(*args), layout="matmul",
           doc="Matrix or inner product of 1-d and 2-d operands, the same as a @ b."))
declare(Op("index", 1, _index_shape,
           lambda args, index: np.asarray(args[0])[index_to_python(index)], layout="index",
           doc="x[i], x[a:b:c] or x[int_array] along the first axis."))
declare(Op("index_axes", 1, _index_axes_shape,
           lambda args, entries: np.asarray(args[0])[axes_to_python(entries)], layout="index_axes",
           doc="x[i, j], x[:, j], x[None], x[..., k]: ints, slices and one integer array per "
               "axis, None for a new axis of length 1 (NumPy's basic indexing)."))
declare(Op("concatenate", VARIADIC, _concatenate_shape,
           lambda args, axis: np.concatenate(args, axis=axis), layout="concatenate",
           doc="Arrays joined along an existing axis."))
declare(Op("stack", VARIADIC, _stack_shape,
           lambda args, axis: np.stack(args, axis=axis), layout="concatenate",
           doc="Arrays of one shape joined along a new axis."))
declare(Op("transpose", 1, _transpose_shape, lambda args, attr: np.transpose(args[0]),
           layout="transpose", doc="Axes reversed (x.T)."))
declare(Op("cholesky", 1, _cholesky_shape, lambda args, attr: np.linalg.cholesky(args[0]),
           layout="cholesky",
           doc="Lower Cholesky factor L of a symmetric positive definite matrix (L @ L.T = A)."))
declare(Op("solve_triangular", 2, _solve_shape,
           lambda args, lower: _solve_triangular(args[0], args[1], lower),
           layout="solve_triangular",
           doc="x with a @ x = b for a triangular matrix a (lower=True: lower triangular)."))
declare(Op("logdet", 1, _logdet_shape, lambda args, attr: _logdet(args[0]), layout="logdet",
           doc="log det(A) of a symmetric positive definite matrix."))


def _corr_cholesky_shape(shapes, n, where):
    (shape,) = shapes
    if not isinstance(n, int) or n < 2 or shape != (n * (n - 1) // 2,):
        raise OpError(f"{where}: corr_cholesky of size {n!r} needs {n}*({n}-1)/2 partial "
                      f"correlations, got shape {shape}")
    return (n, n)


def corr_cholesky_numpy(z, n):
    """Cholesky factor of a correlation matrix from canonical partial correlations z in (-1, 1).

    Row i: L[i, j] = z_ij sqrt(1 - sum_{l<j} L[i, l]^2) for j < i and L[i, i] the rest of
    the unit norm; z in row-major order over the strictly lower triangle (Stan's
    ``cholesky_corr_constrain``).
    """
    L, k = np.zeros((n, n)), 0
    L[0, 0] = 1.0
    for i in range(1, n):
        total = 0.0
        for j in range(i):
            L[i, j] = z[k] * np.sqrt(1.0 - total)
            total += L[i, j] ** 2
            k += 1
        L[i, i] = np.sqrt(1.0 - total)
    return L


declare(Op("corr_cholesky", 1, _corr_cholesky_shape,
           lambda args, n: corr_cholesky_numpy(args[0], n), layout="corr_cholesky",
           doc="Cholesky factor (n, n) of a correlation matrix from n(n-1)/2 canonical partial "
               "correlations in (-1, 1)."))


def _reshape_shape(shapes, shape, where):
    (source,) = shapes
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 1 for s in shape)
            and size_of(shape) == size_of(source)):
        raise OpError(f"{where}: cannot reshape {source} ({size_of(source)} elements) to {shape!r}")
    return shape


declare(Op("reshape", 1, _reshape_shape, lambda args, shape: np.reshape(args[0], shape),
           layout="reshape", doc="The elements in row-major order, in another shape (a view)."))


def _family_fn_numpy(args, attr):
    """The value of a family's logp / logcdf / logccdf kernel at every broadcast element.

    The kernels (``exmc/compiler/families.py``) are plain Python functions under
    their Numba wrapper, so NumPy can run the very code the compiler emits calls to.
    """
    from exmc.compiler.families import KERNELS  # the kernels are the one definition
    family, params, fn = attr
    kernel = getattr(KERNELS[(family, params)], fn)
    kernel = getattr(kernel, "py_func", kernel)
    flat = [a.ravel() for a in np.broadcast_arrays(*args)]
    shape = np.broadcast_shapes(*(np.shape(a) for a in args))
    return np.array([kernel(*map(float, row)) for row in zip(*flat)]).reshape(shape)


# A family's elementwise log density or log cdf, as a value (Truncated, Censored and
# Mixture are written with it).  attr = (family, given parameters, "logp" | "logcdf" |
# "logccdf"); the arguments are the value, then the parameters.  Made by the lowering
# from distributions, never read from the wire.
declare(Op("family_fn", VARIADIC, _elementwise_shape, _family_fn_numpy, layout="family_fn",
           doc="A scalar family's log density, log cdf or log ccdf at each element."))


# Ops with a body (an expression graph over placeholders, see ``exmc/ir/recursion.py``).
declare(Op("scan", VARIADIC, recursion.scan_shape, lambda args, spec: recursion.scan_numpy(args, spec),
           layout="scan",
           doc="A loop-carried recursion state_t = body(state_{t-1}, sequence rows at t, "
               "*non-sequences); the states after each step, stacked."))
declare(Op("ode_solve", VARIADIC, recursion.ode_shape,
           lambda args, spec: recursion.ode_numpy(args, spec), layout="ode",
           doc="Solution at the output times of dy/dt = rhs(t, y, *params) from y(t0) = y0 "
               "(adaptive Dormand-Prince RK45, or the stiff L-stable SDIRK4)."))


def op_shape(op, arg_shapes, attr, where):
    """Result shape of ``op`` applied to arguments of ``arg_shapes``; ``OpError`` if they do not fit."""
    spec = REGISTRY[op]
    if spec.arity == VARIADIC and not arg_shapes:
        raise OpError(f"{where}: {op} needs at least one argument")
    return spec.shape([tuple(s) for s in arg_shapes], attr, where)


def evaluate_op(op, args, attr):
    """The NumPy value of ``op`` on argument values ``args``."""
    with np.errstate(all="ignore"):
        return REGISTRY[op].numpy([np.asarray(a, dtype=float) for a in args], attr)
