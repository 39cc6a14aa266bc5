"""The stiff ODE method (``ode_solve(method="sdirk4")``, also spelt "bdf"): values, gradients, cost.

Values against ``scipy.integrate.solve_ivp`` (Radau, tight tolerances) on Robertson's
chemical kinetics and a Van der Pol oscillator with mu = 1000 (both stiff) and on
Lotka-Volterra (not stiff); gradients of the compiled density against finite
differences of the computed solution in y0 and the parameters, with a negative
control; the step counts of RK45 and SDIRK4 on Robertson; the coefficients' order
conditions; the NumPy evaluation; serialisation (old payloads still read); errors; and
a short sampling run of examples/robertson.py against quadrature.
"""
from pathlib import Path

import msgpack
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import exmc
from exmc import math as em
from exmc import ref
from exmc.compiler import compile_model
from exmc.ir import recursion
from exmc.ir.evaluate import evaluate
from exmc.ir.serialize import structure_hash, to_data
from tests.stats import assert_mean_close

RATES = np.array([0.04, 3e7, 1e4])  # Robertson (1966)
TIMES = np.array([0.1, 1.0, 1.0, 10.0, 100.0, 1000.0])
WEIGHTS = np.linspace(-1, 1, 3 * len(TIMES)).reshape(len(TIMES), 3) * np.array([1.0, 1e4, 1.0])


def robertson_numpy(t, y, k=RATES):
    return np.array([-k[0] * y[0] + k[2] * y[1] * y[2],
                     k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] ** 2, k[1] * y[1] ** 2])


def robertson_rhs(t, y, k):
    return em.stack([-k[0] * y[0] + k[2] * y[1] * y[2],
                     k[0] * y[0] - k[2] * y[1] * y[2] - k[1] * y[1] * y[1], k[1] * y[1] * y[1]])


def robertson(method="bdf", rtol=1e-6):
    """log rates and the initial amount of the first species are parameters; the
    potential is a fixed weighted sum of the solution (y2 is ~1e-5, so weighted up)."""
    y = em.ode_solve(robertson_rhs, em.stack([ref("a"), 0.0, 0.0]), TIMES,
                     params=[em.exp(ref("log_k"))], method=method, rtol=rtol, atol=rtol * 1e-4,
                     max_steps=2000)
    return (exmc.Builder().rv("log_k", exmc.Normal(0.0, 1.0, shape=3)).rv("a", exmc.Normal(1.0, 1.0))
            .det("y", y).potential("u", em.sum(WEIGHTS * y)))


POINT = np.concatenate([np.log(RATES), [1.0]])


@pytest.fixture(scope="module")
def stiff_model():
    return compile_model(robertson())


