"""IR -> straight-line Python/Numba source for log-density with exact reverse-mode gradient.

Lowering turns the model into a graph of ``Node``s (inputs sliced from the
unconstrained vector, data slices, elementwise operations, reductions, matrix
products, indexing, and one ``logp`` node per density term).  Emission writes
one assignment per node for the forward pass, then walks the nodes backwards
accumulating adjoints (``g<k>``) with one rule per operation.  Data arrays are
read from a flat ``data`` argument at offsets fixed in the code, so models
that differ only in data values share their compiled code.
"""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from exmc.compiler import transforms
from exmc.ir.builder import Model, ModelError, op_shape
from exmc.ir.dists.base import Distribution, names_in
from exmc.ir.expr import COMPARISONS, Expr

CODEGEN_VERSION = 1
STATUS_OK, STATUS_DOMAIN = 0, 1  # domain: a computed parameter left its domain (Stan would throw)

UNARY_CODE = {"neg": "-{}", "exp": "np.exp({})", "log": "np.log({})", "log1p": "np.log1p({})",
              "expm1": "np.expm1({})", "sqrt": "np.sqrt({})", "sigmoid": "sigmoid({})",
              "logit": "(np.log({0}) - np.log1p(-{0}))", "tanh": "np.tanh({})",
              "softplus": "softplus({})", "abs": "np.abs({})"}
# d out / d a, written with the input a, the output o and the adjoint g.
UNARY_GRAD = {"neg": "-{g}", "exp": "{g} * {o}", "log": "{g} / {a}", "log1p": "{g} / (1.0 + {a})",
              "expm1": "{g} * ({o} + 1.0)", "sqrt": "{g} * 0.5 / {o}",
              "sigmoid": "{g} * {o} * (1.0 - {o})", "logit": "{g} / ({a} * (1.0 - {a}))",
              "tanh": "{g} * (1.0 - {o} * {o})", "softplus": "{g} * sigmoid({a})",
              "abs": "{g} * np.sign({a})"}
BINARY_CODE = {"add": "({} + {})", "sub": "({} - {})", "mul": "({} * {})", "div": "({} / {})",
               "pow": "({} ** {})", "lt": "({} < {})", "le": "({} <= {})", "gt": "({} > {})",
               "ge": "({} >= {})"}


class Node(NamedTuple):
    op: str
    inputs: tuple  # node ids
    attr: object  # op-specific: offsets, literal, index, distribution
    shape: tuple
    active: bool  # depends on the unconstrained vector


class Slot(NamedTuple):
    """Where a named value lives in a flat vector."""

    name: str
    shape: tuple
    offset: int
    size: int


class Program(NamedTuple):
    """The lowered model: everything the emitter and the point map need."""

    nodes: list
    terms: list  # node ids summed into the log-density
    free: list  # Slot per sampled variable (unconstrained layout)
    outputs: list  # Slot per traced value (constrained variables, then deterministics)
    output_nodes: list
    data: np.ndarray  # concatenated data arrays
    bounds: dict  # variable -> (lower Expr | None, upper Expr | None)
    checks: list  # (node id, code) conditions that must hold at run time


def size_of(shape):
    return int(np.prod(shape)) if shape else 1


