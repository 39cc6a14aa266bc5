"""Recursions (``exmc.math.scan``) and ODE solutions (``exmc.math.ode_solve``): values, gradients, data, errors.

Each op's value against NumPy and its gradient against finite differences on
several cases is in ``test_ops.py`` (its table is the registry); here: the
compiled recursion against a plain Python loop, the HMM forward algorithm
against a direct computation, the ODE against ``scipy.integrate.solve_ivp`` and
by finite differences on Lotka-Volterra, serialisation, the DSL, clear errors,
and one short sampling run against posteriordb's reference posterior.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import special
from scipy.integrate import solve_ivp

import exmc
from exmc import math as em
from exmc import ref
from exmc.compiler import compile_model
from exmc.ir.builder import ModelError
from exmc.ir.evaluate import evaluate
from exmc.ir.serialize import SchemaError, structure_hash
from tests.stats import assert_mean_close

ROOT = Path(__file__).resolve().parent.parent.parent
RNG = np.random.default_rng(7)
Y = RNG.normal(size=30).cumsum() * 0.3
TIMES = np.array([0.5, 1.0, 1.0, 2.5, 4.0])


def arma_errors(y, mu, phi, theta):
    err, out = 0.0, []
    for t in range(len(y)):
        err = y[t] - (mu + phi * (y[t - 1] if t else mu) + theta * err)
        out.append(err)
    return np.array(out)


def arma_model(y):
    mu, phi, theta = ref("mu"), ref("phi"), ref("theta")
    err = em.scan(lambda e, y_t, y_prev: y_t - (mu + phi * y_prev + theta * e), 0.0,
                  sequences=[y, em.concatenate([em.stack([mu]), y[:-1]])])
    return (exmc.Builder().rv("mu", exmc.Normal(0.0, 10.0)).rv("phi", exmc.Normal(0.0, 2.0))
            .rv("theta", exmc.Normal(0.0, 2.0)).rv("sigma", exmc.HalfCauchy(2.5))
            .det("err", err).obs("y", exmc.Normal(y - err, ref("sigma")), y))


def lotka_volterra(rtol=1e-10):
    def rhs(t, z, theta):
        return em.stack([(theta[0] - theta[1] * z[1]) * z[0], (-theta[2] + theta[3] * z[0]) * z[1]])
    z = em.ode_solve(rhs, em.exp(ref("log_z0")), TIMES, params=[em.exp(ref("log_theta"))],
                     rtol=rtol, atol=rtol)
    return (exmc.Builder().rv("log_theta", exmc.Normal(0.0, 1.0, shape=4))
            .rv("log_z0", exmc.Normal(0.0, 1.0, shape=2)).det("z", z)
            .rv("s", exmc.Custom(logp=em.sum(np.linspace(-1, 1, 10).reshape(5, 2) * z)
                                 + 0.0 * exmc.value)))


def finite_differences(cm, z, step=1e-6):
    return np.array([(cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / (2 * step)
                     for e in np.eye(cm.dim) * step])


def test_compiled_scan_equals_a_python_loop_and_its_gradient_finite_differences():
    cm = compile_model(arma_model(Y))
    z = np.array([0.1, 0.8, -0.3, np.log(0.5)])
    out = cm.constrain(z[None])
    np.testing.assert_allclose(out["err"][0], arma_errors(Y, 0.1, 0.8, -0.3), rtol=1e-12, atol=1e-12)
    logp, grad, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(grad, finite_differences(cm, z), rtol=1e-6, atol=1e-6)


def test_a_scan_inside_a_scan_closing_over_the_outer_state():
    """The inner body uses the outer state (hoisted into an inner non-sequence) and a variable."""
    a, rows = ref("a"), RNG.normal(size=(4, 3))

    def outer(s, row):
        inner = em.scan(lambda c, x: 0.5 * c + em.tanh(x * a) + s[0] * 0.1, s[1], sequences=[row])
        return em.stack([inner[-1], s[0] * a])

    out = em.scan(outer, em.stack([a, 1.0]), sequences=[rows])
    cm = compile_model(exmc.Builder().rv("a", exmc.Normal(0, 1)).det("out", out)
                       .potential("p", -0.1 * em.sum(out * out)))
    state, value = np.array([0.3, 1.0]), []
    for row in rows:
        c = state[1]
        for x in row:
            c = 0.5 * c + np.tanh(x * 0.3) + state[0] * 0.1
        state = np.array([c, state[0] * 0.3])
        value.append(state)
    np.testing.assert_allclose(cm.constrain(np.array([[0.3]]))["out"][0], value, rtol=1e-12)
    z = np.array([0.3])
    np.testing.assert_allclose(cm.logp_and_grad(z)[1], finite_differences(cm, z), rtol=1e-6)


def test_a_scan_in_a_large_model_is_emitted_in_chunks_with_the_same_gradient():
    """Over 400 nodes the emitter keeps scalars in the work buffer and writes chunks."""
    builder = exmc.Builder()
    for k in range(150):
        builder.rv(f"x{k}", exmc.Normal(0.0 if k == 0 else ref(f"x{k - 1}"), 1.0))
    err = em.scan(lambda e, y, p: y - p * e, 0.0, sequences=[Y[:20]],
                  non_sequences=[em.tanh(ref("x3"))])
    builder.det("err", err).potential("p", -0.5 * em.sum(err * err))
    from exmc.compiler.lower import LARGE_MODEL_NODES, lower_model
    assert len(lower_model(builder).nodes) > LARGE_MODEL_NODES
    cm = compile_model(builder)
    z = RNG.normal(size=cm.dim) * 0.5
    np.testing.assert_allclose(cm.logp_and_grad(z)[1], finite_differences(cm, z), rtol=1e-6, atol=1e-6)


def test_hmm_forward_algorithm_equals_the_likelihood_summed_over_paths():
    """logsumexp of the log-semiring recursion = log sum over all 4^5 state paths."""
    y = RNG.normal(size=5)
    mu = np.array([-1.0, 0.0, 1.0, 2.0])
    log_a = np.log(special.softmax(RNG.normal(size=(4, 4)), axis=1))
    emission = -0.5 * (y[:, None] - mu) ** 2
    alpha = em.scan(lambda a, e_t, la: em.logsumexp(a + la.T, axis=1) + e_t, emission[0],
                    sequences=[emission[1:]], non_sequences=[ref("log_a")])
    forward = float(evaluate(em.logsumexp(alpha[-1]), {"log_a": log_a}))
    paths = np.stack(np.meshgrid(*[np.arange(4)] * 5, indexing="ij"), -1).reshape(-1, 5)
    terms = emission[np.arange(5), paths].sum(1) + log_a[paths[:, :-1], paths[:, 1:]].sum(1)
    assert forward == pytest.approx(special.logsumexp(terms), rel=1e-12)


def test_ode_solution_matches_solve_ivp_and_its_gradient_finite_differences():
    cm = compile_model(lotka_volterra())
    z = np.array([np.log(0.55), np.log(0.03), np.log(0.8), np.log(0.024), np.log(34.0), np.log(6.0), 0.0])
    theta, z0 = np.exp(z[:4]), np.exp(z[4:6])
    exact = solve_ivp(lambda t, u: [(theta[0] - theta[1] * u[1]) * u[0],
                                    (-theta[2] + theta[3] * u[0]) * u[1]],
                      (0.0, TIMES[-1]), z0, t_eval=np.unique(TIMES), method="DOP853", rtol=1e-13,
                      atol=1e-13)
    solution = cm.constrain(z[None])["z"][0]  # a repeated time gets the same row twice
    np.testing.assert_allclose(solution, exact.y.T[np.searchsorted(np.unique(TIMES), TIMES)], rtol=1e-8)
    values = {"log_theta": z[:4], "log_z0": z[4:6]}
    np.testing.assert_allclose(solution, evaluate(cm.model["z"].expr, values), rtol=1e-12)
    logp, grad, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(grad, finite_differences(cm, z, 1e-5), rtol=1e-5, atol=1e-5)


def test_ode_gradient_matches_forward_sensitivities_from_solve_ivp():
    """An independent check: the variational equations dS/dt = J_y S + J_p integrated by scipy."""
    cm = compile_model(lotka_volterra())
    z = np.array([np.log(0.55), np.log(0.03), np.log(0.8), np.log(0.024), np.log(34.0), np.log(6.0), 0.0])
    a, b, c, d = np.exp(z[:4])

    def augmented(t, state):
        (u, v), sens = state[:2], state[2:].reshape(2, 6)  # d(u, v) / d(a, b, c, d, u0, v0)
        jac_y = np.array([[a - b * v, -b * u], [d * v, -c + d * u]])
        jac_p = np.array([[u, -u * v, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -v, u * v, 0.0, 0.0]])
        return np.concatenate([[(a - b * v) * u, (-c + d * u) * v], (jac_y @ sens + jac_p).ravel()])

    start = np.concatenate([np.exp(z[4:6]), np.hstack([np.zeros((2, 4)), np.eye(2)]).ravel()])
    solved = solve_ivp(augmented, (0.0, TIMES[-1]), start, t_eval=np.unique(TIMES), method="DOP853",
                       rtol=1e-12, atol=1e-12).y.T[np.searchsorted(np.unique(TIMES), TIMES)]
    weights = np.linspace(-1, 1, 10).reshape(5, 2)
    sens = solved[:, 2:].reshape(len(TIMES), 2, 6)
    expected = np.einsum("tk,tkp->p", weights, sens) * np.exp(z[:6]) - z[:6]  # log scale, N(0, 1) priors
    np.testing.assert_allclose(cm.logp_and_grad(z)[1][:6], expected, rtol=1e-7)


def test_a_wrong_ode_gradient_fails_the_same_check():
    """Negative control: the finite-difference check sees a gradient off by 1e-3 in one element."""
    cm = compile_model(lotka_volterra())
    z = np.array([np.log(0.55), np.log(0.03), np.log(0.8), np.log(0.024), np.log(34.0), np.log(6.0), 0.0])
    grad = cm.logp_and_grad(z)[1]
    grad[1] *= 1.001
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(grad, finite_differences(cm, z, 1e-5), rtol=1e-5, atol=1e-5)


def test_too_many_steps_is_a_domain_status_not_a_hang():
    """A stiff decay needs about 150 explicit steps; with max_steps=20 the density fails (status 1)."""
    decay = em.ode_solve(lambda t, u: -u * 50.0, em.exp(ref("a")) * np.ones(2), np.array([10.0]),
                         max_steps=20)
    cm = compile_model(exmc.Builder().rv("a", exmc.Normal(0, 1)).potential("u", em.sum(decay)))
    assert cm.logp_and_grad(np.zeros(1))[2] == 1


def test_models_with_recursions_round_trip_through_msgpack():
    model = lotka_volterra(1e-6).det("err", arma_model(Y)["err"].expr)
    model.rv("mu", exmc.Normal(0.0, 1.0)).rv("phi", exmc.Normal(0.0, 1.0)).rv("theta", exmc.Normal(0, 1))
    back = exmc.Model.from_msgpack(model.to_msgpack())
    assert back == model and back.shapes()["z"] == (5, 2) and back.shapes()["err"] == (30,)
    values = {"log_theta": np.zeros(4), "log_z0": np.zeros(2), "mu": 0.1, "phi": 0.5, "theta": 0.2}
    for name in ("z", "err"):
        np.testing.assert_array_equal(evaluate(back[name].expr, values),
                                      evaluate(model[name].expr, values))
    # data values are not structure; tolerances (baked into the code) are
    assert structure_hash(lotka_volterra(1e-6)) == structure_hash(lotka_volterra(1e-6))
    assert structure_hash(lotka_volterra(1e-6)) != structure_hash(lotka_volterra(1e-7))


def test_a_body_that_points_forward_or_refers_to_a_variable_is_refused():
    good = exmc.Builder().rv("a", exmc.Normal(0, 1)).det("s", em.scan(lambda s: s * ref("a"), 1.0,
                                                                        n_steps=3))
    payload = good.to_msgpack()
    data = exmc.ir.serialize.to_data(good)
    rows = data["variables"][1]["nodes"]
    scan_row = next(r for r in rows if r[0] == "scan")
    scan_row[1][2] = len(rows)  # the body index past the table
    import msgpack
    with pytest.raises(SchemaError, match="body must be an earlier node"):
        exmc.Model.from_msgpack(msgpack.packb(data, use_bin_type=True))
    inner = exmc.ir.expr.Expr("scan", (exmc.ir.expr.constant(1.0),),
                              exmc.ir.recursion.Recursion(ref("a") * 2.0, 0, 3))
    with pytest.raises(ModelError, match="arguments and constants only"):
        exmc.Builder().rv("a", exmc.Normal(0, 1)).det("s", inner).validate()
    assert exmc.Model.from_msgpack(payload) == good


@pytest.mark.parametrize("build, message", [
    (lambda: em.scan(lambda s, x: em.stack([s, x]), 0.0, sequences=[np.ones(3)]),
     "returns shape"),
    (lambda: em.scan(lambda s, x, y: s + x + y, 0.0, sequences=[np.ones(3), np.ones(4)]),
     "different lengths"),
    (lambda: em.scan(lambda s: s + 1.0, 0.0), "at least one step"),
    (lambda: em.ode_solve(lambda t, y: y[0], np.ones(2), np.array([1.0])), "returns shape"),
    (lambda: em.ode_solve(lambda t, y: -y, np.ones(2), np.array([2.0, 1.0])), "non-decreasing"),
    (lambda: em.ode_solve(lambda t, y: -y, np.ones(2), ref("a") * np.ones(2)), "must be constants"),
    (lambda: em.ode_solve(lambda t, y: -y * ref("a"), np.ones(2), np.zeros(0)), "at least one output"),
    (lambda: em.ode_solve(lambda t, y: -y * ref("a"), np.ones(2), np.ones(1), max_steps=2**30),
     "would store more than"),
    (lambda: em.scan(lambda s, x: s + em.sum(em.dot(x, x.T) * ref("a")), 0.0,
                     sequences=[np.ones((2, 20000, 1))]), "more than"),
])
def test_bad_recursions_get_clear_errors(build, message):
    model = exmc.Builder().rv("a", exmc.Normal(0, 1)).det("bad", build())
    with pytest.raises((ModelError, ValueError), match=message):
        compile_model(model)


def test_an_unknown_ode_method_names_the_methods():
    with pytest.raises(ValueError, match="'rk45', 'sdirk4', 'bdf'"):
        em.ode_solve(lambda t, y: -y, np.ones(1), np.ones(1), method="lsoda")


def test_the_dsl_writes_the_same_recursion_as_the_builder():
    @exmc.model
    def dsl_arma(y):
        mu, phi, theta = exmc.Normal(0, 10), exmc.Normal(0, 2), exmc.Normal(0, 2)
        sigma = exmc.HalfCauchy(2.5)
        err = exmc.Deterministic(em.scan(lambda e, y_t, y_prev: y_t - (mu + phi * y_prev + theta * e),
                                         0.0, sequences=[y, em.concatenate([em.stack([mu]), y[:-1]])]))
        y_obs = exmc.Normal(y - err, sigma, observed=y)  # noqa: F841

    built, dsl = compile_model(arma_model(Y)), compile_model(dsl_arma(Y))
    z = np.array([0.1, 0.8, -0.3, -0.5])
    assert dsl.logp_and_grad(z)[0] == pytest.approx(built.logp_and_grad(z)[0], rel=1e-12)


def test_arma_posterior_matches_posteriordb_reference():
    """A short run of examples/arma.py's model against posteriordb's Stan reference means.

    Reference MCSE is about 1% of a standard deviation, small beside this run's.
    Negative control: reference means shifted by 8 sd / sqrt(200) (at least 8 of this
    run's MCSE, its ESS being over 200) fail.
    """
    entry = json.loads((ROOT / "benchmarks" / "data" / "posteriordb_recursions.json").read_text())
    arma = entry["posteriors"]["arma-arma11"]
    idata = exmc.sample(arma_model(np.asarray(arma["data"]["y"])), num_samples=600, num_warmup=500,
                        chains=2, seed=3, progressbar=False)
    names = ["mu", "phi", "theta", "sigma"]
    draws = np.stack([idata.posterior[n].values for n in names], axis=-1)
    truth = np.array([arma["reference"][n]["mean"] for n in names])
    assert_mean_close(draws, truth, min_ess=200)
    sds = np.array([arma["reference"][n]["sd"] for n in names])
    with pytest.raises(AssertionError):
        assert_mean_close(draws, truth + 8 * sds / np.sqrt(200), min_ess=200)
