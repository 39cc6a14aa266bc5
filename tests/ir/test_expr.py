"""Expressions: operators build the expected trees; numpy arrays defer to them."""
import numpy as np
import pytest

import exmc
from exmc.ir.expr import Expr, as_expr, ref


def test_operators_build_trees():
    a, b = ref("a"), ref("b")
    assert (a + b).op == "add" and (a - 1).op == "sub" and (2 * a).op == "mul"
    assert (1 / a).args[0].value == 1.0 and (a ** 2).op == "pow" and (-a).op == "neg"
    assert (a < b).op == "lt" and (a >= 1).op == "ge"
    assert abs(a).op == "abs"


def test_numpy_arrays_defer_to_expressions():
    X = np.ones((4, 3))
    e = X @ ref("beta")
    assert isinstance(e, Expr) and e.op == "matmul"
    assert e.args[0].op == "const" and e.args[0].value.shape == (4, 3)
    e2 = np.float64(2.0) * ref("x")
    assert isinstance(e2, Expr) and e2.op == "mul"


def test_indexing_is_static_data():
    v = ref("v")
    assert v[2].value == 2
    assert v[1:].value == ("slice", 1, None, None)
    idx = v[np.array([0, 0, 2])].value
    assert idx.dtype == np.int64 and list(idx) == [0, 0, 2]
    with pytest.raises(TypeError, match="unsupported index"):
        v[1.5]


def test_references_and_constants():
    e = exmc.math.exp(ref("a") + ref("b") * ref("a"))
    assert e.references() == ["a", "b"]
    assert as_expr("mu").op == "ref" and as_expr(3).value == 3.0
    with pytest.raises(TypeError, match="cannot use dict"):
        as_expr({"a": 1})


def test_math_functions_cover_the_documented_set():
    for name in ("exp", "log", "log1p", "expm1", "sqrt", "sigmoid", "invlogit", "logit", "tanh",
                 "softplus", "abs", "sum"):
        assert isinstance(getattr(exmc.math, name)("x"), Expr)
    assert exmc.math.dot("a", "b").op == "matmul"
    assert exmc.math.where(ref("a") > 0, "a", 0.0).op == "where"


def test_numpy_ufuncs_map_to_registry_ops():
    x = ref("x")
    for ufunc, op in [(np.exp, "exp"), (np.log, "log"), (np.sqrt, "sqrt"), (np.tanh, "tanh"),
                      (np.absolute, "abs"), (np.negative, "neg")]:
        assert ufunc(x).op == op
    for ufunc, op in [(np.add, "add"), (np.subtract, "sub"), (np.multiply, "mul"),
                      (np.true_divide, "div"), (np.power, "pow"), (np.maximum, "maximum"),
                      (np.less, "lt"), (np.equal, "eq")]:
        built = ufunc(np.ones(2), x)
        assert built.op == op and built.args[1] is x  # the array stays the first operand
    assert (np.ones((3, 2)) @ x).op == "matmul"
    assert np.mean(x, axis=0).op == "mean" and np.mean(x, axis=0).value == 0