class _Lowering:
    def __init__(self, model: Model):
        self.model = model
        self.nodes: list[Node] = []
        self.data_parts: list[np.ndarray] = []
        self.data_size = 0
        self.memo: dict = {}
        self.env: dict = {}  # variable name -> node id of its (constrained) value
        self.checks: list = []

    def add(self, op, inputs, attr, shape):
        active = any(self.nodes[i].active for i in inputs) or op == "input"
        self.nodes.append(Node(op, tuple(inputs), attr, tuple(shape), active))
        return len(self.nodes) - 1

    def data_node(self, arr):
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        node = self.add("data", (), self.data_size, arr.shape)
        self.data_parts.append(arr.ravel())
        self.data_size += arr.size
        return node

    def lower(self, expr: Expr, env: dict, where: str):
        key = id(expr)  # the memo keeps expr alive, so ids are never reused
        if key in self.memo:
            return self.memo[key][1]
        if expr.op == "const":
            v = expr.value
            node = self.add("literal", (), float(v), ()) if np.ndim(v) == 0 else self.data_node(v)
        elif expr.op == "ref":
            node = env[expr.value]
        else:
            inputs = [self.lower(a, env, where) for a in expr.args]
            shape = op_shape(expr.op, [self.nodes[i].shape for i in inputs], expr.value, where)
            node = self.add(expr.op, inputs, expr.value, shape)
        self.memo[key] = (expr, node)  # keep expr alive so its id stays unique
        return node

    def run(self) -> Program:
        model = self.model
        order = [name for name, _ in model.validate()]
        shapes = dict(model.validate())
        free, offset = [], 0
        inputs = {}
        for var in model.free_variables:
            shape = shapes[var.name]
            free.append(Slot(var.name, shape, offset, size_of(shape)))
            inputs[var.name] = self.add("input", (), offset, shape)
            offset += size_of(shape)
        terms, bounds = [], {}
        for name in order:
            var = model[name]
            where = f"variable {name!r}"
            if var.kind == "det":
                self.env[name] = self.lower(var.expr, self.env, f"deterministic {name!r}")
                continue
            if var.kind == "obs":
                self.env[name] = self.data_node(var.data)
            else:
                lower, upper = var.dist.support_exprs()
                bounds[name] = (lower, upper)
                # "@z" cannot be a user's variable name, so it can share the environment.
                local = {**self.env, "@z": inputs[name]}
                x_expr, logdet = transforms.constrain_exprs(Expr("ref", (), "@z"), lower, upper)
                self.env[name] = self.lower(x_expr, local, where)
                if logdet is not None:
                    terms.append(self.summed(self.lower(logdet, local, where)))
            terms += self.density_terms(var.dist, Expr("ref", (), name), where)
        outputs, output_nodes, offset = [], [], 0
        for var in model.variables:
            if var.kind == "obs":
                continue
            shape = shapes[var.name]
            outputs.append(Slot(var.name, shape, offset, size_of(shape)))
            output_nodes.append(self.env[var.name])
            offset += size_of(shape)
        data = np.concatenate(self.data_parts) if self.data_parts else np.zeros(0)
        return Program(self.nodes, terms, free, outputs, output_nodes, data, bounds, self.checks)

    def summed(self, node):
        return node if self.nodes[node].shape == () else self.add("sum", (node,), None, ())

    def density_terms(self, dist: Distribution, value: Expr, where):
        terms = []
        for dist_or_tag, term_value in dist.expand(value):
            if dist_or_tag == "logp":
                terms.append(self.summed(self.lower(term_value, self.env, f"{where}, logp")))
                continue
            d = dist_or_tag
            args = {"x": self.lower(term_value, self.env, where)}
            for key, val in d.param_exprs.items():
                args[key] = self.lower(val, self.env, f"{where}, parameter {key!r}")
            shape = ()
            for key, node in args.items():
                shape = op_shape("add", [shape, self.nodes[node].shape], None, f"{where}, {key}")
            node = self.add("logp", tuple(args.values()), (d, tuple(args)), shape)
            templates = d.templates()
            for check in templates.checks:
                involved = names_in(check, [k for k in args if k != "x"])
                if any(self.nodes[args[k]].op != "literal" and self.nodes[args[k]].active
                       for k in involved):
                    self.checks.append((node, check))
            terms.append(node)
        return terms


def lower_model(model: Model) -> Program:
    """Lower a validated model to a ``Program``."""
    return _Lowering(model).run()


