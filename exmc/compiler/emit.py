"""Emission: a lowered ``Program`` becomes loops over scalars in one preallocated work buffer.

Every value of the graph has a fixed address: the free vector ``x``, the flat
``data`` argument (data and every numeric constant), a local variable (a
scalar ``v<i>``, its adjoint ``g<i>``) or a slice of the work buffer ``w``
(arrays, and their adjoints), at offsets fixed here.  The forward pass writes
one loop per operation, reading its arguments with broadcasting worked out
into index arithmetic; the reverse pass walks the nodes backwards and adds
each operation's adjoint contributions.  Indexing and transposition are views:
they only change how elements are addressed, so they cost no loop and no copy.
A family's term calls its scalar kernel once per element and adds the
kernel's partial derivatives to its arguments' adjoints on the spot (a term's
own adjoint is always 1).  Nothing allocates and nothing calls NumPy, so the
same body compiles with ``numba.njit`` and as a ``numba.cuda`` device function.

A large model (over ``LARGE_MODEL_NODES`` nodes) keeps its scalars in ``w`` as
well, computes batches of scalar terms (``logp_batch``, made by the lowering)
in one loop each, and is written as a chain of functions of at most
``CHUNK_LINES`` lines, called in order: Numba's compile time grows faster than
linearly with the length of one function.

The functions written (see ``module_source``):

- ``logp_grad(x, data, grad, w) -> (logp, status)``
- ``constrain(x, data, out, w) -> status``: traced values and deterministics
- ``log_likelihood(x, data, out, w) -> status``: each observed element's log density
"""
from __future__ import annotations

import re

from exmc.compiler import families
from exmc.compiler.lower import LARGE_MODEL_NODES, IndexAttr, Program
from exmc.ir.dists import FAMILIES
from exmc.ir import recursion
from exmc.ir.ops import REGISTRY, size_of

STATUS_OK, STATUS_DOMAIN = 0, 1  # domain: a computed parameter left its domain (Stan would throw)
CHUNK_LINES = 150  # lines of one generated function of a large model
_ARG = re.compile(r"\b([abco])\b")
CHECK_OPS = {">": ">", ">=": ">=", "<": "<", "<=": "<="}


def strides(shape):
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= n
    return list(reversed(out))


def broadcast_index(out_shape, in_shape, k):
    """Code for the flat index into an input of ``in_shape`` read at output element ``k``."""
    if tuple(in_shape) == tuple(out_shape):
        return k
    n_in = size_of(in_shape)
    if n_in == 1:
        return "0"
    full = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    lead = len(out_shape) - len(in_shape)
    if all(s == 1 for s in full[:lead]) and tuple(in_shape) == tuple(out_shape[lead:]):
        return f"({k}) % {n_in}"
    out_strides, in_strides = strides(out_shape), strides(full)
    terms = []
    for axis, n in enumerate(full):
        if n == 1:
            continue
        coord = f"({k}) // {out_strides[axis]}"
        if axis > 0:
            coord = f"({coord}) % {out_shape[axis]}"
        terms.append(coord if in_strides[axis] == 1 else f"({coord}) * {in_strides[axis]}")
    return " + ".join(terms)


def _plus(offset, k):
    return str(offset) if k == "0" else f"{offset} + {k}" if offset else k


def _plus_row(row, size):
    """Flat index of element ``e`` of event block ``row`` (code) of ``size`` elements."""
    return "e" if row == "0" else f"({row}) * {size} + e"


def _indent(lines):
    return ["    " + line for line in lines]


def _fname(fn):
    return getattr(fn, "py_func", fn).__name__


