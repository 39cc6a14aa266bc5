"""Math functions for model expressions: ``exmc.math.exp(ref("a"))`` builds an expression.

Each function accepts expressions, DSL variables, variable names, numbers and
arrays, and returns an ``Expr``; the op registry (``exmc/ir/ops.py``) gives
each its shape rule, NumPy value and exact gradient.  The elementwise
functions of one argument are made from the registry itself.
"""
from exmc.ir.expr import Expr, as_expr, postorder
from exmc.ir.ops import REGISTRY
from exmc.ir.recursion import ODE_ALIASES, ODE_METHODS, OdeSpec, Recursion


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
arctan2 = _binary("arctan2")
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


def reshape(x, shape):
    """The elements of ``x`` in row-major order, in ``shape`` (an int or a tuple of ints)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}")
    return Expr("reshape", (as_expr(x),), shape)


# ---- recursions and ODEs ----------------------------------------------------------------------
def _placeholders(count):
    return [Expr("arg", (), n) for n in range(count)]


def _body(result, placeholders, what):
    """``result`` as a body over placeholders, and the outside values it uses (hoisted).

    Every largest subexpression that uses no placeholder but refers to something
    outside (a model variable, a DSL variable) becomes one more placeholder,
    numbered after ``placeholders`` (this body's own, told apart by identity from an
    enclosing body's); constants stay in the body.  So a body may close over the
    model's variables, or an enclosing recursion's values, and still be plain data.
    """
    own, first_free = {id(p) for p in placeholders}, len(placeholders)
    try:
        root = as_expr(result)
    except TypeError as err:
        raise TypeError(f"{what} must return an expression: {err}") from None
    inner, closed = set(), set()  # ids: uses a placeholder; only constants below
    for node in postorder(root):
        if id(node) in own or any(id(a) in inner for a in node.args):
            inner.add(id(node))
        elif node.op == "const" or (node.args and all(id(a) in closed for a in node.args)):
            closed.add(id(node))
    hoisted, slots, new = [], {}, {}

    def moved(node):
        if id(node) in inner or id(node) in closed:
            return new[id(node)]
        if id(node) not in slots:
            slots[id(node)] = Expr("arg", (), first_free + len(hoisted))
            hoisted.append(node)
        return slots[id(node)]

    for node in postorder(root):
        if id(node) in inner:
            args = tuple(moved(a) for a in node.args)
            new[id(node)] = node if all(a is b for a, b in zip(args, node.args)) else \
                Expr(node.op, args, node.value)
        elif id(node) in closed:
            new[id(node)] = node
    return moved(root), hoisted


def scan(fn, init, sequences=(), non_sequences=(), n_steps=None):
    """A loop-carried recursion: ``state[t] = fn(state[t-1], *rows_t, *non_sequences)``.

    Parameters
    ----------
    fn : callable
        Called once, with placeholder expressions, to record the body: the state
        (shape of ``init``), row ``t`` of each sequence, then each non-sequence.  It
        returns the new state (same shape as ``init``).  It may use any ``exmc.math``
        function and close over model variables (they are passed in as
        non-sequences automatically); it must not branch on values in Python.
    init : expression, number or array
        The state before the first step.
    sequences : sequence of expressions or arrays
        Arrays whose first axis is the step: each step sees one row of each.
    non_sequences : sequence of expressions or arrays
        Values seen whole at every step.
    n_steps : int, optional
        Number of steps; needed only when there are no sequences.

    Returns
    -------
    Expr
        The states after each step, shape ``(n_steps, *init.shape)`` (``init`` not included).

    The compiled code runs the steps as a loop (no Python per step) and
    differentiates it exactly in reverse mode, recomputing each step's
    intermediates from the stored states.  See ``docs/recursions.md``.
    """
    sequences, non_sequences = list(sequences), list(non_sequences)
    count = 1 + len(sequences) + len(non_sequences)
    placeholders = _placeholders(count)
    body, hoisted = _body(fn(*placeholders), placeholders, "scan's fn")
    if n_steps is not None and (not isinstance(n_steps, int) or isinstance(n_steps, bool)):
        raise TypeError(f"n_steps must be an int, got {n_steps!r}")
    args = [as_expr(init)] + [as_expr(x) for x in sequences + non_sequences + hoisted]
    return Expr("scan", tuple(args), Recursion(body, len(sequences), n_steps))


def ode_solve(rhs, y0, times, params=(), t0=0.0, method="rk45", rtol=1e-6, atol=1e-6,
              max_steps=10_000):
    """Solution of dy/dt = ``rhs(t, y, *params)`` from ``y(t0) = y0`` at ``times``.

    Parameters
    ----------
    rhs : callable
        Called once with placeholders ``t`` (scalar), ``y`` (shape of ``y0``) and each
        of ``params``; returns dy/dt with the shape of ``y0`` (``exmc.math.stack`` of
        the components, say).  It may close over model variables.
    y0 : expression or array, 1-d
        Initial state (may depend on parameters).
    times : array, 1-d
        Output times, non-decreasing, not before ``t0``; constants (data).
    params : sequence of expressions
        Parameters of the right-hand side (may depend on model variables).
    t0 : float
        Initial time (a constant).
    method : "rk45", "sdirk4" or "bdf"
        "rk45": Dormand-Prince 5(4), explicit, with adaptive steps (non-stiff systems).
        "sdirk4": an L-stable singly diagonally implicit Runge-Kutta method of order 4
        (Hairer and Wanner's SDIRK4, embedded order 3) with adaptive steps, for stiff
        systems: each stage is solved by Newton's method to rounding.  "bdf" is accepted
        as another name for the stiff method (Stan's and the issue's name); it is
        SDIRK4, not a backward differentiation formula.
    rtol, atol : float
        Error per step relative to ``atol + rtol * |y|`` (root mean square over components).
    max_steps : int
        Most step attempts of one solve; beyond it the density is zero there (the
        sampler treats the point as divergent).  Sizes the stored trajectory.

    Returns
    -------
    Expr
        The solution, shape ``(len(times), len(y0))``.

    Gradients are exact reverse-mode derivatives of the computed solution with its
    accepted step sizes held fixed (discretise-then-differentiate), so they match
    the solution to the solver's tolerance.  See ``docs/recursions.md``.
    """
    methods = ODE_METHODS + tuple(ODE_ALIASES)
    if not isinstance(method, str) or method not in methods:
        raise ValueError(f"ode_solve: unknown method {method!r}; the methods are "
                         f"{', '.join(map(repr, methods))} ('bdf' is the stiff SDIRK4)")
    method = ODE_ALIASES.get(method, method)
    params = list(params)
    count = 2 + len(params)
    placeholders = _placeholders(count)
    body, hoisted = _body(rhs(*placeholders), placeholders, "ode_solve's rhs")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise TypeError(f"max_steps must be a positive int, got {max_steps!r}")
    spec = OdeSpec(body, float(rtol), float(atol), max_steps, method)
    args = [as_expr(y0), as_expr(t0), as_expr(times)] + [as_expr(p) for p in params + hoisted]
    return Expr("ode_solve", tuple(args), spec)


__all__ = [*_ELEMENTWISE_UNARY, "invlogit", "gammaln", "sum", "mean", "logsumexp", "cumsum",
           "concatenate", "stack", "transpose", "dot", "where", "switch", "clip", "maximum", "arctan2",
           "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
           "cholesky", "solve_triangular", "logdet", "scan", "ode_solve", "reshape"]