# ---- emission -----------------------------------------------------------------------------
class _Emitter:
    def __init__(self, program: Program):
        self.p = program
        self.globals: list[str] = []

    def name(self, i):
        node = self.p.nodes[i]
        return repr(node.attr) if node.op == "literal" else f"v{i}"

    def index_code(self, i, index):
        if isinstance(index, tuple):
            return ":".join("" if v is None else str(v) for v in index[1:])
        if isinstance(index, np.ndarray):
            label = f"IDX{i}"
            self.globals.append(f"{label} = np.array({index.tolist()!r}, dtype=np.int64)")
            return label
        return str(index)

    def forward(self, i):
        node, n = self.p.nodes[i], self.name
        a = [n(j) for j in node.inputs]
        op = node.op
        if op == "literal":
            return []
        if op in ("input", "data"):
            src = "x" if op == "input" else "data"
            size = size_of(node.shape)
            if node.shape == ():
                code = f"{src}[{node.attr}]"
            else:
                code = f"{src}[{node.attr}:{node.attr + size}]"
                if len(node.shape) > 1:
                    code += f".reshape({node.shape})"
        elif op in UNARY_CODE:
            code = UNARY_CODE[op].format(a[0])
        elif op == "sum":
            code = a[0] if self.p.nodes[node.inputs[0]].shape == () else f"np.sum({a[0]})"
        elif op in BINARY_CODE:
            code = BINARY_CODE[op].format(*a)
        elif op == "matmul":
            code = f"np.dot({self.contiguous(node.inputs[0])}, {self.contiguous(node.inputs[1])})"
        elif op == "where":
            code = f"np.where({a[0]}, {a[1]}, {a[2]})"
        elif op == "index":
            code = f"{a[0]}[{self.index_code(i, node.attr)}]"
        elif op == "logp":
            return self.logp_forward(i)
        else:  # pragma: no cover - ops are validated on the way in
            raise ModelError(f"no code rule for operation {op!r}")
        return [f"v{i} = {code}"]

    def contiguous(self, j):
        node = self.p.nodes[j]
        if node.op == "index" and node.shape != ():
            return f"np.ascontiguousarray({self.name(j)})"
        return self.name(j)

    def template_names(self, i):
        node = self.p.nodes[i]
        dist, arg_names = node.attr
        templates = dist.templates()
        mapping = {k: self.name(j) for k, j in zip(arg_names, node.inputs)}
        for local, _ in templates.setup:
            mapping[local] = f"t{i}_{local}"
        return templates, mapping

    @staticmethod
    def fill(template, mapping):
        return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: mapping.get(m.group(0), m.group(0)), template)

    def logp_forward(self, i):
        node = self.p.nodes[i]
        templates, mapping = self.template_names(i)
        lines = [f"{mapping[local]} = {self.fill(code, mapping)}" for local, code in templates.setup]
        elementwise = self.fill(templates.logp, mapping)
        if node.shape == ():
            lines.append(f"v{i} = {elementwise}")
        else:
            lines.append(f"v{i} = total({elementwise}, {size_of(node.shape)})")
        return lines

    def reduce_to(self, code, from_shape, to_shape):
        """Code summing a contribution of ``from_shape`` down to an input of ``to_shape``."""
        if to_shape == from_shape:
            return code if from_shape == () else f"fill({code}, {from_shape})"
        if to_shape == ():
            return f"total({code}, {size_of(from_shape)})"
        if from_shape[len(from_shape) - len(to_shape):] == to_shape:
            lead = size_of(from_shape) // size_of(to_shape)
            return f"np.sum(fill({code}, {from_shape}).reshape(({lead},) + {to_shape}), axis=0)"
        lead = len(from_shape) - len(to_shape)
        if lead >= 0 and all(n in (1, m) for n, m in zip(to_shape, from_shape[lead:])):
            # Size-1 axes of the input that the operation stretched: sum them, keeping size 1.
            shape = from_shape
            for axis in range(lead, len(from_shape)):
                if to_shape[axis - lead] == 1 and from_shape[axis] != 1:
                    kept = shape[:axis] + (1,) + shape[axis + 1:]
                    if len(shape) == 1:
                        code = f"fill({self.reduce_to(code, shape, ())}, {kept})"
                    else:
                        code = f"np.sum(fill({code}, {shape}), axis={axis}).reshape({kept})"
                    shape = kept
            return self.reduce_to(code, shape, to_shape)
        raise ModelError(f"cannot differentiate a broadcast from shape {from_shape} to {to_shape}")

    def backward(self, i, g):
        """Lines adding node i's contributions to the adjoints of its active inputs."""
        node, n = self.p.nodes[i], self.name
        op, ins = node.op, node.inputs
        shp = [self.p.nodes[j].shape for j in ins]
        act = [self.p.nodes[j].active for j in ins]
        out = []

        def add(k, code):
            if act[k]:
                out.append((ins[k], code))

        if op in UNARY_GRAD:
            add(0, UNARY_GRAD[op].format(g=g, a=n(ins[0]), o=f"v{i}"))
        elif op == "sum":
            add(0, g if shp[0] == () else f"fill({g}, {shp[0]})")
        elif op == "add":
            add(0, self.reduce_to(g, node.shape, shp[0]))
            add(1, self.reduce_to(g, node.shape, shp[1]))
        elif op == "sub":
            add(0, self.reduce_to(g, node.shape, shp[0]))
            add(1, self.reduce_to(f"-{g}", node.shape, shp[1]))
        elif op == "mul":
            add(0, self.reduce_to(f"{g} * {n(ins[1])}", node.shape, shp[0]))
            add(1, self.reduce_to(f"{g} * {n(ins[0])}", node.shape, shp[1]))
        elif op == "div":
            add(0, self.reduce_to(f"{g} / {n(ins[1])}", node.shape, shp[0]))
            add(1, self.reduce_to(f"-{g} * v{i} / {n(ins[1])}", node.shape, shp[1]))
        elif op == "pow":
            a, b = n(ins[0]), n(ins[1])
            add(0, self.reduce_to(f"{g} * {b} * {a} ** ({b} - 1.0)", node.shape, shp[0]))
            add(1, self.reduce_to(f"{g} * v{i} * np.log({a})", node.shape, shp[1]))
        elif op == "matmul":
            out += self.matmul_backward(node, g)
        elif op == "where":
            c = n(ins[0])
            add(1, self.reduce_to(f"np.where({c}, {g}, 0.0)", node.shape, shp[1]))
            add(2, self.reduce_to(f"np.where({c}, 0.0, {g})", node.shape, shp[2]))
        elif op == "index":
            idx = self.index_code(i, node.attr)
            if isinstance(node.attr, np.ndarray):
                add(0, f"scatter_add(np.zeros({shp[0]}), {idx}, {g})")
            else:
                out.append(("index", ins[0], f"np.zeros({shp[0]})", idx, g))
        elif op == "logp":
            templates, mapping = self.template_names(i)
            for k, (arg, j) in enumerate(zip(node.attr[1], ins)):
                if act[k] and arg in templates.partials:
                    partial = self.fill(templates.partials[arg], mapping)
                    if g != "1.0":
                        partial = f"{g} * ({partial})"
                    add(k, self.reduce_to(partial, node.shape, shp[k]))
                elif act[k]:
                    raise ModelError(f"{node.attr[0].family} has no gradient with respect to "
                                     f"{arg!r}, which depends on sampled variables")
        elif op in COMPARISONS or op in ("input", "data", "literal"):
            pass
        return out

    def matmul_backward(self, node, g):
        (ia, ib), n = node.inputs, self.name
        a, b = self.p.nodes[ia], self.p.nodes[ib]
        ca, cb = self.contiguous(ia), self.contiguous(ib)
        out = []
        if len(a.shape) == 2 and len(b.shape) == 1:
            ga, gb = f"np.outer({g}, {n(ib)})", f"np.dot({ca}.T, {g})"
        elif len(a.shape) == 1 and len(b.shape) == 1:
            ga, gb = f"{g} * {n(ib)}", f"{g} * {n(ia)}"
        elif len(a.shape) == 1:
            ga, gb = f"np.dot({cb}, {g})", f"np.outer({n(ia)}, {g})"
        else:
            ga, gb = f"np.dot({g}, {cb}.T)", f"np.dot({ca}.T, {g})"
        if a.active:
            out.append((ia, ga))
        if b.active:
            out.append((ib, gb))
        return out

    # ---- whole functions ----------------------------------------------------
    def needed(self, roots):
        seen, stack = set(), list(roots)
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.p.nodes[i].inputs)
        return sorted(seen)

    def logp_grad_body(self):
        p = self.p
        lines = []
        order = self.needed(p.terms + [c[0] for c in p.checks])
        # A run-time check goes right after the last node its condition reads.
        checks_after = {}
        for node, code in p.checks:
            checks_after.setdefault(max(p.nodes[node].inputs), []).append((node, code))
        for i in order:
            lines += self.forward(i)
            for node, code in checks_after.pop(i, []):
                _, mapping = self.template_names(node)
                lines.append(f"if not all_true({self.fill(code, mapping)}):")
                lines.append(f"    return -np.inf, {STATUS_DOMAIN}")
        lines.append(f"logp = {' + '.join(self.name(t) for t in p.terms) or '0.0'}")
        # Seed adjoints of the summed terms; a term nothing else reads keeps a literal
        # seed so its partials skip the multiplication by 1.
        consumers = {j for i in order for j in p.nodes[i].inputs}
        adjoint = {}
        for t in dict.fromkeys(p.terms):
            if not p.nodes[t].active:
                continue
            seed = repr(float(p.terms.count(t)))
            if t in consumers:
                lines.append(f"g{t} = {seed}")
                adjoint[t] = f"g{t}"
            else:
                adjoint[t] = seed
        for i in reversed(order):
            if i not in adjoint:
                continue
            for item in self.backward(i, adjoint[i]):
                if item[0] == "index":
                    _, j, zeros, idx, gv = item
                    lines.append(f"s{i} = {zeros}")
                    lines.append(f"s{i}[{idx}] = {gv}")
                    contribution = f"s{i}"
                else:
                    j, contribution = item
                if j in adjoint:
                    lines.append(f"g{j} = g{j} + {contribution}")
                else:
                    lines.append(f"g{j} = {contribution}")
                adjoint[j] = f"g{j}"
        for slot, node in zip(p.free, [i for i, nd in enumerate(p.nodes) if nd.op == "input"]):
            target = f"grad[{slot.offset}]" if slot.shape == () else \
                f"grad[{slot.offset}:{slot.offset + slot.size}]"
            if node in adjoint:
                src = adjoint[node] if slot.shape == () else f"np.ravel({adjoint[node]})"
                lines.append(f"{target} = {src}")
            else:
                lines.append(f"{target} = 0.0")
        lines.append(f"return logp, {STATUS_OK}")
        return lines

    def constrain_body(self):
        p = self.p
        lines = []
        for i in self.needed(p.output_nodes):
            lines += self.forward(i)
        for slot, node in zip(p.outputs, p.output_nodes):
            src = self.name(node)
            if slot.shape == ():
                lines.append(f"out[{slot.offset}] = {src}")
            else:
                lines.append(f"out[{slot.offset}:{slot.offset + slot.size}] = np.ravel({src})")
        return lines


