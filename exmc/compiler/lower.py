"""Lowering: a validated model becomes a graph of nodes over the free vector, data and scratch.

Every node is an input slice of the unconstrained vector, a slice of the flat
data argument, an operation of the registry (``exmc/ir/ops.py``) or one
family's log-density term.  Numeric constants are data, never code: each
becomes a data slice, and every operation whose arguments are all constant is
evaluated here with NumPy and becomes data as well (constant folding).  So
the graph's structure, and the generated code, depend on the model's shapes
and operations only; two models that differ only in numbers share it.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from exmc.compiler import families
from exmc.compiler.transforms import transform_for
from exmc.ir.builder import Model, ModelError
from exmc.ir.dists.base import Distribution
from exmc.ir.expr import Expr
from exmc.ir import recursion
from exmc.ir.ops import (OpError, axes_to_python, evaluate_op, index_to_python, op_shape,
                         size_of)
from exmc.ir.recursion import BODY_OPS


LARGE_MODEL_NODES = 400  # above this, scalar terms are batched and the emitter writes chunks
MIN_BATCH = 4  # the fewest scalar terms worth a batch


class Node(NamedTuple):
    op: str  # "input", "data", "logp" or a registry op
    inputs: tuple  # node ids
    attr: object  # input/data: offset; logp: LogpTerm; index: IndexAttr; others: the op's attr
    shape: tuple
    active: bool  # depends on the unconstrained vector


class Slot(NamedTuple):
    """Where a named value lives in a flat vector."""

    name: str
    shape: tuple
    offset: int
    size: int


class LogpTerm(NamedTuple):
    """What a ``logp`` node computes: one family's density, summed over its batch."""

    family: str
    args: tuple  # argument names in input order: "x" then the given parameters
    kernel: families.FamilyKernel
    checks: tuple  # (parameter, op, parameter-or-number) that must hold at run time
    observed: str | None  # the observed variable whose data is "x", for pointwise log-likelihood


class BatchTerm(NamedTuple):
    """What a ``logp_batch`` node computes: ``count`` terms of one family and argument layout.

    Argument n of term k is ``x`` or ``data`` (``kinds[n]``) at the offset
    ``data[table + n * count + k]``.
    """

    term: LogpTerm
    kinds: tuple  # per argument: "input" or "data" (through the table), or the id of a shared node
    table: int  # offset of the (len(args), count) offset table in data
    count: int


class IndexAttr(NamedTuple):
    """A static index along the first axis: ``kind`` "int" (start), "slice" (start, step) or "take"."""

    kind: str
    start: int
    step: int


class BodyAttr(NamedTuple):
    """What a ``scan`` or ``ode_solve`` node computes: its body's nodes, run once per step (or stage).

    The body's nodes sit in the program's node list but belong to this node
    alone: the emitter writes them inside its loop, never at the top level.
    ``args`` are the placeholder nodes (op ``arg``) by position; ``table`` is the
    offset of the Dormand-Prince coefficients in data (ODEs) or -1.
    """

    spec: object  # the IR value: recursion.Recursion or recursion.OdeSpec
    body: tuple  # node ids of the body, in order (nested bodies excluded)
    output: int  # node id of the body's result
    args: tuple  # placeholder node ids by position
    steps: int  # scan: number of steps; ode: number of output times
    table: int


class Program(NamedTuple):
    """The lowered model: everything the emitter and the point map need."""

    nodes: list
    terms: list  # node ids summed into the log-density
    free: list  # Slot per sampled variable (unconstrained layout)
    outputs: list  # Slot per traced value (constrained variables, then deterministics)
    output_nodes: list
    data: np.ndarray  # concatenated data and constants
    transforms: dict  # variable -> (Transform, lower Expr | None, upper Expr | None)
    observed: list  # (Slot in the pointwise log-likelihood vector, logp node id)


