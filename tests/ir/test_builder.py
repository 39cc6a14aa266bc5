"""Building and validating models: every documented error names the variable and the problem."""
import numpy as np
import pytest

import exmc
from exmc import (Bernoulli, Binomial, Builder, Custom, GaussianRandomWalk, HalfNormal, ModelError,
                  Normal, Poisson, Uniform, ref)

Y = np.array([0.5, 1.5, -0.2])


def simple():
    return Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(1)).obs("y", Normal("mu", "sigma"), Y)


def test_shapes_in_dependency_order():
    m = simple().det("double", ref("mu") * 2)
    assert m.validate() == [("mu", ()), ("sigma", ()), ("y", (3,)), ("double", ())]


def test_shape_inferred_from_vector_parameters():
    m = Builder().rv("a", Normal(0, 1, shape=4)).rv("b", Normal("a", 1))
    assert m.shapes()["b"] == (4,)


def test_forward_references_are_allowed():
    m = Builder().obs("y", Normal("mu", 1.0), Y).rv("mu", Normal(0, 1))
    assert [n for n, _ in m.validate()] == ["mu", "y"]


@pytest.mark.parametrize("build, message", [
    (lambda: Builder().rv("mu", Normal(0, 1)).obs("y", Normal("mu", "sigam"), Y),
     r"'y' refers to unknown variable 'sigam'.*known variables: mu, y"),
    (lambda: Builder().rv("sigma", HalfNormal(1)).obs("y", Normal(0, "sigam"), Y),
     r"did you mean 'sigma'"),
    (lambda: Builder().rv("a", Normal("b", 1)).rv("b", Normal("c", 1)).rv("c", Normal("a", 1)),
     r"cycle: a -> b -> c -> a"),
    (lambda: Builder().rv("a", Normal("a", 1)), r"'a' refers to itself"),
    (lambda: Builder().rv("a", Normal(0, -1)), r"'a': Normal needs sigma > 0, got sigma=-1.0"),
    (lambda: Builder().rv("a", Uniform(2, 1)), r"needs upper > lower"),
    (lambda: Builder().rv("s", HalfNormal(1)).obs("y", HalfNormal("s"), [-1.0, 2.0]),
     r"observed variable 'y': data outside the support of HalfNormal .*element 0 is -1"),
    (lambda: Builder().rv("p", Uniform(0, 1)).obs("y", Bernoulli(p="p"), [0, 1, 2]),
     r"outside the support of Bernoulli"),
    (lambda: Builder().rv("p", Uniform(0, 1)).obs("y", Bernoulli(p="p"), [0, 0.5]),
     r"Bernoulli data must be integers"),
    (lambda: Builder().rv("m", Normal(0, 1)).obs("y", Normal("m", 1), [1.0, np.inf]),
     r"data must be finite, element 1 is inf"),  # NaN is a missing value (tests/ir/test_wrappers.py)
    (lambda: Builder().rv("a", Normal(0, 1, shape=3)).obs("y", Normal("a", 1), [1.0, 2.0]),
     r"parameter 'mu': shapes \(2,\) and \(3,\) do not broadcast"),
    (lambda: Builder().rv("a", Normal(0, 1, shape=3)).rv("b", Normal("a", 1, shape=2)),
     r"'b'.*shapes"),
    (lambda: Builder().rv("a", Normal(0, 1, shape=3)).rv("b", Normal(np.ones((4, 2)) @ ref("a"), 1)),
     r"matrix product of shapes \(4, 2\) and \(3,\)"),
    (lambda: Builder().rv("a", Normal(0, 1)).rv("b", Normal(ref("a")[0], 1)), r"cannot index a scalar"),
    (lambda: Builder().rv("k", Poisson(3.0)), r"'k': Poisson is discrete and can only be observed"),
    (lambda: Builder().rv("n", HalfNormal(5)).rv("p", Uniform(0, 1)).obs("y", Binomial("n", p="p"), [1.0]),
     r"parameter 'n' of Binomial must be data"),
    (lambda: Builder().rv("p", Uniform(0, 1)).obs("y", Binomial(3, p="p"), [4.0]),
     r"outside the support of Binomial"),
    (lambda: Builder().rv("a", Normal(exmc.value, 1)), r"exmc.value is only meaningful inside Custom"),
    (lambda: Builder().rv("a", Normal(0, 1)).rv("b", Normal(Normal(0, 1), 1)),
     r"a distribution object was used as a value"),
    (lambda: Builder(), r"no variables"),
    (lambda: Builder().det("d", 1.0), r"no random variables"),
])
def test_bad_models_raise_clear_errors(build, message):
    with pytest.raises(ModelError, match=message):
        build().validate()


