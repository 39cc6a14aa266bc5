"""IR <-> msgpack: every family round-trips; hostile bytes get a SchemaError, never a crash."""
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exmc
from exmc import (Bernoulli, Beta, Binomial, Builder, Cauchy, Custom, Exponential, Gamma,
                  GaussianRandomWalk, HalfCauchy, HalfNormal, InverseGamma, Laplace, LogNormal,
                  ModelError, Normal, Poisson, StudentT, Uniform, ref)
from exmc.ir.serialize import VERSION, SchemaError, loads, structure_hash, to_data

Y = np.array([0.0, 1.0, 1.0])


def every_family():
    X = np.arange(6.0).reshape(3, 2)
    return (Builder()
            .rv("a", Normal(0, 1)).rv("b", HalfNormal(2)).rv("c", HalfCauchy(1))
            .rv("d", Exponential(3)).rv("e", Gamma(2, 1)).rv("f", InverseGamma(3, 2))
            .rv("g", Beta(2, 3)).rv("h", Uniform(-1, "b")).rv("i", StudentT(4, "a", "b"))
            .rv("j", Cauchy(0, 1)).rv("k", LogNormal(0, 1)).rv("l", Laplace(0, 1))
            .rv("w", GaussianRandomWalk(sigma="b", init=Normal(0, "b"), shape=4))
            .rv("v", Normal(0, 1, shape=2))
            .rv("u", Custom(logp=-0.5 * exmc.value ** 2 + ref("a"), support=(0.0, "d")))
            .det("lin", X @ ref("v") + exmc.math.where(ref("a") > 0, ref("a"), 0.0))
            .det("pick", ref("w")[np.array([0, 3])] + ref("w")[1:3].__getitem__(0))
            .obs("y1", Bernoulli(logit_p=ref("lin")), Y)
            .obs("y2", Binomial(np.array([2, 3, 4]), p="g"), np.array([1.0, 2.0, 0.0]))
            .obs("y3", Poisson(exmc.math.exp("a")), np.array([3.0, 0.0])))


def test_every_family_round_trips():
    m = every_family()
    m.validate()
    again = exmc.Model.from_msgpack(m.to_msgpack())
    assert again == m
    assert again.to_msgpack() == m.to_msgpack()


def test_structure_hash_ignores_data_values_not_shapes():
    base = Builder().rv("m", Normal(0, 1)).obs("y", Normal("m", 1), Y)
    other_values = Builder().rv("m", Normal(0, 1)).obs("y", Normal("m", 1), Y + 5)
    other_shape = Builder().rv("m", Normal(0, 1)).obs("y", Normal("m", 1), np.ones(4))
    other_prior = Builder().rv("m", Normal(0, 2)).obs("y", Normal("m", 1), Y)
    other_family = Builder().rv("m", Normal(0, 1)).obs("y", Cauchy("m", 1), Y)
    assert structure_hash(base) == structure_hash(other_values)
    assert structure_hash(base) == structure_hash(other_prior)  # constants are data too
    assert structure_hash(base) != structure_hash(other_shape)
    assert structure_hash(base) != structure_hash(other_family)


def mutate(change, model=None):
    model = model or Builder().rv("m", Normal(0, 1)).obs("y", Normal("m", 1), Y)
    data = to_data(model)  # variable 1 ("y"): nodes [ref m, const 1.0], params {mu: 0, sigma: 1}
    change(data)
    return msgpack.packb(data, use_bin_type=True)


DET = Builder().rv("m", Normal(0, 1)).det("d", -ref("m"))  # "d": nodes [ref m, neg 0], expr 1
VALID = mutate(lambda d: None)


