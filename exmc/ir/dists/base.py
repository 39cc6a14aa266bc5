"""The Distribution base class: parameters as expressions, support, and code templates for the compiler.

A distribution family declares, as plain class attributes:

- ``params``: parameter names in positional order, ``defaults`` for optional ones;
- ``checks``: conditions on the parameters (``"sigma > 0"``), checked when the
  model is built for constant parameters and at run time for computed ones;
- ``setup`` / ``logp`` / ``partials``: numpy expressions over ``x`` (the value)
  and the parameter names, from which the compiler emits the elementwise
  log-density and its exact partial derivatives;
- ``support``: the value's (lower, upper) bounds, which pick the transform.

Composite families (random walks, custom densities) instead ``expand`` into
terms of simpler ones.
"""
from __future__ import annotations

import itertools
import re
from typing import ClassVar, NamedTuple

import numpy as np

from exmc.ir.expr import Expr, ExprOps, as_expr

_serial = itertools.count()
# Stack of active @exmc.model recordings (see ir/dsl.py): each new distribution
# is appended to the innermost one so the DSL can name it after the call.
recordings: list = []


class Templates(NamedTuple):
    """Code templates for one family (see the module docstring)."""

    setup: tuple  # ((local_name, expression), ...) evaluated in order
    logp: str
    partials: dict  # argument name ("x" or a parameter) -> expression
    checks: tuple  # conditions over parameters that must hold


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
        Shape of the variable; inferred from the parameters when omitted.
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

    setup: ClassVar[tuple] = ()
    logp: ClassVar[str] = ""
    partials: ClassVar[dict] = {}
    checks: ClassVar[tuple] = ()

    def __init__(self, *args, shape=None, observed=None, name=None, **kwargs):
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
        self.observed = None if observed is None else np.asarray(observed)
        self.name = name
        self.serial = next(_serial)  # creation order, used by the DSL
        if recordings:
            recordings[-1].append(self)

    def _convert(self, key, val):
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
    def templates(self) -> Templates:
        return Templates(self.setup, self.logp, self.partials, self.checks)

    def support_exprs(self):
        """(lower, upper) of the value as expressions of the parameters, None where unbounded."""
        def bound(template):
            if template is None:
                return None
            if isinstance(template, (int, float)):
                return as_expr(float(template))
            return self.param_exprs[template]
        return bound(self.lower), bound(self.upper)

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


def names_in(template, names):
    """Those of ``names`` that a code template mentions as whole words."""
    return [n for n in names if re.search(rf"\b{n}\b", template)]


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
