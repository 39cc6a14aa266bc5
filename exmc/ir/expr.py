"""Expression graphs: the plain-data form of every parameter, deterministic and custom density.

An ``Expr`` is an operation name, its argument expressions and, for leaves, a
value.  Leaves are constants (numbers or data arrays), references to model
variables by name (``ref("mu")``) and the placeholder ``value`` that stands
for a variable's own value inside ``Custom(logp=...)``.  Python operators on
expressions build bigger expressions; nothing is evaluated.

Expressions are DAGs: ``x = x * 0.5 + x * 0.5`` refers to one ``x`` node
twice.  Everything that visits an expression goes through ``walk``,
``postorder`` or ``rewrite``, which see each distinct node (by identity) once
and never recurse, so cost is linear in the number of distinct nodes and deep
expressions need no Python stack.
"""
from __future__ import annotations

import numbers

import numpy as np

from exmc.ir.ops import REGISTRY, VARIADIC

# Operation name -> number of arguments (VARIADIC: one or more), from the op registry
# (``ir/ops.py``); ``ir/serialize.py`` accepts only these.
# "arg": a numbered placeholder inside the body of a scan or an ODE (``ir/recursion.py``).
LEAVES = ("const", "ref", "value", "arg")
OPS = {**{name: op.arity for name, op in REGISTRY.items()}, **{op: 0 for op in LEAVES},
       # Transient: a not-yet-named variable inside @exmc.model; never in a finished IR.
       "dslvar": 0}


# NumPy ufunc names that differ from the op registry's; others are the same (np.exp: "exp").
UFUNC_OPS = {"absolute": "abs", "negative": "neg", "subtract": "sub", "multiply": "mul",
             "divide": "div", "true_divide": "div", "power": "pow", "less": "lt",
             "less_equal": "le", "greater": "gt", "greater_equal": "ge", "equal": "eq",
             "not_equal": "ne", "fmax": "maximum", "fmin": "minimum"}
# Ops a user calls by name from exmc.math (the operators +, -, *, ... are not listed there).
MATH_NAMES = frozenset(REGISTRY) - {"add", "sub", "mul", "div", "pow", "neg", "index",
                                     "family_fn", "scan", "ode_solve"}


def _only_axis(name, axis, numpy_options):
    """``axis``, or TypeError if NumPy passed an option other than its default (None/False)."""
    other = [key for key, value in numpy_options.items() if value not in (None, False)
             and value is not np._NoValue]
    if other:
        raise TypeError(f"{name} of a model expression takes only axis=, not "
                        f"{', '.join(other)}")
    return axis


class ExprOps:
    """Operator overloading shared by expressions and by DSL variables.

    Subclasses implement ``as_expr()``.  NumPy hands any ufunc call with an expression
    among its operands to ``__array_ufunc__``: ``np.exp(mu)``, ``X @ beta`` and
    ``ndarray * expr`` become the op of the same meaning, so PyMC habits keep working.
    """

    __slots__ = ()  # an Expr holds only its own slots: large models take less memory

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = UFUNC_OPS.get(ufunc.__name__, ufunc.__name__)
        elementwise = op in REGISTRY and (REGISTRY[op].scalar is not None or op == "matmul")
        if method != "__call__" or kwargs or not elementwise or REGISTRY[op].arity != len(inputs):
            usage = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
            raise TypeError(f"{usage}{' with ' + ', '.join(kwargs) if kwargs else ''} cannot "
                            f"take a model expression; use the exmc.math function (exmc.math "
                            f"has {', '.join(sorted(n for n in REGISTRY if n in MATH_NAMES))})")
        return Expr(op, tuple(as_expr(x) for x in inputs))

    # np.sum(x) and np.mean(x) call these (x.sum(axis=..., out=None, ...) as for any array-like).
    def sum(self, axis=None, **numpy_options):
        from exmc import math
        return math.sum(self, _only_axis("sum", axis, numpy_options))

    def mean(self, axis=None, **numpy_options):
        from exmc import math
        return math.mean(self, _only_axis("mean", axis, numpy_options))

    def as_expr(self) -> "Expr":  # pragma: no cover - abstract
        raise NotImplementedError

    def _bin(self, op, other, reflected=False):
        a, b = self.as_expr(), as_expr(other)
        return Expr(op, (b, a) if reflected else (a, b))

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, True)
    def __pow__(self, o): return self._bin("pow", o)
    def __rpow__(self, o): return self._bin("pow", o, True)
    def __matmul__(self, o): return self._bin("matmul", o)
    def __rmatmul__(self, o): return self._bin("matmul", o, True)
    def __lt__(self, o): return self._bin("lt", o)
    def __le__(self, o): return self._bin("le", o)
    def __gt__(self, o): return self._bin("gt", o)
    def __ge__(self, o): return self._bin("ge", o)
    def __neg__(self): return Expr("neg", (self.as_expr(),))
    def __pos__(self): return self.as_expr()
    def __abs__(self): return Expr("abs", (self.as_expr(),))

    @property
    def T(self):  # noqa: N802 - numpy's name
        """The transpose (axes reversed)."""
        return Expr("transpose", (self.as_expr(),))

    def __getitem__(self, index):
        if index is None or index is Ellipsis or isinstance(index, tuple):  # x[:, 0], x[None]
            return Expr("index_axes", (self.as_expr(),), normalize_axes(index))
        return Expr("index", (self.as_expr(),), normalize_index(index))

    __hash__ = object.__hash__


