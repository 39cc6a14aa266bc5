"""Batched evaluation of every registry op, and ancestral draws of models (prior moments vs closed forms)."""
import numpy as np
import pytest

import exmc
from exmc.ir import ModelError
from exmc.ir.evaluate import BATCHED, _each_point, evaluate, evaluate_batched
from exmc.ir.expr import Expr, constant, ref
from exmc.ir.forward import forward_draws
from exmc.ir.ops import REGISTRY
from tests.stats import assert_mean_close, assert_variance_close

N = 5  # points evaluated at once
rng = np.random.default_rng(0)


def _inside(shape):
    """Values in (0.1, 0.9): inside the domain of every elementwise op (log, logit, log1mexp...)."""
    return rng.uniform(0.1, 0.9, shape)


def _spd(k):
    a = rng.normal(size=(k, k))
    return a @ a.T + k * np.eye(k)


# (op, expression of ref("a") (and ref("b")), shape of a, shape of b) for every structural op;
# elementwise ops are derived from the registry below.
STRUCTURAL = [
    ("sum", lambda a, b: Expr("sum", (a,), None), (3, 4), None),
    ("sum", lambda a, b: Expr("sum", (a,), 1), (3, 4), None),
    ("sum", lambda a, b: Expr("sum", (a,), None), (), None),
    ("mean", lambda a, b: Expr("mean", (a,), 0), (3, 4), None),
    ("logsumexp", lambda a, b: Expr("logsumexp", (a,), -1), (3, 4), None),
    ("logsumexp", lambda a, b: Expr("logsumexp", (a,), None), (3,), None),
    ("cumsum", lambda a, b: Expr("cumsum", (a,), None), (3, 2), None),
    ("cumsum", lambda a, b: Expr("cumsum", (a,), 1), (3, 2), None),
    ("matmul", lambda a, b: a @ b, (3, 4), (4,)),
    ("matmul", lambda a, b: a @ b, (4,), (4, 2)),
    ("matmul", lambda a, b: a @ b, (4,), (4,)),
    ("matmul", lambda a, b: a @ b, (3, 4), (4, 2)),
    ("matmul", lambda a, b: np.ones((2, 3)) @ a, (3,), None),
    ("index", lambda a, b: a[1], (3, 4), None),
    ("index", lambda a, b: a[1:3], (4,), None),
    ("index", lambda a, b: a[np.array([2, 0, 2])], (3, 2), None),
    ("concatenate", lambda a, b: exmc.math.concatenate([a, b, np.ones(2)]), (3,), (2,)),
    ("concatenate", lambda a, b: exmc.math.concatenate([a, b], axis=1), (2, 3), (2, 1)),
    ("stack", lambda a, b: exmc.math.stack([a, b, np.zeros(3)], axis=1), (3,), (3,)),
    ("transpose", lambda a, b: a.T, (2, 3), None),
    ("cholesky", lambda a, b: exmc.math.cholesky(a @ a.T + 3.0 * np.eye(3)), (3, 3), None),
    ("logdet", lambda a, b: exmc.math.logdet(a @ a.T + np.eye(3)), (3, 3), None),
    ("solve_triangular", lambda a, b: exmc.math.solve_triangular(a + 2 * np.eye(3), b),
     (3, 3), (3,)),
    ("solve_triangular", lambda a, b: exmc.math.solve_triangular(a + 2 * np.eye(3), b, lower=False),
     (3, 3), (3, 2)),
    ("corr_cholesky", lambda a, b: Expr("corr_cholesky", (a - 0.5,), 3), (3,), None),
    ("reshape", lambda a, b: exmc.math.reshape(a, (3, 2)), (2, 3), None),
    ("family_fn", lambda a, b: Expr("family_fn", (a, b, constant(0.5)),
                                    ("Normal", ("mu", "sigma"), "logp")), (2, 3), (3,)),
]


def _elementwise_cases():
    for name, op in REGISTRY.items():
        if op.layout is None:
            args = [ref("a"), ref("b"), ref("c")][:op.arity]
            yield name, Expr(name, tuple(args)), [(2, 3), (3,), ()][:op.arity]


def _cases():
    for name, expr, shapes in _elementwise_cases():
        yield name, expr, dict(zip("abc", shapes))
    for name, build, sa, sb in STRUCTURAL:
        shapes = {"a": sa} if sb is None else {"a": sa, "b": sb}
        yield name, build(ref("a"), ref("b")), shapes


CASES = list(_cases())


def test_every_batched_rule_has_a_case():
    batched = {name for name, op in REGISTRY.items() if op.layout is None or op.layout in BATCHED}
    assert batched <= {name for name, _, _ in CASES}


