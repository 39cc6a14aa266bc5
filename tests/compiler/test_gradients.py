"""Compiled log densities against scipy.stats, and their gradients against finite differences.

Every model here gives its parameters flat priors (``Custom`` with log density
0 on the parameter's support), so the compiled log density on the
unconstrained space is exactly the terms under test plus the log-Jacobians
of the transforms.  The reference values below compute both independently of
``exmc/compiler``: densities with scipy.stats, transforms written out here.

Compiling a model costs about a second (a few when it holds matrices), so
each model is compiled once per session (``functools.cache``) and shared by
its parametrized checks.  Models stay small: Numba's compile time grows
faster than linearly with the size of the generated function.
"""
import functools
from types import SimpleNamespace
from typing import Callable, NamedTuple

import numpy as np
import pytest
from scipy import special, stats

import exmc
from exmc import math as em
from exmc import ref
from exmc.compiler import compile_model
from exmc.compiler.emit import STATUS_DOMAIN

LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


class Var(NamedTuple):
    """A sampled variable's support and shape; a bound may name another variable."""

    lower: object = None
    upper: object = None
    shape: tuple = ()


REAL, POSITIVE, UNIT = Var(), Var(0.0), Var(0.0, 1.0)


def vector(var, size):
    return var._replace(shape=(size,))


def flat(var):
    """A prior with log density 0 on ``var``'s support: only its transform's log-Jacobian counts."""
    return exmc.Custom(logp=0.0 * exmc.value, support=(var.lower, var.upper), shape=var.shape)


# ---- independent references ----------------------------------------------------------------
def to_constrained(z, lower, upper):
    """(x, log|dx/dz|) for the documented transform of each kind of support."""
    if lower is None and upper is None:
        return z, np.zeros_like(z)
    if upper is None:
        return lower + np.exp(z), z
    if lower is None:
        return upper - np.exp(z), z
    s = special.expit(z)
    return lower + (upper - lower) * s, np.log((upper - lower) * s * (1.0 - s))


def to_unconstrained(x, var):
    """z with to_constrained(z) == x, for constant bounds."""
    if var.lower is None and var.upper is None:
        return x
    if var.upper is None:
        return np.log(x - var.lower)
    if var.lower is None:
        return np.log(var.upper - x)
    return special.logit((x - var.lower) / (var.upper - var.lower))


def bound_values(var, values):
    return tuple(values[b] if isinstance(b, str) else b for b in (var.lower, var.upper))


def constrained_point(cm, variables, z):
    """Values of the sampled variables at unconstrained ``z``, and the total log-Jacobian.

    The point map's slots come in declaration order, so a bound naming another
    variable is already known when it is needed.
    """
    values, log_jacobian = {}, 0.0
    for slot in cm.pointmap.free:
        zs = z[slot.offset:slot.offset + slot.size].reshape(slot.shape)
        values[slot.name], log_jac = to_constrained(zs, *bound_values(variables[slot.name], values))
        log_jacobian += np.sum(log_jac)
    return values, log_jacobian


def unconstrained_point(cm, variables, values):
    z = np.empty(cm.dim)
    for slot in cm.pointmap.free:
        x = np.asarray(values[slot.name], dtype=float)
        z[slot.offset:slot.offset + slot.size] = np.ravel(to_unconstrained(x, variables[slot.name]))
    return z


def finite_difference_gradient(logp, z, step=1e-3):
    """Five-point central differences, error of order step**4."""
    grad = np.empty_like(z)
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = step
        near, far = logp(z + e) - logp(z - e), logp(z + 2 * e) - logp(z - 2 * e)
        grad[i] = (8.0 * near - far) / (12 * step)
    return grad


def assert_gradient_matches(logp, grad, z):
    np.testing.assert_allclose(grad, finite_difference_gradient(logp, z), rtol=1e-6, atol=1e-7)


def assert_compiled_gradient(cm, z):
    logp, grad, status = cm.logp_and_grad(z)
    assert status == 0 and np.isfinite(logp)
    assert_gradient_matches(lambda y: cm.logp_and_grad(y)[0], grad, z)


