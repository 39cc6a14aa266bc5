"""Model IR <-> msgpack bytes, schema-checked on the way in; never pickle.

Wire form (all msgpack maps with string keys)::

    model    {"format": "exmc-ir", "version": 1, "variables": [variable, ...]}
    variable {"name": str, "kind": "rv"|"obs"|"det", "dist": dist?, "data": array?, "expr": expr?}
    dist     {"family": str, "params": {name: expr | dist}, "shape": [int, ...] | nil}
    expr     {"op": str, "args": [expr, ...], "value": nil | float | str | int | array | ["slice", a, b, c]}
    array    {"nd": "<f8" | "<i8", "shape": [int, ...], "bytes": bin}

``structure_hash`` hashes the same form with data arrays replaced by their
shapes: models that differ only in data share compiled code.
"""
from __future__ import annotations

import hashlib
import math

import msgpack
import numpy as np

from exmc.ir.builder import KINDS, Model, ModelError, Variable
from exmc.ir.dists import FAMILIES, Distribution
from exmc.ir.expr import OPS, Expr

FORMAT, VERSION = "exmc-ir", 1
MAX_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 200
DTYPES = {"<f8": np.float64, "<i8": np.int64}


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


def _expr(e: Expr, for_hash=False):
    v = e.value
    if e.op == "dslvar":
        raise ModelError("cannot serialise a model that still holds an unnamed DSL variable")
    if isinstance(v, np.ndarray):
        # Index arrays are structure (baked into code); data arrays are arguments.
        v = _array(v, for_hash and e.op == "const")
    elif isinstance(v, tuple):
        v = list(v)
    return {"op": e.op, "args": [_expr(a, for_hash) for a in e.args], "value": v}


def _dist(d: Distribution, for_hash=False):
    params = {k: _dist(v, for_hash) if isinstance(v, Distribution) else _expr(v, for_hash)
              for k, v in d.param_exprs.items()}
    return {"family": d.family, "params": params,
            "shape": None if d.shape is None else list(d.shape)}


def to_data(model: Model, for_hash=False) -> dict:
    out = []
    for v in model.variables:
        item = {"name": v.name, "kind": v.kind}
        if v.dist is not None:
            item["dist"] = _dist(v.dist, for_hash)
        if v.data is not None:
            item["data"] = _array(v.data, for_hash)
        if v.expr is not None:
            item["expr"] = _expr(v.expr, for_hash)
        out.append(item)
    return {"format": FORMAT, "version": VERSION, "variables": out}


def dumps(model: Model) -> bytes:
    return msgpack.packb(to_data(model), use_bin_type=True)


def structure_hash(model: Model) -> str:
    """Hash of the model's structure (data values excluded, data shapes included)."""
    return hashlib.sha256(msgpack.packb(to_data(model, for_hash=True), use_bin_type=True)).hexdigest()


# ---- decoding with schema checks ------------------------------------------------------------
def _need(cond, msg):
    if not cond:
        raise SchemaError(msg)


def _int64(v):
    return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63


def _read_array(obj, where):
    _need(isinstance(obj, dict) and set(obj) == {"nd", "shape", "bytes"}, f"{where}: malformed array")
    _need(isinstance(obj["nd"], str) and obj["nd"] in DTYPES,
          f"{where}: array dtype must be one of {sorted(DTYPES)}")
    shape = obj["shape"]
    _need(isinstance(shape, list) and len(shape) <= 8
          and all(isinstance(s, int) and 0 <= s for s in shape), f"{where}: bad array shape")
    _need(isinstance(obj["bytes"], bytes), f"{where}: array bytes missing")
    dtype = DTYPES[obj["nd"]]
    _need(len(obj["bytes"]) == math.prod(shape) * 8, f"{where}: array size does not match shape")
    return np.frombuffer(obj["bytes"], dtype=dtype).reshape(shape).copy()


