"""posteriordb's HMM posteriors with Dirichlet-prior simplex rows (benchmarks/posteriordb_simplex.py)
against Stan's reference draws: every parameter's mean within 5 MCSE of both runs, sd within
10%, ESS >= 400 (tests/test_nutpie_reference.py's check); negative control: a shifted
reference fails."""
import numpy as np
import pytest

import exmc
from benchmarks import posteriordb_simplex as bench
from tests.test_nutpie_reference import mismatches

pytestmark = pytest.mark.timeout(600)

RUN = dict(chains=4, num_samples=1000, num_warmup=1000, seed=3, progressbar=False,
           diagnostics=False)
FILE = bench.load()
ENTRIES = FILE["posteriors"]
_cache = {}


def posterior(name):
    if name not in _cache:
        _cache[name] = exmc.sample(bench.model(name), **{**RUN, **bench.SAMPLER.get(name, {})}
                                   ).posterior
    return _cache[name]


def test_the_data_file_names_the_posteriors_and_its_source():
    assert set(ENTRIES) == set(bench.POSTERIORS)
    assert "commit 28f8d3d" in FILE["source"]


@pytest.mark.parametrize("name", sorted(bench.POSTERIORS))
def test_every_reference_parameter_is_an_element_of_the_model(name):
    shapes = bench.model(name).shapes()
    for label in ENTRIES[name]["reference"]:
        var, index = bench.locate(label)
        assert var in shapes and len(index) == len(shapes[var]), (name, label)
        assert all(0 <= i < n for i, n in zip(index, shapes[var]))
    assert bench.locate("lambda[2]") == ("lam2", ()) and bench.locate("theta2[1]") == ("theta2", (0,))


# hmm_drive_1 is marked slow (the suite's 15 minutes): `python -m pytest -m slow`, or
# benchmarks/posteriordb_simplex.py.
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n.endswith("hmm_drive_1") else n
         for n in sorted(bench.POSTERIORS)]


@pytest.mark.parametrize("name", NAMES)
def test_exmc_matches_posteriordb(name):
    assert not mismatches(posterior(name), ENTRIES[name]["reference"], draws=bench.draws)


@pytest.mark.parametrize("name", NAMES)
def test_negative_control_a_shifted_reference_fails(name):
    assert mismatches(posterior(name), ENTRIES[name]["reference"], shift=0.33, draws=bench.draws)


def test_the_transition_rows_are_simplexes():
    for name in bench.POSTERIORS:
        rows = np.stack([posterior(name)["theta1"].values, posterior(name)["theta2"].values])
        assert np.all(rows > 0) and np.allclose(rows.sum(axis=-1), 1.0)