def test_gradient_check_catches_a_relative_error_of_1e_5():
    """Negative control for the checker itself: a gradient off by 1e-5 (relative) fails."""
    z = np.array([0.3, -1.2, 2.0])
    logp = lambda y: np.sum(np.sin(y) * y)  # noqa: E731
    exact = np.cos(z) * z + np.sin(z)
    assert_gradient_matches(logp, exact, z)
    with pytest.raises(AssertionError):
        assert_gradient_matches(logp, exact * (1.0 + 1e-5), z)


# ---- distribution families ---------------------------------------------------------------------
class Family(NamedTuple):
    """One family with all its continuous parameters sampled (flat priors).

    The model is ``params ~ flat``, ``x ~ dist`` (sampled, unless the family is
    discrete) and ``y ~ dist`` observed with ``data``.
    """

    id: str
    dist: Callable  # () -> Distribution whose parameters refer to ``params`` by name
    params: dict  # parameter variable name -> Var
    data: object
    logpdf: Callable  # scipy.stats log density of a value given the parameters, elementwise
    support: Var | None = REAL  # support of the sampled value; None: discrete, observed only


BINOMIAL_N = np.array([5.0, 3.0, 8.0, 2.0])


def random_walk_logpdf(x, mu, sigma, m0, s0):
    return stats.norm.logpdf(x[0], m0, s0) + np.sum(stats.norm.logpdf(np.diff(x), mu, sigma))