class Emitter:
    """Addresses of every node, and the code of each operation (see the module docstring)."""

    def __init__(self, program: Program):
        self.p = program
        self.nodes = program.nodes
        # A large model keeps its scalars in the work buffer too and is written as a
        # chain of functions of bounded size: the compiler's work on one function grows
        # faster than linearly with its length and its number of locals.
        self.large = len(self.nodes) > LARGE_MODEL_NODES
        self.value_at, self.adjoint_at, self.aux_at = {}, {}, {}
        size = 0
        for i, node in enumerate(self.nodes):
            if node.op in ("logdet", "logsumexp", "cholesky", "corr_cholesky"):
                # logdet: the Cholesky factor and its adjoint; logsumexp: running maxima;
                # cholesky: a copy of the adjoint; corr_cholesky: the rows' remaining norms
                self.aux_at[i] = size
                size += (2 if node.op == "logdet" else 1) * size_of(
                    self.nodes[node.inputs[0]].shape if node.op == "logdet" else node.shape)
            if self.is_view(i) or node.op in ("input", "data"):
                continue
            if self.is_local(i):
                continue
            size += self.state_size(i)  # a scan's initial state, just before its steps
            self.value_at[i] = size
            size += 1 if node.op == "logp" else size_of(node.shape)
        self.owner = {}  # placeholder node id -> (its scan or ODE node id, position)
        for i, node in enumerate(self.nodes):
            if node.op == "logp" and node.attr.kernel.has_array_args:
                self.aux_at[i] = size  # arguments copied contiguous, their gradients, work
                size += 2 * sum(self.event_sizes(i)) + self.work_size(i)
            if node.op in ("scan", "ode_solve"):
                self.owner.update({j: (i, n) for n, j in enumerate(node.attr.args)})
            if node.op == "ode_solve":
                self.aux_at[i] = size
                size += sum(self.ode_layout(i).values())
        self.total_at = size  # the log density's running sum, in a large model
        size += 1
        self.adjoint_start = size
        for i, node in enumerate(self.nodes):
            if node.active and i in self.value_at:
                size += self.state_size(i)
                self.adjoint_at[i] = size
                size += size_of(node.shape)
        self.scratch_size = size
        self.fail = ""
        self.ode_sink = {}  # ODE node id -> where its parameters' adjoints go while a Jacobian is built

    def is_view(self, i):
        return self.nodes[i].op in ("index", "transpose", "arg", "reshape")

    def state_size(self, i):
        """Elements of a scan's state (stored, with its adjoint, just before its steps), else 0."""
        node = self.nodes[i]
        return size_of(node.shape[1:]) if node.op == "scan" else 0

    def ode_layout(self, i):
        """Sizes of the blocks of ODE node ``i``'s aux space, in order (see ``forward_ode``)."""
        node = self.nodes[i]
        n, steps = node.shape[1], node.attr.spec.max_steps
        if node.attr.spec.method == "sdirk4":
            stages = recursion.SD_STAGES
            params = [size_of(self.nodes[j].shape) for j in node.inputs[3:]]
            return {"trajectory": (steps + 1) * n, "stages": steps * stages * n, "start": steps,
                    "step": steps, "reached": node.shape[0], "y": n, "t": 1, "count": 1,
                    "jac": n * n, "lu": n * n, "piv": n, "f0": n, "known": n, "hk": stages * n,
                    "d": n, "ybar": n, "yout": n, "r": stages * n, "seed": n, "stage_bar": n,
                    "sink": max(params, default=0)}
        return {"trajectory": (steps + 1) * n, "start": steps, "step": steps,
                "reached": node.shape[0], "k": 7 * n, "y": n, "t": 1, "count": 1,
                "ybar": n, "kbar": 7 * n, "stage_bar": n}

    def ode_at(self, i):
        """Offset of each block of ODE node ``i``'s aux space."""
        at, offset = {}, self.aux_at[i]
        for name, size in self.ode_layout(i).items():
            at[name] = offset
            offset += size
        return at

    def placeholder_place(self, j, k, adjoint):
        """Code of element ``k`` of body placeholder ``j`` (its value, or its adjoint's place).

        In a scan the state is the row before step t of the scan's own stored states
        (row -1 is the initial state), a sequence is its row t, a non-sequence itself;
        in an ODE, y and t are the stage's inputs in the node's aux space.
        """
        i, position = self.owner[j]
        node = self.nodes[i]
        place = self.adjoint if adjoint else self.read
        if node.op == "scan":
            sequences = node.attr.spec.sequences
            if position == 0:
                size = self.state_size(i)
                return place(i, f"t{i} * {size} - {size} + {k}")
            if position <= sequences:
                source = node.inputs[position]
                row = size_of(self.nodes[source].shape[1:])
                return place(source, f"t{i} * {row} + {k}")
            return place(node.inputs[position], k)
        if position >= 2:
            if adjoint and i in self.ode_sink:  # building a Jacobian: parameters' parts dropped
                return f"w[{self.ode_sink[i]} + {k}]"
            return place(node.inputs[position + 1], k)
        at = self.ode_at(i)
        if position == 0:
            return f"w[{at['t']}]"
        return f"w[{at['stage_bar' if adjoint else 'y']} + {k}]"

    def is_local(self, i):
        """Whether node ``i``'s value (and adjoint) is a local variable rather than in ``w``."""
        node = self.nodes[i]
        return (not self.large and node.op not in ("input", "data") and not self.is_view(i)
                and (node.shape == () or node.op == "logp"))

    # ---- addressing -------------------------------------------------------------------
    def view_index(self, i, k):
        """(source node, flat index code in the source) of element ``k`` of view ``i``."""
        node = self.nodes[i]
        src = node.inputs[0]
        if node.op == "reshape":  # row-major order is kept: element k is element k
            return src, k
        if node.op == "transpose":
            shape = node.shape
            in_strides = strides(self.nodes[src].shape)
            terms = []
            for axis, stride in enumerate(strides(shape)):
                coord = f"({k}) // {stride}" if axis == 0 else f"(({k}) // {stride}) % {shape[axis]}"
                terms.append(f"({coord}) * {in_strides[len(shape) - 1 - axis]}")
            return src, " + ".join(terms) if terms else "0"
        attr: IndexAttr = node.attr
        rest = size_of(self.nodes[src].shape[1:])
        inner = "" if rest == 1 else f" * {rest} + ({k}) % {rest}"
        row = k if rest == 1 else f"({k}) // {rest}"
        if attr.kind == "int":
            return src, _plus(attr.start * rest, k) if rest > 1 else str(attr.start)
        if attr.kind == "slice":
            first = f"{attr.start} + ({row}) * {attr.step}" if attr.step != 1 else _plus(attr.start, row)
            return src, f"({first}){inner}"
        positions = self.nodes[node.inputs[1]].attr
        return src, f"int(data[{_plus(positions, row)}]){inner}"

    def read(self, i, k="0"):
        """Code reading element ``k`` (code) of node ``i``'s value."""
        node = self.nodes[i]
        if node.op == "arg":
            return self.placeholder_place(i, k, False)
        if self.is_view(i):
            return self.read(*self.view_index(i, k))
        if node.op == "input":
            return f"x[{_plus(node.attr, k)}]"
        if node.op == "data":
            return f"data[{_plus(node.attr, k)}]"
        if self.is_local(i):
            return f"v{i}"
        if node.shape == () or node.op == "logp":
            return f"w[{self.value_at[i]}]"
        return f"w[{_plus(self.value_at[i], k)}]"

    def adjoint(self, i, k="0"):
        """Code of the adjoint of element ``k`` of node ``i`` (an assignable place)."""
        node = self.nodes[i]
        if node.op == "arg":
            return self.placeholder_place(i, k, True)
        if self.is_view(i):
            return self.adjoint(*self.view_index(i, k))
        if node.op == "input":
            return f"grad[{_plus(node.attr, k)}]"
        if self.is_local(i):
            return f"g{i}"
        if node.shape == () or node.op == "logp":
            return f"w[{self.adjoint_at[i]}]"
        return f"w[{_plus(self.adjoint_at[i], k)}]"

    # ---- forward ------------------------------------------------------------------------
    def forward(self, i, with_grad):
        node = self.nodes[i]
        if node.op in ("input", "data") or self.is_view(i):
            return []
        if node.op == "logp":
            return self.logp_forward(i, with_grad)
        if node.op == "logp_batch":
            return self.batch_forward(i, with_grad)
        spec = REGISTRY[node.op]
        if spec.scalar is not None:
            hoisted = self.broadcast_scalars(i)
            return self.hoist_reads(i) + self.loop(node.shape, lambda k: [
                f"{self.read(i, k)} = {self.elementwise(i, spec.scalar, k, hoisted)}"])
        return getattr(self, f"forward_{spec.layout}")(i)

    def elementwise(self, i, code, k, hoisted=()):
        node = self.nodes[i]
        names = {"o": self.read(i, k)}
        for n, (letter, j) in enumerate(zip("abc", node.inputs)):
            names[letter] = f"h{i}_{n}" if n in hoisted else \
                self.read(j, broadcast_index(node.shape, self.nodes[j].shape, k))
        return _ARG.sub(lambda m: names[m.group(1)], code)

    def broadcast_scalars(self, i):
        """Positions of node ``i``'s inputs that are one value read by every element of its loop.

        Such an input is read once into a local before the loop, and its adjoint
        summed in a local and stored after it: inside the loop a load could alias
        the stores, so the compiler could not hoist it (nor ``log(sigma)`` with it).
        """
        node = self.nodes[i]
        if size_of(node.shape) == 1:
            return []
        return [n for n, j in enumerate(node.inputs) if size_of(self.nodes[j].shape) == 1]

    def hoist_reads(self, i):
        return [f"h{i}_{n} = {self.read(self.nodes[i].inputs[n])}" for n in self.broadcast_scalars(i)]

    @staticmethod
    def loop(shape, body, var="k"):
        n = size_of(shape)
        if n == 1 and shape == ():
            return body("0")
        return [f"for {var} in range({n}):"] + ["    " + line for line in body(var)]

    def logp_forward(self, i, with_grad, store=None):
        """A family term: summed into ``v<i>`` (with partials when ``with_grad``), or with
        ``store`` (element index code -> place) each element's log density written there."""
        node = self.nodes[i]
        term = node.attr
        if term.kernel.has_array_args:
            return self.event_logp_forward(i, with_grad, store)
        hoisted = self.broadcast_scalars(i)
        active = [n for n, j in enumerate(node.inputs) if self.nodes[j].active] if with_grad else []
        names = [f"h{i}_{n}" if n in hoisted else f"a{i}_{n}" for n in range(len(node.inputs))]
        # Terms in batch-wide parameters alone (lgamma, digamma of them) are evaluated once.
        kernel, count = term.kernel, size_of(node.shape)
        split = [term.args.index(p) for p in kernel.normalizer_params]
        if kernel.normalizer_grad is None or store is not None or not all(n in hoisted for n in split):
            split = []
        summed = [n for n in active if n in hoisted]
        element = kernel.body_grad if split else kernel.logp_grad

        def body(k):
            out = [f"{names[n]} = {self.read(j, broadcast_index(node.shape, self.nodes[j].shape, k))}"
                   for n, j in enumerate(node.inputs) if n not in hoisted]
            for lhs, op, rhs in term.checks:
                left = names[term.args.index(lhs)]
                right = names[term.args.index(rhs)] if isinstance(rhs, str) else repr(float(rhs))
                out.append(f"if not ({left} {CHECK_OPS[op]} {right}):")
                out.append(f"    return {self.fail}")
            if not active and not split:
                place = f"{self.read(i)} +" if store is None else f"{store(k)} "
                return out + [f"{place}= F.{_fname(kernel.logp)}({', '.join(names)})"]
            out.append(f"r{i} = F.{_fname(element)}({', '.join(names)})")
            out.append(f"{self.read(i)} += r{i}[0]")
            for n in active:
                j = node.inputs[n]
                place = f"q{i}_{n}" if n in hoisted else \
                    self.adjoint(j, broadcast_index(node.shape, self.nodes[j].shape, k))
                out.append(f"{place} += r{i}[{n + 1}]")
            return out

        lines = [f"{self.read(i)} = 0.0"] + self.hoist_reads(i) + [f"q{i}_{n} = 0.0" for n in summed]
        lines += self.loop(node.shape, body)
        if split:
            call = f"F.{_fname(kernel.normalizer_grad)}({', '.join(names[n] for n in split)})"
            lines += [f"c{i} = {call}", f"{self.read(i)} += {count} * c{i}[0]"]
            lines += [f"q{i}_{n} += {count} * c{i}[{1 + split.index(n)}]" for n in split if n in summed]
        return lines + [f"{self.adjoint(node.inputs[n])} += q{i}_{n}" for n in summed]

    def batch_forward(self, i, with_grad):
        """A batch of scalar terms (see ``lower.BatchTerm``): one loop, arguments through tables.

        A shared argument is read once before the loop and its adjoint summed in a local.
        """
        batch = self.nodes[i].attr
        term, count = batch.term, batch.count
        names, tabled, shared = [], {}, {}
        for n, kind in enumerate(batch.kinds):
            names.append(f"a{i}_{n}")
            if isinstance(kind, str):
                buffer = "x" if kind == "input" else "data"
                tabled[n] = (buffer, f"int(data[{batch.table + n * count} + k])")
            else:
                shared[n] = kind
        out = [f"{names[n]} = {buffer}[{offset}]" for n, (buffer, offset) in tabled.items()]
        for lhs, op, rhs in term.checks:
            left = names[term.args.index(lhs)]
            right = names[term.args.index(rhs)] if isinstance(rhs, str) else repr(float(rhs))
            out += [f"if not ({left} {CHECK_OPS[op]} {right}):", f"    return {self.fail}"]
        active = [n for n, kind in enumerate(batch.kinds)
                  if kind == "input" or (n in shared and self.nodes[kind].active)] if with_grad else []
        if active:
            out += [f"r{i} = F.{_fname(term.kernel.logp_grad)}({', '.join(names)})",
                    f"{self.read(i)} += r{i}[0]"]
            out += [f"q{i}_{n} += r{i}[{n + 1}]" if n in shared else
                    f"grad[{tabled[n][1]}] += r{i}[{n + 1}]" for n in active]
        else:
            out.append(f"{self.read(i)} += F.{_fname(term.kernel.logp)}({', '.join(names)})")
        before = [f"{self.read(i)} = 0.0"] + [f"{names[n]} = {self.read(j)}" for n, j in shared.items()]
        before += [f"q{i}_{n} = 0.0" for n in active if n in shared]
        after = [f"{self.adjoint(shared[n])} += q{i}_{n}" for n in active if n in shared]
        return before + [f"for k in range({count}):"] + ["    " + line for line in out] + after

    # ---- a family's log density or cdf as a value (Truncated, Censored, Mixture) ---------------
    def family_fn_call(self, i, k, grad):
        """Lines reading node ``i``'s arguments at element ``k`` and checking them, and the call."""
        node = self.nodes[i]
        family, params, fn = node.attr
        kernel = families.KERNELS[(family, params)]
        names = [f"a{i}_{n}" for n in range(len(node.inputs))]
        lines = [f"{name} = {self.read(j, broadcast_index(node.shape, self.nodes[j].shape, k))}"
                 for name, j in zip(names, node.inputs)]
        for lhs, op, rhs in FAMILIES[family].checks:
            if lhs in params and (not isinstance(rhs, str) or rhs in params):
                right = names[1 + params.index(rhs)] if isinstance(rhs, str) else repr(float(rhs))
                lines += [f"if not ({names[1 + params.index(lhs)]} {CHECK_OPS[op]} {right}):",
                          f"    return {self.fail}"]
        function = getattr(kernel, f"{fn}_grad" if grad else fn)
        return lines, f"F.{_fname(function)}({', '.join(names)})"

    def forward_family_fn(self, i):
        def body(k):
            lines, call = self.family_fn_call(i, k, False)
            return lines + [f"{self.read(i, k)} = {call}"]
        return self.loop(self.nodes[i].shape, body)

    def backward_family_fn(self, i):
        node = self.nodes[i]
        kernel = families.KERNELS[node.attr[:2]]
        targets = [n for n, j in enumerate(node.inputs) if self.nodes[j].active
                   and (("x",) + tuple(node.attr[1]))[n] not in kernel.constant_args]
        if not targets:
            return []

        def body(k):
            lines, call = self.family_fn_call(i, k, True)
            lines += [f"r{i} = {call}", f"b{i} = {self.adjoint(i, k)}"]
            for n in targets:
                j = node.inputs[n]
                place = self.adjoint(j, broadcast_index(node.shape, self.nodes[j].shape, k))
                lines.append(f"{place} += b{i} * r{i}[{n + 1}]")
            return lines
        return self.loop(node.shape, body)

    # ---- families with event dimensions (multivariate) -------------------------------------
    def event_shapes(self, i):
        """Event shape of each argument of event-family term ``i`` (value first)."""
        node = self.nodes[i]
        ranks = (node.attr.kernel.event_ndim,) + tuple(node.attr.kernel.param_ndim)
        return [self.nodes[j].shape[len(self.nodes[j].shape) - r:] if r else ()
                for j, r in zip(node.inputs, ranks)]

    def event_sizes(self, i):
        return [size_of(s) if s else 0 for s in self.event_shapes(i)]

    def work_shape(self, i):
        kernel = self.nodes[i].attr.kernel
        if kernel.work_shape is None:
            return None
        return tuple(kernel.work_shape(self.event_shapes(i)[0][-1]))

    def work_size(self, i):
        shape = self.work_shape(i)
        return 0 if shape is None else size_of(shape)

    def event_logp_forward(self, i, with_grad, store=None):
        """One kernel call per batch element on contiguous copies of its arguments.

        Copies make views, broadcasting and any argument layout look the same to
        the kernel; its gradients land in scratch and are added back element by element.
        """
        node, term = self.nodes[i], self.nodes[i].attr
        shapes, sizes = self.event_shapes(i), self.event_sizes(i)
        start = self.aux_at[i]
        blocks, offset = [], start
        for size in sizes:
            blocks.append(offset)
            offset += size
        grads = [b + sum(sizes) for b in blocks]
        work = start + 2 * sum(sizes)
        active = [n for n, j in enumerate(node.inputs) if self.nodes[j].active] if with_grad else []

        def view(offset, shape):
            flat = f"w[{offset}:{offset + size_of(shape)}]"
            return flat if len(shape) == 1 else f"{flat}.reshape({shape})"

        def body(b):
            out, scalars = [], []
            for n, j in enumerate(node.inputs):
                batch = node.shape
                arg_batch = self.nodes[j].shape[:len(self.nodes[j].shape) - len(shapes[n])]
                row = broadcast_index(batch, arg_batch, b)
                if sizes[n]:
                    out += [f"for e in range({sizes[n]}):",
                            f"    w[{blocks[n]} + e] = {self.read(j, _plus_row(row, sizes[n]))}"]
                else:
                    scalars.append(n)
                    out.append(f"a{i}_{n} = {self.read(j, row)}")
            args = [view(blocks[n], shapes[n]) if sizes[n] else f"a{i}_{n}"
                    for n in range(len(node.inputs))]
            tail = [] if self.work_shape(i) is None else [view(work, self.work_shape(i))]
            if not active:
                return out + [f"r{i} = F.{_fname(term.kernel.logp)}({', '.join(args + tail)})",
                              f"{self.read(i)} += r{i}" if store is None else f"{store(b)} = r{i}"]
            array_args = [n for n in range(len(node.inputs)) if sizes[n]]
            out += [f"for e in range({sum(sizes)}):", f"    w[{grads[0]} + e] = 0.0"]
            call = f"F.{_fname(term.kernel.logp_grad)}"
            out.append(f"r{i} = {call}({', '.join(args + [view(grads[n], shapes[n]) for n in array_args] + tail)})")
            if scalars:
                out.append(f"{self.read(i)} += r{i}[0]")
            else:
                out.append(f"{self.read(i)} += r{i}")
            for n in active:
                j = node.inputs[n]
                arg_batch = self.nodes[j].shape[:len(self.nodes[j].shape) - len(shapes[n])]
                row = broadcast_index(node.shape, arg_batch, b)
                if sizes[n]:
                    out += [f"for e in range({sizes[n]}):",
                            f"    {self.adjoint(j, _plus_row(row, sizes[n]))} += w[{grads[n]} + e]"]
                else:
                    out.append(f"{self.adjoint(j, row)} += r{i}[{1 + scalars.index(n)}]")
            return out

        return [f"{self.read(i)} = 0.0"] + self.loop(node.shape, body, "b")

    def forward_reduce(self, i):
        node = self.nodes[i]
        src = node.inputs[0]
        shape = self.nodes[src].shape
        n, m = size_of(shape), size_of(node.shape)
        out_k = self.reduced_index(i, "k")
        acc = lambda k: self.read(i, k)  # noqa: E731
        if node.op == "logsumexp":
            top = lambda k: f"w[{_plus(self.aux_at[i], k)}]"  # noqa: E731
            return (self.loop((m,), lambda r: [f"{top(r)} = -math.inf", f"{acc(r)} = 0.0"], "r")
                    + [f"for k in range({n}):",
                       f"    {top(out_k)} = max({top(out_k)}, {self.read(src, 'k')})",
                       f"for k in range({n}):",
                       f"    {acc(out_k)} += math.exp({self.read(src, 'k')} - {top(out_k)})"]
                    + self.loop((m,), lambda r: [f"{acc(r)} = {top(r)} + math.log({acc(r)})"], "r"))
        lines = self.loop((m,), lambda r: [f"{acc(r)} = 0.0"], "r")
        lines += [f"for k in range({n}):", f"    {acc(out_k)} += {self.read(src, 'k')}"]
        if node.op == "mean":
            lines += self.loop((m,), lambda r: [f"{acc(r)} /= {n // m}"], "r")
        return lines

    def reduced_index(self, i, k):
        """Code of the output element that input element ``k`` of reduction ``i`` adds to."""
        node = self.nodes[i]
        shape = self.nodes[node.inputs[0]].shape
        if node.attr is None or node.shape == ():
            return "0"
        axis = node.attr % len(shape)
        inner = size_of(shape[axis + 1:])
        block = inner * shape[axis]
        outer = f"(({k}) // {block})"
        if inner == 1:
            return outer
        return f"{outer} * {inner} + ({k}) % {inner}"

    def cumsum_layout(self, i):
        node = self.nodes[i]
        shape = self.nodes[node.inputs[0]].shape
        if node.attr is None:
            return size_of(shape), 1, size_of(shape)
        axis = node.attr % len(shape)
        return size_of(shape), size_of(shape[axis + 1:]), shape[axis]

    def forward_cumsum(self, i):
        src = self.nodes[i].inputs[0]
        n, stride, length = self.cumsum_layout(i)
        return [f"for k in range({n}):",
                f"    c{i} = {self.read(src, 'k')}",
                f"    if (k // {stride}) % {length} > 0:",
                f"        c{i} += {self.read(i, f'k - {stride}')}",
                f"    {self.read(i, 'k')} = c{i}"]

    def matmul_dims(self, i):
        a, b = (self.nodes[j].shape for j in self.nodes[i].inputs)
        m = a[0] if len(a) == 2 else 1
        p = b[1] if len(b) == 2 else 1
        return m, a[-1], p

    def forward_matmul(self, i):
        ia, ib = self.nodes[i].inputs
        m, n, p = self.matmul_dims(i)
        return [f"for r in range({m}):",
                f"    for c in range({p}):",
                f"        s{i} = 0.0",
                f"        for t in range({n}):",
                f"            s{i} += {self.read(ia, f'r * {n} + t')} * {self.read(ib, f't * {p} + c')}",
                f"        {self.read(i, f'r * {p} + c')} = s{i}"]

    def concat_maps(self, i):
        """(input, code of the output index of its element k) for concatenate and stack."""
        node = self.nodes[i]
        axis = node.attr % len(node.shape)
        out_inner = size_of(node.shape[axis:])
        maps, offset = [], 0
        for j in node.inputs:
            shape = self.nodes[j].shape
            if node.op == "stack":
                shape = shape[:axis] + (1,) + shape[axis:]
            inner = size_of(shape[axis:])
            maps.append((j, f"(k // {inner}) * {out_inner} + {offset} + k % {inner}"))
            offset += inner
        return maps

    def concat_runs(self, i, adjoint=False):
        """Inputs of a concatenate or stack whose values (or adjoints) lie one after another.

        When the result is their elements in order (axis 0 of 1-d pieces, or
        scalars stacked), consecutive pieces at consecutive addresses are copied by
        one loop: [(buffer, source offset, result offset, size) or (None, input, index
        code, size)].  Stacking a thousand scalar variables is then one loop, not a thousand.
        """
        node = self.nodes[i]
        flat = node.attr % len(node.shape) == 0 and all(
            len(self.nodes[j].shape) <= 1 for j in node.inputs)
        runs, offset = [], 0
        for j, index in self.concat_maps(i):
            size = size_of(self.nodes[j].shape)
            at = self.adjoint_address(j) if adjoint else self.address(j)
            last = runs[-1] if runs else None
            if flat and at and last and last[0] == at[0] and last[1] + last[3] == at[1]:
                last[3] += size
            elif flat and at:
                runs.append([at[0], at[1], offset, size])
            else:
                runs.append([None, j, index, size])
            offset += size
        return runs

    def forward_concatenate(self, i):
        lines = []
        for buffer, source, index, size in self.concat_runs(i):
            value = self.read(source, "k") if buffer is None else f"{buffer}[{_plus(source, 'k')}]"
            target = self.read(i, index) if buffer is None else self.read(i, _plus(index, "k"))
            lines += [f"for k in range({size}):", f"    {target} = {value}"]
        return lines

    def cholesky_lines(self, i, src, L):
        """Lines writing the lower Cholesky factor of ``src`` (read: lower triangle) into ``L``."""
        n = self.nodes[src].shape[0]
        return [f"for r in range({n}):",
                "    for c in range(r + 1):",
                f"        s{i} = {self.read(src, f'r * {n} + c')}",
                "        for t in range(c):",
                f"            s{i} -= {L('r', 't')} * {L('c', 't')}",
                "        if r == c:",
                f"            if not s{i} > 0.0:",
                f"                return {self.fail}",
                f"            {L('r', 'r')} = math.sqrt(s{i})",
                "        else:",
                f"            {L('r', 'c')} = s{i} / {L('c', 'c')}",
                f"    for c in range(r + 1, {n}):",
                f"        {L('r', 'c')} = 0.0"]

    def forward_cholesky(self, i):
        n = self.nodes[i].shape[0]
        return self.cholesky_lines(i, self.nodes[i].inputs[0],
                                   lambda r, c: self.read(i, f"({r}) * {n} + {c}"))

    def logdet_factor(self, i, which=0):
        """The Cholesky factor (which=0) or its adjoint (1) of logdet node ``i``, in its aux block."""
        n = self.nodes[self.nodes[i].inputs[0]].shape[0]
        start = self.aux_at[i] + which * n * n
        return lambda r, c: f"w[{start} + ({r}) * {n} + {c}]"

    def forward_corr_cholesky(self, i):
        n = self.nodes[i].shape[0]
        src = self.nodes[i].inputs[0]
        L = lambda r, c: self.read(i, f"({r}) * {n} + {c}")  # noqa: E731
        R = lambda r, c: f"w[{self.aux_at[i]} + ({r}) * {n} + {c}]"  # noqa: E731
        return [f"for k in range({n * n}):", f"    {self.read(i, 'k')} = 0.0",
                f"{L(0, 0)} = 1.0",
                f"k{i} = 0",
                f"for r in range(1, {n}):",
                f"    s{i} = 0.0",
                "    for c in range(r):",
                f"        {R('r', 'c')} = math.sqrt(1.0 - s{i})",
                f"        {L('r', 'c')} = {self.read(src, f'k{i}')} * {R('r', 'c')}",
                f"        s{i} += {L('r', 'c')} * {L('r', 'c')}",
                f"        k{i} += 1",
                f"    {L('r', 'r')} = math.sqrt(1.0 - s{i})"]

    def backward_corr_cholesky(self, i):
        src = self.nodes[i].inputs[0]
        if not self.nodes[src].active:
            return []
        n = self.nodes[i].shape[0]
        L = lambda r, c: self.read(i, f"({r}) * {n} + {c}")  # noqa: E731
        R = lambda r, c: f"w[{self.aux_at[i]} + ({r}) * {n} + {c}]"  # noqa: E731
        G = lambda r, c: self.adjoint(i, f"({r}) * {n} + {c}")  # noqa: E731
        # Row by row in reverse: t is the adjoint of the running sum of squares.
        return [f"for r in range(1, {n}):",
                f"    t{i} = -0.5 * {G('r', 'r')} / {L('r', 'r')}",
                f"    k{i} = r * (r - 1) // 2 + r - 1",
                "    for q in range(r):",
                "        c = r - 1 - q",
                f"        u{i} = {G('r', 'c')} + 2.0 * {L('r', 'c')} * t{i}",
                f"        {self.adjoint(src, f'k{i}')} += u{i} * {R('r', 'c')}",
                f"        t{i} += -0.5 * u{i} * {self.read(src, f'k{i}')} / {R('r', 'c')}",
                f"        k{i} -= 1"]

    def forward_logdet(self, i):
        src = self.nodes[i].inputs[0]
        n = self.nodes[src].shape[0]
        L = self.logdet_factor(i)
        return self.cholesky_lines(i, src, L) + [
            f"{self.read(i)} = 0.0", f"for r in range({n}):",
            f"    {self.read(i)} += 2.0 * math.log({L('r', 'r')})"]

    def forward_solve_triangular(self, i):
        ia, ib = self.nodes[i].inputs
        n = self.nodes[ia].shape[0]
        cols = size_of(self.nodes[ib].shape) // n
        lower = bool(self.nodes[i].attr)
        order = f"range({n})" if lower else f"range({n} - 1, -1, -1)"
        inner = "range(r)" if lower else f"range(r + 1, {n})"
        return [f"for c in range({cols}):",
                f"    for r in {order}:",
                f"        s{i} = {self.read(ib, f'r * {cols} + c')}",
                f"        for t in {inner}:",
                f"            s{i} -= {self.read(ia, f'r * {n} + t')} * {self.read(i, f't * {cols} + c')}",
                f"        {self.read(i, f'r * {cols} + c')} = s{i} / {self.read(ia, f'r * {n} + r')}"]

    # ---- ops with a body: scan and ode_solve -------------------------------------------
    def body_forward(self, i):
        """Lines computing the body of scan/ODE node ``i`` once (its placeholders already set)."""
        return [line for j in self.nodes[i].attr.body for line in self.forward(j, False)]

    def body_backward(self, i, seed):
        """Lines back through the body of node ``i`` (just recomputed): adjoints zeroed, the
        output's adjoint seeded with ``seed(e)`` (code), contributions added to the placeholders."""
        attr = self.nodes[i].attr
        lines = []
        for j in attr.body:
            if not self.nodes[j].active or j not in self.value_at and not self.is_local(j):
                continue
            if self.is_local(j):
                lines.append(f"g{j} = 0.0")
            else:  # a nested scan's adjoint starts with its initial state's
                first, size = self.state_size(j), size_of(self.nodes[j].shape)
                lines += [f"for k in range({first + size}):",
                          f"    w[{self.adjoint_at[j] - first} + k] = 0.0"]
        out = attr.output
        if self.nodes[out].active:
            size = size_of(self.nodes[out].shape)
            lines += [f"for e in range({size}):", f"    {self.adjoint(out, 'e')} += {seed('e')}"]
        for j in reversed(attr.body):
            if self.nodes[j].active:
                lines += self.backward(j)
        return lines

    def forward_scan(self, i):
        """The initial state, then one pass of the body per step, each new state stored in its row."""
        node = self.nodes[i]
        size, start = self.state_size(i), self.value_at[i]
        copy = [f"for e in range({size}):",
                f"    w[{start} + t{i} * {size} + e] = {self.read(node.attr.output, 'e')}"]
        return ([f"for e in range({size}):",
                 f"    w[{start - size} + e] = {self.read(node.inputs[0], 'e')}",
                 f"for t{i} in range({node.attr.steps}):"]
                + _indent(self.body_forward(i) + copy))

    def backward_scan(self, i):
        """Steps in reverse; each recomputes its body from the stored state before it.

        The adjoint of the state after step t is complete when step t is visited
        (later steps and every other use have added to it), so one pass suffices.
        """
        node = self.nodes[i]
        size, start = self.state_size(i), self.adjoint_at[i]
        steps = node.attr.steps
        step = [f"t{i} = {steps - 1} - q{i}"] + self.body_forward(i) + self.body_backward(
            i, lambda e: f"w[{start} + t{i} * {size} + {e}]")
        lines = [f"for q{i} in range({steps}):"] + _indent(step)
        init = node.inputs[0]
        if self.nodes[init].active:
            lines += [f"for e in range({size}):", f"    {self.adjoint(init, 'e')} += w[{start - size} + e]"]
        return lines

    def ode_stages(self, i, row, t, h, stages=7):
        """Lines computing the first ``stages`` Runge-Kutta stages from trajectory row ``row``."""
        node, at = self.nodes[i], self.ode_at(i)
        n, table = node.shape[1], node.attr.table
        return [f"for st{i} in range({stages}):",
                f"    for oe{i} in range({n}):",
                f"        u{i} = w[{at['trajectory']} + ({row}) * {n} + oe{i}]",
                f"        for ol{i} in range(st{i}):",
                f"            u{i} += {h} * data[{table} + st{i} * 7 + ol{i}] * w[{at['k']} + ol{i} * {n} + oe{i}]",
                f"        w[{at['y']} + oe{i}] = u{i}",
                f"    w[{at['t']}] = {t} + data[{table + 63} + st{i}] * {h}"] + _indent(
            self.body_forward(i) + [f"for oe{i} in range({n}):",
                                    f"    w[{at['k']} + st{i} * {n} + oe{i}] = "
                                    f"{self.read(node.attr.output, f'oe{i}')}"])

    def forward_ode(self, i):
        """Adaptive Dormand-Prince steps, landing exactly on each output time.

        Aux blocks (``ode_layout``): the accepted states (row 0 = y0), each accepted
        step's start time and size, the step count at each output, the stages, the
        stage input y and t, and the count of accepted steps; the reverse pass reads them.
        A solve needing more than max_steps attempts, or whose error is not finite,
        fails the evaluation (status 1), as a failed check does.
        """
        if self.nodes[i].attr.spec.method == "sdirk4":
            return self.forward_sdirk(i)
        node, at = self.nodes[i], self.ode_at(i)
        spec, table = node.attr.spec, node.attr.table
        n, outputs = node.shape[1], node.shape[0]
        y0, t0, times = node.inputs[:3]
        m, t, h, hh, a = (f"{name}{i}" for name in ("m", "tc", "h", "hh", "na"))
        last = self.read(times, str(outputs - 1))
        step = self.ode_stages(i, m, t, hh) + [
            f"en{i} = 0.0",
            f"for oe{i} in range({n}):",
            f"    u{i} = w[{at['trajectory']} + {m} * {n} + oe{i}]",
            f"    yn{i} = u{i}",
            f"    er{i} = 0.0",
            f"    for st{i} in range(7):",
            f"        kk{i} = w[{at['k']} + st{i} * {n} + oe{i}]",
            f"        yn{i} += {hh} * data[{table + 49} + st{i}] * kk{i}",
            f"        er{i} += {hh} * data[{table + 56} + st{i}] * kk{i}",
            f"    sc{i} = {spec.atol!r} + {spec.rtol!r} * max(abs(u{i}), abs(yn{i}))",
            f"    en{i} += (er{i} / sc{i}) * (er{i} / sc{i})",
            f"    w[{at['trajectory']} + ({m} + 1) * {n} + oe{i}] = yn{i}",
            f"en{i} = math.sqrt(en{i} / {n})",
            f"if not en{i} <= 1e300:",
            f"    return {self.fail}",
            f"if en{i} <= 1.0:",
            f"    w[{at['start']} + {m}] = {t}",
            f"    w[{at['step']} + {m}] = {hh}",
            f"    {t} = end{i} if {hh} == end{i} - {t} else {t} + {hh}",
            f"    {m} += 1",
            f"if en{i} == 0.0:",
            f"    {h} = {hh} * {recursion.GROW!r}",
            "else:",
            f"    {h} = {hh} * min({recursion.GROW!r}, max({recursion.SHRINK!r}, "
            f"{recursion.SAFETY!r} * en{i} ** -0.2))"]
        loop = [f"end{i} = {self.read(times, f'oj{i}')}",
                f"while {t} < end{i}:",
                f"    if {a} >= {spec.max_steps}:",
                f"        return {self.fail}",
                f"    {a} += 1",
                f"    {hh} = min({h}, end{i} - {t})"] + _indent(step[:]) + [
                f"w[{at['reached']} + oj{i}] = {m}",
                f"for oe{i} in range({n}):",
                f"    {self.read(i, f'oj{i} * {n} + oe{i}')} = w[{at['trajectory']} + {m} * {n} + oe{i}]"]
        return ([f"for oe{i} in range({n}):",
                 f"    w[{at['trajectory']} + oe{i}] = {self.read(y0, f'oe{i}')}",
                 f"{t} = {self.read(t0)}",
                 f"{h} = 0.01 * ({last} - {t}) if {last} > {t} else 1.0",
                 f"{m} = 0",
                 f"{a} = 0",
                 f"for oj{i} in range({outputs}):"] + _indent(loop)
                + [f"w[{at['count']}] = {m}"])

    def backward_ode(self, i):
        """Accepted steps in reverse, outputs' adjoints added where they were reached.

        One step y' = y + h sum_s B_s k_s with k_s = f(t + C_s h, y + h sum_l A_sl k_l):
        kbar_s = h B_s ybar', then stage by stage backwards the body's adjoint at the
        stage input (recomputed) goes to y and, through A, to the earlier stages.  The
        seventh stage only estimates the error, which sets h: h is held fixed.
        """
        if self.nodes[i].attr.spec.method == "sdirk4":
            return self.backward_sdirk(i)
        node, at = self.nodes[i], self.ode_at(i)
        n, outputs, table = node.shape[1], node.shape[0], node.attr.table
        m, t, hh = f"m{i}", f"tc{i}", f"hh{i}"
        step = ([f"{t} = w[{at['start']} + {m}]", f"{hh} = w[{at['step']} + {m}]"]
                + self.ode_stages(i, m, t, hh, 6)
                + [f"for st{i} in range(6):",
                   f"    for oe{i} in range({n}):",
                   f"        w[{at['kbar']} + st{i} * {n} + oe{i}] = "
                   f"{hh} * data[{table + 49} + st{i}] * w[{at['ybar']} + oe{i}]",
                   f"for qs{i} in range(6):",
                   f"    st{i} = 5 - qs{i}",
                   f"    for oe{i} in range({n}):",
                   f"        u{i} = w[{at['trajectory']} + {m} * {n} + oe{i}]",
                   f"        for ol{i} in range(st{i}):",
                   f"            u{i} += {hh} * data[{table} + st{i} * 7 + ol{i}] * w[{at['k']} + ol{i} * {n} + oe{i}]",
                   f"        w[{at['y']} + oe{i}] = u{i}",
                   f"        w[{at['stage_bar']} + oe{i}] = 0.0",
                   f"    w[{at['t']}] = {t} + data[{table + 63} + st{i}] * {hh}"]
                + _indent(self.body_forward(i) + self.body_backward(
                    i, lambda e: f"w[{at['kbar']} + st{i} * {n} + {e}]") + [
                    f"for oe{i} in range({n}):",
                    f"    sb{i} = w[{at['stage_bar']} + oe{i}]",
                    f"    w[{at['ybar']} + oe{i}] += sb{i}",
                    f"    for ol{i} in range(st{i}):",
                    f"        w[{at['kbar']} + ol{i} * {n} + oe{i}] += "
                    f"{hh} * data[{table} + st{i} * 7 + ol{i}] * sb{i}"]))
        return self.ode_reverse_walk(i, at, outputs, m, step)

    def ode_reverse_walk(self, i, at, outputs, m, step):
        """An ODE's reverse pass, whatever its method: its accepted steps backwards (``step``
        the lines of one, at step ``m``), each output's adjoint added into the state's
        adjoint where the forward pass reached it, then the state's adjoint into y0's."""
        node, n = self.nodes[i], self.nodes[i].shape[1]
        lines = [f"for oe{i} in range({n}):", f"    w[{at['ybar']} + oe{i}] = 0.0",
                 f"oj{i} = {outputs - 1}",
                 f"total{i} = int(w[{at['count']}])",
                 f"for qm{i} in range(total{i} + 1):",
                 f"    {m} = total{i} - qm{i}",
                 f"    while oj{i} >= 0 and int(w[{at['reached']} + oj{i}]) == {m}:",
                 f"        for oe{i} in range({n}):",
                 f"            w[{at['ybar']} + oe{i}] += {self.adjoint(i, f'oj{i} * {n} + oe{i}')}",
                 f"        oj{i} -= 1",
                 f"    if {m} == 0:",
                 "        break",
                 f"    {m} -= 1"] + _indent(step)
        y0 = node.inputs[0]
        if self.nodes[y0].active:
            lines += [f"for oe{i} in range({n}):",
                      f"    {self.adjoint(y0, f'oe{i}')} += w[{at['ybar']} + oe{i}]"]
        return lines

    # ---- the stiff method (SDIRK4, ``recursion.sdirk4_solve``) ---------------------------
    def sdirk_constants(self, i):
        """Locals holding SDIRK4's coefficients: A (5x5, row major), C and B - B_hat."""
        stages = recursion.SD_STAGES
        a = [0.0] * (stages * stages)
        for s, row in enumerate(recursion.SD_A):
            a[s * stages:s * stages + len(row)] = row
        return [f"sa{i} = ({', '.join(map(repr, a))})",
                f"sc{i} = ({', '.join(map(repr, recursion.SD_C))})",
                f"se{i} = ({', '.join(map(repr, recursion.SD_E))})"]

    def lu_lines(self, i, n, failed):
        """Lines factoring the n x n block ``lu`` in place (partial pivoting, as
        ``recursion.lu_factor``); a zero or NaN pivot runs ``failed`` (lines)."""
        at = self.ode_at(i)
        lu, piv = at["lu"], at["piv"]
        return [f"for lc{i} in range({n}):",
                f"    lp{i} = lc{i}",
                f"    lb{i} = abs(w[{lu} + lc{i} * {n} + lc{i}])",
                f"    for lr{i} in range(lc{i} + 1, {n}):",
                f"        if abs(w[{lu} + lr{i} * {n} + lc{i}]) > lb{i}:",
                f"            lb{i} = abs(w[{lu} + lr{i} * {n} + lc{i}])",
                f"            lp{i} = lr{i}",
                f"    if not lb{i} > 0.0:"] + _indent(_indent(failed)) + [
                f"    if lp{i} != lc{i}:",
                f"        for lq{i} in range({n}):",
                f"            lu{i} = w[{lu} + lc{i} * {n} + lq{i}]",
                f"            w[{lu} + lc{i} * {n} + lq{i}] = w[{lu} + lp{i} * {n} + lq{i}]",
                f"            w[{lu} + lp{i} * {n} + lq{i}] = lu{i}",
                f"    w[{piv} + lc{i}] = lp{i}",
                f"    for lr{i} in range(lc{i} + 1, {n}):",
                f"        w[{lu} + lr{i} * {n} + lc{i}] /= w[{lu} + lc{i} * {n} + lc{i}]",
                f"        for lq{i} in range(lc{i} + 1, {n}):",
                f"            w[{lu} + lr{i} * {n} + lq{i}] -= "
                f"w[{lu} + lr{i} * {n} + lc{i}] * w[{lu} + lc{i} * {n} + lq{i}]"]

    def lu_solve_lines(self, i, n):
        """Lines overwriting block ``d`` with the factored matrix's inverse times it."""
        at = self.ode_at(i)
        lu, piv, b = at["lu"], at["piv"], at["d"]
        return [f"for lc{i} in range({n}):",
                f"    lp{i} = int(w[{piv} + lc{i}])",
                f"    lu{i} = w[{b} + lc{i}]",
                f"    w[{b} + lc{i}] = w[{b} + lp{i}]",
                f"    w[{b} + lp{i}] = lu{i}",
                f"for lr{i} in range({n}):",
                f"    lu{i} = w[{b} + lr{i}]",
                f"    for lq{i} in range(lr{i}):",
                f"        lu{i} -= w[{lu} + lr{i} * {n} + lq{i}] * w[{b} + lq{i}]",
                f"    w[{b} + lr{i}] = lu{i}",
                f"for lk{i} in range({n}):",
                f"    lr{i} = {n - 1} - lk{i}",
                f"    lu{i} = w[{b} + lr{i}]",
                f"    for lq{i} in range(lr{i} + 1, {n}):",
                f"        lu{i} -= w[{lu} + lr{i} * {n} + lq{i}] * w[{b} + lq{i}]",
                f"    w[{b} + lr{i}] = lu{i} / w[{lu} + lr{i} * {n} + lr{i}]"]

    def forward_sdirk(self, i):
        """Adaptive SDIRK4 steps landing on each output time (``recursion.sdirk4_solve``).

        Aux blocks (``ode_layout``): the accepted states, each accepted step's five
        converged stage increments Z, start time and size, the step count at each
        output; then a forward-difference Jacobian (once per accepted point), the
        factored iteration matrix I - h gamma J and the Newton work.
        """
        node, at = self.nodes[i], self.ode_at(i)
        spec, n, outputs = node.attr.spec, node.shape[1], node.shape[0]
        stages, gamma = recursion.SD_STAGES, recursion.SD_GAMMA
        y0, t0, times = node.inputs[:3]
        m, t, h, hh, a, ok = (f"{name}{i}" for name in ("m", "tc", "h", "hh", "na", "ok"))
        traj, out = at["trajectory"], node.attr.output
        zrow = f"{at['stages']} + ({m} * {stages} + st{i}) * {n}"  # this step's stage st
        tol = f"{spec.atol!r} + {spec.rtol!r} * "
        jacobian = [f"for jc{i} in range({n + 1}):",
                    f"    for oe{i} in range({n}):",
                    f"        w[{at['y']} + oe{i}] = w[{traj} + {m} * {n} + oe{i}]",
                    f"    dl{i} = 1.0",
                    f"    if jc{i} > 0:",
                    f"        dl{i} = {recursion.JACOBIAN_STEP!r} * max(abs(w[{at['y']} + jc{i} - 1]), "
                    f"{spec.atol / spec.rtol!r})",
                    f"        w[{at['y']} + jc{i} - 1] += dl{i}",
                    f"    w[{at['t']}] = {t}"] + _indent(self.body_forward(i) + [
                    f"for oe{i} in range({n}):",
                    f"    if jc{i} == 0:",
                    f"        w[{at['f0']} + oe{i}] = {self.read(out, f'oe{i}')}",
                    "    else:",
                    f"        w[{at['jac']} + oe{i} * {n} + jc{i} - 1] = "
                    f"({self.read(out, f'oe{i}')} - w[{at['f0']} + oe{i}]) / dl{i}"]) + [
                    f"for oe{i} in range({n * n}):",
                    f"    if not abs(w[{at['jac']} + oe{i}]) <= 1e300:",
                    f"        return {self.fail}",
                    f"fresh{i} = 0"]
        newton = [f"w[{at['y']} + oe{i}] = w[{traj} + {m} * {n} + oe{i}] + w[{zrow} + oe{i}]"]
        newton = ([f"for oe{i} in range({n}):"] + _indent(newton)
                  + [f"w[{at['t']}] = {t} + sc{i}[st{i}] * {hh}"] + self.body_forward(i)
                  + [f"for oe{i} in range({n}):",
                     f"    w[{at['d']} + oe{i}] = w[{at['known']} + oe{i}] + {hh} * {gamma!r} * "
                     f"{self.read(out, f'oe{i}')} - w[{zrow} + oe{i}]"]
                  + self.lu_solve_lines(i, n)
                  + [f"nn{i} = 0.0",
                     f"for oe{i} in range({n}):",
                     f"    w[{zrow} + oe{i}] += w[{at['d']} + oe{i}]",
                     f"    u{i} = w[{at['d']} + oe{i}] / ({tol}abs(w[{traj} + {m} * {n} + oe{i}] "
                     f"+ w[{zrow} + oe{i}]))",
                     f"    nn{i} += u{i} * u{i}",
                     f"nn{i} = math.sqrt(nn{i} / {n})",
                     f"if not nn{i} <= 1e300:",
                     "    break",
                     f"if nn{i} <= {recursion.NEWTON_TOL!r} or (nn{i} <= {recursion.NEWTON_FLOOR!r} "
                     f"and nn{i} > 0.5 * pv{i}):",
                     f"    {ok} = 1",
                     "    break",
                     f"if nn{i} > 2.0 * pv{i}:",
                     "    break",
                     f"pv{i} = nn{i}"])
        stage = ([f"for oe{i} in range({n}):",
                  f"    u{i} = 0.0",
                  f"    for ol{i} in range(st{i}):",
                  f"        u{i} += sa{i}[st{i} * {stages} + ol{i}] * w[{at['hk']} + ol{i} * {n} + oe{i}]",
                  f"    w[{at['known']} + oe{i}] = u{i}",
                  f"    w[{zrow} + oe{i}] = u{i} + {gamma!r} * (w[{at['hk']} + (st{i} - 1) * {n} + oe{i}] "
                  f"if st{i} > 0 else {hh} * w[{at['f0']} + oe{i}])",
                  f"{ok} = 0",
                  f"pv{i} = math.inf",
                  f"for it{i} in range({recursion.NEWTON_ITERS}):"] + _indent(newton)
                 + [f"if {ok} == 0:",
                    "    break",
                    f"for oe{i} in range({n}):",
                    f"    w[{at['hk']} + st{i} * {n} + oe{i}] = "
                    f"(w[{zrow} + oe{i}] - w[{at['known']} + oe{i}]) / {gamma!r}"])
        last = f"{at['stages']} + ({m} * {stages} + {stages - 1}) * {n}"
        step = ([f"if fresh{i} == 1:"] + _indent(jacobian)
                + [f"for oe{i} in range({n * n}):",
                   f"    w[{at['lu']} + oe{i}] = (1.0 if oe{i} % {n + 1} == 0 else 0.0) - "
                   f"{hh} * {gamma!r} * w[{at['jac']} + oe{i}]",
                   f"{ok} = 1"] + self.lu_lines(i, n, [f"{ok} = 0", "break"])
                + [f"for st{i} in range({stages}):",
                   f"    if {ok} == 0:",
                   "        break"] + _indent(stage)
                + [f"if {ok} == 0:",
                   f"    {h} = {hh} * {recursion.NEWTON_SHRINK!r}",
                   "    continue",
                   f"for oe{i} in range({n}):",
                   f"    u{i} = 0.0",
                   f"    for st{i} in range({stages}):",
                   f"        u{i} += se{i}[st{i}] * w[{at['hk']} + st{i} * {n} + oe{i}]",
                   f"    w[{at['d']} + oe{i}] = u{i}"] + self.lu_solve_lines(i, n)
                + [f"en{i} = 0.0",
                   f"for oe{i} in range({n}):",
                   f"    u{i} = w[{traj} + {m} * {n} + oe{i}]",
                   f"    yn{i} = u{i} + w[{last} + oe{i}]",
                   f"    er{i} = w[{at['d']} + oe{i}] / ({tol}max(abs(u{i}), abs(yn{i})))",
                   f"    en{i} += er{i} * er{i}",
                   f"    w[{traj} + ({m} + 1) * {n} + oe{i}] = yn{i}",
                   f"en{i} = math.sqrt(en{i} / {n})",
                   f"if not en{i} <= 1e300:",
                   f"    return {self.fail}",
                   f"if en{i} <= 1.0:",
                   f"    w[{at['start']} + {m}] = {t}",
                   f"    w[{at['step']} + {m}] = {hh}",
                   f"    {t} = end{i} if {hh} == end{i} - {t} else {t} + {hh}",
                   f"    {m} += 1",
                   f"    fresh{i} = 1",
                   f"if en{i} == 0.0:",
                   f"    {h} = {hh} * {recursion.GROW!r}",
                   "else:",
                   f"    {h} = {hh} * min({recursion.GROW!r}, max({recursion.SHRINK!r}, "
                   f"{recursion.SAFETY!r} * en{i} ** {recursion.SD_EXPONENT!r}))"])
        loop = [f"end{i} = {self.read(times, f'oj{i}')}",
                f"while {t} < end{i}:",
                f"    if {a} >= {spec.max_steps}:",
                f"        return {self.fail}",
                f"    {a} += 1",
                f"    {hh} = min({h}, end{i} - {t})"] + _indent(step) + [
                f"w[{at['reached']} + oj{i}] = {m}",
                f"for oe{i} in range({n}):",
                f"    {self.read(i, f'oj{i} * {n} + oe{i}')} = w[{traj} + {m} * {n} + oe{i}]"]
        last_time = self.read(times, str(outputs - 1))
        return (self.sdirk_constants(i)
                + [f"for oe{i} in range({n}):",
                   f"    w[{traj} + oe{i}] = {self.read(y0, f'oe{i}')}",
                   f"{t} = {self.read(t0)}",
                   f"{h} = 0.01 * ({last_time} - {t}) if {last_time} > {t} else 1.0",
                   f"{m} = 0",
                   f"{a} = 0",
                   f"fresh{i} = 1",
                   f"for oj{i} in range({outputs}):"] + _indent(loop)
                + [f"w[{at['count']}] = {m}"])

    def backward_sdirk(self, i):
        """Accepted SDIRK4 steps in reverse, by the implicit function theorem per stage.

        Stage s solves Z_s = h sum_{l<=s} A_sl f(y + Z_l), and y' = y + Z_5.  Backwards
        over the stages: Zbar_s = [s = 5] ybar' + J_s^T r_s, where r_s = sum_{q>s} A_qs mu_q;
        solve (I - h gamma J_s)^T lambda = Zbar_s, mu_s = h lambda; the body's adjoint at
        the stage seeded with r_s + gamma mu_s adds to ybar and the parameters.  J_s (exact,
        at the stored converged stage) is built row by row from the body's adjoint, with
        the parameters' parts sent to a sink.
        """
        node, at = self.nodes[i], self.ode_at(i)
        n, outputs = node.shape[1], node.shape[0]
        stages, gamma = recursion.SD_STAGES, recursion.SD_GAMMA
        m, t, hh = f"m{i}", f"tc{i}", f"hh{i}"
        traj = at["trajectory"]
        zrow = f"{at['stages']} + ({m} * {stages} + st{i}) * {n}"
        self.ode_sink[i] = at["sink"]
        try:
            rows = self.body_backward(i, lambda e: f"(1.0 if {e} == jr{i} else 0.0)")
        finally:
            del self.ode_sink[i]
        stage = ([f"st{i} = {stages - 1} - qs{i}",
                  f"for oe{i} in range({n}):",
                  f"    w[{at['y']} + oe{i}] = w[{traj} + {m} * {n} + oe{i}] + w[{zrow} + oe{i}]",
                  f"w[{at['t']}] = {t} + sc{i}[st{i}] * {hh}"] + self.body_forward(i)
                 + [f"for jr{i} in range({n}):",
                    f"    for oe{i} in range({n}):",
                    f"        w[{at['stage_bar']} + oe{i}] = 0.0"] + _indent(rows + [
                    f"for oe{i} in range({n}):",
                    f"    w[{at['jac']} + jr{i} * {n} + oe{i}] = w[{at['stage_bar']} + oe{i}]"])
                 + [f"for oe{i} in range({n}):",
                    f"    u{i} = w[{at['yout']} + oe{i}] if st{i} == {stages - 1} else 0.0",
                    f"    for ol{i} in range({n}):",
                    f"        u{i} += w[{at['jac']} + ol{i} * {n} + oe{i}] * w[{at['r']} + st{i} * {n} + ol{i}]",
                    f"    w[{at['d']} + oe{i}] = u{i}",
                    f"for oe{i} in range({n * n}):",  # the transposed iteration matrix
                    f"    w[{at['lu']} + oe{i}] = (1.0 if oe{i} % {n + 1} == 0 else 0.0) - {hh} * "
                    f"{gamma!r} * w[{at['jac']} + (oe{i} % {n}) * {n} + oe{i} // {n}]"]
                 + self.lu_lines(i, n, [f"return {self.fail}"]) + self.lu_solve_lines(i, n)
                 + [f"for oe{i} in range({n}):",
                    f"    u{i} = {hh} * w[{at['d']} + oe{i}]",
                    f"    w[{at['d']} + oe{i}] = u{i}",
                    f"    w[{at['seed']} + oe{i}] = w[{at['r']} + st{i} * {n} + oe{i}] + {gamma!r} * u{i}",
                    f"    w[{at['stage_bar']} + oe{i}] = 0.0"]
                 + self.body_backward(i, lambda e: f"w[{at['seed']} + {e}]")
                 + [f"for oe{i} in range({n}):",
                    f"    w[{at['ybar']} + oe{i}] += w[{at['stage_bar']} + oe{i}]",
                    f"    for ol{i} in range(st{i}):",
                    f"        w[{at['r']} + ol{i} * {n} + oe{i}] += "
                    f"sa{i}[st{i} * {stages} + ol{i}] * w[{at['d']} + oe{i}]"])
        step = ([f"{t} = w[{at['start']} + {m}]", f"{hh} = w[{at['step']} + {m}]",
                 f"for oe{i} in range({stages * n}):", f"    w[{at['r']} + oe{i}] = 0.0",
                 f"for oe{i} in range({n}):", f"    w[{at['yout']} + oe{i}] = w[{at['ybar']} + oe{i}]",
                 f"for qs{i} in range({stages}):"] + _indent(stage))
        return self.sdirk_constants(i) + self.ode_reverse_walk(i, at, outputs, m, step)

    # ---- reverse ------------------------------------------------------------------------
    def backward(self, i):
        node = self.nodes[i]
        if node.op in ("input", "data", "logp", "logp_batch") or self.is_view(i):
            return []  # a term's partials were added in the forward pass
        spec = REGISTRY[node.op]
        if spec.scalar is not None:
            return self.backward_elementwise(i, spec)
        return getattr(self, f"backward_{spec.layout}")(i)

    def backward_elementwise(self, i, spec):
        node = self.nodes[i]
        targets = [(n, j) for n, j in enumerate(node.inputs)
                   if spec.partials[n] is not None and self.nodes[j].active]
        if not targets:
            return []
        hoisted = self.broadcast_scalars(i)
        summed = [(n, j) for n, j in targets if n in hoisted]

        def body(k):
            lines = [f"b{i} = {self.adjoint(i, k)}"]
            for n, j in targets:
                place = f"q{i}_{n}" if n in hoisted else \
                    self.adjoint(j, broadcast_index(node.shape, self.nodes[j].shape, k))
                lines.append(f"{place} += b{i} * ({self.elementwise(i, spec.partials[n], k, hoisted)})")
            return lines

        return (self.hoist_reads(i) + [f"q{i}_{n} = 0.0" for n, _ in summed]
                + self.loop(node.shape, body)
                + [f"{self.adjoint(j)} += q{i}_{n}" for n, j in summed])

    def backward_reduce(self, i):
        node = self.nodes[i]
        src = node.inputs[0]
        if not self.nodes[src].active:
            return []
        n, m = size_of(self.nodes[src].shape), size_of(node.shape)
        out_k = self.reduced_index(i, "k")
        g = self.adjoint(i, out_k)
        if node.op == "sum":
            contribution = g
        elif node.op == "mean":
            contribution = f"{g} / {n // m}"
        else:
            contribution = f"{g} * math.exp({self.read(src, 'k')} - {self.read(i, out_k)})"
        return [f"for k in range({n}):", f"    {self.adjoint(src, 'k')} += {contribution}"]

    def backward_cumsum(self, i):
        src = self.nodes[i].inputs[0]
        if not self.nodes[src].active:
            return []
        n, stride, length = self.cumsum_layout(i)
        # suffix sums, accumulated in place in this node's own (finished) adjoint
        return [f"for q in range({n}):",
                f"    k = {n - 1} - q",
                f"    if (k // {stride}) % {length} < {length - 1}:",
                f"        {self.adjoint(i, 'k')} += {self.adjoint(i, f'k + {stride}')}",
                f"    {self.adjoint(src, 'k')} += {self.adjoint(i, 'k')}"]

    def backward_matmul(self, i):
        # Each adjoint element is a sum kept in a local: no store inside the inner
        # loop, so the loop is a plain reduction the compiler can vectorise.
        ia, ib = self.nodes[i].inputs
        m, n, p = self.matmul_dims(i)
        lines = []
        if self.nodes[ia].active:
            lines += [f"for r in range({m}):",
                      f"    for t in range({n}):",
                      f"        s{i} = 0.0",
                      f"        for c in range({p}):",
                      f"            s{i} += {self.adjoint(i, f'r * {p} + c')} * {self.read(ib, f't * {p} + c')}",
                      f"        {self.adjoint(ia, f'r * {n} + t')} += s{i}"]
        if self.nodes[ib].active:
            lines += [f"for t in range({n}):",
                      f"    for c in range({p}):",
                      f"        s{i} = 0.0",
                      f"        for r in range({m}):",
                      f"            s{i} += {self.read(ia, f'r * {n} + t')} * {self.adjoint(i, f'r * {p} + c')}",
                      f"        {self.adjoint(ib, f't * {p} + c')} += s{i}"]
        return lines

    def backward_concatenate(self, i):
        lines = []
        for buffer, source, index, size in self.concat_runs(i, adjoint=True):
            if buffer is None and not self.nodes[source].active:
                continue
            place = self.adjoint(source, "k") if buffer is None else f"{buffer}[{_plus(source, 'k')}]"
            result = self.adjoint(i, index) if buffer is None else self.adjoint(i, _plus(index, "k"))
            lines += [f"for k in range({size}):", f"    {place} += {result}"]
        return lines

    def cholesky_adjoint(self, i, L, Lbar, src):
        """Lines turning Lbar (in place) into the adjoint of the lower triangle of A.

        The unblocked reverse-mode algorithm of Murray (2016), "Differentiation of
        the Cholesky decomposition", section 4, then added to ``src``'s adjoint.
        """
        n = self.nodes[src].shape[0]
        A = lambda r, c: self.adjoint(src, f"({r}) * {n} + {c}")  # noqa: E731
        return [f"for q in range({n}):",
                f"    j = {n - 1} - q",
                f"    d{i} = {L('j', 'j')}",
                f"    for r in range(j + 1, {n}):",
                f"        {Lbar('j', 'j')} -= {L('r', 'j')} * {Lbar('r', 'j')} / d{i}",
                f"    {Lbar('j', 'j')} /= d{i}",
                f"    for r in range(j + 1, {n}):",
                f"        {Lbar('r', 'j')} /= d{i}",
                "    for c in range(j):",
                f"        {Lbar('j', 'c')} -= {Lbar('j', 'j')} * {L('j', 'c')}",
                f"        for r in range(j + 1, {n}):",
                f"            {Lbar('j', 'c')} -= {Lbar('r', 'j')} * {L('r', 'c')}",
                f"    for r in range(j + 1, {n}):",
                "        for c in range(j):",
                f"            {Lbar('r', 'c')} -= {Lbar('r', 'j')} * {L('j', 'c')}",
                f"    {Lbar('j', 'j')} *= 0.5",
                f"for r in range({n}):",
                "    for c in range(r + 1):",
                f"        {A('r', 'c')} += {Lbar('r', 'c')}"]

    def backward_cholesky(self, i):
        src = self.nodes[i].inputs[0]
        if not self.nodes[src].active:
            return []
        n = self.nodes[i].shape[0]
        # Work on a copy of Lbar in the aux block: the algorithm overwrites it.
        aux = self.aux_at[i]
        Lbar = lambda r, c: f"w[{aux} + ({r}) * {n} + {c}]"  # noqa: E731
        L = lambda r, c: self.read(i, f"({r}) * {n} + {c}")  # noqa: E731
        copy = [f"for k in range({n * n}):", f"    w[{aux} + k] = {self.adjoint(i, 'k')}"]
        return copy + self.cholesky_adjoint(i, L, Lbar, src)

    def backward_logdet(self, i):
        src = self.nodes[i].inputs[0]
        if not self.nodes[src].active:
            return []
        n = self.nodes[src].shape[0]
        L, Lbar = self.logdet_factor(i), self.logdet_factor(i, 1)
        # d logdet / d L_jj = 2 / L_jj; then back through the factorisation
        return [f"for r in range({n}):",
                f"    for c in range({n}):",
                f"        {Lbar('r', 'c')} = 2.0 * {self.adjoint(i)} / {L('r', 'r')} if r == c else 0.0"
                ] + self.cholesky_adjoint(i, L, Lbar, src)

    def backward_solve_triangular(self, i):
        ia, ib = self.nodes[i].inputs
        n = self.nodes[ia].shape[0]
        cols = size_of(self.nodes[ib].shape) // n
        lower = bool(self.nodes[i].attr)
        # bbar = A^{-T} xbar (in place in this node's adjoint), Abar -= bbar x^T on the triangle
        order = f"range({n} - 1, -1, -1)" if lower else f"range({n})"
        inner = f"range(r + 1, {n})" if lower else "range(r)"
        X = lambda r, c: self.adjoint(i, f"({r}) * {cols} + {c}")  # noqa: E731
        lines = [f"for c in range({cols}):",
                 f"    for r in {order}:",
                 f"        s{i} = {X('r', 'c')}",
                 f"        for t in {inner}:",
                 f"            s{i} -= {self.read(ia, f't * {n} + r')} * {X('t', 'c')}",
                 f"        {X('r', 'c')} = s{i} / {self.read(ia, f'r * {n} + r')}"]
        if self.nodes[ib].active:
            lines += [f"for k in range({n * cols}):",
                      f"    {self.adjoint(ib, 'k')} += {X('k // ' + str(cols), 'k % ' + str(cols))}"]
        if self.nodes[ia].active:
            tri = "range(r + 1)" if lower else f"range(r, {n})"
            lines += [f"for r in range({n}):",
                      f"    for t in {tri}:",
                      f"        for c in range({cols}):",
                      f"            {self.adjoint(ia, f'r * {n} + t')} -= {X('r', 'c')} * "
                      f"{self.read(i, f't * {cols} + c')}"]
        return lines

    # ---- whole functions ------------------------------------------------------------
    def needed(self, roots):
        seen, stack = set(), list(roots)
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.nodes[i].inputs)
        return sorted(seen)

    def chunks(self, name, args, groups, fail, functions):
        """Lines calling ``groups`` (line lists) packed into functions of bounded length.

        The functions go to ``functions`` as (signature, lines); each returns a status,
        and a non-zero one makes the caller ``return fail`` (when ``fail`` is given).
        """
        calls, chunk = [], []
        for group in groups + [None]:
            if chunk and (group is None or len(chunk) + len(group) > CHUNK_LINES):
                signature = f"{name}_{len(functions)}({args})"
                functions.append((signature, chunk + [f"return {STATUS_OK}"]))
                call = f"{signature}"
                calls += [f"if {call} != 0:", f"    return {fail}"] if fail else [call]
                chunk = []
            if group:
                chunk = chunk + group
        return calls

    def forward_groups(self, order, with_grad, terms=()):
        groups = []
        for i in order:
            lines = self.forward(i, with_grad)
            lines += [f"w[{self.total_at}] += {self.read(i)}"] * terms.count(i) if self.large else []
            groups.append(lines)
        return groups

    def logp_grad_body(self, functions):
        p = self.p
        order = self.needed(p.terms)
        lines = ["for k in range(DIM):", "    grad[k] = 0.0",
                 f"for k in range({self.adjoint_start}, {self.scratch_size}):", "    w[k] = 0.0"]
        seeds = [f"{self.adjoint(t)} += 1.0" for t in p.terms
                 if self.nodes[t].active and self.nodes[t].op != "logp"]
        backward = [self.backward(i) for i in reversed(order) if self.nodes[i].active]
        if self.large:
            self.fail = str(STATUS_DOMAIN)
            lines.append(f"w[{self.total_at}] = 0.0")
            args = "x, data, grad, w"
            lines += self.chunks("logp_grad_forward", args,
                                 self.forward_groups(order, True, p.terms),
                                 f"-math.inf, {STATUS_DOMAIN}", functions)
            lines.append(f"logp = w[{self.total_at}]")
            lines += self.chunks("logp_grad_backward", args, [seeds] + backward, None, functions)
            return lines + [f"return logp, {STATUS_OK}"]
        self.fail = f"-math.inf, {STATUS_DOMAIN}"
        lines += [f"g{i} = 0.0" for i in order if self.nodes[i].active and self.is_local(i)]
        for group in self.forward_groups(order, True):
            lines += group
        lines.append(f"logp = {' + '.join(self.read(t) for t in p.terms) or '0.0'}")
        lines += seeds
        for group in backward:
            lines += group
        return lines + [f"return logp, {STATUS_OK}"]

    def forward_then(self, name, order, writes, functions):
        """Body of a forward-only function: the nodes of ``order``, then the ``writes`` groups."""
        self.fail = str(STATUS_DOMAIN)
        groups = self.forward_groups(order, False) + writes
        if self.large:
            return self.chunks(name, "x, data, out, w", groups, str(STATUS_DOMAIN), functions) + [
                f"return {STATUS_OK}"]
        return [line for group in groups for line in group] + [f"return {STATUS_OK}"]

    def address(self, i):
        """(buffer, offset) where node ``i``'s elements lie in order, or None (a view, a local)."""
        node = self.nodes[i]
        if self.is_view(i) or self.is_local(i):
            return None
        if node.op in ("input", "data"):
            return ("x" if node.op == "input" else "data"), node.attr
        return "w", self.value_at[i]

    def adjoint_address(self, i):
        """(buffer, offset) of node ``i``'s adjoint elements in order, or None (inactive, view, local)."""
        node = self.nodes[i]
        if not node.active or self.is_view(i) or self.is_local(i):
            return None
        if node.op == "input":
            return "grad", node.attr
        return "w", self.adjoint_at[i]

    def output_writes(self):
        """Copies of the traced values into ``out``, runs of consecutive addresses merged."""
        runs = []  # [buffer, source offset, out offset, size]
        for slot, node in zip(self.p.outputs, self.p.output_nodes):
            at = self.address(node)
            last = runs[-1] if runs else None
            if at and last and last[0] == at[0] and last[1] + last[3] == at[1] \
                    and last[2] + last[3] == slot.offset:
                last[3] += slot.size
            elif at:
                runs.append([at[0], at[1], slot.offset, slot.size])
            else:
                runs.append([None, node, slot.offset, slot.size])
        writes = []
        for buffer, source, offset, size in runs:
            read = (lambda k, b=buffer, s=source: f"{b}[{_plus(s, k)}]") if buffer else \
                (lambda k, node=source: self.read(node, k))
            writes.append([f"for k in range({size}):", f"    out[{_plus(offset, 'k')}] = {read('k')}"])
        return writes

    def constrain_body(self, functions):
        p = self.p
        writes = self.output_writes()
        return self.forward_then("constrain_part", self.needed(p.output_nodes), writes, functions)

    def log_likelihood_body(self, functions):
        p = self.p
        self.fail = str(STATUS_DOMAIN)
        # a family term computes its elements into out; an expression's values are copied
        inputs = [j for _, t in p.observed
                  for j in (self.nodes[t].inputs if self.nodes[t].op == "logp" else (t,))]
        writes = [self.logp_forward(t, False, lambda k, slot=slot: f"out[{_plus(slot.offset, k)}]")
                  if self.nodes[t].op == "logp" else
                  [f"for k in range({slot.size}):", f"    out[{_plus(slot.offset, 'k')}] = {self.read(t, 'k')}"]
                  for slot, t in p.observed]
        return self.forward_then("log_likelihood_part", self.needed(inputs), writes, functions)

    def functions(self):
        """[(signature, body lines)] of every function of the generated module, callees first."""
        functions = []
        mains = [("logp_grad(x, data, grad, w)", self.logp_grad_body(functions)),
                 ("constrain(x, data, out, w)", self.constrain_body(functions)),
                 ("log_likelihood(x, data, out, w)", self.log_likelihood_body(functions))]
        return functions + mains


