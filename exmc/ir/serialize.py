"""Model IR <-> msgpack bytes: expression node tables, bounded and schema-checked reading; never pickle.

Wire form, version 2 (msgpack maps with string keys, in this key order)::

    model    {"format": "exmc-ir", "version": 2, "variables": [variable, ...]}
    variable {"name": str, "kind": "rv"|"obs"|"det", "nodes": [node, ...],
              then "dist": dist (rv), "dist": dist, "data": array (obs) or "expr": int (det)}
    node     [op, value, arg, ...]    one per distinct expression node; each arg is the
                                      index of an EARLIER node of the same table
    dist     {"family": str, "params": {name: int | dist}, "shape": [int, ...] | nil}
    value    nil | float (const) | str (ref) | int | ["slice", a, b, c] | array (index) | array (const)
             | [sequences, steps | nil, body] (scan) | [rtol, atol, max_steps, body, method?] (ode_solve;
             method "sdirk4", absent for "rk45")
             | [entry, ...] (index_axes; each entry an int, ["slice", a, b, c], an index
             array, "newaxis" or "...")

A scan's or an ODE's body (``exmc/ir/recursion.py``) is an expression over
``arg`` nodes (value: the placeholder's position); its nodes sit in the same
table before the node that uses it, and ``body`` is the index of its root.
    array    {"nd": "<f8" | "<i8", "shape": [int, ...], "bytes": bin}

A variable's table holds every node of its expressions (its deterministic
expression, or all parameters of its distribution), arguments before the
nodes that use them and shared subexpressions once; integers in ``params``
and ``expr`` index into it.  Arguments point only backwards, so a table cannot
describe a cycle.  Tables are per variable so that checking a variable costs
no more than the bytes it takes.

Reading (``loads``) streams the message: the two long lists (variables and
node tables) are read item by item, and every other piece is unpacked alone
under container limits that the schema allows, with each node checked as it
arrives.  Counts are checked against the limits below before anything is
allocated for them, so hostile bytes fail fast with a ``SchemaError`` and the
memory taken stays a small multiple of the payload (measured in
``tests/ir/test_dag.py``).

``structure_hash`` hashes the same form with every numeric value that the
compiled code takes as data replaced by its shape: constants (scalars have
shape ``[]``), observed data and integer index arrays.  Ops, structure,
families, which parameters were given, names, kinds, shapes and int and slice
indices (baked into code) stay in the hash.
"""
from __future__ import annotations

import gc
import hashlib
import math

import msgpack
import numpy as np

from exmc.ir.builder import KINDS, MAX_ELEMENTS, MAX_TOTAL_ELEMENTS, Model, ModelError, Variable
from exmc.ir.dists import FAMILIES, Distribution
from exmc.ir.expr import OPS, Expr, postorder
from exmc.ir.recursion import BODY_OPS, ODE_METHODS, OdeSpec, Recursion

FORMAT, VERSION = "exmc-ir", 2
DTYPES = {"<f8": np.float64, "<i8": np.int64}

MAX_BYTES = 256 * 1024 * 1024  # a whole IR message
MAX_VARIABLES = 100_000
MAX_NODES = 2**19  # expression nodes, all variables together (about 150 bytes each once read)
MAX_NDIM = 8  # dimensions of an array or a declared shape
MAX_DIST_DEPTH = 4  # distributions nested as parameters (GaussianRandomWalk's init)
MAX_COMPONENTS = 16  # distributions in one list parameter (a Mixture's components)
MAX_STR_BYTES = 4096  # names, ops, families and dtype codes are short
# Largest list or map unpacked in one piece (variables, node tables and nodes are
# streamed): a shape, a slice, or a map of a distribution's parameters.
MAX_SMALL = max(MAX_NDIM, MAX_COMPONENTS, 3 + max(len(c.params) for c in FAMILIES.values()))
# Most lists and maps in one piece: an array (its map, its shape list); a
# distribution (its map, params map, shape list) at each level of nesting, and
# a list of components with theirs.
ARRAY_CONTAINERS, DIST_CONTAINERS = 2, 3 * MAX_DIST_DEPTH + 1 + 3 * MAX_COMPONENTS
MAX_INDEX_AXES = MAX_NDIM + 8  # entries of a multi-axis index (new axes count too)
INDEX_AXES_CONTAINERS = 1 + 2 * MAX_INDEX_AXES  # its list, and per entry a slice or an array
FIELDS = {"rv": ("dist",), "obs": ("dist", "data"), "det": ("expr",)}
_OP_NAMES = {op: op for op in OPS}


