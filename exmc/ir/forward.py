"""Ancestral sampling of a model with NumPy: many draws at once, for prior and posterior predictive checks.

Variables are visited in dependency order.  A variable whose values are given
(posterior draws) is taken as it is; a deterministic is evaluated; any other
random or observed variable is drawn from its family's ``random`` with its
parameters evaluated by ``evaluate_batched``.  Every array carries a leading
draw axis, so the cost is one NumPy call per operation and per variable for a
whole chunk of draws, never a Python loop per draw.  Chunks of draws bound the
memory held at once (``CHUNK_ELEMENTS``).
"""
from __future__ import annotations

import math

import numpy as np

from exmc.ir.builder import (Model, ModelError, _check_params, _check_variable, _dependencies,
                             _topological_order, _unknown_reference)
from exmc.ir.dists.base import Distribution
from exmc.ir.evaluate import evaluate_batched

#: Values (of every variable visited) held at once: draws are made in chunks of at most this.
CHUNK_ELEMENTS = 2**24


def prediction_shapes(model: Model) -> dict:
    """Each variable's shape, in dependency order: ``Model.validate``'s checks, except that a
    discrete random variable is allowed (it is drawn here, never sampled).

    This is what lets a model rebuilt for new data leave its observations out
    (``observed=None``): they become random variables whose shape follows the new data.
    """
    if not any(v.dist.discrete for v in model.free_variables):
        return dict(model.validate())
    deps = {v.name: _dependencies(v) for v in model.variables}
    for name, refs in deps.items():
        for missing in (r for r in refs if r not in deps):
            raise ModelError(_unknown_reference(name, missing, list(deps)))
    shapes = {}
    for name in _topological_order(deps):
        var = model[name]
        if var.kind == "rv" and var.dist.discrete:
            shapes[name] = _check_params(var.dist, shapes, f"variable {name!r}", var.dist.shape, {})
        else:
            shapes[name] = _check_variable(var, shapes)
    return shapes


def needed_variables(model: Model, wanted, given) -> set:
    """The names that must be computed (or given) to get ``wanted``; the parents of a
    ``given`` variable are not needed for it."""
    needed, stack = set(), list(wanted)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        if name not in given:
            stack.extend(_dependencies(model[name]))
    return needed


def forward_draws(model: Model, num_draws: int, rng: np.random.Generator, given=None,
                  wanted=None, shapes=None) -> dict:
    """Draws of the ``wanted`` variables (default: all) by ancestral sampling, all at once.

    Parameters
    ----------
    model : Model
    num_draws : int
    rng : numpy.random.Generator
    given : dict, optional
        Name -> values of shape (num_draws, *shape) taken as known (posterior draws).
    wanted : list of str, optional
    shapes : dict, optional
        ``prediction_shapes(model)``, when the caller has it already.

    Returns
    -------
    dict name -> ndarray (num_draws, *shape)
    """
    given = {} if given is None else given
    shapes = prediction_shapes(model) if shapes is None else shapes
    wanted = list(shapes) if wanted is None else list(wanted)
    needed = needed_variables(model, wanted, given)
    order = [name for name in shapes if name in needed]
    for name in order:
        var = model[name]
        if name not in given and var.kind != "det" and not _can_draw(var.dist):
            raise ModelError(f"variable {name!r}: {var.dist.family} has no random-draw function, "
                             f"so it cannot be drawn for a predictive; leave it out of var_names "
                             f"(or give its values)")
    per_draw = sum(math.prod(shapes[name]) for name in order) or 1
    chunk = max(1, CHUNK_ELEMENTS // per_draw)
    out = {name: np.empty((num_draws,) + tuple(shapes[name])) for name in wanted}
    for start in range(0, num_draws, chunk):
        rows = slice(start, min(start + chunk, num_draws))
        values = _draw_chunk(model, order, shapes, rows.stop - rows.start, rng,
                             {name: np.asarray(v, dtype=float)[rows] for name, v in given.items()
                              if name in needed})
        for name in wanted:
            out[name][rows] = values[name]
    return out


def _can_draw(dist: Distribution):
    if type(dist).random is Distribution.random:
        return False
    return all(_can_draw(p) for p in _nested(dist))


def _nested(dist):
    """The distributions among ``dist``'s parameters (a random walk's init, mixture components)."""
    for p in dist.param_exprs.values():
        yield from (q for q in (p if isinstance(p, list) else [p]) if isinstance(q, Distribution))


def _draw_chunk(model, order, shapes, count, rng, values):
    for name in order:
        if name in values:
            continue
        var, shape = model[name], tuple(shapes[name])
        if var.kind == "det":
            x = evaluate_batched(var.expr, values, shapes)
            values[name] = np.broadcast_to(x, (count,) + shape)
            continue
        params = parameters(var.dist, values, shapes, shape)
        try:
            with np.errstate(all="ignore"):
                values[name] = np.asarray(var.dist.random(rng, params, (count,) + shape),
                                          dtype=float)
        except ValueError as err:  # NumPy refuses a parameter outside its domain
            raise ValueError(f"variable {name!r}: drawing from {var.dist.family} failed ({err}); "
                             f"are its parameters inside their domain for every draw?") from None
    return values


def parameters(dist: Distribution, values, shapes, value_shape) -> dict:
    """The parameters of ``dist`` evaluated for a chunk of draws, each shaped to broadcast
    against (draws, *value_shape): the draw axis first, then ones for the batch axes the
    parameter lacks, then its own axes (the event axes last, as ``random`` expects)."""
    batch_rank = len(value_shape) - dist.event_ndim
    out = {}
    for key, expr in dist.param_exprs.items():
        if isinstance(expr, Distribution):  # a random walk's init: lined up with the walk's axes
            out[key] = parameters(expr, values, shapes, value_shape)
            continue
        if isinstance(expr, list):  # components, each lined up with the variable's axes
            out[key] = [parameters(d, values, shapes, value_shape) for d in expr]
            continue
        x = evaluate_batched(expr, values, shapes)
        own = x.shape[1:]
        missing = batch_rank - (len(own) - dist.param_ndim.get(key, 0))
        out[key] = x.reshape(x.shape[:1] + (1,) * max(missing, 0) + own)
    return out