FAMILIES = [
    Family("Normal", lambda: exmc.Normal("mu", "sigma"), {"mu": REAL, "sigma": POSITIVE},
           [-0.4, 0.3, 1.2, 2.0], lambda x, mu, sigma: stats.norm.logpdf(x, mu, sigma)),
    Family("Normal-vector-mu", lambda: exmc.Normal("mu", "sigma"),
           {"mu": vector(REAL, 3), "sigma": POSITIVE}, [[-0.4, 0.3, 1.2], [2.0, -1.0, 0.1]],
           lambda x, mu, sigma: stats.norm.logpdf(x, mu, sigma)),
    Family("HalfNormal", lambda: exmc.HalfNormal("sigma"), {"sigma": POSITIVE},
           [0.2, 1.1, 2.5], lambda x, sigma: stats.halfnorm.logpdf(x, scale=sigma), POSITIVE),
    Family("HalfCauchy", lambda: exmc.HalfCauchy("beta"), {"beta": POSITIVE},
           [0.2, 1.1, 4.5], lambda x, beta: stats.halfcauchy.logpdf(x, scale=beta), POSITIVE),
    Family("Exponential", lambda: exmc.Exponential("lam"), {"lam": POSITIVE},
           [0.2, 1.1, 2.5], lambda x, lam: stats.expon.logpdf(x, scale=1.0 / lam), POSITIVE),
    Family("Gamma", lambda: exmc.Gamma("alpha", "beta"), {"alpha": POSITIVE, "beta": POSITIVE},
           [0.2, 1.1, 2.5], lambda x, alpha, beta: stats.gamma.logpdf(x, alpha, scale=1.0 / beta),
           POSITIVE),
    Family("InverseGamma", lambda: exmc.InverseGamma("alpha", "beta"),
           {"alpha": POSITIVE, "beta": POSITIVE}, [0.2, 1.1, 2.5],
           lambda x, alpha, beta: stats.invgamma.logpdf(x, alpha, scale=beta), POSITIVE),
    Family("InverseGamma-vector-beta", lambda: exmc.InverseGamma("alpha", "beta"),
           {"alpha": POSITIVE, "beta": vector(POSITIVE, 4)}, [0.2, 1.1, 2.5, 0.7],
           lambda x, alpha, beta: stats.invgamma.logpdf(x, alpha, scale=beta), POSITIVE),
    Family("Beta", lambda: exmc.Beta("alpha", "beta"), {"alpha": POSITIVE, "beta": POSITIVE},
           [0.1, 0.45, 0.9], lambda x, alpha, beta: stats.beta.logpdf(x, alpha, beta), UNIT),
    # Bounds kept apart from the data whatever the point: lower < -1 <= data <= 1.5 < upper.
    Family("Uniform", lambda: exmc.Uniform("lower", "upper"),
           {"lower": Var(None, -1.0), "upper": Var(1.5)}, [-1.0, 0.2, 1.5],
           lambda x, lower, upper: stats.uniform.logpdf(x, lower, upper - lower),
           Var("lower", "upper")),
    Family("StudentT", lambda: exmc.StudentT("nu", "mu", "sigma"),
           {"nu": POSITIVE, "mu": REAL, "sigma": POSITIVE}, [-2.5, 0.3, 1.2, 6.0],
           lambda x, nu, mu, sigma: stats.t.logpdf(x, nu, mu, sigma)),
    Family("StudentT-vector-mu-sigma", lambda: exmc.StudentT("nu", "mu", "sigma"),
           {"nu": POSITIVE, "mu": vector(REAL, 3), "sigma": vector(POSITIVE, 3)},
           [-2.5, 0.3, 6.0], lambda x, nu, mu, sigma: stats.t.logpdf(x, nu, mu, sigma)),
    Family("Cauchy", lambda: exmc.Cauchy("alpha", "beta"), {"alpha": REAL, "beta": POSITIVE},
           [-2.5, 0.3, 1.2, 6.0], lambda x, alpha, beta: stats.cauchy.logpdf(x, alpha, beta)),
    Family("LogNormal", lambda: exmc.LogNormal("mu", "sigma"), {"mu": REAL, "sigma": POSITIVE},
           [0.2, 1.1, 2.5], lambda x, mu, sigma: stats.lognorm.logpdf(x, sigma, scale=np.exp(mu)),
           POSITIVE),
    Family("Laplace", lambda: exmc.Laplace("mu", "b"), {"mu": REAL, "b": POSITIVE},
           [-2.5, 0.3, 1.2, 6.0], lambda x, mu, b: stats.laplace.logpdf(x, mu, b)),
    Family("Bernoulli-p", lambda: exmc.Bernoulli(p="p"), {"p": UNIT}, [0.0, 1.0, 1.0, 0.0, 1.0],
           lambda x, p: stats.bernoulli.logpmf(x, p), None),
    Family("Bernoulli-vector-logit_p", lambda: exmc.Bernoulli(logit_p="logit_p"),
           {"logit_p": vector(REAL, 5)}, [0.0, 1.0, 1.0, 0.0, 1.0],
           lambda x, logit_p: stats.bernoulli.logpmf(x, special.expit(logit_p)), None),
    Family("Binomial-p", lambda: exmc.Binomial(BINOMIAL_N, p="p"), {"p": UNIT},
           [2.0, 0.0, 8.0, 1.0], lambda x, p: stats.binom.logpmf(x, BINOMIAL_N, p), None),
    Family("Binomial-logit_p", lambda: exmc.Binomial(10.0, logit_p="logit_p"), {"logit_p": REAL},
           [2.0, 0.0, 10.0, 7.0],
           lambda x, logit_p: stats.binom.logpmf(x, 10, special.expit(logit_p)), None),
    Family("Poisson", lambda: exmc.Poisson("mu"), {"mu": POSITIVE}, [0.0, 3.0, 1.0, 7.0],
           lambda x, mu: stats.poisson.logpmf(x, mu), None),
    Family("GaussianRandomWalk",
           lambda: exmc.GaussianRandomWalk("mu", "sigma", init=exmc.Normal("m0", "s0"), shape=5),
           {"mu": REAL, "sigma": POSITIVE, "m0": REAL, "s0": POSITIVE},
           [0.1, -0.5, 0.4, 1.3, 0.9], random_walk_logpdf),
    Family("Custom", lambda: exmc.Custom(
               logp=-0.5 * ((exmc.value - ref("mu")) / ref("sigma")) ** 2 - em.log(ref("sigma"))),
           {"mu": REAL, "sigma": POSITIVE}, [-0.4, 0.3, 1.2, 2.0],
           lambda x, mu, sigma: stats.norm.logpdf(x, mu, sigma) + LOG_SQRT_2PI),
]
FAMILY_BY_ID = {case.id: case for case in FAMILIES}


def family_variables(case):
    return {**case.params, **({} if case.support is None else {"x": case.support})}