class SchemaError(ModelError):
    """Bytes that are not a valid exmc IR message."""


# ---- encoding -------------------------------------------------------------------------
def _array(arr, for_hash):
    arr = np.asarray(arr)
    dtype = "<i8" if np.issubdtype(arr.dtype, np.integer) else "<f8"
    if for_hash:
        return {"nd": dtype, "shape": list(arr.shape)}
    return {"nd": dtype, "shape": list(arr.shape),
            "bytes": np.ascontiguousarray(arr, dtype=DTYPES[dtype]).tobytes()}


def _node(e: Expr, args, for_hash, body=None):
    v = e.value
    if e.op == "scan":
        v = [v.sequences, v.steps, body]
    elif e.op == "ode_solve":  # the method only when not rk45: older payloads have 4 fields
        v = [v.rtol, v.atol, v.max_steps, body] + ([] if v.method == "rk45" else [v.method])
    elif e.op == "dslvar":
        raise ModelError("cannot serialise a model that still holds an unnamed DSL variable")
    if for_hash and e.op == "const":
        v = {"shape": list(np.shape(v))}  # constants are data of the compiled code
    elif e.op == "index_axes":  # per axis: int, slice, index array, "newaxis" or "..."
        v = [_array(x, for_hash) if isinstance(x, np.ndarray) else list(x)
             if isinstance(x, tuple) else x for x in v]
    elif isinstance(v, np.ndarray):
        v = _array(v, for_hash)  # an index array: data too, only its shape is code
    elif isinstance(v, tuple):
        v = list(v)
    return [e.op, v, *args]


class _Table:
    """The node table of one variable: each distinct node once, after its arguments."""

    def __init__(self, for_hash):
        self.rows, self.index, self.for_hash = [], {}, for_hash

    def add(self, root: Expr) -> int:
        for node in postorder(root):
            if id(node) not in self.index:  # ids stay valid: the model keeps its nodes alive
                # a scan's or an ODE's body: its nodes come first, the value points at its root
                body = self.add(node.value.body) if node.op in BODY_OPS else None
                self.index[id(node)] = len(self.rows)
                args = [self.index[id(a)] for a in node.args]
                self.rows.append(_node(node, args, self.for_hash, body))
        return self.index[id(root)]


def _dist(d: Distribution, table: _Table):
    def encode(v):
        if isinstance(v, Distribution):
            return _dist(v, table)
        if isinstance(v, list):  # a list of distributions (a Mixture's components)
            return [_dist(c, table) for c in v]
        return table.add(v)
    params = {k: encode(v) for k, v in d.param_exprs.items()}
    return {"family": d.family, "params": params,
            "shape": None if d.shape is None else list(d.shape)}


def to_data(model: Model, for_hash=False) -> dict:
    out = []
    for v in model.variables:
        table = _Table(for_hash)
        item = {"name": v.name, "kind": v.kind, "nodes": table.rows}
        if v.dist is not None:
            item["dist"] = _dist(v.dist, table)
        if v.data is not None:
            item["data"] = _array(v.data, for_hash)
        if v.expr is not None:
            item["expr"] = table.add(v.expr)
        out.append(item)
    return {"format": FORMAT, "version": VERSION, "variables": out}


def dumps(model: Model) -> bytes:
    return msgpack.packb(to_data(model), use_bin_type=True)


def structure_hash(model: Model) -> str:
    """Hash of the model's structure: values of constants, data and index arrays excluded, shapes included."""
    return hashlib.sha256(msgpack.packb(to_data(model, for_hash=True), use_bin_type=True)).hexdigest()


# ---- decoding with bounds and schema checks ------------------------------------------------
def _need(cond, msg):
    if not cond:
        raise SchemaError(msg)


def _int64(v):
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63


