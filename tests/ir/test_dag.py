"""Expressions are DAGs everywhere: shared nodes handled once, no recursion with model size, bounded decoding."""
import struct
import sys
import time
import tracemalloc
from contextlib import contextmanager

import msgpack
import numpy as np
import pytest

import exmc
from exmc import Bernoulli, Builder, Custom, HalfNormal, Normal, ref
from exmc.ir import builder
from exmc.ir.builder import MAX_ELEMENTS, ModelError
from exmc.ir.expr import OPS, REPR_CHARS, Expr, postorder
from exmc.ir.serialize import MAX_NODES, MAX_VARIABLES, SchemaError, loads, structure_hash, to_data

CHAIN = 10_000


def shared(depth, leaf):
    """``x = x * 0.5 + x * 0.5`` ``depth`` times: 1 + 5 * depth distinct nodes, 2**depth paths."""
    x = leaf
    for _ in range(depth):
        x = x * 0.5 + x * 0.5
    return x


@contextmanager
def shallow_stack(frames=150):
    """Fail with RecursionError if anything recurses more than ``frames`` below the caller."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


@pytest.fixture
def op_shape_calls(monkeypatch):
    calls = []
    real = builder.op_shape

    def counted(op, *args):
        calls.append(op)
        return real(op, *args)

    monkeypatch.setattr(builder, "op_shape", counted)
    return calls


# ---- each distinct node once -------------------------------------------------------------
def test_walk_and_postorder_see_each_distinct_node_once():
    e = shared(30, ref("a"))
    nodes = list(e.walk())
    assert len(nodes) == len({id(n) for n in nodes}) == 1 + 5 * 30
    order = postorder(e)
    position = {id(n): i for i, n in enumerate(order)}
    assert len(order) == 1 + 5 * 30 and order[-1] is e
    assert all(position[id(a)] < position[id(n)] for n in order for a in n.args)
    assert e.references() == ["a"]
    assert len(repr(e)) <= REPR_CHARS


def test_sharing_depth_30_validates_serialises_and_hashes_in_linear_work(op_shape_calls):
    model = Builder().rv("a", Normal(0, 1)).det("d", shared(30, ref("a")))
    start = time.perf_counter()
    model.validate()
    assert len(op_shape_calls) == 3 * 30  # one shape rule per distinct operation node
    table = to_data(model)["variables"][1]["nodes"]
    assert len(table) == 1 + 5 * 30
    again = loads(model.to_msgpack())
    assert len(list(again["d"].expr.walk())) == 1 + 5 * 30  # sharing survives the round trip
    assert again == model
    assert structure_hash(again) == structure_hash(model)
    assert time.perf_counter() - start < 30  # generous: exponential work would take hours


def test_a_node_shared_by_two_parameters_is_written_once():
    e = exmc.math.exp(ref("a"))
    model = Builder().rv("a", Normal(0, 1)).rv("b", Normal(e, e))
    assert [node[0] for node in to_data(model)["variables"][1]["nodes"]] == ["ref", "exp"]
    params = loads(model.to_msgpack())["b"].dist.param_exprs
    assert params["mu"] is params["sigma"]


def test_serialised_size_grows_linearly_with_sharing_depth():
    sizes = [len(Builder().rv("a", Normal(0, 1)).det("d", shared(depth, ref("a"))).to_msgpack())
             for depth in (10, 20, 40, 80)]
    steps = np.diff(sizes) / np.diff([10, 20, 40, 80])
    assert steps.max() < 100 and steps.max() < 1.5 * steps.min()  # bytes per level, not doubling


def test_custom_logp_with_shared_subexpressions_expands_once(op_shape_calls):
    logp = -shared(30, exmc.value) ** 2
    model = Builder().rv("c", Custom(logp=logp)).rv("a", Normal("c", 1))
    model.validate()
    assert len(op_shape_calls) == 3 * 30 + 2
    [(_, expanded)] = model["c"].dist.expand(ref("c"))
    nodes = list(expanded.walk())
    assert len(nodes) == len(list(logp.walk()))
    assert not any(n.op == "value" for n in nodes) and expanded.references() == ["c"]
    assert loads(model.to_msgpack()) == model


def test_dsl_keeps_sharing():
    @exmc.model
    def deep():
        a = Normal(0, 1)
        d = exmc.Deterministic(shared(30, a))  # noqa: F841

    m = deep()
    # each use of a DSL variable is its own leaf: two refs to "a" at the first level
    assert len(list(m["d"].expr.walk())) == 2 + 5 * 30
    assert loads(m.to_msgpack()) == m


# ---- nothing proportional to the model's size on the Python stack --------------------------
def chain(kind, n=CHAIN):
    m = Builder().rv("x0", Normal(0, 1))
    for i in range(1, n):
        if kind == "det":
            m.det(f"x{i}", ref(f"x{i - 1}") * 0.5 + 1.0)
        else:
            m.rv(f"x{i}", Normal(ref(f"x{i - 1}"), HalfNormal(1.0).param_exprs["sigma"]))
    return m


def reversed_chain(n=CHAIN):
    """Each variable refers to the NEXT one: validation must reorder the whole model."""
    m = Builder()
    for i in range(n - 1):
        m.det(f"x{i}", ref(f"x{i + 1}") + 1.0)
    return m.rv(f"x{n - 1}", Normal(0, 1))


def long_expression(n=CHAIN):
    e = ref("a")
    for i in range(n):
        e = e + float(i)
    return Builder().rv("a", Normal(0, 1)).det("d", e)


@pytest.mark.parametrize("make", [lambda: chain("det"), lambda: chain("rv"), reversed_chain,
                                  long_expression],
                         ids=["det-chain", "rv-chain", "reversed-chain", "deep-expression"])
def test_a_10000_chain_builds_validates_serialises_and_hashes(make):
    with shallow_stack():
        model = make()
        shapes = model.validate()
        assert len(shapes) == len(model.variables)
        payload = model.to_msgpack()
        again = loads(payload)
        assert again.to_msgpack() == payload
        assert structure_hash(again) == structure_hash(model)
        repr(model)


def test_name_lookup_does_not_scan_the_variables():
    model = chain("det", 1000)

    class NoScan(list):
        def __iter__(self):
            raise AssertionError("scanned the variable list")

    model.variables = NoScan(model.variables)
    assert model["x999"].name == "x999" and model["x0"].kind == "rv"
    with pytest.raises(KeyError):
        model["nope"]
    with pytest.raises(ModelError, match="declared twice"):
        model.rv("x5", Normal(0, 1))


# ---- the structure hash: code, not the numbers the code takes as data --------------------------
def h(model):
    return structure_hash(model)


def one(dist):
    return Builder().rv("a", dist)


def test_structure_hash_ignores_constant_values():
    assert h(one(HalfNormal(2))) == h(one(HalfNormal(2.5)))
    assert h(one(Normal(0, 1, shape=3))) == h(one(Normal(5, 2, shape=3)))
    assert h(one(Normal(np.zeros(3), 1))) == h(one(Normal(np.ones(3), 1)))
    det = lambda c: one(Normal(0, 1, shape=4)).det("d", ref("a") * c + exmc.math.exp(c))
    assert h(det(2.0)) == h(det(3.0))
    y = np.array([1.0, 0.0, 1.0])
    obs = lambda v, y: one(Normal(0, 1)).obs("y", Bernoulli(logit_p=ref("a") * v), y)
    assert h(obs(1.0, y)) == h(obs(2.0, 1 - y))
    pick = lambda idx: one(Normal(0, 1, shape=4)).det("d", ref("a")[np.array(idx)])
    assert h(pick([0, 1])) == h(pick([3, 2]))  # integer-array indices: only their shape


@pytest.mark.parametrize("first, second", [
    (lambda: one(Normal(0, 1, shape=3)), lambda: one(Normal(0, 1, shape=4))),
    (lambda: one(Normal(np.zeros(3), 1)), lambda: one(Normal(np.zeros(4), 1))),
    (lambda: one(Normal(np.zeros(3), 1)), lambda: one(Normal(0.0, 1, shape=3))),  # constant's shape
    (lambda: one(Normal(0, 1)), lambda: one(exmc.Cauchy(0, 1))),
    (lambda: one(Normal(0, 1)), lambda: Builder().rv("b", Normal(0, 1))),
    (lambda: one(Normal(0, 1)).det("d", ref("a") * 2.0), lambda: one(Normal(0, 1)).det("d", ref("a") + 2.0)),
    (lambda: one(Normal(0, 1)).det("d", ref("a") * 2.0), lambda: one(Normal(0, 1)).det("d", 2.0 * ref("a"))),
    (lambda: one(Normal(0, 1, shape=4)).det("d", ref("a")[1:3]),
     lambda: one(Normal(0, 1, shape=4)).det("d", ref("a")[0:2])),
    (lambda: one(Normal(0, 1, shape=4)).det("d", ref("a")[1]),
     lambda: one(Normal(0, 1, shape=4)).det("d", ref("a")[2])),
    (lambda: one(Normal(0, 1, shape=4)).det("d", ref("a")[np.array([0, 1])]),
     lambda: one(Normal(0, 1, shape=4)).det("d", ref("a")[np.array([0, 1, 1])])),
    (lambda: one(Normal(0, 1)).obs("y", Bernoulli(p=0.5), np.ones(3)),
     lambda: one(Normal(0, 1)).obs("y", Bernoulli(logit_p=0.5), np.ones(3))),  # which parameter
    (lambda: one(Normal(0, 1)).det("y", ref("a")), lambda: one(Normal(0, 1)).rv("y", Normal("a", 1))),
], ids=["shape", "constant-shape", "array-or-scalar", "family", "name", "op", "argument-order",
        "slice", "int-index", "index-array-shape", "given-parameter", "kind"])
def test_structure_hash_keeps_the_structure(first, second):
    assert h(first()) != h(second())


# ---- bounded decoding ---------------------------------------------------------------------
MIB = 1024 * 1024


def ir_prefix(variables_header):
    head = {"format": "exmc-ir", "version": 2}
    return (b"\x83" + msgpack.packb(head)[1:] + msgpack.packb("variables") + variables_header)


def det_prefix(name="d"):
    return (b"\x84" + msgpack.packb({"name": name, "kind": "det"})[1:] + msgpack.packb("nodes"))


def array32(n):
    return b"\xdd" + struct.pack(">I", n)


BOMBS = {
    "flat-empty-lists": array32(8 * MIB) + b"\x90" * (8 * MIB),
    "nested-lists": b"\x91" * (8 * MIB),
    "variables-of-empty-lists": ir_prefix(array32(8 * MIB)) + b"\x90" * (8 * MIB),
    "node-table-of-empty-lists": ir_prefix(b"\x91") + det_prefix() + array32(MAX_NODES) + b"\x90" * (8 * MIB),
    "one-node-nesting-deeply": ir_prefix(b"\x91") + det_prefix() + b"\x91\x93" + b"\x91" * (8 * MIB),
    "nodes-of-eight-lists": (ir_prefix(b"\x91") + det_prefix() + array32(MIB)
                             + (b"\x98" + b"\x90" * 8) * MIB),
    "values-of-nested-lists": (ir_prefix(b"\x91") + det_prefix() + array32(MIB)
                               + (b"\x92" + msgpack.packb("const") + b"\x91" * 6 + b"\x90") * MIB),
    "variables-of-long-strings": ir_prefix(array32(MAX_VARIABLES))
    + msgpack.packb({"name": "x" * 4000}) * 2000,
}


@pytest.mark.parametrize("payload", BOMBS.values(), ids=BOMBS.keys())
def test_hostile_bytes_fail_fast_with_bounded_memory(payload):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SchemaError):
            loads(payload)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the payload is copied once into the decoder; everything else is small
    assert peak < 1.5 * len(payload) + MIB, f"peak {peak / MIB:.1f} MiB"
    assert seconds < 10  # generous: the refusal comes at the first piece out of schema


def test_a_huge_declared_shape_is_refused_before_anything_is_allocated():
    payload = Builder().rv("big", Normal(0, 1, shape=3)).to_msgpack()
    data = msgpack.unpackb(payload)
    data["variables"][0]["dist"]["shape"] = [10**12]
    with pytest.raises(SchemaError, match=r"variable 'big': shape \[1000000000000\] has 1000000000000 "
                                          rf"elements, more than the limit of {MAX_ELEMENTS}"):
        loads(msgpack.packb(data))
    with pytest.raises(ModelError, match=r"variable 'big': shape \(1000000000000,\) has"):
        Builder().rv("big", Normal(0, 1, shape=10**12)).validate()
    with pytest.raises(ModelError, match="elements, more than the limit"):
        a, b = np.zeros((2**15, 1)), np.zeros((1, 2**14))  # an outer sum of 2**29 elements
        Builder().rv("m", Normal(0, 1)).det("d", ref("m") + a + b).validate()


def test_counts_beyond_the_limits_are_refused_from_their_headers():
    with pytest.raises(SchemaError, match=f"limit is 1 to {MAX_VARIABLES}"):
        loads(ir_prefix(array32(MAX_VARIABLES + 1)))
    with pytest.raises(SchemaError, match=f"more than {MAX_NODES} expression nodes"):
        loads(ir_prefix(b"\x91") + det_prefix() + array32(MAX_NODES + 1))


@pytest.mark.skipif("stack" not in OPS, reason="no variadic op in the registry yet")
def test_a_variadic_node_with_many_arguments_round_trips():
    m = Builder()
    for i in range(300):
        m.rv(f"x{i}", Normal(0, 1))
    m.det("all", Expr("stack", tuple(ref(f"x{i}") for i in range(300)), 0))
    assert loads(m.to_msgpack()) == m