def finite_differences(cm, z, step=1e-6):
    return np.array([(cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / (2 * step)
                     for e in np.eye(cm.dim) * step])


def radau(fun, y0, times, tol, jac=None):
    unique = np.unique(times)
    out = solve_ivp(fun, (0.0, unique[-1]), y0, method="Radau", t_eval=unique, rtol=tol,
                    atol=tol * 1e-4, jac=jac)
    assert out.success
    return out.y.T[np.searchsorted(unique, times)]


def test_robertson_matches_radau_and_the_numpy_evaluation(stiff_model):
    solution = stiff_model.constrain(POINT[None])["y"][0]
    exact = radau(robertson_numpy, [1.0, 0.0, 0.0], TIMES, 1e-10)
    np.testing.assert_allclose(solution, exact, rtol=1e-5, atol=1e-13)  # the solve's rtol: 1e-6
    numpy_value = evaluate(stiff_model.model["y"].expr, {"log_k": POINT[:3], "a": 1.0})
    np.testing.assert_allclose(solution, numpy_value, rtol=1e-10, atol=1e-16)


def test_robertson_gradient_matches_finite_differences_in_y0_and_the_rates(stiff_model):
    logp, grad, status = stiff_model.logp_and_grad(POINT)
    assert status == 0
    np.testing.assert_allclose(grad, finite_differences(stiff_model, POINT), rtol=1e-5, atol=1e-6)
    wrong = grad.copy()  # negative control: 1e-3 off in one element is seen
    wrong[3] *= 1.001
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(wrong, finite_differences(stiff_model, POINT), rtol=1e-5, atol=1e-6)


def test_rk45_needs_many_more_steps_than_sdirk4_on_robertson():
    """Step attempts to t = 10 (the NumPy twins run the compiled code's algorithm)."""
    times, tol = np.array([0.1, 1.0, 10.0]), 1e-6
    # the first trial steps (a hundredth of the span) overflow and are rejected
    with np.errstate(all="ignore"):
        rk45, rk_attempts = recursion.dp45_solve(robertson_numpy, [1.0, 0.0, 0.0], 0.0, times,
                                                 tol, tol * 1e-4, 100_000)
        stiff, sd_attempts = recursion.sdirk4_solve(robertson_numpy, [1.0, 0.0, 0.0], 0.0, times,
                                                    tol, tol * 1e-4, 100_000)
    exact = radau(robertson_numpy, [1.0, 0.0, 0.0], times, 1e-12)
    np.testing.assert_allclose(stiff, exact, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(rk45, exact, rtol=1e-4, atol=1e-12)
    print(f"step attempts to t=10 at rtol 1e-6: rk45 {rk_attempts}, sdirk4 {sd_attempts}")
    assert rk_attempts > 50 * sd_attempts


def test_van_der_pol_mu_1000_matches_radau():
    mu, times = 1000.0, np.array([200.0, 800.0, 1500.0])

    def vdp(t, y):
        return np.array([y[1], mu * (1.0 - y[0] ** 2) * y[1] - y[0]])

    def jac(t, y):
        return np.array([[0.0, 1.0], [-2.0 * mu * y[0] * y[1] - 1.0, mu * (1.0 - y[0] ** 2)]])

    exact = radau(vdp, [2.0, 0.0], times, 1e-10, jac)
    model = em.ode_solve(lambda t, y: em.stack([y[1], mu * (1.0 - y[0] * y[0]) * y[1] - y[0]]),
                         np.array([2.0, 0.0]), times, method="sdirk4", rtol=1e-7, atol=1e-7)
    # position to 1e-4 relative, velocity (1e-3 on the slow manifold) to 1e-8 absolute
    np.testing.assert_allclose(evaluate(model, {}), exact, rtol=1e-4, atol=1e-8)


def lotka_volterra(method):
    def rhs(t, z, theta):
        return em.stack([(theta[0] - theta[1] * z[1]) * z[0], (-theta[2] + theta[3] * z[0]) * z[1]])
    z = em.ode_solve(rhs, em.exp(ref("log_z0")), np.array([0.5, 1.0, 2.5, 4.0]),
                     params=[em.exp(ref("log_theta"))], method=method, rtol=1e-10, atol=1e-10)
    return (exmc.Builder().rv("log_theta", exmc.Normal(0.0, 1.0, shape=4))
            .rv("log_z0", exmc.Normal(0.0, 1.0, shape=2)).det("z", z)
            .potential("u", em.sum(np.linspace(-1, 1, 8).reshape(4, 2) * z)))


def test_a_non_stiff_system_matches_dop853():
    z = np.log([0.55, 0.03, 0.8, 0.024, 34.0, 6.0])
    theta, z0 = np.exp(z[:4]), np.exp(z[4:])
    exact = solve_ivp(lambda t, u: [(theta[0] - theta[1] * u[1]) * u[0],
                                    (-theta[2] + theta[3] * u[0]) * u[1]],
                      (0.0, 4.0), z0, t_eval=[0.5, 1.0, 2.5, 4.0], method="DOP853", rtol=1e-13,
                      atol=1e-13).y.T
    got = evaluate(lotka_volterra("sdirk4")["z"].expr, {"log_theta": z[:4], "log_z0": z[4:]})
    np.testing.assert_allclose(got, exact, rtol=1e-8)


def test_sdirk4_coefficients_satisfy_the_order_conditions():
    """Order 4 for B (A's last row), order 3 for the embedded B_hat; gamma on the diagonal."""
    n = recursion.SD_STAGES
    a = np.zeros((n, n))
    for s, row in enumerate(recursion.SD_A):
        a[s, :len(row)] = row
    b, bh, c = a[-1], np.array(recursion.SD_B_HAT), np.array(recursion.SD_C)
    np.testing.assert_allclose(a.sum(axis=1), c, atol=1e-15)
    np.testing.assert_allclose(np.diag(a), recursion.SD_GAMMA)
    for w, order in ((b, 4), (bh, 3)):
        conditions = [(w.sum(), 1), (w @ c, 1 / 2), (w @ c**2, 1 / 3), (w @ a @ c, 1 / 6)]
        if order == 4:
            conditions += [(w @ c**3, 1 / 4), (w @ (c * (a @ c)), 1 / 8), (w @ a @ c**2, 1 / 12),
                           (w @ a @ a @ c, 1 / 24)]
        for got, want in conditions:
            assert got == pytest.approx(want, abs=1e-13)
    assert abs(b @ a @ a @ c - 1 / 24) < 1e-13 and abs(bh @ c**3 - 1 / 4) > 1e-3  # bh is order 3


def test_the_method_round_trips_and_old_payloads_read_as_rk45():
    model = robertson("bdf")
    assert model["y"].expr.value.method == "sdirk4"
    back = exmc.Model.from_msgpack(model.to_msgpack())
    assert back == model and back["y"].expr.value.method == "sdirk4"
    assert structure_hash(robertson("sdirk4")) != structure_hash(robertson("rk45"))
    old = to_data(robertson("rk45"))  # rk45 writes the 4 fields older versions wrote
    row = next(r for r in old["variables"][2]["nodes"] if r[0] == "ode_solve")
    assert len(row[1]) == 4
    assert exmc.Model.from_msgpack(msgpack.packb(old, use_bin_type=True))["y"].expr.value.method == "rk45"
    row[1].append("euler")
    with pytest.raises(exmc.ir.serialize.SchemaError, match="unknown method"):
        exmc.Model.from_msgpack(msgpack.packb(old, use_bin_type=True))


def test_too_many_steps_fails_the_density():
    decay = em.ode_solve(lambda t, u: -u * 50.0, em.exp(ref("a")) * np.ones(2), np.array([1e3]),
                         method="bdf", max_steps=5)
    cm = compile_model(exmc.Builder().rv("a", exmc.Normal(0, 1)).potential("u", em.sum(decay)))
    assert cm.logp_and_grad(np.zeros(1))[2] == 1


def test_a_stiff_posterior_matches_quadrature():
    """examples/robertson.py's model (the slow rate of Robertson's kinetics from noisy data),
    sampled short, against the posterior mean by quadrature of the compiled density.
    Negative control: the reference shifted by 8 sd / sqrt(200) (8 of this run's MCSE
    at its minimum ESS of 200) fails."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    try:
        import robertson as example
    finally:
        sys.path.pop(0)
    built = example.model(example.simulate())
    mean, sd = example.grid_reference(compile_model(built))
    idata = exmc.sample(built, num_samples=500, num_warmup=300, chains=2, seed=5, progressbar=False)
    draws = idata.posterior["log_k1"].values[..., None]
    assert_mean_close(draws, [mean], min_ess=200)
    with pytest.raises(AssertionError):
        assert_mean_close(draws, [mean + 8 * sd / np.sqrt(200)], min_ess=200)


def test_a_stiff_ode_in_a_large_model_has_the_same_gradient():
    """Over LARGE_MODEL_NODES nodes the emitter keeps scalars in the work buffer and writes chunks."""
    builder = exmc.Builder()
    for k in range(150):
        builder.rv(f"x{k}", exmc.Normal(0.0 if k == 0 else ref(f"x{k - 1}"), 1.0))
    y = em.ode_solve(lambda t, y, k: em.stack([y[1], -k * y[0] - 30.0 * y[1]]),
                     em.stack([ref("x1"), ref("x2")]), np.array([0.4, 1.3]),
                     params=[em.exp(ref("x3"))], method="bdf", rtol=1e-8, atol=1e-8)
    builder.potential("p", em.sum(y * np.array([[1.0, 2.0], [0.5, -1.0]])))
    from exmc.compiler.lower import LARGE_MODEL_NODES, lower_model
    assert len(lower_model(builder).nodes) > LARGE_MODEL_NODES
    cm = compile_model(builder)
    z = np.random.default_rng(3).normal(size=cm.dim) * 0.5
    np.testing.assert_allclose(cm.logp_and_grad(z)[1], finite_differences(cm, z), rtol=1e-6, atol=1e-6)


CUDA_CHILD = """
import sys
import numpy as np
sys.path.insert(0, {root!r})
import exmc
from exmc import math as em, ref
from exmc.compiler import compile_model
y = em.ode_solve(lambda t, y, k: em.stack([y[1], -k * y[0] - 30.0 * y[1] + t * ref("b")[1]]),
                 ref("b"), np.array([0.0, 0.4, 1.3]), params=[em.exp(ref("v"))], method="sdirk4")
model = (exmc.Builder().rv("b", exmc.Normal(0, 1, shape=2)).rv("v", exmc.Normal(0, 1))
         .potential("u", em.sum(y * np.array([[1.0, 2.0], [0.5, -1.0], [0.3, 0.7]]))))
cpu, gpu = compile_model(model), compile_model(model, target="cuda")
points = 0.5 * np.random.default_rng(0).normal(size=(2, cpu.dim))
logps, grads, statuses = gpu.logp_and_grad(points)
worst = 0.0
for k, z in enumerate(points):
    logp, grad, status = cpu.logp_and_grad(z)
    assert status == statuses[k] == 0
    worst = max(worst, abs(logps[k] - logp) / max(abs(logp), 1.0),
                float(np.max(np.abs(grads[k] - grad) / np.maximum(np.abs(grad), 1.0))))
print(worst)
"""


def test_the_cuda_build_equals_the_cpu_on_numbas_simulator():
    import os
    import subprocess
    import sys
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    script = CUDA_CHILD.format(root=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-10


def test_robertson_over_ten_decades_of_time():
    """To t = 1e10 (y2 falls to ~1e-15): a few hundred attempts, matching Radau.  A Jacobian
    step sized by max(|y|, 1) instead of atol / rtol made this take over 50,000."""
    times = np.array([1e-3, 1.0, 1e2, 1e4, 1e6, 1e8, 1e10])
    with np.errstate(all="ignore"):
        stiff, attempts = recursion.sdirk4_solve(robertson_numpy, [1.0, 0.0, 0.0], 0.0, times,
                                                 1e-6, 1e-14, 10_000)
    exact = radau(robertson_numpy, [1.0, 0.0, 0.0], times, 1e-10)
    np.testing.assert_allclose(stiff, exact, rtol=1e-4, atol=1e-14)
    assert attempts < 1000