@functools.cache
def compiled_family(case_id):
    case = FAMILY_BY_ID[case_id]
    model = exmc.Builder()
    for name, var in case.params.items():
        model.rv(name, flat(var))
    if case.support is not None:
        model.rv("x", case.dist())
    model.obs("y", case.dist(), case.data)
    return compile_model(model)


def family_point(case, seed):
    cm = compiled_family(case.id)
    z = 0.6 * np.random.default_rng(seed).standard_normal(cm.dim)
    return cm, z


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", FAMILIES, ids=lambda case: case.id)
def test_family_log_density_matches_scipy(case, seed):
    cm, z = family_point(case, seed)
    values, log_jacobian = constrained_point(cm, family_variables(case), z)
    params = {name: values[name] for name in case.params}
    expected = log_jacobian + np.sum(case.logpdf(np.asarray(case.data, dtype=float), **params))
    if case.support is not None:
        expected += np.sum(case.logpdf(values["x"], **params))
    logp, _, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(logp, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", FAMILIES, ids=lambda case: case.id)
def test_family_gradient_matches_finite_differences(case, seed):
    cm, z = family_point(case, seed)
    assert_compiled_gradient(cm, z)


# ---- transforms ----------------------------------------------------------------------------------
# Variable "t" has density exp(-(t - 0.4)**2 / 2) on its support; the others are flat.
TRANSFORMS = {
    "positive": {"t": POSITIVE},
    "lower-bound": {"t": Var(-2.0)},
    "upper-bound": {"t": Var(None, 3.0)},
    "interval": {"t": Var(-2.0, 3.0, (3,))},
    "unit-interval": {"t": UNIT},
    "lower-bound-variable": {"lo": REAL, "t": Var("lo")},
    "upper-bound-variable": {"hi": REAL, "t": Var(None, "hi", (2,))},
    "interval-variables": {"lo": REAL, "hi": Var("lo"), "t": Var("lo", "hi")},
    "interval-vector-variable-lower": {"lo": Var(None, 0.0, (3,)), "t": Var("lo", 4.0, (3,))},
}


@functools.cache
def compiled_transform(case_id):
    model = exmc.Builder()
    for name, var in TRANSFORMS[case_id].items():
        if name == "t":
            model.rv(name, exmc.Custom(logp=-0.5 * (exmc.value - 0.4) ** 2,
                                       support=(var.lower, var.upper), shape=var.shape))
        else:
            model.rv(name, flat(var))
    return compile_model(model)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case_id", list(TRANSFORMS))
def test_transform_log_density_gradient_and_constrained_values(case_id, seed):
    variables = TRANSFORMS[case_id]
    cm = compiled_transform(case_id)
    z = 1.5 * np.random.default_rng(seed).standard_normal(cm.dim)
    values, log_jacobian = constrained_point(cm, variables, z)
    logp, _, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(logp, log_jacobian - 0.5 * np.sum((values["t"] - 0.4) ** 2),
                               rtol=1e-10, atol=1e-10)
    assert_compiled_gradient(cm, z)
    constrained = cm.constrain(z)
    for name, value in values.items():
        np.testing.assert_allclose(constrained[name][0], value, rtol=1e-12, atol=1e-12)


# ---- expression operators ------------------------------------------------------------------------
# An operator case is a function of the variables ``s`` and the math module ``m``: called with
# exmc references and exmc.math it builds the expression, called with the values and numpy it
# computes the reference.
VARIABLES = {"a": REAL, "p": POSITIVE, "u": UNIT, "v": vector(REAL, 3), "w": vector(POSITIVE, 3),
             "q": vector(UNIT, 3), "M": Var(shape=(2, 3)), "k": Var(shape=(1,)),
             "col": Var(shape=(2, 1))}
POINTS = [  # away from kinks: no v near 0 (abs), no tie in a where() condition
    {"a": 0.3, "p": 1.7, "u": 0.35, "v": [0.8, -1.1, 0.45], "w": [0.6, 1.9, 1.3],
     "q": [0.2, 0.55, 0.9], "M": [[0.5, -0.3, 1.2], [-0.7, 0.9, 0.1]], "k": [0.7],
     "col": [[0.3], [-1.2]]},
    {"a": -0.9, "p": 0.4, "u": 0.8, "v": [-0.3, 1.6, -2.0], "w": [2.4, 0.3, 0.9],
     "q": [0.7, 0.1, 0.45], "M": [[-1.1, 0.6, 0.2], [0.3, -0.4, 1.5]], "k": [-0.4],
     "col": [[1.1], [0.6]]},
]
A = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]])  # (2, 3) data
A2 = np.array([[0.4, -1.3], [2.0, 0.6]])  # (2, 2)
B = np.array([[0.2, 1.0], [-0.6, 0.4], [1.5, -0.8]])  # (3, 2)
C = np.array([0.5, -1.5, 2.0])  # (3,)
NUMPY = SimpleNamespace(exp=np.exp, log=np.log, log1p=np.log1p, expm1=np.expm1, sqrt=np.sqrt,
                        sigmoid=special.expit, logit=special.logit, tanh=np.tanh,
                        softplus=lambda x: np.logaddexp(0.0, x), abs=np.abs, sum=np.sum,
                        dot=np.dot, where=np.where)