@pytest.mark.parametrize("payload, message", [
    (b"\xc1", "not an exmc IR message"),
    (msgpack.packb([1, 2, 3]), "not an exmc IR message"),
    (b"\x00" * 10, "not an exmc IR message"),
    (VALID + b"\x00", "extra data"),
    (VALID[:-3], "not valid msgpack"),
    (mutate(lambda d: d.update(version=99)), "unsupported IR version"),
    (mutate(lambda d: d["variables"][0]["dist"].update(family="Gumbell")), "unknown distribution 'Gumbell'"),
    (mutate(lambda d: d["variables"][0]["dist"]["params"].update(sd=1)),
     "parameters must be among mu, sigma"),
    (mutate(lambda d: d["variables"][1]["nodes"][0].__setitem__(0, "eval")), "unknown expression operation"),
    (mutate(lambda d: d["variables"][1]["data"].update(shape=[99])), "array size does not match shape"),
    (mutate(lambda d: d["variables"][1]["data"].update(nd="|O")), "array dtype"),
    (mutate(lambda d: d["variables"][1].update(kind="boss")), "needs a name and a kind"),
    (mutate(lambda d: d["variables"][1].pop("data")), "exactly the fields"),
    (mutate(lambda d: d["variables"][1]["nodes"][0].__setitem__(1, "m m")), "bad reference"),
    (mutate(lambda d: d["variables"][1]["nodes"][0].__setitem__(1, "zz")), "unknown variable 'zz'"),
    (mutate(lambda d: d["variables"][1]["dist"]["params"].update(mu=7)), "not in the variable's node table"),
    (mutate(lambda d: d["variables"][1]["nodes"].append(["neg", None, 2]), DET),
     "indices of earlier nodes"),  # a node that is its own argument: a cycle
    (mutate(lambda d: d["variables"][1]["nodes"].__setitem__(0, ["neg", None, 1]), DET),
     "indices of earlier nodes"),  # an argument that comes later: could close a cycle
    (mutate(lambda d: d["variables"][0]["dist"].update(shape=[10**12])),
     "variable 'm': shape \\[1000000000000\\] has 1000000000000 elements, more than the limit"),
])
def test_hostile_payloads_are_rejected_with_a_reason(payload, message):
    with pytest.raises(ModelError, match=message):
        loads(payload)


def test_deep_nesting_and_size_limits():
    node = None
    for _ in range(50):  # a node value that nests lists, where the schema allows a few
        node = [node]
    bad = mutate(lambda d: d["variables"][1]["nodes"].__setitem__(1, ["const", node]))
    with pytest.raises(SchemaError, match="lists or maps where its schema has none"):
        loads(bad)
    marked = mutate(lambda d: d["variables"][1]["nodes"].__setitem__(1, ["const", b"@marker@"]))
    deep = marked.replace(msgpack.packb(b"@marker@"), b"\x91" * 5000 + b"\xc0")
    with pytest.raises(SchemaError, match="nested too deeply"):
        loads(deep)
    with pytest.raises(SchemaError, match="exceeds the limit"):
        loads(b"\x90" * 100, max_bytes=10)


def test_nothing_is_unpickled():
    import pickle
    with pytest.raises(SchemaError):
        loads(pickle.dumps({"format": "exmc-ir"}))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(payload):
    try:
        loads(payload)
    except ModelError:
        pass


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=5)
    | st.binary(max_size=16),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["op", "args", "value", "family", "params", "shape", "name", "kind",
                         "dist", "data", "expr", "nd", "bytes", "format", "version", "variables",
                         "nodes"]),
        children, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_random_structures_never_crash(obj):
    payload = msgpack.packb({"format": "exmc-ir", "version": VERSION, "variables": [obj]},
                            use_bin_type=True)
    try:
        loads(payload)
    except ModelError:
        pass


def _pymc_family_model():
    """One variable per case of tests/ir/test_random.py (every family of the scalar modules,
    their alternative parameterisations included): latent where it can be, else observed."""
    from tests.ir.test_random import FAMILY_CASES, VECTOR_CASES
    from exmc.ir.dists import Flat, HalfFlat
    model = Builder().rv("flat", Flat()).rv("halfflat", HalfFlat())
    rng = np.random.default_rng(0)
    cases = list(FAMILY_CASES) + [d for d, _ in VECTOR_CASES]
    for i, dist in enumerate(cases):
        values = {k: e.value for k, e in dist.param_exprs.items()}
        if dist.discrete or getattr(dist, "observed_only", False):
            data = dist.random(rng, values, (4,) + ((3,) if dist.event_ndim else ()))
            model.obs(f"v{i}", dist, data)
        else:
            model.rv(f"v{i}", dist)
    return model, len(cases) + 2


def test_every_pymc_family_round_trips():
    model, count = _pymc_family_model()
    model.validate()
    payload = model.to_msgpack()
    again = exmc.Model.from_msgpack(payload)
    assert again == model and again.to_msgpack() == payload
    families = {v.dist.family for v in again.variables}
    assert len(again.variables) == count and {"Flat", "Categorical", "TruncatedNormal"} <= families
