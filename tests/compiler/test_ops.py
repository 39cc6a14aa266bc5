"""Every op of the registry, compiled: value against its NumPy reference, gradient against finite differences.

The table is keyed by the registry and checked against it, so a new op without
a case fails here.  Each op gets one model whose inputs are free, unbounded
vectors (``a`` (3, 2), ``b`` (2,), ``m`` (3, 3), ``v`` (3,)); a case maps them
into the op's domain with other ops (``exp(a) + 0.1`` for log) and the model's
only density term is ``sum(W * op(...))`` with fixed random weights ``W``, so
every element of the result reaches the gradient.
"""
import functools

import numpy as np
import pytest

import exmc
from exmc import math as em
from exmc import ref
from exmc.compiler import compile_model
from exmc.ir.evaluate import evaluate
from exmc.ir.ops import REGISTRY

SHAPES = {"a": (3, 2), "b": (2,), "m": (3, 3), "v": (3,)}
a, b, m, v = (ref(n) for n in SHAPES)
positive = em.exp(a) + 0.1
spd = em.dot(em.exp(m * 0.3), em.transpose(em.exp(m * 0.3))) + 3.0 * np.eye(3)
lower = em.cholesky(spd)

UNARY_DOMAIN = {"log": positive, "sqrt": positive, "lgamma": positive, "digamma": positive,
                "log1mexp": positive, "logit": em.sigmoid(a), "log1p": em.exp(a) - 0.5,
                "arcsin": em.tanh(a) * 0.9, "arccos": em.tanh(a) * 0.9,
                "arctanh": em.tanh(a) * 0.9, "arccosh": positive + 1.0,
                "tan": em.tanh(a)}
CASES = {name: [getattr(em, name)(UNARY_DOMAIN.get(name, a))]
         for name, op in REGISTRY.items() if op.arity == 1 and op.scalar is not None
         and name not in ("neg", "logical_not")}
CASES.update({
    "neg": [-a],
    "logical_not": [em.where(em.logical_not(em.gt(a, b)), a, 2.0 * b)],
    "add": [a + b, 1.5 + a], "sub": [a - b, b - a], "mul": [a * b, a * a],
    "div": [a / positive, b / (em.exp(b) + 1.0)],
    "pow": [positive ** b, positive ** 2.5, 1.7 ** a],
    "maximum": [em.maximum(a, b)], "minimum": [em.minimum(a, b)],
    "arctan2": [em.arctan2(a, b), em.arctan2(b, -positive), em.arctan2(-positive, b)],
    **{op: [em.where(getattr(em, op)(a, b), a * 3.0, b)] for op in ("lt", "le", "gt", "ge")},
    "eq": [em.where(em.eq(a, a), a, b)], "ne": [em.where(em.ne(a, b), a * b, b)],
    "logical_and": [em.where(em.logical_and(em.gt(a, 0.0), em.gt(b, 0.0)), a, b)],
    "logical_or": [em.where(em.logical_or(em.gt(a, 0.0), em.gt(b, 0.0)), a, b)],
    "where": [em.where(em.gt(a, b), a, b * b)],
    "clip": [em.clip(a, -0.3, b + 1.0)],
    "sum": [em.sum(a), em.sum(a, axis=0), em.sum(a, axis=1), em.sum(a, axis=-1)],
    "mean": [em.mean(a), em.mean(a, axis=0), em.mean(a, axis=1)],
    "logsumexp": [em.logsumexp(a), em.logsumexp(a, axis=0), em.logsumexp(a, axis=1)],
    "cumsum": [em.cumsum(a), em.cumsum(a, axis=0), em.cumsum(a, axis=1), em.cumsum(v)],
    "matmul": [m @ a, v @ a, v @ v, a @ b, em.dot(m, v)],
    "index": [a[1], a[-1], a[1:], a[::2], v[np.array([2, 0, 2, 1])], a[np.array([0, 2])], m[1][2]],
    "index_axes": [a[:, 0], a[1, 1], a[::-1, 1:], a[:, None], v[None], a[..., 1],
                   m[np.array([2, 0]), 1:], m[:, np.array([2, 2, 0])], a[None, :, 1]],
    "concatenate": [em.concatenate([a, a * 2.0]), em.concatenate([a, m[:1].T], axis=1),
                    em.concatenate([v, b])],
    "stack": [em.stack([v, v * v]), em.stack([v, v * 2.0], axis=1), em.stack([v[0], b[1]])],
    "transpose": [em.transpose(a), a.T * b[:1]],
    "cholesky": [lower],
    "solve_triangular": [em.solve_triangular(lower, v), em.solve_triangular(lower, a),
                         em.solve_triangular(em.transpose(lower), v, lower=False)],
    "logdet": [em.logdet(spd)],
    "corr_cholesky": [exmc.ir.expr.Expr("corr_cholesky", (em.tanh(v),), 3)],
    "reshape": [em.reshape(a, 6), em.reshape(a, (2, 3)) * v,
                em.reshape(a.T, (6,))[np.array([5, 0, 2])], em.reshape(em.exp(a), (1, 6))],
    # a vector state over the rows of a (closing over b), an HMM-like log-semiring step, and
    # a scalar state with n_steps and no sequence
    "scan": [em.scan(lambda s, row: 0.6 * s + em.tanh(row) * b, b, sequences=[a]),
             em.scan(lambda al, row, la: em.logsumexp(al + la.T, axis=1) + row, v,
                     sequences=[m], non_sequences=[m * 0.3]),
             em.scan(lambda s: s * em.tanh(b[0]) + v[1], v[0], n_steps=4)],
    # tight tolerances: finite differences must not see the step sequence change
    "ode_solve": [em.ode_solve(lambda t, y, k: em.stack([y[1], -k * y[0] - 0.3 * y[1] + t * b[1]]),
                               b, np.array([0.0, 0.4, 0.4, 1.3]), params=[em.exp(v[0])],
                               rtol=1e-12, atol=1e-12),
                  em.ode_solve(lambda t, y, k: em.stack([-k * y[0] + y[1], -30.0 * y[1] + y[0] * b[1]]),
                               b, np.array([0.0, 0.3, 0.9]), params=[em.exp(v[0])],
                               method="sdirk4", rtol=1e-12, atol=1e-12)],
    "family_fn": [exmc.ir.expr.Expr("family_fn", (a, b, em.exp(b) + 0.5), ("Normal", ("mu", "sigma"), fn))
                  for fn in ("logp", "logcdf", "logccdf")]
    + [exmc.ir.expr.Expr("family_fn", (a, positive + 1.0, b, exmc.ir.expr.as_expr(2.0)), ("StudentT", ("nu", "mu", "sigma"), "logp"))],
})


