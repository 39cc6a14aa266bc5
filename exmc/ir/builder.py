"""The model IR and its Builder API: an ordered list of named random, observed and deterministic variables.

A ``Model`` is plain data.  ``Builder`` is the same class under the name the
chaining API reads best with::

    Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(1)).obs("y", Normal("mu", "sigma"), y)

``validate()`` checks the whole model (references, cycles, shapes, parameter
values, observed data) and is run before anything is compiled.  It costs time
linear in the model: each variable's expressions are visited once per distinct
node, and nothing recurses in proportion to the model's size.
"""
from __future__ import annotations

import difflib
import keyword
import math
import warnings
from typing import NamedTuple

import numpy as np

from exmc.ir import ops
from exmc.ir.dists.base import Distribution, ModelError, normalize_dims
from exmc.ir.expr import Expr, as_expr, postorder, walk

KINDS = ("rv", "obs", "det")
#: Most elements of any variable or intermediate value: refuses ``shape=[10**12]``
#: before anything is allocated for it (2**28 float64 values are 2 GiB).
MAX_ELEMENTS = 2**28
MAX_TOTAL_ELEMENTS = 2**28  # all variables together: what a draw and a trace row hold


class ImputationWarning(UserWarning):
    """Observed data with missing values (NaN): those values become a latent variable."""


class Variable(NamedTuple):
    """One named variable: kind ``rv`` (sampled), ``obs`` (observed data) or ``det`` (deterministic)."""

    name: str
    kind: str
    dist: Distribution | None = None
    data: np.ndarray | None = None
    expr: Expr | None = None