# Each case compiles its own model (about a second, several with matrices), so a case combines
# a few operations; its id names them.
OPERATORS = {
    "neg-add-sub": lambda s, m: -(s.a + s.v) + (s.v - s.w) + (1.0 - s.p) + (2.0 + s.w) - s.a,
    "mul": lambda s, m: s.a * s.v + s.v * s.w * C + 3.0 * s.p,
    "div": lambda s, m: s.v / s.w + s.p / s.w + 2.0 / s.w + C / s.p + s.a / s.p,
    "pow": lambda s, m: s.w ** s.a + s.v ** 2.0 + 2.0 ** s.v + s.w ** s.v + s.p ** s.u,
    "exp-log": lambda s, m: m.exp(s.v) + m.log(s.w) * m.exp(s.a),
    "log1p-expm1-sqrt": lambda s, m: m.log1p(s.w) * m.expm1(s.v) + m.sqrt(s.w),
    "sigmoid-logit-tanh": lambda s, m: m.sigmoid(3.0 * s.v) + m.logit(s.q) * m.tanh(s.v),
    "softplus": lambda s, m: m.softplus(30.0 * s.v),  # both branches, far into each tail
    "abs": lambda s, m: m.abs(s.v) + abs(s.v - s.a),
    "sum": lambda s, m: m.log(m.sum(m.exp(s.v))) + m.sum(s.v * s.w) * s.a,
    "where-gt-le": lambda s, m: (m.where(s.v > s.a, m.exp(s.v), s.a * s.w)
                                 + m.where(s.v <= 0.0, s.v ** 2.0, s.a)),
    "where-lt-ge": lambda s, m: m.where(s.w < 1.0, s.w, 2.0) * m.where(s.q >= s.u, s.q, s.v),
    "index-int-slice": lambda s, m: s.v[2] * s.p + s.v[-1] + s.v[1:] * s.w[:2] + s.v[::2],
    "index-array-with-repeats": lambda s, m: s.v[np.array([0, 0, 2, 0])] * s.a,
    "matmul-1d@1d": lambda s, m: s.v @ s.w + C @ s.v + m.dot(s.w, s.v),
    "matmul-2d@1d": lambda s, m: A @ s.v + s.M @ s.w,
    "matmul-1d@2d": lambda s, m: (s.v @ B) @ s.M,
    "matmul-2d@2d": lambda s, m: A2 @ s.M @ B + s.M @ s.M[np.array([0, 1, 0])] @ B,
    "index-matrix": lambda s, m: s.M[np.array([1, 1, 0])][:2] * s.v + s.M[1] * s.w + s.M[0][2],
    "broadcast-matrix-vector-scalar": lambda s, m: s.M * s.v - s.M / s.w + s.a,
    "exp-and-sum-matrix": lambda s, m: m.exp(s.M) + m.sum(s.M * A),
    "broadcast-size-one-axes": lambda s, m: s.k * s.v + s.col * s.M[0:1] + s.M,
}
SIGMA = 1.5  # of the observation y ~ Normal(expression, SIGMA)


