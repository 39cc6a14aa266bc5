"""After the posterior: prior and posterior predictive draws and the pointwise log-likelihood, as InferenceData.

- ``sample_prior_predictive(model)``: every variable drawn from the prior by
  ancestral sampling (``exmc/ir/forward.py``): groups ``prior`` (random
  variables and deterministics) and ``prior_predictive`` (observations).
- ``sample_posterior_predictive(model, idata)``: the model's random variables
  taken from ``idata.posterior``, deterministics recomputed, observations (and
  any random variable the posterior lacks) drawn: group ``posterior_predictive``
  (or ``predictions``).  Out of sample: build the model again with the new data
  (call the ``@exmc.model`` function with it) and pass that model; see
  docs/workflow.md.
- ``compute_log_likelihood(model, idata)``: group ``log_likelihood``, each
  observed element's log density at each draw, from the model's compiled
  pointwise function (what ``az.loo``, ``az.waic`` and ``az.compare`` read).

Every returned InferenceData also has ``observed_data`` and ``constant_data``
(the data arguments of an ``@exmc.model`` function), so ``az.plot_ppc`` works
on it as it is.
"""
from __future__ import annotations

import difflib

import numpy as np

import exmc
from exmc.ir.builder import Model
from exmc.ir.forward import forward_draws, prediction_shapes


def sample_prior_predictive(model: Model, draws: int = 500, seed=None, var_names=None):
    """Draws from the prior and the prior predictive of ``model``.

    Parameters
    ----------
    model : Model
    draws : int
        How many joint draws (PyMC's ``samples``/``draws``).
    seed : int or numpy.random.Generator, optional
        Same seed, same draws.
    var_names : list of str, optional
        The variables to return (default: all of them).

    Returns
    -------
    arviz.InferenceData
        ``prior`` (random variables and deterministics) and ``prior_predictive``
        (observed variables), each with one chain of ``draws`` draws, and
        ``observed_data`` and ``constant_data``.
    """
    _check_model(model)
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
    shapes = prediction_shapes(model)
    wanted = _chosen(var_names, list(shapes), [n for n in shapes if not _potential(model[n])])
    values = forward_draws(model, int(draws), np.random.default_rng(seed), wanted=wanted,
                           shapes=shapes)
    groups = {"prior": {}, "prior_predictive": {}}
    for name, v in values.items():
        groups["prior_predictive" if model[name].kind == "obs" else "prior"][name] = v[None]
    return _inference_data(model, groups, {"sampler": "ancestral"})


def sample_posterior_predictive(model: Model, idata, seed=None, var_names=None,
                                predictions=False, extend_inferencedata=False):
    """Draws from the posterior predictive of ``model``, one per posterior draw.

    Parameters
    ----------
    model : Model
        The model sampled, or the same model built again with new data (out-of-sample
        prediction).  Its random variables are read from ``idata.posterior`` (shapes
        must agree); a random variable the posterior lacks is drawn from its prior
        given the others (so ``y = Normal(mu, s, observed=None)`` in a model rebuilt for
        new inputs is predicted with the new inputs' shape).
    idata : arviz.InferenceData
        With a ``posterior`` group, as ``exmc.sample`` returns.
    seed : int or numpy.random.Generator, optional
    var_names : list of str, optional
        The variables to return (default: the observed ones and the random variables
        missing from the posterior).  Deterministics are recomputed with the model's
        data; random variables in the posterior are copied.
    predictions : bool
        Name the group ``predictions`` (and the data ``predictions_constant_data``), as
        ArviZ expects for out-of-sample draws, instead of ``posterior_predictive``.
    extend_inferencedata : bool
        Add the group to ``idata`` (replacing one of that name) and return ``idata``.

    Returns
    -------
    arviz.InferenceData
        ``posterior_predictive`` (or ``predictions``) with the posterior's chains and
        draws, ``observed_data`` and ``constant_data``.
    """
    _check_model(model)
    posterior = _posterior(idata, "sample_posterior_predictive")
    shapes = prediction_shapes(model)
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    given = {v.name: _posterior_values(posterior, v.name, shapes[v.name])
             for v in model.free_variables if v.name in posterior}
    default = [name for name in shapes if (model[name].kind == "obs"
               or (model[name].kind == "rv" and name not in given)) and not _potential(model[name])]
    if not default and var_names is None:
        raise ValueError("nothing to predict: the model has no observed variables and the "
                         "posterior has all of its random variables; name deterministics to "
                         "recompute in var_names")
    wanted = _chosen(var_names, list(shapes), default)
    values = forward_draws(model, chains * draws, np.random.default_rng(seed), given=given,
                           wanted=wanted, shapes=shapes)
    group = "predictions" if predictions else "posterior_predictive"
    result = _inference_data(
        model, {group: {name: v.reshape((chains, draws) + v.shape[1:])
                        for name, v in values.items()}},
        {"sampler": "ancestral"}, data_group="predictions_constant_data" if predictions
        else "constant_data")
    if not extend_inferencedata:
        return result
    return _extend(idata, result, [group, "predictions_constant_data" if predictions else None])


