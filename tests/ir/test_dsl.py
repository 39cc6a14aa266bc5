"""The @exmc.model DSL gives the same IR as the Builder."""
import numpy as np
import pytest

import exmc
from exmc import Builder, Custom, Deterministic, GaussianRandomWalk, HalfNormal, ModelError, Normal, ref

Y = np.array([0.3, -1.2, 2.5, 0.7])


def test_dsl_equals_builder():
    @exmc.model
    def simple(data):
        mu = Normal(0.0, 10.0)
        sigma = HalfNormal(1.0)
        y = Normal(mu, sigma, observed=data)  # noqa: F841

    built = (Builder().rv("mu", Normal(0.0, 10.0)).rv("sigma", HalfNormal(1.0))
             .obs("y", Normal("mu", "sigma"), Y))
    assert simple(Y) == built


def test_expressions_deterministics_and_nested_distributions():
    X = np.arange(8.0).reshape(4, 2)

    @exmc.model
    def regression(X, y):
        beta = Normal(0, 1, shape=2)
        scale = HalfNormal(1)
        mean = Deterministic(X @ beta)
        walk = GaussianRandomWalk(sigma=scale, init=Normal(0, scale), shape=3)  # noqa: F841
        y = Normal(mean, scale, observed=y)  # noqa: F841

    built = (Builder().rv("beta", Normal(0, 1, shape=2)).rv("scale", HalfNormal(1))
             .det("mean", X @ ref("beta"))
             .rv("walk", GaussianRandomWalk(sigma="scale", init=Normal(0, "scale"), shape=3))
             .obs("y", Normal("mean", "scale"), Y))
    assert regression(X, Y) == built


def test_explicit_names_and_custom():
    @exmc.model
    def named():
        a = Normal(0, 1, name="alpha")
        b = Custom(logp=-0.5 * (exmc.value - a) ** 2)  # noqa: F841

    m = named()
    assert m.names == ["alpha", "b"]
    assert m["b"].dist.param_exprs["logp"].references() == ["alpha"]


def test_unnamed_distribution_is_an_error():
    @exmc.model
    def forgot():
        mu = Normal(0, 1)
        Normal(mu, 1)

    with pytest.raises(ModelError, match="not assigned to a name"):
        forgot()


def test_reassigned_variable_used_before_is_named_by_first_binding():
    @exmc.model
    def loop():
        xs = [Normal(0, 1, name=f"x{i}") for i in range(3)]
        total = Deterministic(xs[0] + xs[1] + xs[2])  # noqa: F841

    m = loop()
    assert m.names == ["x0", "x1", "x2", "total"]
    assert m["total"].expr.references() == ["x0", "x1", "x2"]


def test_dsl_errors_are_model_errors():
    @exmc.model
    def bad():
        mu = Normal(0, 1)
        y = Normal(mu, "nope", observed=Y)  # noqa: F841

    with pytest.raises(ModelError, match="unknown variable 'nope'"):
        bad().validate()


def test_numpy_functions_on_dsl_variables_build_the_same_model():
    """PyMC habits: np.exp(sigma), np.sum(x) on DSL variables are exmc.math's ops."""
    @exmc.model
    def with_numpy(data):
        log_sigma = Normal(0.0, 1.0)
        mu = Normal(0.0, 1.0, shape=2)
        y = Normal(np.sum(mu) + np.log1p(np.abs(mu[0])), np.exp(log_sigma), observed=data)  # noqa: F841

    @exmc.model
    def with_math(data):
        log_sigma = Normal(0.0, 1.0)
        mu = Normal(0.0, 1.0, shape=2)
        mean = exmc.math.sum(mu) + exmc.math.log1p(exmc.math.abs(mu[0]))
        y = Normal(mean, exmc.math.exp(log_sigma), observed=data)  # noqa: F841

    assert with_numpy(Y) == with_math(Y)


@pytest.mark.parametrize("call, message", [
    (lambda x: np.hypot(x, 1.0), "np.hypot cannot take a model expression; use the exmc.math"),
    (lambda x: np.sum(x, keepdims=True), "sum of a model expression takes only axis=, not keepdims"),
    (lambda x: np.add.accumulate(x), "np.add.accumulate cannot take a model expression"),
])
def test_numpy_functions_exmc_lacks_say_what_to_write(call, message):
    with pytest.raises(TypeError, match=message):
        call(ref("a"))


def test_a_missing_family_names_the_closest_ones():
    with pytest.raises(AttributeError, match="no attribute 'NegBinomial'; the closest: .*NegativeBinomial"):
        exmc.NegBinomial  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'Wishart'; exmc's families: .*MvNormal"):
        exmc.Wishart  # noqa: B018