HEADER = '''"""Generated by exmc (codegen v{version}) for a model with structure hash {digest}.

logp_grad(x, data, grad) -> (log density, status) on the unconstrained space;
constrain(x, data, out) writes the traced constrained values and deterministics.
Do not edit: the file name is the model's hash and Numba's cache sits beside it.
"""
import numpy as np
from numba import carray, cfunc, njit, types

from exmc.compiler.kernels import (LOG_2, LOG_PI, LOG_SQRT_2PI, all_true, digamma, fill, lgamma,
                                   scatter_add, sigmoid, softplus, total)

DIM = {dim}
DATA_SIZE = {data_size}
OUTPUT_SIZE = {output_size}
'''

FOOTER = '''

@cfunc(types.int64(types.CPointer(types.float64), types.CPointer(types.float64),
                   types.CPointer(types.float64), types.CPointer(types.float64)), cache=True,
       error_model="numpy")
def logp_grad_c(x_ptr, data_ptr, grad_ptr, logp_ptr):
    """C entry point the compiled sampler calls through a function pointer."""
    x = carray(x_ptr, (DIM,))
    data = carray(data_ptr, (DATA_SIZE,))
    grad = carray(grad_ptr, (DIM,))
    logp, status = logp_grad(x, data, grad)
    out = carray(logp_ptr, (1,))
    out[0] = logp
    return status


@njit(cache=True, error_model="numpy")
def constrain_draws(draws, data, out):
    """Constrained values for each row of ``draws`` (num_draws, DIM) -> out (num_draws, OUTPUT_SIZE)."""
    for k in range(draws.shape[0]):
        constrain(draws[k], data, out[k])
'''


def emit(program: Program, digest: str) -> str:
    """The source of the generated module for ``program``."""
    em = _Emitter(program)
    logp_lines = em.logp_grad_body()
    constrain_lines = em.constrain_body()
    dim = sum(s.size for s in program.free)
    out_size = sum(s.size for s in program.outputs)
    parts = [HEADER.format(version=CODEGEN_VERSION, digest=digest, dim=dim,
                           data_size=program.data.size, output_size=out_size)]
    parts += em.globals
    parts.append("\n\n@njit(cache=True, error_model=\"numpy\")\ndef logp_grad(x, data, grad):")
    parts += ["    " + line for line in logp_lines]
    parts.append("\n\n@njit(cache=True, error_model=\"numpy\")\ndef constrain(x, data, out):")
    parts += ["    " + line for line in constrain_lines] or ["    pass"]
    parts.append(FOOTER)
    return "\n".join(parts)
