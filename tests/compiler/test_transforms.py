"""Transforms: forward/inverse round trips; log-Jacobians against finite-difference log|dx/dz|."""
import numpy as np
import pytest

from exmc.compiler import transforms
from exmc.ir.evaluate import evaluate
from exmc.ir.expr import as_expr, ref

BOUNDS = {  # id -> (lower, upper), None where unbounded
    "real": (None, None),
    "positive": (0.0, None),
    "lower": (-2.0, None),
    "upper": (None, 3.0),
    "unit": (0.0, 1.0),
    "interval": (-2.0, 3.0),
    "narrow-interval": (1.0, 1.001),
    "vector-bounds": (np.array([-1.0, 0.0, 2.0]), np.array([0.5, 10.0, 2.5])),
}
KINDS = {"real": "identity", "positive": "lower", "lower": "lower", "upper": "upper",
         "unit": "interval", "interval": "interval", "narrow-interval": "interval",
         "vector-bounds": "interval"}
Z = np.linspace(-6.0, 6.0, 25)[:, None]  # a column, so vector bounds broadcast along rows
bounds_cases = pytest.mark.parametrize("case_id", list(BOUNDS))


def interior_points(lower, upper):
    """Points strictly inside the support, chosen without the transform under test."""
    if lower is None and upper is None:
        return np.linspace(-50.0, 50.0, 25)[:, None]
    if upper is None:
        return lower + np.geomspace(1e-3, 1e3, 25)[:, None]
    if lower is None:
        return upper - np.geomspace(1e-3, 1e3, 25)[:, None]
    return lower + (upper - lower) * np.linspace(0.01, 0.99, 25)[:, None]


def derivative(f, z, step=1e-3):
    """Five-point central difference of an elementwise ``f`` (error of order step**4)."""
    return (8.0 * (f(z + step) - f(z - step)) - (f(z + 2 * step) - f(z - 2 * step))) / (12 * step)


def bound_exprs(lower, upper):
    return tuple(None if b is None else as_expr(b) for b in (lower, upper))


@bounds_cases
def test_kind_follows_which_bounds_are_given(case_id):
    assert transforms.kind(*BOUNDS[case_id]) == KINDS[case_id]


@bounds_cases
def test_forward_lands_inside_the_open_support(case_id):
    lower, upper = BOUNDS[case_id]
    x = transforms.forward(Z, lower, upper)
    assert np.all(np.isfinite(x))
    if lower is not None:
        assert np.all(x > lower)
    if upper is not None:
        assert np.all(x < upper)


@bounds_cases
def test_inverse_undoes_forward(case_id):
    lower, upper = BOUNDS[case_id]
    x = transforms.forward(Z, lower, upper)
    np.testing.assert_allclose(transforms.inverse(x, lower, upper), np.broadcast_to(Z, x.shape),
                               rtol=1e-9, atol=1e-9)


@bounds_cases
def test_forward_undoes_inverse(case_id):
    lower, upper = BOUNDS[case_id]
    x = interior_points(lower, upper)
    z = transforms.inverse(x, lower, upper)
    np.testing.assert_allclose(transforms.forward(z, lower, upper), x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case_id", [c for c in BOUNDS if c != "real"])
def test_inverse_rejects_values_on_or_outside_a_bound(case_id):
    lower, upper = BOUNDS[case_id]
    for bound, outward in ((lower, -1.0), (upper, 1.0)):
        if bound is None:
            continue
        for x in (bound, bound + outward):
            with pytest.raises(ValueError, match="outside the open support"):
                transforms.inverse(x, lower, upper)


@bounds_cases
def test_constrain_expressions_agree_with_forward(case_id):
    lower, upper = BOUNDS[case_id]
    x_expr, _ = transforms.constrain_exprs(ref("z"), *bound_exprs(lower, upper))
    np.testing.assert_allclose(evaluate(x_expr, {"z": Z}), transforms.forward(Z, lower, upper),
                               rtol=1e-13, atol=1e-13)


@bounds_cases
def test_log_jacobian_is_log_abs_derivative_of_forward(case_id):
    lower, upper = BOUNDS[case_id]
    _, log_jacobian = transforms.constrain_exprs(ref("z"), *bound_exprs(lower, upper))
    numeric = np.log(np.abs(derivative(lambda z: transforms.forward(z, lower, upper), Z)))
    if log_jacobian is None:  # the identity: dx/dz = 1
        np.testing.assert_allclose(numeric, 0.0, atol=1e-10)
        return
    np.testing.assert_allclose(np.broadcast_to(evaluate(log_jacobian, {"z": Z}), numeric.shape),
                               numeric, rtol=1e-6, atol=1e-6)


def test_bounds_may_be_other_variables():
    x_expr, log_jacobian = transforms.constrain_exprs(ref("z"), ref("lo"), ref("hi"))
    values = {"z": Z, "lo": -1.0, "hi": 2.5}
    np.testing.assert_allclose(evaluate(x_expr, values), transforms.forward(Z, -1.0, 2.5),
                               rtol=1e-13)
    numeric = np.log(derivative(lambda z: transforms.forward(z, -1.0, 2.5), Z))
    np.testing.assert_allclose(evaluate(log_jacobian, values), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("z", [-700.0, -40.0, 40.0, 700.0])
def test_interval_log_jacobian_stays_finite_in_the_tails(z):
    """log(w) - softplus(-z) - softplus(z) ~ log(w) - |z|, where s(z) (1 - s(z)) underflows."""
    _, log_jacobian = transforms.constrain_exprs(ref("z"), as_expr(-2.0), as_expr(3.0))
    np.testing.assert_allclose(evaluate(log_jacobian, {"z": np.array(z)}), np.log(5.0) - abs(z),
                               rtol=1e-12)