class _Reader:
    """One IR message as a stream: list and map headers read alone, other pieces unpacked one at a time.

    ``piece(containers)`` unpacks the next piece and refuses it as soon as it
    holds more lists and maps than ``containers`` (the most its schema allows),
    so junk costs no more than its own bytes.
    """

    def __init__(self, payload):
        self.containers = 0
        self.unpacker = msgpack.Unpacker(
            raw=False, strict_map_key=True, list_hook=self._count, object_hook=self._count,
            max_buffer_size=max(len(payload), 1), max_bin_len=len(payload),
            max_str_len=MAX_STR_BYTES, max_array_len=MAX_SMALL, max_map_len=MAX_SMALL,
            max_ext_len=0)
        self.unpacker.feed(payload)
        self.nodes = 0  # expression nodes read so far, all variables

    def _count(self, obj):
        self.containers -= 1
        _need(self.containers >= 0, "IR message holds lists or maps where its schema has none")
        return obj

    def piece(self, containers=0):
        self.containers = containers
        return self.unpacker.unpack()

    def header(self, kind, what):
        """Length of the list or map that comes next (nothing is allocated for it)."""
        read = self.unpacker.read_array_header if kind == "list" else self.unpacker.read_map_header
        try:
            return read()
        except msgpack.UnpackException:
            raise
        except ValueError:  # the next item is of another type
            raise SchemaError(f"{what}: expected a {kind}") from None

    def key(self, expected, what):
        key = self.piece()
        _need(key == expected, f"{what}: expected the field {expected!r} here, got {key!r}")


def _read_array(obj, where):
    _need(isinstance(obj, dict) and set(obj) == {"nd", "shape", "bytes"}, f"{where}: malformed array")
    _need(isinstance(obj["nd"], str) and obj["nd"] in DTYPES,
          f"{where}: array dtype must be one of {sorted(DTYPES)}")
    shape = obj["shape"]
    _need(isinstance(shape, list) and len(shape) <= MAX_NDIM
          and all(_int64(s) and 0 <= s for s in shape), f"{where}: bad array shape")
    _need(isinstance(obj["bytes"], bytes), f"{where}: array bytes missing")
    _need(len(obj["bytes"]) == math.prod(shape) * 8, f"{where}: array size does not match shape")
    return np.frombuffer(obj["bytes"], dtype=DTYPES[obj["nd"]]).reshape(shape).copy()


def _read_body_value(op, v, nodes):
    """A scan's [sequences, steps, body] or an ODE's [rtol, atol, max_steps, body]."""
    fields = (3,) if op == "scan" else (4, 5)
    _need(isinstance(v, list) and len(v) in fields,
          f"{op} takes a list of {' or '.join(map(str, fields))} values")
    body = v[2] if op == "scan" else v[3]
    _need(_int64(body) and 0 <= body < len(nodes), f"{op}: the body must be an earlier node")
    if op == "scan":
        _need(_int64(v[0]) and v[0] >= 0 and (v[1] is None or _int64(v[1])),
              "scan: bad number of sequences or steps")
        return Recursion(nodes[body], v[0], v[1])
    _need(all(isinstance(x, float) for x in v[:2]) and _int64(v[2]), "ode_solve: bad tolerances")
    method = v[4] if len(v) == 5 else "rk45"
    _need(method in ODE_METHODS, f"ode_solve: unknown method {method!r}")
    return OdeSpec(nodes[body], v[0], v[1], v[2], method)