def test_every_registered_op_has_a_case():
    assert set(CASES) == set(REGISTRY)


@functools.cache
def compiled_op(name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    builder = exmc.Builder()
    for var, shape in SHAPES.items():
        builder.rv(var, exmc.Custom(logp=0.0 * exmc.value, shape=shape))
    total = 0.0
    for expr in CASES[name]:
        shape = np.shape(evaluate(expr, {k: np.zeros(s) for k, s in SHAPES.items()}))
        total = total + em.sum(rng.normal(size=shape) * expr)
    builder.rv("t", exmc.Custom(logp=total + 0.0 * exmc.value))
    return compile_model(builder), total


def reference_logp(cm, total, z):
    values = {s.name: z[s.offset:s.offset + s.size].reshape(s.shape) for s in cm.pointmap.free}
    return float(evaluate(total, values))


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [1, 2])
def test_op_value_and_gradient(name, seed):
    cm, total = compiled_op(name)
    z = np.random.default_rng(seed).normal(scale=0.7, size=cm.dim)
    logp, grad, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(logp, reference_logp(cm, total, z), rtol=1e-10, atol=1e-10)
    step, numeric = 1e-5, np.empty(cm.dim)
    for k in range(cm.dim):
        e = np.zeros(cm.dim)
        e[k] = step
        numeric[k] = (cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_a_wrong_gradient_is_caught_by_the_same_check():
    """Negative control: the finite-difference check rejects a gradient off in one element."""
    cm, _ = compiled_op("matmul")
    z = np.random.default_rng(3).normal(scale=0.7, size=cm.dim)
    _, grad, _ = cm.logp_and_grad(z)
    grad[4] *= 1.0 + 1e-4
    numeric = np.array([(cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / 2e-5
                        for e in np.eye(cm.dim) * 1e-5])
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_a_non_positive_definite_matrix_is_a_domain_status():
    model = (exmc.Builder().rv("s", exmc.Normal(0.0, 1.0))
             .rv("t", exmc.Custom(logp=em.logdet(ref("s") * np.eye(2)) + 0.0 * exmc.value)))
    cm = compile_model(model)
    assert cm.logp_and_grad(np.array([-1.0, 0.0]))[2] == 1
    assert cm.logp_and_grad(np.array([1.0, 0.0]))[2] == 0


def test_indexing_on_every_axis_matches_numpy_and_round_trips():
    """x[:, 0], x[None], x[..., k] on 2-d and 3-d variables, compiled, against NumPy; the
    model's IR survives msgpack."""
    from exmc.ir.serialize import loads
    cases = [("a", (slice(None), 0)), ("a", (1, 2)), ("a", (slice(1, None), slice(None, None, -2))),
             ("a", (slice(None), None)), ("a", (None,)), ("a", (Ellipsis, 1)),
             ("a", (np.array([2, 0]), slice(1, None))), ("a", (slice(None), np.array([3, 3, 0]))),
             ("c", (slice(None), 1)), ("c", (Ellipsis, 2)), ("c", (1, slice(None), 0)),
             ("c", (slice(None), slice(1, 3), None, 2))]
    model = exmc.Builder().rv("a", exmc.Normal(0, 1, shape=(3, 4))).rv("c", exmc.Normal(0, 1, shape=(2, 3, 4)))
    for i, (name, index) in enumerate(cases):
        model.det(f"d{i}", ref(name)[index])
    assert loads(model.to_msgpack()).to_msgpack() == model.to_msgpack()
    cm = compile_model(model)
    values = {k: v[0] for k, v in cm.constrain(np.random.default_rng(0).normal(size=(1, cm.dim))).items()}
    for i, (name, index) in enumerate(cases):
        np.testing.assert_array_equal(values[f"d{i}"], values[name][index], err_msg=str(index))
    with pytest.raises(TypeError, match="one integer array"):
        ref("a")[np.array([0]), np.array([1])]