class Model:
    """The model IR: ordered named variables.  Methods add a variable and return the model."""

    def __init__(self, variables=(), coords=None):
        self.variables: list[Variable] = []
        self._by_name: dict[str, Variable] = {}  # kept in step with ``variables`` by _add
        # Labels for InferenceData, as PyMC's coords and dims: {dimension: labels} and
        # {variable: dimension names}.  Like constant_data, not part of the model's structure
        # or its serialised form (a model read back from msgpack has default dimension names).
        self.coords: dict = {}
        self.dims: dict = {}
        for dim, labels in (coords or {}).items():
            self.add_coord(dim, labels)
        # Named input arrays for InferenceData's constant_data (an @exmc.model function's
        # arguments); not part of the model's structure or its serialised form.
        self.constant_data: dict = {}
        for var in variables:
            self._add(var)

    # ---- building -----------------------------------------------------------
    def add_coord(self, dim: str, labels) -> "Model":
        """Name a dimension and label its positions (PyMC's coords): ``dims=dim`` uses it."""
        labels = np.asarray(labels)
        if not isinstance(dim, str) or not dim or labels.ndim != 1 or labels.size == 0:
            raise ModelError(f"coords {dim!r}: need a name and a non-empty 1-d list of labels, "
                             f"got {labels.shape} labels")
        self.coords[dim] = labels
        return self

    def rv(self, name: str, dist: Distribution) -> "Model":
        """Add a random variable ``name`` with prior ``dist``."""
        self._check_dist(name, dist)
        if dist.dims is not None:
            shape = self._dims_shape(name, dist.dims)
            dist.shape = shape if dist.shape is None else dist.shape  # validate compares them
        return self._add(Variable(name, "rv", dist=dist))

    def obs(self, name: str, dist: Distribution, data) -> "Model":
        """Add an observed variable ``name``: ``data`` is drawn from ``dist``."""
        self._check_dist(name, dist)
        try:
            arr = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise ModelError(f"observed variable {name!r}: data must be numeric, "
                             f"got {type(data).__name__}") from None
        if np.isnan(arr).any() and dist.family != "Potential":
            return self._obs_with_missing(name, dist, arr)
        if dist.dims is not None:
            self._dims_shape(name, dist.dims, arr.shape)
        return self._add(Variable(name, "obs", dist=dist, data=arr))

    def potential(self, name: str, expr) -> "Model":
        """Add ``expr`` (summed if it has elements) to the log density, as PyMC's ``pm.Potential``."""
        from exmc.ir.dists.wrappers import Potential
        try:
            return self.obs(name, Potential(expr), np.zeros(()))
        except TypeError as err:
            raise ModelError(f"potential {name!r}: {err}") from None

    def _obs_with_missing(self, name, dist, data):
        """Observed data with NaNs, as PyMC does it: ``{name}_observed`` (the values present),
        ``{name}_unobserved`` (a latent variable, one value per NaN) and the deterministic
        ``name`` (both, in the data's order)."""
        from exmc import math as em
        from exmc.ir.expr import ref
        where = f"observed variable {name!r}"
        missing = np.isnan(data)
        count = int(missing.sum())
        if dist.discrete or dist.event_ndim or dist.param_ndim or dist.dist_params \
                or "logp" in dist.params:
            raise ModelError(f"{where}: {count} missing values (NaN) cannot be imputed for "
                             f"{dist.family}: only continuous scalar families can be")
        if dist.shape is not None and tuple(dist.shape) != data.shape:
            raise ModelError(f"{where}: shape={dist.shape} but the data have shape {data.shape}")
        present, absent = np.flatnonzero(~missing.ravel()), np.flatnonzero(missing.ravel())
        zeros = np.zeros(data.shape)

        def flat(expr):  # the elements in row-major order
            return expr if data.ndim == 1 else em.reshape(expr, (data.size,))

        def subset(index):  # each parameter broadcast to the data, at these positions
            params = {k: flat(v + zeros)[index] for k, v in dist.param_exprs.items()}
            return type(dist).from_params(params, (index.size,))
        warnings.warn(f"{where}: {count} of {data.size} values are missing (NaN); they are "
                      f"sampled as the latent variable {name}_unobserved", ImputationWarning,
                      stacklevel=3)
        order = np.empty(data.size, dtype=np.int64)
        order[present], order[absent] = np.arange(present.size), present.size + np.arange(count)
        if present.size:
            self.obs(f"{name}_observed", subset(present), data.ravel()[present])
        self.rv(f"{name}_unobserved", subset(absent))
        values = (em.concatenate([data.ravel()[present], ref(f"{name}_unobserved")])
                  if present.size else ref(f"{name}_unobserved"))[order]
        return self.det(name, values if data.ndim == 1 else em.reshape(values, data.shape))

    def det(self, name: str, expr, dims=None) -> "Model":
        """Add a deterministic ``name`` = ``expr``, recorded in the trace (``dims``: its
        dimension names, as a distribution's)."""
        try:
            expr = as_expr(expr)
        except TypeError as err:
            raise ModelError(f"deterministic {name!r}: {err}") from None
        if dims is not None:
            self._dims_shape(name, normalize_dims(dims))
        return self._add(Variable(name, "det", expr=expr))

    def _dims_shape(self, name, dims, data_shape=None):
        """The shape ``dims`` give variable ``name`` (recorded in ``self.dims``).  A dimension
        without coords takes its length from observed data, with labels 0, 1, ..."""
        if data_shape is not None and len(data_shape) != len(dims):
            raise ModelError(f"variable {name!r}: dims {dims} name {len(dims)} dimensions, but "
                             f"its data have shape {data_shape}")
        for axis, dim in enumerate(dims):
            if dim not in self.coords:
                if data_shape is None:
                    raise ModelError(f"variable {name!r}: dimension {dim!r} has no coords; give "
                                     f"them as Builder(coords={{{dim!r}: labels}}) or "
                                     f"@exmc.model(coords=...); known: {sorted(self.coords)}")
                self.add_coord(dim, np.arange(data_shape[axis]))
        shape = tuple(len(self.coords[dim]) for dim in dims)
        if data_shape is not None and tuple(data_shape) != shape:
            raise ModelError(f"variable {name!r}: its data have shape {tuple(data_shape)}, but "
                             f"its dims {dims} have lengths {shape} from coords")
        self.dims[name] = dims
        return shape

    def lkj_cholesky_cov(self, name: str, eta, n: int, sd_dist: Distribution) -> "Model":
        """Add a covariance's Cholesky factor with an LKJ(eta) correlation (PyMC's LKJCholeskyCov).

        Adds ``{name}_corr_chol ~ LKJCorrCholesky(eta, n)`` and ``{name}_stds ~
        sd_dist`` (n positive standard deviations, e.g. ``Exponential(1.0)``), then
        the deterministics ``name`` = diag(stds) @ corr_chol (lower triangular, for
        ``MvNormal(mu, chol=name)``) and ``{name}_corr`` (the correlation matrix).
        """
        from exmc import math as em
        from exmc.ir.dists.multivariate import LKJCorrCholesky
        from exmc.ir.expr import ref
        if not isinstance(sd_dist, Distribution) or sd_dist.lower is None:
            raise ModelError(f"variable {name!r}: sd_dist must be a positive distribution such as "
                             f"Exponential(1.0) or HalfNormal(1.0), got {sd_dist!r}")
        stds = type(sd_dist).from_params(dict(sd_dist.param_exprs), (n,))
        corr = ref(f"{name}_corr_chol")
        self.rv(f"{name}_corr_chol", LKJCorrCholesky(eta, n=n)).rv(f"{name}_stds", stds)
        self.det(name, (corr.T * ref(f"{name}_stds")).T)
        return self.det(f"{name}_corr", em.dot(corr, corr.T))

    def _check_dist(self, name, dist):
        if isinstance(dist, type) and issubclass(dist, Distribution):
            raise ModelError(f"variable {name!r}: got the class {dist.__name__}, "
                             f"call it with its parameters, e.g. {dist.__name__}(...)")
        if not isinstance(dist, Distribution):
            raise ModelError(f"variable {name!r}: expected a distribution such as Normal(0, 1), "
                             f"got {type(dist).__name__}")
        if dist.observed is not None:
            raise ModelError(f"variable {name!r}: observed= is for @exmc.model; "
                             f"use Builder.obs(name, dist, data)")

    def _add(self, var: Variable) -> "Model":
        if not isinstance(var.name, str) or not var.name.isidentifier() or keyword.iskeyword(var.name):
            raise ModelError(f"variable name {var.name!r} is not a valid identifier")
        if var.name in self._by_name:
            raise ModelError(f"variable {var.name!r} is declared twice")
        if var.kind not in KINDS:
            raise ModelError(f"variable {var.name!r}: unknown kind {var.kind!r}")
        self.variables.append(var)
        self._by_name[var.name] = var
        self.__dict__.pop("_checked", None)
        return self

    # ---- reading ------------------------------------------------------------
    @property
    def names(self):
        return [v.name for v in self.variables]

    def __getitem__(self, name) -> Variable:
        return self._by_name[name]

    @property
    def free_variables(self):
        """The sampled variables, in declaration order (the layout of the flat vector)."""
        return [v for v in self.variables if v.kind == "rv"]

    def shapes(self) -> dict:
        """Validated shape of every variable."""
        return dict(self.validate())

    def to_msgpack(self) -> bytes:
        from exmc.ir.serialize import dumps
        return dumps(self)

    @classmethod
    def from_msgpack(cls, payload: bytes) -> "Model":
        from exmc.ir.serialize import loads
        return loads(payload)

    def __eq__(self, other):
        if not isinstance(other, Model):
            return NotImplemented
        return self.to_msgpack() == other.to_msgpack()

    __hash__ = None

    def __repr__(self):
        lines = []
        for v in self.variables:
            rhs = repr(v.expr) if v.kind == "det" else repr(v.dist)
            extra = f"  observed {v.data.shape}" if v.kind == "obs" else ""
            lines.append(f"  {v.name} [{v.kind}] ~ {rhs}{extra}")
        return "Model(\n" + "\n".join(lines) + "\n)"

    # ---- validation -----------------------------------------------------------
    def validate(self):
        """Check the model; return [(name, shape)] in dependency order.

        Raises ``ModelError`` naming the variable and the problem: unknown
        references (with the known names), cycles, shapes that do not fit,
        parameters of the wrong kind or outside their domain, observed data
        outside the support, and discrete variables that would need sampling.
        """
        if "_checked" in self.__dict__:
            return self._checked
        if not self.variables:
            raise ModelError("the model has no variables")
        if not self.free_variables:
            raise ModelError("the model has no random variables to sample")
        deps = {v.name: _dependencies(v) for v in self.variables}
        for name, refs in deps.items():
            for r in refs:
                if r not in deps:
                    raise ModelError(_unknown_reference(name, r, list(deps)))
        order = _topological_order(deps)
        shapes, total = {}, 0
        for name in order:
            shapes[name] = _check_variable(self[name], shapes)
            total += math.prod(shapes[name] or ())
            if total > MAX_TOTAL_ELEMENTS:
                raise ModelError(f"variable {name!r}: the model's variables hold more than "
                                 f"{MAX_TOTAL_ELEMENTS} elements together")
        for name, dims in self.dims.items():
            lengths = tuple(len(self.coords[dim]) for dim in dims)
            if name in shapes and tuple(shapes[name]) != lengths:
                raise ModelError(f"variable {name!r} has shape {tuple(shapes[name])}, but its "
                                 f"dims {dims} have lengths {lengths} from coords")
        self._checked = [(name, shapes[name]) for name in order]
        return self._checked