def test_an_op_without_a_batched_rule_is_evaluated_point_by_point():
    a = _inside((N, 3))
    out = _each_point("cumsum", [a], [(3,)], 0)
    np.testing.assert_array_equal(out, np.cumsum(a, axis=1))


@pytest.mark.parametrize("name, expr, shapes", CASES, ids=[c[0] for c in CASES])
def test_batched_equals_one_point_at_a_time(name, expr, shapes):
    batched = {k: _inside((N,) + s) for k, s in shapes.items()}
    # one argument the same at every point (batch axis of size 1), as data is
    batched[min(shapes)] = batched[min(shapes)][:1]
    out = evaluate_batched(expr, batched, shapes)
    expected = np.stack([evaluate(expr, {k: v[min(i, len(v) - 1)] for k, v in batched.items()})
                         for i in range(N)])
    out = np.broadcast_to(out, expected.shape)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


# ---- ancestral draws ---------------------------------------------------------------------
def _one_chain(draws):
    """Independent draws as one chain (chains, draws, ...) for the MCSE checks."""
    return {name: v[None] for name, v in draws.items()}


SIGMA = np.array([0.5, 1.0, 2.0])


@exmc.model
def hierarchical(sigma):
    mu = exmc.Normal(1.0, 2.0)
    tau = exmc.HalfNormal(1.0)
    theta = exmc.Normal(mu, tau, shape=3)
    shifted = exmc.Deterministic(theta - mu)
    y = exmc.Normal(theta, sigma, observed=np.zeros(3))


def test_prior_moments_of_a_hierarchical_model_match_closed_forms():
    draws = _one_chain(forward_draws(hierarchical(SIGMA), 20_000, np.random.default_rng(1)))
    # theta = mu + tau z: Var = 2^2 + E[tau^2] = 4 + 1; y adds sigma^2; Cov(y_i, y_j) = Var(mu)
    assert_mean_close(draws["tau"], np.sqrt(2 / np.pi))
    assert_mean_close(draws["theta"], 1.0)
    assert_variance_close(draws["theta"], 1.0, 5.0)
    assert_variance_close(draws["y"], 1.0, 5.0 + SIGMA ** 2)
    assert_mean_close((draws["y"][..., 0] - 1.0) * (draws["y"][..., 2] - 1.0), 4.0)
    assert_variance_close(draws["shifted"], 0.0, 1.0)  # the deterministic: tau z
    with pytest.raises(AssertionError, match="variance"):  # negative control: tau left out
        assert_variance_close(draws["y"], 1.0, 4.0 + SIGMA ** 2)


def test_event_families_draw_a_batch_at_once():
    @exmc.model
    def multivariate():
        corr = exmc.LKJCorrCholesky(2.0, n=3)
        scale = exmc.Exponential(1.0, shape=3)
        chol = exmc.Deterministic((corr.T * scale).T)
        x = exmc.MvNormal(np.zeros(3), chol=chol)
        w = exmc.Dirichlet(np.array([1.0, 2.0, 3.0]))
        v = exmc.MvNormal(np.ones((2, 3)), cov=np.eye(3) + 0.5)

    draws = _one_chain(forward_draws(multivariate(), 20_000, np.random.default_rng(2)))
    assert draws["x"].shape == (1, 20_000, 3) and draws["v"].shape == (1, 20_000, 2, 3)
    # E[x_i^2] = E[scale_i^2] = 2; LKJ(2) in 3 dimensions: Var(r_ij) = 1 / (2 eta + n - 1)
    assert_variance_close(draws["x"], 0.0, 2.0)
    assert_variance_close(draws["corr"][..., [1, 2, 2], [0, 0, 1]], 0.0, 1 / 6)
    assert_mean_close(draws["w"], [1 / 6, 2 / 6, 3 / 6])
    assert_variance_close(draws["v"], 1.0, 1.5)
    with pytest.raises(AssertionError):  # negative control: the LKJ(1) variance
        assert_variance_close(draws["corr"][..., [1, 2, 2], [0, 0, 1]], 0.0, 1 / 4)


def test_given_values_are_used_and_their_parents_not_drawn():
    model = hierarchical(SIGMA)
    given = {"theta": np.tile([0.0, 10.0, 20.0], (4, 1))}
    draws = forward_draws(model, 4, np.random.default_rng(3), given=given, wanted=["y"])
    assert set(draws) == {"y"} and np.all(np.abs(draws["y"] - given["theta"]) < 20)


def test_custom_density_cannot_be_drawn():
    model = exmc.Builder().rv("x", exmc.Custom(logp=-exmc.value ** 2)).obs(
        "y", exmc.Normal("x", 1.0), np.zeros(2))
    with pytest.raises(ModelError, match="'x': Custom has no random-draw function"):
        forward_draws(model, 3, np.random.default_rng(0))