def compute_log_likelihood(model: Model, idata, extend_inferencedata=True):
    """Each observation's log density at each posterior draw: the ``log_likelihood`` group.

    Parameters
    ----------
    model : Model
        The model that was sampled (every random variable must be in the posterior).
    idata : arviz.InferenceData
        With a ``posterior`` group, as ``exmc.sample`` returns.
    extend_inferencedata : bool
        Add the group to ``idata`` (replacing one of that name) and return ``idata``;
        False returns a new InferenceData holding only ``log_likelihood``.

    Returns
    -------
    arviz.InferenceData
        ``log_likelihood``: per observed variable, (chain, draw, *shape) with shape that of
        its data without the event axes (one value per observed vector of an MvNormal).

    Notes
    -----
    ``exmc.sample(..., log_likelihood=True)`` gives the same group from the sampler's own
    unconstrained draws; here the constrained posterior values are mapped back first.
    """
    from exmc.compiler import compile_model

    _check_model(model)
    posterior = _posterior(idata, "compute_log_likelihood")
    shapes = dict(model.validate())
    missing = [v.name for v in model.free_variables if v.name not in posterior]
    if missing:
        raise ValueError(f"the posterior has no values of {', '.join(map(repr, missing))}: "
                         f"pass the model that was sampled")
    compiled = compile_model(model)
    values = {v.name: _posterior_values(posterior, v.name, shapes[v.name])
              for v in model.free_variables}
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    points = compiled.pointmap.unconstrain_draws(values).reshape(chains, draws, compiled.dim)
    import arviz as az
    result = az.InferenceData(log_likelihood=log_likelihood_dataset(
        log_likelihood_group(compiled, points), model))
    _label(result)
    return _extend(idata, result, ["log_likelihood"]) if extend_inferencedata else result


def log_likelihood_dataset(values, model=None):
    """The ``log_likelihood`` group as an xarray Dataset in ArviZ's layout from ``values``,
    {observed name: (chain, draw, *shape)}: dims ``chain``, ``draw``, then the variable's
    own ``dims`` in ``model`` (the leading ones, as many as the values have: an MvNormal's
    event axis has no pointwise value) or ArviZ's ``{name}_dim_{i}``.

    Built directly rather than through ``az.from_dict``, which costs about a millisecond
    more: a few percent of a small model's sampling time.
    """
    import xarray as xr
    from arviz.data.base import make_attrs

    named_dims = getattr(model, "dims", {}) or {}
    labels = getattr(model, "coords", {}) or {}
    variables, coords = {}, {}
    for name, v in values.items():
        named = tuple(named_dims.get(name, ()))[:v.ndim - 2]
        dims = named + tuple(f"{name}_dim_{i}" for i in range(len(named), v.ndim - 2))
        coords.update({"chain": np.arange(v.shape[0]), "draw": np.arange(v.shape[1])})
        coords.update({d: labels[d] if d in labels else np.arange(size)
                       for d, size in zip(dims, v.shape[2:])})
        variables[name] = (("chain", "draw") + dims, v)
    return xr.Dataset(variables, coords=coords, attrs=make_attrs())