class _Lowering:
    def __init__(self, model: Model):
        self.model = model
        self.nodes: list[Node] = []
        self.values: dict = {}  # data node id -> its numeric value (for folding)
        self.data_parts: list[np.ndarray] = []
        self.data_size = 0
        self.memo: dict = {}
        self.env: dict = {}  # variable name -> node id of its (constrained) value
        self.placeholders: list = []  # per body being lowered (innermost last): its arg node ids
        self.pointwise: dict = {}  # summed "loglik" term -> node of its per-observation values

    def add(self, op, inputs, attr, shape):
        active = op == "input" or any(self.nodes[i].active for i in inputs)
        self.nodes.append(Node(op, tuple(inputs), attr, tuple(shape), active))
        return len(self.nodes) - 1

    def data_node(self, value):
        arr = np.array(value, dtype=np.float64)  # a copy, C-ordered; 0-d stays 0-d
        node = self.add("data", (), self.data_size, arr.shape)
        self.values[node] = arr
        self.data_parts.append(arr.ravel())
        self.data_size += arr.size
        return node

    def lower(self, expr: Expr, env: dict, where: str):
        """Node id of ``expr``; shared subexpressions are lowered once (memo by identity)."""
        stack = [expr]
        while stack:  # iterative post-order: deep expressions never hit the recursion limit
            e = stack[-1]
            if id(e) in self.memo:
                stack.pop()
                continue
            pending = [a for a in e.args if id(a) not in self.memo]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            self.memo[id(e)] = (e, self.lower_one(e, env, where))  # keep e alive: ids stay unique
        return self.memo[id(expr)][1]

    def lower_one(self, e: Expr, env, where):
        if e.op == "const":
            return self.data_node(e.value)
        if e.op == "ref":
            return env[e.value]
        if e.op == "arg":
            return self.placeholders[-1][e.value]
        inputs = [self.memo[id(a)][1] for a in e.args]
        try:
            shape = op_shape(e.op, [self.nodes[i].shape for i in inputs], e.value, where)
        except OpError as err:
            raise ModelError(str(err)) from None
        if all(i in self.values for i in inputs):
            # Constant folding: the value is data, computed once here.  (Inside a body,
            # a placeholder is not data even where it is inactive.)
            value = evaluate_op(e.op, [self.values[i] for i in inputs], e.value)
            return self.data_node(np.broadcast_to(value, shape))
        if e.op == "index":
            return self.lower_index(inputs[0], e.value, shape)
        if e.op == "index_axes":
            return self.lower_index_axes(inputs[0], e.value, shape)
        if e.op in BODY_OPS:
            return self.lower_body_op(e, inputs, shape, where)
        return self.add(e.op, inputs, e.value, shape)

    def lower_body_op(self, e, inputs, shape, where):
        """A ``scan`` or ``ode_solve``: placeholders, then its body lowered with its own memo."""
        spec, shapes = e.value, [self.nodes[i].shape for i in inputs]
        active = [self.nodes[i].active for i in inputs]
        if e.op == "scan":
            arg_shapes = recursion.scan_arg_shapes(shapes, spec)
            # the state depends on everything the recursion reads
            arg_active = [any(active)] + active[1:]
            steps, table = shape[0], -1
        else:
            if inputs[1] not in self.values or inputs[2] not in self.values:
                raise ModelError(f"{where}: ode_solve's t0 and times must be constants (data), "
                                 f"not expressions of model variables")
            recursion.check_times(self.values[inputs[1]], self.values[inputs[2]], where)
            arg_shapes = [(), shapes[0]] + shapes[3:]
            arg_active = [False, active[0] or any(active[3:])] + active[3:]
            steps, table = shape[0], self.nodes[self.data_node(recursion.dp_tableau())].attr
        args = []
        for arg_shape, is_active in zip(arg_shapes, arg_active):
            self.nodes.append(Node("arg", (), None, tuple(arg_shape), is_active))
            args.append(len(self.nodes) - 1)
        start, saved = len(self.nodes), self.memo
        self.memo, self.placeholders = {}, self.placeholders + [args]
        try:
            output = self.lower(spec.body, {}, f"{where}, {e.op} body")
        finally:
            self.memo, self.placeholders = saved, self.placeholders[:-1]
        nested = {j for n in self.nodes[start:] if n.op in BODY_OPS
                  for j in n.attr.body + n.attr.args}
        body = tuple(j for j in range(start, len(self.nodes)) if j not in nested)
        attr = BodyAttr(spec, body, output, tuple(args), steps, table)
        return self.add(e.op, inputs, attr, shape)

    def lower_index(self, source, index, shape):
        n = self.nodes[source].shape[0]
        if isinstance(index, np.ndarray):
            positions = self.data_node(np.asarray(index) % n)
            return self.add("index", (source, positions), IndexAttr("take", 0, 1), shape)
        if isinstance(index, tuple):
            start, _, step = index_to_python(index).indices(n)
            return self.add("index", (source,), IndexAttr("slice", start, step), shape)
        return self.add("index", (source,), IndexAttr("int", index % n, 1), shape)

    def lower_index_axes(self, source, entries, out_shape):
        """x[i, j, ...] as views the emitter already has (index, transpose, reshape): the
        first axis is indexed directly; axis p > 0 of a (A, B, C)-blocked array by taking the
        rows b * C + c of its (B * C, A) transposed reshape; new axes by a last reshape."""
        shape = self.nodes[source].shape
        index = list(axes_to_python(entries))
        at = [k for k, e in enumerate(index) if e is Ellipsis]
        if at:
            given = sum(1 for e in index if e is not None and e is not Ellipsis)
            index[at[0]:at[0] + 1] = [slice(None)] * (len(shape) - given)
        node, p = source, 0
        for e in (e for e in index if e is not None):
            n = shape[p]
            if isinstance(e, slice) and e == slice(None):
                p += 1
                continue
            if isinstance(e, np.ndarray):
                positions = e % n
            elif isinstance(e, slice):
                positions = np.arange(*e.indices(n))
            else:
                positions = np.array([e % n])
            kept = () if isinstance(e, int) else (len(positions),)
            new_shape = shape[:p] + kept + shape[p + 1:]
            if p == 0:
                single = e if isinstance(e, (int, np.ndarray)) else ("slice", e.start, e.stop, e.step)
                node = self.lower_index(node, single, new_shape)
            else:
                a, b, c = size_of(shape[:p]), n, size_of(shape[p + 1:])
                rows = (positions[:, None] * c + np.arange(c)[None, :]).ravel()
                flat = self.add("reshape", (node,), (a, b * c), (a, b * c))
                turned = self.add("transpose", (flat,), None, (b * c, a))
                taken = self.add("index", (turned, self.data_node(rows)), IndexAttr("take", 0, 1),
                                 (rows.size, a))
                back = self.add("transpose", (taken,), None, (a, rows.size))
                node = self.add("reshape", (back,), new_shape, new_shape)
            shape, p = new_shape, p + len(kept)
        if shape != tuple(out_shape):  # new axes of length 1
            node = self.add("reshape", (node,), tuple(out_shape), tuple(out_shape))
        return node

    def run(self) -> Program:
        model = self.model
        shapes = dict(model.validate())
        free, offset, inputs = [], 0, {}
        transforms = {}
        for var in model.free_variables:
            transform, lower, upper = transform_for(var.dist)
            transform.check_shape(shapes[var.name], f"variable {var.name!r}")
            transforms[var.name] = (transform, lower, upper)
            free_shape = transform.free_shape(shapes[var.name])
            free.append(Slot(var.name, free_shape, offset, size_of(free_shape)))
            inputs[var.name] = self.add("input", (), offset, free_shape)
            offset += size_of(free_shape)
        terms, observed, obs_offset = [], [], 0
        for name, shape in model.validate():
            var = model[name]
            where = f"variable {name!r}"
            # Subexpressions are shared within a variable only, as in the wire form (one node
            # table per variable): the code, cached by the structure hash of that form, must
            # not depend on Python objects two variables happen to share.
            self.memo = {}
            if var.kind == "det":
                self.env[name] = self.lower(var.expr, self.env, f"deterministic {name!r}")
                continue
            if var.kind == "obs":
                self.env[name] = self.data_node(var.data)
            else:
                transform, lower, upper = transforms[name]
                # "@z" cannot be a user's variable name, so it can share the environment.
                local = {**self.env, "@z": inputs[name]}
                x_expr, log_jacobian = transform.constrain_exprs(
                    Expr("ref", (), "@z"), lower, upper, shape)
                self.env[name] = self.lower(x_expr, local, where)
                if log_jacobian is not None:
                    terms.append(self.summed(self.lower(log_jacobian, local, where)))
            new_terms = self.density_terms(var.dist, Expr("ref", (), name), where,
                                           name if var.kind == "obs" else None)
            terms += new_terms
            if var.kind == "obs":
                for t in new_terms:
                    node = self.nodes[t]
                    if node.op != "logp":  # an expression term: its pointwise values, if any
                        t = self.pointwise.pop(t, None)
                        node = None if t is None else self.nodes[t]
                    if node is not None and (node.op != "logp" or node.attr.observed == name):
                        # one value per element, or per event of a multivariate family
                        batch = node.shape
                        observed.append((Slot(name, batch, obs_offset, size_of(batch)), t))
                        obs_offset += size_of(batch)
        outputs, output_nodes, offset = [], [], 0
        for var in model.variables:
            if var.kind == "obs":
                continue
            shape = shapes[var.name]
            outputs.append(Slot(var.name, shape, offset, size_of(shape)))
            output_nodes.append(self.env[var.name])
            offset += size_of(shape)
        if len(self.nodes) > LARGE_MODEL_NODES:
            terms = self.batched(terms, {t for _, t in observed})
        data = np.concatenate(self.data_parts) if self.data_parts else np.zeros(0)
        return Program(self.nodes, terms, free, outputs, output_nodes, data, transforms, observed)

    def batched(self, terms, keep):
        """Scalar family terms of one kind, over free values and data, as one looped term.

        A model of many scalar variables would otherwise be one call site per variable
        (compile time grows with the code); a batch reads each argument through a
        table of offsets into ``x`` or ``data``, itself data.  Terms in ``keep`` (the
        observed ones, needed one by one for the pointwise log-likelihood) stay.
        """
        groups: dict = {}
        for t in terms:
            node = self.nodes[t]
            if node.op != "logp" or t in keep or node.shape != () or node.attr.kernel.has_array_args:
                continue
            # an argument is tabled (a free value or data) or one node shared by the batch
            kinds = tuple(self.nodes[j].op if self.nodes[j].op in ("input", "data") else j
                          for j in node.inputs)
            groups.setdefault((node.attr.family, node.attr.args, node.attr.checks, kinds), []).append(t)
        batched = set()
        for (family, args, checks, kinds), members in groups.items():
            if len(members) < MIN_BATCH:
                continue
            table = np.array([[self.nodes[j].attr if isinstance(kind, str) else 0
                               for j, kind in zip(self.nodes[t].inputs, kinds)] for t in members]).T
            offsets = self.data_node(table)
            inputs = [j for t in members for j in self.nodes[t].inputs]
            attr = BatchTerm(self.nodes[members[0]].attr, kinds, self.nodes[offsets].attr, len(members))
            batched.update(members)
            terms = terms + [self.add("logp_batch", inputs + [offsets], attr, ())]
        return [t for t in terms if t not in batched]

    def summed(self, node):
        return node if self.nodes[node].shape == () else self.add("sum", (node,), None, ())

    def density_terms(self, dist: Distribution, value: Expr, where, observed):
        terms = []
        for dist_or_tag, term_value in dist.expand(value):
            if dist_or_tag in ("logp", "loglik"):
                # "loglik": one log density per observation (Truncated, Censored, Mixture),
                # kept as the observed variable's pointwise log-likelihood
                node = self.lower(term_value, self.env, f"{where}, logp")
                terms.append(self.summed(node))
                if dist_or_tag == "loglik" and observed is not None:
                    self.pointwise[terms[-1]] = node
                continue
            d = dist_or_tag
            x = self.lower(term_value, self.env, where)
            args, nodes = ["x"], [x]
            for key, val in d.param_exprs.items():
                args.append(key)
                nodes.append(self.lower(val, self.env, f"{where}, parameter {key!r}"))
            key = (d.family, tuple(args[1:]))
            kernel = families.KERNELS.get(key)
            if kernel is None:
                raise ModelError(f"{where}: no compiled density for {d.family} with parameters "
                                 f"{', '.join(args[1:])}")
            # the batch shape: each argument less its event axes, broadcast
            ranks = (kernel.event_ndim,) + tuple(kernel.param_ndim)
            batches = [self.nodes[n].shape[:len(self.nodes[n].shape) - r]
                       for n, r in zip(nodes, ranks)]
            try:
                shape = op_shape("add", batches, None, where)
            except OpError as err:
                raise ModelError(str(err)) from None
            checks = tuple(c for c in d.predicates()
                           if any(self.nodes[nodes[args.index(p)]].active
                                  for p in c[::2] if isinstance(p, str)))
            obs = observed if self.nodes[x].op == "data" and term_value.op == "ref" else None
            attr = LogpTerm(d.family, tuple(args), kernel, checks, obs)
            terms.append(self.add("logp", nodes, attr, shape))
        return terms


def lower_model(model: Model) -> Program:
    """Lower a validated model to a ``Program``."""
    return _Lowering(model).run()