@pytest.mark.parametrize("build, error, message", [
    (lambda: Builder().rv("mu", Normal(0, 1)).rv("mu", Normal(0, 1)), ModelError, "declared twice"),
    (lambda: Builder().rv("1x", Normal(0, 1)), ModelError, "not a valid identifier"),
    (lambda: Builder().rv("mu", Normal), ModelError, "got the class Normal"),
    (lambda: Builder().rv("mu", 3.0), ModelError, "expected a distribution"),
    (lambda: Builder().obs("y", Normal(0, 1), "abc"), ModelError, "data must be numeric"),
    (lambda: Normal(0, 1, 2, 3), TypeError, "at most 3 positional parameters"),
    (lambda: Normal(0, 1, 2), TypeError, "Normal takes sigma or tau, not both"),
    (lambda: Normal(0, tau=-1.0), ValueError, "Normal needs tau > 0"),
    (lambda: Normal(0, sd=1), TypeError, "has no parameter 'sd'; its parameters are mu, sigma, tau"),
    (lambda: Normal({"a": 1}), TypeError, "Normal parameter 'mu'"),
    (lambda: Bernoulli(p=0.5, logit_p=0.0), TypeError, "exactly one of p and logit_p"),
    (lambda: GaussianRandomWalk(sigma=1.0), TypeError, "needs a shape T or \\(B, T\\)"),
    (lambda: Custom(logp=exmc.value, support="sideways"), TypeError, "Custom support"),
    (lambda: Normal(0, 1, shape=(0,)), ValueError, "shape entries must be positive"),
])
def test_bad_calls_raise_at_once(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_errors_come_before_any_compile(monkeypatch):
    from exmc import compiler
    called = []
    monkeypatch.setattr(compiler, "lower_model", lambda m: called.append(m))
    bad = Builder().rv("mu", Normal(0, 1)).obs("y", Normal("mu", "nope"), Y)
    with pytest.raises(ModelError, match="unknown variable 'nope'"):
        exmc.sample(bad, chains=1, num_samples=10, num_warmup=10, progressbar=False)
    assert not called


def test_models_compare_by_content():
    assert simple() == simple()
    assert simple() != simple().det("d", ref("mu"))
    changed = Builder().rv("mu", Normal(0, 10)).rv("sigma", HalfNormal(1)).obs("y", Normal("mu", "sigma"), Y + 1)
    assert changed != simple()


def test_repr_lists_variables():
    text = repr(simple())
    assert "mu [rv] ~ Normal(mu=0.0, sigma=10.0)" in text and "observed (3,)" in text


def test_dims_take_their_lengths_from_coords():
    m = (Builder(coords={"school": list("ABC")})
         .rv("theta", Normal(0, 1, dims="school"))
         .det("double", 2 * ref("theta"), dims="school")
         .obs("y", Normal("theta", 1.0, dims=("rep", "school")), np.zeros((2, 3))))
    assert m.shapes()["theta"] == (3,)
    assert m.dims == {"theta": ("school",), "double": ("school",), "y": ("rep", "school")}
    np.testing.assert_array_equal(m.coords["rep"], [0, 1])  # from the observed data


@pytest.mark.parametrize("build, message", [
    (lambda: Builder().rv("theta", Normal(0, 1, dims="school")),
     "'theta': dimension 'school' has no coords; give them as Builder"),
    (lambda: Builder(coords={"school": list("AB")}).rv("theta", Normal(0, 1, shape=3, dims="school"))
     .validate(), "'theta' has shape \\(3,\\), but its dims \\('school',\\) have lengths \\(2,\\)"),
    (lambda: Builder(coords={"school": list("AB")}).rv("mu", Normal(0, 1))
     .obs("y", Normal("mu", 1.0, dims="school"), np.zeros(3)),
     "'y': its data have shape \\(3,\\), but its dims \\('school',\\) have lengths \\(2,\\)"),
    (lambda: Builder(coords={"school": []}), "coords 'school': need a name and a non-empty"),
    (lambda: Normal(0, 1, dims=3), "dims must be a name or a tuple of names"),
])
def test_bad_dims_name_the_variable(build, message):
    with pytest.raises((ModelError, TypeError), match=message):
        build()