def _read_expr(obj, where, depth=0):
    _need(depth < MAX_DEPTH, f"{where}: expression nested too deeply")
    _need(isinstance(obj, dict) and set(obj) == {"op", "args", "value"}, f"{where}: malformed expression")
    op, args, v = obj["op"], obj["args"], obj["value"]
    _need(isinstance(op, str) and op in OPS and op != "dslvar",
          f"{where}: unknown expression operation {op!r}")
    _need(isinstance(args, list) and len(args) == OPS[op], f"{where}: {op} takes {OPS[op]} arguments")
    if op == "const":
        if isinstance(v, dict):
            v = _read_array(v, where).astype(np.float64)
        else:
            _need(isinstance(v, (int, float)) and not isinstance(v, bool), f"{where}: bad constant")
            v = float(v)
    elif op == "ref":
        _need(isinstance(v, str) and v.isidentifier(), f"{where}: bad reference")
    elif op == "index":
        if isinstance(v, dict):
            v = _read_array(v, where).astype(np.int64)
            _need(v.ndim == 1, f"{where}: index arrays must be 1-d")
        elif isinstance(v, list):
            _need(len(v) == 4 and v[0] == "slice" and v[3] != 0
                  and all(p is None or _int64(p) for p in v[1:]), f"{where}: bad slice")
            v = tuple(v)
        else:
            _need(_int64(v), f"{where}: bad index")
    else:
        _need(v is None, f"{where}: {op} carries no value")
    return Expr(op, tuple(_read_expr(a, where, depth + 1) for a in args), v)


def _read_dist(obj, where, depth=0):
    _need(depth < 4, f"{where}: distributions nested too deeply")
    _need(isinstance(obj, dict) and set(obj) == {"family", "params", "shape"}, f"{where}: malformed distribution")
    family = obj["family"]
    _need(isinstance(family, str) and family in FAMILIES,
          f"{where}: unknown distribution {family!r}; known: {', '.join(FAMILIES)}")
    cls = FAMILIES[family]
    params = obj["params"]
    _need(isinstance(params, dict) and all(k in cls.params for k in params),
          f"{where}: {family} parameters must be among {', '.join(cls.params)}")
    shape = obj["shape"]
    _need(shape is None or (isinstance(shape, list) and all(isinstance(s, int) for s in shape)),
          f"{where}: bad shape")
    values = {k: _read_dist(v, f"{where}.{k}", depth + 1) if k in cls.dist_params
              else _read_expr(v, f"{where}.{k}") for k, v in params.items()}
    try:
        return cls.from_params(values, shape)
    except (TypeError, ValueError) as err:
        raise SchemaError(f"{where}: {err}") from None


def from_data(obj) -> Model:
    _need(isinstance(obj, dict) and obj.get("format") == FORMAT, "not an exmc IR message")
    _need(obj.get("version") == VERSION, f"unsupported IR version {obj.get('version')!r}")
    variables = obj.get("variables")
    _need(isinstance(variables, list) and variables, "IR has no variable list")
    model = Model()
    for i, item in enumerate(variables):
        _need(isinstance(item, dict) and isinstance(item.get("name"), str)
              and item.get("kind") in KINDS, f"variable {i}: needs a name and a kind")
        name, kind = item["name"], item["kind"]
        allowed = {"rv": {"dist"}, "obs": {"dist", "data"}, "det": {"expr"}}[kind]
        _need(set(item) - {"name", "kind"} == allowed,
              f"variable {name!r}: a {kind} has exactly the fields {sorted(allowed)}")
        dist = _read_dist(item["dist"], name) if "dist" in item else None
        data = _read_array(item["data"], name).astype(np.float64) if "data" in item else None
        expr = _read_expr(item["expr"], name) if "expr" in item else None
        model._add(Variable(name, kind, dist=dist, data=data, expr=expr))
    model.validate()
    return model


def loads(payload: bytes, max_bytes: int = MAX_BYTES) -> Model:
    """Decode and validate a model; raises ``SchemaError``/``ModelError`` on bad input."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise SchemaError("IR payload must be bytes")
    if len(payload) > max_bytes:
        raise SchemaError(f"IR message of {len(payload)} bytes exceeds the limit of {max_bytes}")
    try:
        obj = msgpack.unpackb(bytes(payload), raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise SchemaError(f"IR payload is not valid msgpack: {err}") from None
    return from_data(obj)