Builder = Model


# ---- helpers of validate -----------------------------------------------------------
def _dist_exprs(dist: Distribution):
    for key, val in dist.param_exprs.items():
        if isinstance(val, list):
            for sub in val:
                yield from _dist_exprs(sub)
        elif isinstance(val, Distribution):
            yield from _dist_exprs(val)
        else:
            yield key, val


def _dependencies(var: Variable):
    """Names ``var`` refers to, in first-seen order; each distinct node is visited once."""
    roots = [var.expr] if var.kind == "det" else [e for _, e in _dist_exprs(var.dist)]
    custom = var.kind != "det" and var.dist.family == "Custom"
    names = {}
    for node in walk(*roots):
        if node.op == "dslvar":
            raise ModelError(f"variable {var.name!r}: a distribution object was used as a "
                             f"value; refer to variables by name (ref('x') or 'x'), or "
                             f"write the model with @exmc.model")
        if node.op == "value" and not custom:
            raise ModelError(f"variable {var.name!r}: exmc.value is only meaningful inside "
                             f"Custom(logp=...)")
        if node.op == "ref":
            names[node.value] = None
    if var.name in names:
        raise ModelError(f"variable {var.name!r} refers to itself (a cycle)")
    return list(names)


def _unknown_reference(name, missing, known):
    hint = difflib.get_close_matches(missing, known, n=1)
    hint = f" (did you mean {hint[0]!r}?)" if hint else ""
    return (f"variable {name!r} refers to unknown variable {missing!r}{hint}; "
            f"known variables: {', '.join(known)}")