HEADER = '''"""Generated by exmc (emitter v{version}) for a model with structure hash {digest}.

See exmc/compiler/emit.py for the functions and their arguments.  Do not edit:
the file name is the model's hash and Numba's cache sits beside it.
"""
import math

from exmc.compiler import families as F
from exmc.compiler import scalar as S
{imports}

DIM = {dim}
DATA_SIZE = {data_size}
SCRATCH = {scratch}
LOCAL_SCRATCH = {local_scratch}  # a thread-local array cannot be empty
OUTPUT_SIZE = {output_size}
LOGLIK_SIZE = {loglik_size}
'''

CPU_IMPORTS = "import numpy as np\nfrom numba import carray, cfunc, njit, types"
CPU_DECORATOR = '@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})'
CPU_FOOTER = '''

@cfunc(types.int64(types.CPointer(types.float64), types.CPointer(types.float64),
                   types.CPointer(types.float64), types.CPointer(types.float64)), cache=True,
       error_model="numpy")
def logp_grad_c(x_ptr, data_ptr, grad_ptr, logp_ptr):
    """C entry point the compiled sampler calls through a function pointer."""
    x = carray(x_ptr, (DIM,))
    # The work buffer is the tail of the data argument (see CompiledModel.data):
    # nothing is allocated per evaluation.
    data_and_work = carray(data_ptr, (DATA_SIZE + SCRATCH,))
    grad = carray(grad_ptr, (DIM,))
    logp, status = logp_grad(x, data_and_work[:DATA_SIZE], grad, data_and_work[DATA_SIZE:])
    out = carray(logp_ptr, (1,))
    out[0] = logp
    return status


@njit(cache=True, error_model="numpy")
def constrain_draws(draws, data, out):
    """Constrained values for each row of ``draws`` (n, DIM) -> out (n, OUTPUT_SIZE); NaN rows fail."""
    work = np.empty(SCRATCH)
    for k in range(draws.shape[0]):
        if constrain(draws[k], data, out[k], work) != 0:
            out[k, :] = np.nan


@njit(cache=True, error_model="numpy")
def log_likelihood_draws(draws, data, out):
    """Pointwise log-likelihood for each row of ``draws`` -> out (n, LOGLIK_SIZE)."""
    work = np.empty(SCRATCH)
    for k in range(draws.shape[0]):
        if log_likelihood(draws[k], data, out[k], work) != 0:
            out[k, :] = np.nan
'''