class RunningLogLikelihood:
    """The pointwise log-likelihood of each chain's kept draws, computed block by block as the
    draws arrive (``update``), so that with chains in worker processes it is done while they
    still sample, not after them.

    Parameters
    ----------
    compiled : CompiledModel
    num_warmup : int
        Rows of a chain's draws before its kept ones.
    """

    def __init__(self, compiled, num_warmup):
        self.compiled, self.num_warmup = compiled, num_warmup
        self.blocks = {}  # chain -> [{name: (rows, *shape)}], in order
        self.count = {}  # chain -> kept draws computed

    def update(self, chain, draws, done):
        """Compute the kept rows of ``draws`` (a chain's (total, dim) draws, ``done`` of them
        filled) that the last call had not seen."""
        first = self.num_warmup + self.count.get(chain, 0)
        if done > first:
            block = self.compiled.log_likelihood(draws[first:done])
            self.blocks.setdefault(chain, []).append(block)
            self.count[chain] = done - self.num_warmup

    def values(self, chains, points):
        """{name: (len(chains), n, *shape)} for the first n kept draws of ``chains``, whose
        unconstrained draws are ``points`` (len(chains), n, dim); rows not computed yet
        (a chain resumed from a checkpoint, a device run) are computed from them now."""
        n, per_chain = points.shape[1], []
        for i, chain in enumerate(chains):
            have = min(self.count.get(chain, 0), n)
            blocks = list(self.blocks.get(chain, []))
            if have < n:
                blocks.append(self.compiled.log_likelihood(points[i, have:n]))
            per_chain.append({name: np.concatenate([b[name] for b in blocks])[:n]
                              for name in blocks[0]})
        return {name: np.stack([c[name] for c in per_chain]) for name in per_chain[0]}


def log_likelihood_group(compiled, points):
    """{observed name: (chain, draw, *shape)} from unconstrained ``points`` (chain, draw, dim).

    One call of the compiled pointwise log-likelihood over all draws; about the cost of
    one log-density evaluation per draw, where NUTS spent several gradients.
    """
    chains, draws = points.shape[:2]
    flat = compiled.log_likelihood(points.reshape(chains * draws, -1))
    return {name: v.reshape((chains, draws) + v.shape[1:]) for name, v in flat.items()}


# ---- helpers -------------------------------------------------------------------------------
def _check_model(model):
    if not isinstance(model, Model):
        raise TypeError(f"expected a model from Builder or @exmc.model, got {type(model).__name__}")


def _posterior(idata, caller):
    groups = idata.groups() if hasattr(idata, "groups") else None
    if groups is None:
        raise TypeError(f"{caller} needs an arviz.InferenceData (as exmc.sample returns), got "
                        f"{type(idata).__name__}")
    if "posterior" not in groups:
        raise ValueError(f"{caller}: the InferenceData has no posterior group (it has "
                         f"{', '.join(groups) or 'none'}); pass the result of exmc.sample")
    return idata.posterior


def _posterior_values(posterior, name, shape):
    """Posterior values of ``name`` as (chain * draw, *shape), checked against the model's shape."""
    arr = posterior[name].transpose("chain", "draw", ...).values
    if arr.shape[2:] != tuple(shape):
        raise ValueError(f"variable {name!r}: the posterior holds values of shape {arr.shape[2:]} "
                         f"per draw, but the model's {name!r} has shape {tuple(shape)}; rebuild "
                         f"the model so its random variables keep their shapes (only data that "
                         f"sets the observations' shape may change)")
    return arr.reshape((-1,) + arr.shape[2:])


def _potential(var):
    """A Potential is an observed variable of no data inside the IR: a term, not a variable."""
    return var.kind == "obs" and var.dist.family == "Potential"


def _chosen(var_names, known, default):
    if var_names is None:
        return default
    if isinstance(var_names, str):
        var_names = [var_names]
    for name in var_names:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"var_names: the model has no variable {name!r}{hint}; its "
                             f"variables are {', '.join(known)}")
    return list(dict.fromkeys(var_names))


def _inference_data(model, groups, attrs, data_group="constant_data"):
    import arviz as az

    observed = {v.name: v.data for v in model.variables  # a Potential is no data
                if v.kind == "obs" and v.dist.family != "Potential"}
    data = {data_group: dict(model.constant_data)}
    idata = az.from_dict(**{k: v for k, v in groups.items() if v}, observed_data=observed,
                         **{k: v for k, v in data.items() if v},
                         coords=model.coords or None,
                         dims={k: list(v) for k, v in model.dims.items()} or None,
                         attrs={"exmc_version": exmc.__version__, **attrs})
    _label(idata)
    return idata


def _label(idata):
    for group in idata.groups():  # ArviZ's schema: each group names the library that made it
        idata[group].attrs.update(inference_library="exmc",
                                  inference_library_version=exmc.__version__)


def _extend(idata, new, groups):
    """``idata`` with ``groups`` of ``new`` added (replacing), its other groups where missing."""
    import arviz as az

    keep = [g for g in new.groups() if g in groups or g not in idata.groups()]
    idata.extend(az.InferenceData(**{g: new[g] for g in keep}), join="right")
    return idata