class Expr(ExprOps):
    """One node of an expression tree (immutable by convention).

    Parameters
    ----------
    op : str
        One of ``OPS``.
    args : tuple of Expr
        Argument expressions.
    value : object
        For ``const``: a float or a float64 ndarray; for ``ref``: the variable
        name; for ``index``: an int, a ``("slice", start, stop, step)`` tuple or
        an int64 ndarray; for ``arg``: the placeholder's position; for ``scan``
        and ``ode_solve``: a ``Recursion`` or ``OdeSpec`` holding the body.
    """

    __slots__ = ("op", "args", "value")

    def __init__(self, op, args=(), value=None):
        if op not in OPS:
            raise ValueError(f"unknown expression operation {op!r}")
        if len(args) != OPS[op] and not (OPS[op] == VARIADIC and args):
            raise ValueError(f"operation {op!r} takes {OPS[op]} arguments, got {len(args)}")
        self.op, self.args, self.value = op, tuple(args), value

    def as_expr(self):
        return self

    def walk(self):
        """Yield each distinct node of this expression once (by identity), depth first from the root."""
        return walk(self)

    def references(self):
        """Names of the variables this expression refers to, in first-seen order."""
        return list(dict.fromkeys(n.value for n in walk(self) if n.op == "ref"))

    def __repr__(self):
        text = {}
        for node in postorder(self):
            text[id(node)] = _clip(_node_repr(node, [text[id(a)] for a in node.args]))
        return text[id(self)]


REPR_CHARS = 400  # a shared subexpression printed in full doubles per level of sharing


def _clip(s):
    return s if len(s) <= REPR_CHARS else s[:REPR_CHARS - 3] + "..."


def _node_repr(node, args):
    if node.op == "const":
        v = node.value
        return repr(float(v)) if np.ndim(v) == 0 else f"array{np.shape(v)}"
    if node.op == "ref":
        return f"ref({node.value!r})"
    if node.op == "value":
        return "value"
    if node.op == "arg":
        return f"arg{node.value}"
    if node.op == "index":
        return f"{args[0]}[{node.value!r}]"
    return f"{node.op}({', '.join(args)})"


def walk(*roots):
    """Yield each distinct node reachable from ``roots`` once (by identity), depth first."""
    seen, stack = set(), list(reversed(roots))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))  # ids stay valid: the roots keep every node alive
        yield node
        stack.extend(reversed(node.args))


def postorder(*roots):
    """Each distinct node reachable from ``roots`` once, every node after all of its arguments."""
    order, done, stack = [], set(), [(r, False) for r in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in reversed(node.args) if id(a) not in done)
    return order


def rewrite(root, leaf, memo=None):
    """``root`` with each leaf node replaced by ``leaf(node)``; sharing is kept, unchanged parts reused.

    ``memo`` (id of an old node -> new node) may be shared by several calls
    whose old nodes all stay alive, so that sharing between them is kept too.
    """
    new = {} if memo is None else memo
    for node in postorder(root):
        if id(node) in new:
            continue
        if not node.args:
            out = leaf(node)
        else:
            args = tuple(new[id(a)] for a in node.args)
            same = all(a is b for a, b in zip(args, node.args))
            out = node if same else Expr(node.op, args, node.value)
        new[id(node)] = out
    return new[id(root)]


def ref(name: str) -> Expr:
    """A reference to the model variable called ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"ref() takes a variable name, got {name!r}")
    return Expr("ref", (), name)


#: The value of the variable being defined, inside ``Custom(logp=...)``.
value = Expr("value")


def constant(x) -> Expr:
    """A constant: a Python number becomes a float, anything array-like a float64 array."""
    if isinstance(x, (bool, np.bool_)):
        return Expr("const", (), float(x))
    if isinstance(x, numbers.Real):
        return Expr("const", (), float(x))
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"cannot use {type(x).__name__} as a constant: expected a number or a numeric array")
    if arr.ndim == 0:
        return Expr("const", (), float(arr))
    return Expr("const", (), np.ascontiguousarray(arr, dtype=np.float64))


def as_expr(x) -> Expr:
    """Turn a number, array, variable name, DSL variable or expression into an ``Expr``."""
    if isinstance(x, ExprOps):
        return x.as_expr()
    if isinstance(x, str):
        return ref(x)
    return constant(x)


def normalize_axes(index):
    """A multi-axis index as static plain data: a tuple with, per entry, what
    ``normalize_index`` makes, or "newaxis" (None) or "..." (Ellipsis)."""
    entries = index if isinstance(index, tuple) else (index,)
    out = tuple("newaxis" if e is None else "..." if e is Ellipsis else normalize_index(e)
                for e in entries)
    if sum(isinstance(e, str) and e == "..." for e in out) > 1:
        raise TypeError(f"an index can have only one ellipsis (...), got {index!r}")
    if sum(isinstance(e, np.ndarray) for e in out) > 1:
        raise TypeError(f"an index may hold one integer array, got {index!r}: with two, "
                        f"NumPy pairs them elementwise; index one axis, then the other")
    return out


def normalize_index(index):
    """Make an index static plain data: int, ("slice", start, stop, step) or int64 array."""
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        return int(index)
    if isinstance(index, slice):
        parts = (index.start, index.stop, index.step)
        if not all(p is None or isinstance(p, (int, np.integer)) for p in parts):
            raise TypeError("slice bounds of an expression index must be integers")
        return ("slice",) + tuple(None if p is None else int(p) for p in parts)
    if isinstance(index, tuple) and index and index[0] == "slice":
        return index
    arr = np.asarray(index)
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    raise TypeError(f"unsupported index {index!r}: use an int, a slice or a 1-d integer array")