def _topological_order(deps):
    """Names ordered so each comes after those it refers to: depth-first search on an explicit stack."""
    order, done = [], set()
    for start in deps:
        if start in done:
            continue
        path, on_path, pending = [start], {start}, [iter(deps[start])]
        while path:
            dep = next(pending[-1], None)
            if dep is None:  # every dependency of path[-1] is placed
                name = path.pop()
                pending.pop()
                on_path.discard(name)
                done.add(name)
                order.append(name)
            elif dep in on_path:
                cycle = path[path.index(dep):] + [dep]
                raise ModelError(f"the model has a cycle: {' -> '.join(cycle)}")
            elif dep not in done:
                path.append(dep)
                on_path.add(dep)
                pending.append(iter(deps[dep]))
    return order


def broadcast(shape_a, shape_b, where):
    try:
        return tuple(np.broadcast_shapes(shape_a, shape_b))
    except ValueError:
        raise ModelError(f"{where}: shapes {shape_a} and {shape_b} do not broadcast") from None


def infer_shape(expr: Expr, shapes: dict, where: str, value_shape=None, memo=None):
    """Static shape of ``expr`` given the shapes of the variables it refers to.

    ``memo`` maps ``id(node)`` to its shape; pass one dict for several
    expressions of one variable (same ``value_shape``, nodes kept alive by
    the variable) so their shared nodes are shaped once.
    """
    memo = {} if memo is None else memo
    for node in postorder(expr):
        if id(node) in memo:
            continue
        if node.op == "const":
            shape = np.shape(node.value)
        elif node.op == "ref":
            shape = shapes[node.value]
        elif node.op == "value":
            shape = value_shape
        elif node.op == "arg":
            raise ModelError(f"{where}: a scan/ODE body placeholder (arg {node.value!r}) is used "
                             f"outside a body")
        else:
            shape = op_shape(node.op, [memo[id(a)] for a in node.args], node.value, where)
            _check_size(shape, f"{where}: {node.op} of shape {shape}")
        memo[id(node)] = shape
    return memo[id(expr)]


def _check_size(shape, what):
    if shape is not None and math.prod(shape) > MAX_ELEMENTS:
        raise ModelError(f"{what} has {math.prod(shape)} elements, more than the limit of "
                         f"{MAX_ELEMENTS}")


def op_shape(op, arg_shapes, value, where):
    """Result shape of operation ``op`` on arguments of ``arg_shapes`` (the registry's rule)."""
    try:
        return ops.op_shape(op, arg_shapes, value, where)
    except ops.OpError as err:
        raise ModelError(str(err)) from None


