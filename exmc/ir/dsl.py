"""The ``@exmc.model`` DSL: write a model as a Python function; variables are named by assignment.

Inside the decorated function every distribution created is recorded;
``mu = Normal(0, 10)`` declares ``mu``, ``y = Normal(mu, s, observed=data)``
declares an observation, ``eta = exmc.Deterministic(a + b)`` a deterministic.
Calling the decorated function returns the same ``Model`` the Builder would.
"""
from __future__ import annotations

import copy
import functools
import inspect
import sys

import numpy as np

from exmc.ir import dists
from exmc.ir.builder import Model, ModelError
from exmc.ir.dists.base import _serial, recordings as _recordings
from exmc.ir.expr import Expr, ExprOps, as_expr, rewrite


class Deterministic(ExprOps):
    """A deterministic quantity recorded in the trace: ``name = Deterministic(expr)`` in a model."""

    def __init__(self, expr, name=None, dims=None):
        self.expr = as_expr(expr)
        self.name = name
        self.dims = dims
        self.serial = next(_serial)
        if _recordings:
            _recordings[-1].append(self)

    def as_expr(self):
        return Expr("dslvar", (), self)


def model(fn=None, *, coords=None):
    """Decorator: calling ``fn(*args)`` builds and returns a ``Model``.

    ``@exmc.model(coords={"school": names})`` names dimensions for ``dims=`` as PyMC's
    ``pm.Model(coords=...)``; ``coords`` may be a function of the same arguments as ``fn``
    (the labels often come from the data).
    """
    if fn is None:
        return functools.partial(model, coords=coords)

    @functools.wraps(fn)
    def build(*args, **kwargs):
        created: list = []
        local_names: dict = {}

        def profiler(frame, event, arg):
            if event == "return" and frame.f_code is fn.__code__:
                local_names.update(frame.f_locals)

        _recordings.append(created)
        previous = sys.getprofile()
        sys.setprofile(profiler)
        try:
            fn(*args, **kwargs)
        finally:
            sys.setprofile(previous)
            _recordings.pop()
        m = _to_model(fn.__name__, created, local_names,
                      coords(*args, **kwargs) if callable(coords) else coords)
        m.constant_data = _data_arguments(fn, args, kwargs, m)
        return m

    build.is_exmc_model = True
    return build


def _data_arguments(fn, args, kwargs, m):
    """The arrays ``fn`` was called with, by argument name, other than observed data.

    They become InferenceData's ``constant_data`` (the inputs a predictive check is
    plotted against).
    """
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return {}
    observed = [v.data for v in m.variables if v.kind == "obs"]
    data = {}
    for name, value in bound.arguments.items():
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything that is not array-like is not data
            continue
        if arr.ndim == 0 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            continue
        if not any(o.shape == arr.shape and np.array_equal(o, arr) for o in observed):
            data[name] = arr
    return data


def _to_model(model_name, created, local_names, coords=None):
    names = {}
    created_ids = {id(c) for c in created}
    for local, obj in local_names.items():
        if id(obj) in created_ids and id(obj) not in names:
            names[id(obj)] = obj.name or local
    used_as_param = {id(v) for obj in created if isinstance(obj, dists.Distribution)
                     for p in obj.param_exprs.values() for v in (p if isinstance(p, list) else [p])
                     if isinstance(v, dists.Distribution)}
    for obj in created:
        if id(obj) not in names and obj.name:
            names[id(obj)] = obj.name
        if id(obj) not in names and id(obj) not in used_as_param:
            raise ModelError(f"model {model_name!r}: {obj!r} was created but not assigned to a "
                             f"name; write `name = {type(obj).__name__}(...)`")

    def named(leaf):
        if leaf.op != "dslvar":
            return leaf
        if id(leaf.value) not in names:
            raise ModelError(f"model {model_name!r}: {leaf.value!r} is used as a value but has "
                             f"no name; assign it to a variable first")
        return Expr("ref", (), names[id(leaf.value)])

    rewritten = {}  # one memo for the model: `created` keeps every old node alive

    def resolve(expr):  # DSL variables become references; shared subexpressions stay shared
        return rewrite(expr, named, rewritten)

    def resolved(v):
        if isinstance(v, list):
            return [resolved_dist(c) for c in v]
        return resolved_dist(v) if isinstance(v, dists.Distribution) else resolve(v)

    def resolved_dist(dist):
        out = copy.copy(dist)
        out.param_exprs = {k: resolved(v) for k, v in dist.param_exprs.items()}
        out.observed, out.name = None, None
        return out

    m = Model(coords=coords)
    for obj in sorted((o for o in created if id(o) in names), key=lambda o: o.serial):
        name = names[id(obj)]
        if isinstance(obj, Deterministic):
            m.det(name, resolve(obj.expr), dims=obj.dims)
        elif obj.observed is not None:
            m.obs(name, resolved_dist(obj), obj.observed)
        else:
            m.rv(name, resolved_dist(obj))
    return m