class Refs:
    """``s`` when building a case's expression: references to VARIABLES, recording those used."""

    def __init__(self):
        self.used = []

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self.used:
            self.used.append(name)
        return ref(name)


def operator_reference(case_id, point):
    values = SimpleNamespace(**{k: np.asarray(v, dtype=float) for k, v in point.items()})
    return OPERATORS[case_id](values, NUMPY)


def observation_data(shape):
    return np.linspace(-1.0, 2.0, int(np.prod(shape))).reshape(shape)


@functools.cache
def compiled_operator(case_id):
    """Flat priors on the variables the expression uses, ``e = expression`` as a deterministic
    and ``y ~ Normal(e, SIGMA)`` observed."""
    refs = Refs()
    expression = OPERATORS[case_id](refs, em)
    model = exmc.Builder()
    for name in refs.used:
        model.rv(name, flat(VARIABLES[name]))
    model.det("e", expression)
    shape = np.shape(operator_reference(case_id, POINTS[0]))
    model.obs("y", exmc.Normal("e", SIGMA), observation_data(shape))
    return compile_model(model), {name: VARIABLES[name] for name in refs.used}


@pytest.mark.parametrize("point", [0, 1])
@pytest.mark.parametrize("case_id", list(OPERATORS))
def test_operator_log_density_matches_numpy(case_id, point):
    cm, variables = compiled_operator(case_id)
    z = unconstrained_point(cm, variables, POINTS[point])
    _, log_jacobian = constrained_point(cm, variables, z)
    mean = operator_reference(case_id, POINTS[point])
    data = observation_data(np.shape(mean))
    expected = log_jacobian + np.sum(stats.norm.logpdf(data, mean, SIGMA))
    logp, _, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(logp, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("point", [0, 1])
@pytest.mark.parametrize("case_id", list(OPERATORS))
def test_operator_gradient_matches_finite_differences(case_id, point):
    cm, variables = compiled_operator(case_id)
    assert_compiled_gradient(cm, unconstrained_point(cm, variables, POINTS[point]))


# ---- deterministics ------------------------------------------------------------------------------
@functools.cache
def compiled_deterministic_chain():
    model = (exmc.Builder()
             .rv("a", flat(REAL))
             .rv("w", flat(vector(POSITIVE, 3)))
             .det("d1", em.exp(ref("a")) * ref("w"))
             .det("d2", em.sum(ref("d1")) - ref("a"))
             .obs("y", exmc.Normal("d1", "d2"), [0.5, 1.5, -0.5]))
    return compile_model(model)


@pytest.mark.parametrize("point", [0, 1])
def test_deterministic_of_deterministic(point):
    """A deterministic built on another, read by an observation in two parameters."""
    variables = {"a": REAL, "w": vector(POSITIVE, 3)}
    cm = compiled_deterministic_chain()
    values = {"a": POINTS[point]["a"], "w": np.asarray(POINTS[point]["w"])}
    z = unconstrained_point(cm, variables, values)
    d1 = np.exp(values["a"]) * values["w"]
    d2 = np.sum(d1) - values["a"]
    _, log_jacobian = constrained_point(cm, variables, z)
    logp, _, status = cm.logp_and_grad(z)
    assert status == 0
    expected = log_jacobian + np.sum(stats.norm.logpdf([0.5, 1.5, -0.5], d1, d2))
    np.testing.assert_allclose(logp, expected, rtol=1e-10, atol=1e-10)
    assert_compiled_gradient(cm, z)
    constrained = cm.constrain(z)
    np.testing.assert_allclose(constrained["d1"][0], d1, rtol=1e-12)
    np.testing.assert_allclose(constrained["d2"][0], d2, rtol=1e-12)


def test_parameter_leaving_its_domain_reports_a_status_not_a_density():
    """The scale d2 = sum(exp(a) * w) - a is negative here: -inf and the domain status."""
    cm = compiled_deterministic_chain()
    z = unconstrained_point(cm, {"a": REAL, "w": vector(POSITIVE, 3)},
                            {"a": 3.0, "w": np.array([0.01, 0.01, 0.01])})
    logp, _, status = cm.logp_and_grad(z)
    assert (logp, status) == (-np.inf, STATUS_DOMAIN)