def _read_value(op, v, nodes=()):
    if op in BODY_OPS:
        return _read_body_value(op, v, nodes)
    if op == "arg":
        _need(_int64(v) and v >= 0, "bad body argument position")
        return v
    if op == "const":
        if isinstance(v, dict):
            return _read_array(v, "constant").astype(np.float64)
        _need(isinstance(v, (int, float)) and not isinstance(v, bool), "bad constant")
        return float(v)
    if op == "ref":
        _need(isinstance(v, str) and v.isidentifier(), "bad reference")
        return v
    if op == "reshape":
        _need(isinstance(v, list) and len(v) <= MAX_NDIM and all(_int64(s) and s > 0 for s in v),
              "reshape takes a shape")
        return tuple(v)
    if op == "index_axes":
        _need(isinstance(v, list) and 0 < len(v) <= MAX_INDEX_AXES, "bad multi-axis index")
        entries = tuple(x if isinstance(x, str) and x in ("newaxis", "...")
                        else _read_value("index", x) for x in v)
        _need(sum(isinstance(x, str) and x == "..." for x in entries) <= 1
              and sum(isinstance(x, np.ndarray) for x in entries) <= 1, "bad multi-axis index")
        return entries
    if op == "index":
        if isinstance(v, dict):
            v = _read_array(v, "index").astype(np.int64)
            _need(v.ndim == 1, "index arrays must be 1-d")
            return v
        if isinstance(v, list):
            _need(len(v) == 4 and v[0] == "slice" and v[3] != 0
                  and all(p is None or _int64(p) for p in v[1:]), "bad slice")
            return tuple(v)
        _need(_int64(v), "bad index")
        return v
    if OPS[op] == 0:
        _need(v is None, f"{op} carries no value")
    elif not (v is None or _int64(v)):  # an axis or nothing; its shape rule checks it in validate
        raise SchemaError(f"{op} takes an integer axis or nil, got {v!r}")
    return v


def _read_node(reader, nodes) -> Expr:
    """One node, read piece by piece (a variadic op's argument list may be long).

    Messages are built only on failure and say what; the caller says where.
    """
    count = reader.header("list", "expression node")
    _need(count >= 2, "malformed expression node")
    op = reader.piece()
    if not (isinstance(op, str) and op in OPS) or op == "dslvar":
        raise SchemaError(f"unknown expression operation {op!r}")
    op = _OP_NAMES[op]  # one string object per op name, not one per node
    arity, given = OPS[op], count - 2  # a negative arity (ops.VARIADIC): one or more
    if not (given == arity or (arity < 0 and given > 0)):
        raise SchemaError(f"{op} takes {'one or more' if arity < 0 else arity} arguments")
    value = _read_value(op, reader.piece(INDEX_AXES_CONTAINERS if op == "index_axes"
                                         else ARRAY_CONTAINERS), nodes)
    args = []
    for _ in range(given):
        arg = reader.piece()
        # Only earlier nodes: the table is acyclic by construction.
        _need(_int64(arg) and 0 <= arg < len(nodes), "arguments must be indices of earlier nodes")
        args.append(nodes[arg])
    return Expr(op, tuple(args), value)


def _read_nodes(reader, where):
    count = reader.header("list", f"{where}: node table")
    reader.nodes += count
    _need(reader.nodes <= MAX_NODES, f"{where}: the IR has more than {MAX_NODES} expression nodes")
    nodes = []
    for i in range(count):
        try:
            nodes.append(_read_node(reader, nodes))
        except SchemaError as err:
            raise SchemaError(f"{where}, node {i}: {err}") from None
    return nodes


def _pick(index, nodes, where):
    _need(_int64(index) and 0 <= index < len(nodes),
          f"{where}: expression {index!r} is not in the variable's node table")
    return nodes[index]


def _read_shape(shape, where):
    _need(shape is None or (isinstance(shape, list) and len(shape) <= MAX_NDIM
                            and all(_int64(s) for s in shape)), f"{where}: bad shape")
    if shape is not None:
        size = math.prod(shape)
        _need(size <= MAX_ELEMENTS, f"variable {where!r}: shape {shape} has {size} elements, "
                                    f"more than the limit of {MAX_ELEMENTS}")
    return shape


