"""The Distribution base class: a family declared as data (parameters, ranks, support, checks).

A distribution family declares, as plain class attributes:

- ``params``: parameter names in positional order (PyMC's), ``defaults`` for
  optional ones, ``param_ndim`` the rank of each parameter's event part
  (0 unless given: ``MvNormal``'s ``cov`` is 2) and ``event_ndim`` the value's;
- ``checks``: predicates on the parameters as data, ``(name, op, name or
  number)`` such as ``("sigma", ">", 0.0)``, checked when the model is built
  for constant parameters and at run time for computed ones;
- ``lower`` / ``upper``: the value's bounds, or ``transform``: the name of a
  transform (``"simplex"``), which maps the free values onto the support.

The log density and its gradient are scalar kernel functions registered in
``exmc/compiler/families.py`` under the family's name and given parameters.
Composite families (random walks, custom densities) instead ``expand`` into
terms of simpler ones.
"""
from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np

from exmc.ir.expr import Expr, ExprOps, as_expr

_serial = itertools.count()
# Stack of active @exmc.model recordings (see ir/dsl.py): each new distribution
# is appended to the innermost one so the DSL can name it after the call.
recordings: list = []


class ModelError(ValueError):
    """A model that cannot be compiled; the message names the variable and the problem."""


class Distribution(ExprOps):
    """Base class of every distribution family.

    Parameters
    ----------
    *args, **kwargs
        The family's parameters, positionally in the order of ``params`` or by
        name.  Each may be a number, an array, a variable name (a reference),
        an expression, or (inside ``@exmc.model``) another variable.
    shape : int or tuple of int, optional
        Shape of the variable; inferred from the parameters (or from ``dims``) when omitted.
    dims : str or tuple of str, optional
        Names of the variable's dimensions, one per axis, as in PyMC: the model's
        ``coords`` give their lengths and labels, and InferenceData uses them.
    observed : array-like, optional
        Only inside ``@exmc.model``: declares an observation with this data.
    name : str, optional
        Only inside ``@exmc.model``: overrides the name taken from the assignment.
    """

    family: ClassVar[str] = ""
    params: ClassVar[tuple] = ()
    defaults: ClassVar[dict] = {}
    dist_params: ClassVar[tuple] = ()  # parameters that are distributions (GRW's init)
    data_params: ClassVar[tuple] = ()  # parameters that must be constant data (Binomial's n)
    discrete: ClassVar[bool] = False
    # Value support as parameter-expression templates: None is unbounded.
    lower: ClassVar[object] = None
    upper: ClassVar[object] = None
    open_support: ClassVar[bool] = True  # data on the bound itself has zero density

    transform: ClassVar[str | None] = None  # a named transform instead of bounds
    event_ndim: ClassVar[int] = 0
    param_ndim: ClassVar[dict] = {}
    checks: ClassVar[tuple] = ()  # (parameter, op, parameter or number)

    def __init__(self, *args, shape=None, dims=None, observed=None, name=None, **kwargs):
        names = self.params
        if len(args) > len(names):
            raise TypeError(f"{self.family} takes at most {len(names)} positional parameters "
                            f"({', '.join(names)}), got {len(args)}")
        given = dict(zip(names, args))
        for key, val in kwargs.items():
            if key not in names:
                raise TypeError(f"{self.family} has no parameter {key!r}; its parameters are "
                                f"{', '.join(names)}")
            if key in given:
                raise TypeError(f"{self.family} got parameter {key!r} twice")
            given[key] = val
        self.param_exprs = {}
        for key in names:
            val = given.get(key, self.defaults.get(key))
            if val is None and key not in self.defaults:
                raise TypeError(f"{self.family} needs parameter {key!r}")
            if val is None:
                continue
            self.param_exprs[key] = self._convert(key, val)
        self.shape = normalize_shape(shape)
        self.dims = normalize_dims(dims)
        self.observed = None if observed is None else np.asarray(observed)
        self.name = name
        self.serial = next(_serial)  # creation order, used by the DSL
        if recordings:
            recordings[-1].append(self)

    def _convert(self, key, val):
        if key in self.dist_params and isinstance(val, (list, tuple)):
            if not val or not all(isinstance(v, Distribution) for v in val):
                raise TypeError(f"{self.family} parameter {key!r} must be a distribution or a "
                                f"non-empty list of distributions")
            return list(val)
        if key in self.dist_params:
            if not isinstance(val, Distribution):
                raise TypeError(f"{self.family} parameter {key!r} must be a distribution, "
                                f"got {type(val).__name__}")
            return val
        try:
            return as_expr(val)
        except TypeError as err:
            raise TypeError(f"{self.family} parameter {key!r}: {err}") from None

    @classmethod
    def from_params(cls, params: dict, shape):
        """Rebuild from parameter expressions (used when reading serialised IR)."""
        return cls(**params, shape=shape)

    # ---- used by the builder and the compiler --------------------------------
    def predicates(self):
        """The checks that apply: those over parameters this distribution was given."""
        return tuple(c for c in self.checks
                     if all(p in self.param_exprs for p in (c[0], c[2]) if isinstance(p, str)))

    def value_shape(self, param_shapes: dict, shape, where):
        """The value's shape from the parameters' shapes (and a declared ``shape`` or None).

        Each parameter's last ``param_ndim`` axes are its event part; the rest
        broadcast to the batch shape, and the value is batch + event shape.
        """
        event = None
        batch = []
        for key, s in param_shapes.items():
            ndim = self.param_ndim.get(key, 0)
            if len(s) < ndim:
                raise ModelError(f"{where}: parameter {key!r} of {self.family} needs {ndim} "
                                 f"dimensions, got shape {s}")
            batch.append(s[:len(s) - ndim])
            if ndim and event is None:
                event = self.event_shape(key, s[len(s) - ndim:])
        event = () if event is None else event
        try:
            batch = tuple(np.broadcast_shapes(*batch)) if batch else ()
        except ValueError:
            raise ModelError(f"{where}: parameter shapes {dict(param_shapes)} do not broadcast") from None
        if shape is None:
            return batch + event
        shape = tuple(shape)
        if shape[len(shape) - len(event):] != event if event else False:
            raise ModelError(f"{where}: shape {shape} does not end with the event shape {event} "
                             f"of {self.family}")
        lead = shape[:len(shape) - len(event)]
        try:
            fits = tuple(np.broadcast_shapes(lead, batch)) == lead
        except ValueError:
            fits = False
        if not fits:
            shown = ", ".join(f"{k} {s}" for k, s in param_shapes.items())
            raise ModelError(f"{where}: parameter shapes ({shown}) do not fit the variable's "
                             f"shape {shape}")
        return shape

    def event_shape(self, key, shape):
        """The value's event shape given the event part of parameter ``key`` (its last axes)."""
        return tuple(shape[-self.event_ndim:]) if self.event_ndim else ()

    def check_constants(self, where):
        """ModelError if a check fails for parameters that are constants."""
        constants = {k: v.value for k, v in self.param_exprs.items()
                     if isinstance(v, Expr) and v.op == "const"}
        for lhs, op, rhs in self.predicates():
            involved = [p for p in (lhs, rhs) if isinstance(p, str)]
            if not all(p in constants for p in involved):
                continue
            right = constants[rhs] if isinstance(rhs, str) else rhs
            if not np.all(COMPARE[op](constants[lhs], right)):
                shown = ", ".join(f"{k}={_short(constants[k])}" for k in involved)
                bound = rhs if isinstance(rhs, str) else f"{rhs:g}"
                raise ModelError(f"{where}: {self.family} needs {lhs} {op} {bound}, got {shown}")

    def support_exprs(self):
        """(lower, upper) of the value as expressions of the parameters, None where unbounded."""
        def bound(template):
            if template is None:
                return None
            if isinstance(template, (int, float)):
                return as_expr(float(template))
            return self.param_exprs[template]
        return bound(self.lower), bound(self.upper)

    def parts(self):
        """(label, distribution) whose parameters broadcast with this variable's (a wrapper's)."""
        return ()

    def expand(self, value: Expr):
        """Terms whose sum is this density at ``value``: (Distribution, value) or ("logp", Expr)."""
        return [(self, value)]

    def random(self, rng, values: dict, size):
        """Draws given parameter values (numbers or arrays, broadcast to ``size``)."""
        raise NotImplementedError(f"{self.family} has no random-draw function")

    # ---- DSL ---------------------------------------------------------------
    def as_expr(self):
        return Expr("dslvar", (), self)

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.param_exprs.items())
        shape = f", shape={self.shape}" if self.shape is not None else ""
        return f"{self.family}({inner}{shape})"


COMPARE = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


def _short(value):
    arr = np.asarray(value)
    return repr(float(arr)) if arr.ndim == 0 else f"array{arr.shape} (min {arr.min():g})"


def normalize_dims(dims):
    """``dims`` as a tuple of names (a single name is one dimension), or None."""
    if dims is None:
        return None
    dims = (dims,) if isinstance(dims, str) else dims
    if not isinstance(dims, (tuple, list)) or not all(isinstance(d, str) and d for d in dims):
        raise TypeError(f"dims must be a name or a tuple of names, got {dims!r}")
    return tuple(dims)


def normalize_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(s < 1 for s in shape):
        raise ValueError(f"shape entries must be positive, got {shape}")
    return shape
