"""benchmarks/posteriordb_reference.py without sampling: its data file parses, every posterior in
it has an exmc model that builds from its data, and every reference parameter names an element
of a variable of that model (the sampling comparison itself is the benchmark)."""
import json

import numpy as np
import pytest

from benchmarks import posteriordb_reference as bench

ENTRIES = bench.load()["posteriors"]


def test_the_data_file_and_the_models_name_the_same_posteriors():
    assert set(ENTRIES) == set(bench.POSTERIORS)
    assert "commit 28f8d3d" in bench.load()["source"]


@pytest.mark.parametrize("name", sorted(bench.POSTERIORS))
def test_every_reference_parameter_is_an_element_of_the_model(name):
    entry = ENTRIES[name]
    shapes = bench.POSTERIORS[name][0](entry["data"]).shapes()
    for label, summary in entry["reference"].items():
        var, index = bench.locate(name, label)
        assert var in shapes, f"{name}: {label} has no variable {var!r}"
        assert len(index) == len(shapes[var]) and all(0 <= i < n for i, n in zip(index, shapes[var]))
        assert np.isfinite([summary["mean"], summary["sd"], summary["ess"]]).all() and summary["sd"] > 0


def test_locate_reads_stan_labels():
    assert bench.locate("sblrc-blr", "beta[3]") == ("beta", (2,))
    assert bench.locate("sblrc-blr", "sigma") == ("sigma", ())
    assert bench.locate("low_dim_gauss_mix-low_dim_gauss_mix", "mu[2]") == ("mu2", ())