def _check_variable(var: Variable, shapes):
    where = f"variable {var.name!r}"
    if var.kind == "det":
        return infer_shape(var.expr, shapes, f"deterministic {var.name!r}")
    if var.dist.shape is not None:
        _check_size(var.dist.shape, f"{where}: shape {tuple(var.dist.shape)}")
    dist = var.dist
    if var.kind == "rv" and getattr(dist, "observed_only", False):
        raise ModelError(f"{where}: {dist.family} can only be observed (give it data)")
    if var.kind == "rv" and dist.discrete:
        raise ModelError(f"{where}: {dist.family} is discrete and can only be observed; "
                         f"NUTS samples continuous variables")
    if var.kind == "obs":
        shape = var.data.shape
        if dist.shape is not None and tuple(dist.shape) != shape:
            raise ModelError(f"{where}: shape={dist.shape} but the data have shape {shape}")
    else:
        shape = dist.shape
    shape = _check_params(dist, shapes, where, shape, {})
    if var.kind == "obs":
        _check_data(var, shapes)
    return shape


def _checked_constants(dist, where, shape):
    dist.check_constants(where)
    return shape


def _check_params(dist, shapes, where, shape, memo):
    """Check parameter kinds, shapes and constant values; return the variable's shape.

    ``memo`` is the variable's ``infer_shape`` memo, shared by its parameters.
    """
    param_shapes = {}
    for label, sub in dist.parts():  # a wrapped distribution's parameters broadcast too
        for key, val in sub.param_exprs.items():
            if not isinstance(val, (Distribution, list)):
                param_shapes[f"{label}.{key}"] = infer_shape(
                    val, shapes, f"{where}, {label} parameter {key!r}", memo=memo)
        sub.check_constants(f"{where}, {label}")
    for key, val in dist.param_exprs.items():
        if isinstance(val, (Distribution, list)):
            continue
        if key == "logp" and "logp" in dist.params:  # Custom, Potential
            continue
        if key in dist.data_params and val.references():
            raise ModelError(f"{where}: parameter {key!r} of {dist.family} must be data, "
                             f"not an expression of variables")
        param_shapes[key] = infer_shape(val, shapes, f"{where}, parameter {key!r}", memo=memo)
    if dist.event_ndim or dist.param_ndim:
        return _checked_constants(dist, where, dist.value_shape(param_shapes, shape, where))
    if shape is None:
        shape = ()
        for key, s in param_shapes.items():
            shape = broadcast(shape, s, f"{where}, parameter {key!r}")
    for key, s in param_shapes.items():
        if broadcast(shape, s, f"{where}, parameter {key!r}") != tuple(shape):
            raise ModelError(f"{where}: parameter {key!r} has shape {s}, which does not fit "
                             f"the variable's shape {tuple(shape)}")
    shape = tuple(shape)
    for key in dist.data_params:
        val = dist.param_exprs[key].value
        if np.any(np.asarray(val) < 0) or np.any(np.asarray(val) != np.round(val)):
            raise ModelError(f"{where}: parameter {key!r} of {dist.family} must be "
                             f"non-negative integers")
    _checked_constants(dist, where, shape)
    if dist.family == "GaussianRandomWalk":
        _check_params(dist.param_exprs["init"], shapes, f"{where}, init", (), memo)
    if "logp" in dist.params:
        # its own memo: there ``value`` has the variable's shape
        lp_shape = infer_shape(dist.param_exprs["logp"], shapes, f"{where}, logp", shape)
        if lp_shape is None:
            raise ModelError(f"{where}: logp has no shape")
    return shape


def _short(value):
    arr = np.asarray(value)
    return repr(float(arr)) if arr.ndim == 0 else f"array{arr.shape} (min {arr.min():g})"


def _check_data(var: Variable, shapes):
    data, dist, where = var.data, var.dist, f"observed variable {var.name!r}"
    if not np.all(np.isfinite(data)):
        bad = np.flatnonzero(~np.isfinite(data.ravel()))[0]
        raise ModelError(f"{where}: data must be finite, element {bad} is {data.ravel()[bad]}")
    if dist.discrete and np.any(data != np.round(data)):
        raise ModelError(f"{where}: {dist.family} data must be integers")
    lower, upper = dist.support_exprs()
    for bound, name, cmp in ((lower, "lower", np.less), (upper, "upper", np.greater)):
        if bound is None or bound.op != "const":
            continue
        outside = cmp(data, bound.value) | (dist.open_support & (data == bound.value))
        if np.any(outside):
            bad = np.flatnonzero(np.broadcast_to(outside, data.shape).ravel())[0]
            raise ModelError(f"{where}: data outside the support of {dist.family} "
                             f"({name} bound {_short(bound.value)}): element {bad} is "
                             f"{data.ravel()[bad]:g}")
    check = getattr(dist, "check_observed", None)  # a family's own rule on its data
    if check is not None:
        check(data, where)