CUDA_IMPORTS = "from numba import cuda, float64"
CUDA_DECORATOR = "@cuda.jit(device=True)"
CUDA_FOOTER = '''

@cuda.jit
def logp_grad_many(points, data, grads, logps, statuses):
    """One thread per row of ``points`` (n, DIM): log density, gradient and status."""
    row = cuda.grid(1)
    if row < points.shape[0]:
        work = cuda.local.array(LOCAL_SCRATCH, float64)
        logp, status = logp_grad(points[row], data, grads[row], work)
        logps[row] = logp
        statuses[row] = status
'''
EMITTER_VERSION = 2


def module_source(program: Program, digest: str, target: str = "cpu") -> str:
    """The source of the generated module for ``program`` (``target`` "cpu" or "cuda")."""
    em = Emitter(program)
    bodies = em.functions()
    cpu = target == "cpu"
    parts = [HEADER.format(version=EMITTER_VERSION, digest=digest,
                           imports=CPU_IMPORTS if cpu else CUDA_IMPORTS,
                           dim=sum(s.size for s in program.free), data_size=program.data.size,
                           scratch=em.scratch_size, local_scratch=max(em.scratch_size, 1),
                           output_size=sum(s.size for s in program.outputs),
                           loglik_size=sum(s.size for s, _ in program.observed))]
    for signature, body in bodies:
        parts.append(f"\n\n{CPU_DECORATOR if cpu else CUDA_DECORATOR}\ndef {signature}:")
        parts += ["    " + line for line in body]
    parts.append(CPU_FOOTER if cpu else CUDA_FOOTER)
    return "\n".join(parts)