def _read_dist(obj, nodes, where, depth=0):
    _need(depth < MAX_DIST_DEPTH, f"{where}: distributions nested too deeply")
    _need(isinstance(obj, dict) and set(obj) == {"family", "params", "shape"}, f"{where}: malformed distribution")
    family = obj["family"]
    _need(isinstance(family, str) and family in FAMILIES,
          f"{where}: unknown distribution {family!r}; known: {', '.join(FAMILIES)}")
    cls = FAMILIES[family]
    params = obj["params"]
    _need(isinstance(params, dict) and all(k in cls.params for k in params),
          f"{where}: {family} parameters must be among {', '.join(cls.params)}")
    shape = _read_shape(obj["shape"], where)
    def decode(k, v):
        if k not in cls.dist_params:
            return _pick(v, nodes, f"{where}.{k}")
        if isinstance(v, list):
            _need(0 < len(v) <= MAX_COMPONENTS, f"{where}.{k}: 1 to {MAX_COMPONENTS} distributions")
            return [_read_dist(c, nodes, f"{where}.{k}[{n}]", depth + 1) for n, c in enumerate(v)]
        return _read_dist(v, nodes, f"{where}.{k}", depth + 1)
    values = {k: decode(k, v) for k, v in params.items()}
    try:
        return cls.from_params(values, shape)
    except (TypeError, ValueError) as err:
        raise SchemaError(f"{where}: {err}") from None


def _read_variable(reader, i) -> Variable:
    what = f"variable {i}"
    count = reader.header("map", what)
    reader.key("name", what)
    name = reader.piece()
    reader.key("kind", what)
    kind = reader.piece()
    _need(isinstance(name, str) and kind in KINDS, f"{what}: needs a name and a kind")
    fields = FIELDS[kind]
    _need(count == 3 + len(fields),
          f"variable {name!r}: a {kind} has exactly the fields {['name', 'kind', 'nodes', *fields]}")
    reader.key("nodes", f"variable {name!r}")
    nodes = _read_nodes(reader, f"variable {name!r}")
    found = {}
    for field in fields:
        reader.key(field, f"variable {name!r}")
        found[field] = reader.piece({"dist": DIST_CONTAINERS, "data": ARRAY_CONTAINERS}.get(field, 0))
    dist = _read_dist(found["dist"], nodes, name) if "dist" in found else None
    data = _read_array(found["data"], name).astype(np.float64) if "data" in found else None
    expr = _pick(found["expr"], nodes, name) if "expr" in found else None
    return Variable(name, kind, dist=dist, data=data, expr=expr)


def _read_model(reader) -> Model:
    _need(reader.header("map", "not an exmc IR message") == 3, "not an exmc IR message")
    reader.key("format", "not an exmc IR message")
    _need(reader.piece() == FORMAT, "not an exmc IR message")
    reader.key("version", "IR message")
    version = reader.piece()
    _need(version == VERSION, f"unsupported IR version {version!r}; this reader takes {VERSION}")
    reader.key("variables", "IR message")
    count = reader.header("list", "IR variables")
    _need(0 < count <= MAX_VARIABLES, f"IR has {count} variables; the limit is 1 to {MAX_VARIABLES}")
    model, declared = Model(), 0
    for i in range(count):
        var = _read_variable(reader, i)
        if var.dist is not None and var.dist.shape is not None:
            declared += math.prod(var.dist.shape)
            _need(declared <= MAX_TOTAL_ELEMENTS, f"variable {var.name!r}: declared shapes add up to "
                  f"more than {MAX_TOTAL_ELEMENTS} elements")
        model._add(var)
    return model


def loads(payload: bytes, max_bytes: int = MAX_BYTES) -> Model:
    """Decode and validate a model; raises ``SchemaError``/``ModelError`` on bad input."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise SchemaError("IR payload must be bytes")
    if len(payload) > max_bytes:
        raise SchemaError(f"IR message of {len(payload)} bytes exceeds the limit of {max_bytes}")
    # Reading makes many small objects and no garbage cycles; the cyclic collector
    # would only rescan them (half the time of reading a large model).
    collecting = gc.isenabled()
    gc.disable()
    try:
        model = _decode(payload)
        model.validate()
    finally:
        if collecting:
            gc.enable()
    return model


def _decode(payload) -> Model:
    reader = _Reader(payload)
    try:
        model = _read_model(reader)
    except ModelError:
        raise
    except msgpack.StackError:
        raise SchemaError("IR payload is nested too deeply") from None
    except (ValueError, TypeError, msgpack.UnpackException) as err:
        raise SchemaError(f"IR payload is not valid msgpack for an IR message: "
                          f"{type(err).__name__}: {err}") from None
    _need(reader.unpacker.tell() == len(payload), "IR payload has extra data after the message")
    return model
