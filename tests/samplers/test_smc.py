"""SMC (``exmc.sample_smc``): posteriors and log evidence against exact values, negative controls.

Monte Carlo error of SMC draws.  The final particles are not a Markov chain, so
ArviZ's autocorrelation ESS does not apply.  The bound used here is the
duplication ESS: in a chain whose N particles take distinct values with
multiplicities n_k, ESS = N^2 / sum n_k^2 (Kish's ESS of the copies), summed
over the independent chains; the MCSE of an average of f is sd(f) / sqrt(ESS).
It treats distinct particles as independent draws, which the mutation aims at
(its steps continue until the particles are nearly independent of the stage's
start).  ``python benchmarks/smc.py --calibrate`` checks it: over 40 seeds
of the normal-normal model (4 chains of 1,000 particles) the z-scores of mean
and variance should have sd near 1 (results/smc_calibration.md).

Log evidence.  Each chain's estimate Z_c is unbiased; the combined estimate is
log(mean Z_c) and its standard error comes from the spread between chains (the
delta method), with chains - 1 degrees of freedom.  With 32 chains, |z| <= 5
fails a correct sampler with probability 2 P(T_31 > 5) = 2.1e-5 per check, 1.7e-4
for the file's 8 evidence checks.

Both use ``tests.stats.Z`` and count towards its failure budget.
"""
import numpy as np
import pytest
from scipy import integrate, special
from scipy import stats as scipy_stats

import exmc
from exmc import Beta, Binomial, Builder, Custom, HalfNormal, Normal, ref, value
from tests import stats

pytestmark = pytest.mark.timeout(300)

EVIDENCE_CHAINS, EVIDENCE_DRAWS = 32, 250


def smc(model, **kwargs):
    options = dict(draws=1000, chains=4, seed=20240601, progressbar=False)
    options.update(kwargs)
    return exmc.sample_smc(model, **options)


def particle_ess(draws):
    """Sum over chains of N^2 / sum n_k^2, n_k the copies of each distinct particle."""
    x = np.asarray(draws, dtype=float)
    x = x.reshape(x.shape[0], x.shape[1], -1)
    total = 0.0
    for chain in x:
        _, counts = np.unique(chain, axis=0, return_counts=True)
        total += len(chain) ** 2 / np.sum(counts.astype(float) ** 2)
    return total


def assert_particles_close(values, truth, ess, what, z=stats.Z, min_ess=stats.MIN_ESS):
    """The particles' average of f (values: chains, draws) within z MCSE = sd / sqrt(ess)."""
    stats.checks_made += 1
    values = np.asarray(values, dtype=float)
    mcse = values.std() / np.sqrt(ess)
    score = (values.mean() - truth) / mcse
    if ess < min_ess:
        raise AssertionError(f"{what}: ESS {ess:.0f} < {min_ess:.0f}")
    if not abs(score) <= z:
        raise AssertionError(f"{what}: estimate {values.mean():.5g}, truth {truth:.5g}, MCSE "
                             f"{mcse:.3g}, z = {score:.2f} (bound {z})")


def assert_moments_close(draws, mean, var):
    ess = particle_ess(draws)
    assert_particles_close(draws, mean, ess, "mean")
    assert_particles_close((draws - mean) ** 2, var, ess, "variance")


def assert_evidence_close(idata, truth, z=stats.Z):
    """The combined log evidence within z of its between-chain standard errors of ``truth``."""
    stats.checks_made += 1
    attrs = idata.sample_stats.attrs
    estimate, se = attrs["log_marginal_likelihood"], attrs["log_marginal_likelihood_se"]
    score = (estimate - truth) / se
    if not abs(score) <= z:
        raise AssertionError(f"log evidence: estimate {estimate:.5g}, truth {truth:.5g}, SE "
                             f"{se:.3g}, z = {score:.2f} (bound {z})")


# --- conjugate normal-normal, known sigma: posterior and evidence in closed form ----------

NN_PRIOR_MEAN, NN_PRIOR_SD, NN_SIGMA = 1.0, 2.0, 1.5
NN_Y = np.random.default_rng(101).normal(3.0, NN_SIGMA, size=20)


def normal_normal_model(sigma=NN_SIGMA):
    return (Builder().rv("mu", Normal(NN_PRIOR_MEAN, NN_PRIOR_SD))
            .obs("y", Normal("mu", sigma), NN_Y))


def normal_normal_posterior():
    precision = 1.0 / NN_PRIOR_SD ** 2 + NN_Y.size / NN_SIGMA ** 2
    mean = (NN_PRIOR_MEAN / NN_PRIOR_SD ** 2 + NN_Y.sum() / NN_SIGMA ** 2) / precision
    return mean, 1.0 / precision


def normal_normal_log_evidence(prior_sd=NN_PRIOR_SD):
    """y ~ N(prior mean, sigma^2 I + prior sd^2 11^T) with mu integrated out."""
    n = NN_Y.size
    cov = NN_SIGMA ** 2 * np.eye(n) + prior_sd ** 2 * np.ones((n, n))
    return scipy_stats.multivariate_normal(np.full(n, NN_PRIOR_MEAN), cov).logpdf(NN_Y)


@pytest.fixture(scope="module", params=["imh", "mh", "hmc"])
def normal_normal_runs(request):
    """(posterior run, evidence run) of the normal-normal model with one kernel."""
    kernel = request.param
    return (smc(normal_normal_model(), kernel=kernel),
            smc(normal_normal_model(), kernel=kernel, draws=EVIDENCE_DRAWS,
                chains=EVIDENCE_CHAINS))


def test_normal_normal_posterior(normal_normal_runs):
    mean, var = normal_normal_posterior()
    assert_moments_close(normal_normal_runs[0].posterior["mu"].values, mean, var)


def test_normal_normal_evidence(normal_normal_runs):
    assert_evidence_close(normal_normal_runs[1], normal_normal_log_evidence())


def test_normal_normal_negative_controls(normal_normal_runs):
    posterior, evidence = normal_normal_runs
    mean, var = normal_normal_posterior()
    draws = posterior.posterior["mu"].values
    # A truth half a posterior sd away, or a variance 40% too large, must fail.
    with pytest.raises(AssertionError, match="mean"):
        assert_moments_close(draws, mean + 0.5 * np.sqrt(var), var)
    with pytest.raises(AssertionError, match="variance"):
        assert_moments_close(draws, mean, 1.4 * var)
    # The evidence of a wrong model (noise sd 10% larger) against the right answer must fail.
    wrong = smc(normal_normal_model(sigma=1.1 * NN_SIGMA), draws=EVIDENCE_DRAWS,
                chains=EVIDENCE_CHAINS)
    with pytest.raises(AssertionError, match="log evidence"):
        assert_evidence_close(wrong, normal_normal_log_evidence())
    # And the right run against the exact evidence of a prior twice as wide.
    with pytest.raises(AssertionError, match="log evidence"):
        assert_evidence_close(evidence, normal_normal_log_evidence(prior_sd=2 * NN_PRIOR_SD))


# --- beta-binomial: a bounded variable (logit transform, its Jacobian in the prior) --------

BB_A, BB_B = 2.0, 3.0
BB_TRIALS = np.array([10.0, 12.0, 8.0])
BB_SUCCESSES = np.array([3.0, 5.0, 2.0])


def test_beta_binomial_posterior_and_evidence():
    model = Builder().rv("p", Beta(BB_A, BB_B)).obs("k", Binomial(BB_TRIALS, "p"), BB_SUCCESSES)
    a = BB_A + BB_SUCCESSES.sum()
    b = BB_B + (BB_TRIALS - BB_SUCCESSES).sum()
    idata = smc(model, draws=EVIDENCE_DRAWS, chains=EVIDENCE_CHAINS, resampling="multinomial")
    posterior = scipy_stats.beta(a, b)
    assert_moments_close(idata.posterior["p"].values, posterior.mean(), posterior.var())

    def log_evidence(prior_a):
        return (np.sum(np.log(special.comb(BB_TRIALS, BB_SUCCESSES)))
                + special.betaln(prior_a + BB_SUCCESSES.sum(), b) - special.betaln(prior_a, BB_B))
    assert_evidence_close(idata, log_evidence(BB_A))
    with pytest.raises(AssertionError, match="log evidence"):  # the evidence of Beta(3, 3)
        assert_evidence_close(idata, log_evidence(BB_A + 1))


# --- two modes, and a hierarchical model with a scale: evidence by quadrature ---------------

def test_bimodal_finds_both_modes():
    """y ~ N(x^2, 1): the posterior of x has two mirror-image modes, each with half the mass."""
    y = np.array([4.0, 4.5, 3.5])
    model = Builder().rv("x", Normal(0.0, 3.0)).obs("y", Normal(ref("x") * ref("x"), 1.0), y)
    idata = smc(model, draws=EVIDENCE_DRAWS, chains=EVIDENCE_CHAINS)
    x = idata.posterior["x"].values
    assert_particles_close(x > 0, 0.5, particle_ess(x), "mass of the positive mode")

    def density(t):
        return scipy_stats.norm(0, 3).pdf(t) * np.prod(scipy_stats.norm(t * t, 1).pdf(y))
    assert_evidence_close(idata, np.log(2 * integrate.quad(density, 0, np.inf)[0]))


def test_hierarchical_evidence():
    """Eight schools (centred, tau ~ HalfNormal): mu and theta integrate out, tau by quadrature."""
    y = np.array([28.0, 8, -3, 7, -1, 1, 18, 12])
    sigma = np.array([15.0, 10, 16, 11, 9, 11, 10, 18])
    model = (Builder().rv("mu", Normal(0.0, 5.0)).rv("tau", HalfNormal(5.0))
             .rv("theta", Normal("mu", "tau", shape=8)).obs("y", Normal("theta", sigma), y))

    def density(tau):
        cov = np.diag(sigma ** 2 + tau ** 2) + 25.0
        return (scipy_stats.halfnorm(scale=5.0).pdf(tau)
                * scipy_stats.multivariate_normal(np.zeros(8), cov).pdf(y))
    idata = smc(model, draws=EVIDENCE_DRAWS, chains=EVIDENCE_CHAINS, kernel="mh")
    assert_evidence_close(idata, np.log(integrate.quad(density, 0, np.inf)[0]))
    assert idata.posterior["theta"].shape == (EVIDENCE_CHAINS, EVIDENCE_DRAWS, 8)
    assert np.all(idata.posterior["tau"].values > 0)


def test_potential_is_tempered_with_the_likelihood():
    """A Potential is in neither the prior's draws nor the pointwise log-likelihood: the
    evidence counts it (by quadrature: prior N(0, 1), y ~ N(mu, 1), potential -mu^2 / 2)."""
    model = (Builder().rv("mu", Normal(0.0, 1.0)).obs("y", Normal("mu", 1.0), np.array([0.5]))
             .potential("penalty", -0.5 * ref("mu") * ref("mu")))
    idata = smc(model, draws=EVIDENCE_DRAWS, chains=EVIDENCE_CHAINS)

    def density(t):
        return scipy_stats.norm.pdf(t) * scipy_stats.norm.pdf(0.5, t, 1.0) * np.exp(-0.5 * t * t)
    assert_evidence_close(idata, np.log(integrate.quad(density, -np.inf, np.inf)[0]))
    # posterior N(0.5 / 3, 1 / 3): precision 1 + 1 + 1
    assert_moments_close(idata.posterior["mu"].values, 0.5 / 3.0, 1.0 / 3.0)


def test_observed_variable_as_a_parameter():
    """An observation another variable refers to: its data in the prior draws, its density
    in the evidence.  x ~ N(0, 5) observed, mu ~ N(sum(x) = 6, 1), y ~ N(mu, 1) observed."""
    x = np.array([1.0, 2.0, 3.0])
    model = (Builder().obs("x", Normal(0.0, 5.0), x).rv("mu", Normal(exmc.math.sum(ref("x")), 1.0))
             .obs("y", Normal("mu", 1.0), np.array([5.0])))
    idata = smc(model, draws=EVIDENCE_DRAWS, chains=EVIDENCE_CHAINS)
    exact = (scipy_stats.norm(0.0, 5.0).logpdf(x).sum()
             + scipy_stats.norm(6.0, np.sqrt(2.0)).logpdf(5.0))
    assert_evidence_close(idata, exact)
    assert_moments_close(idata.posterior["mu"].values, 5.5, 0.5)


# --- the result, reproducibility, errors ------------------------------------------------------

def test_result_layout_and_reproducible():
    """Same seed, same draws, whether the chains run in threads or one after the other."""
    model = normal_normal_model()
    first = smc(model, draws=200, chains=2, seed=5, cores=2)
    again = smc(model, draws=200, chains=2, seed=5, cores=1)
    other = smc(model, draws=200, chains=2, seed=6)
    np.testing.assert_array_equal(first.posterior["mu"].values, again.posterior["mu"].values)
    assert not np.array_equal(first.posterior["mu"].values, other.posterior["mu"].values)
    s = first.sample_stats
    assert s["lp"].shape == (2, 200)
    assert s["log_marginal_likelihood"].dims == ("chain",)
    assert s.attrs["log_marginal_likelihood"] == again.sample_stats.attrs["log_marginal_likelihood"]
    betas = s["beta"].values
    for row in betas:  # increasing to exactly 1, then padding
        stages = row[np.isfinite(row)]
        assert np.all(np.diff(stages) > 0) and stages[-1] == 1.0
    assert s.attrs["sampler"] == "SMC" and first.posterior.attrs["inference_library"] == "exmc"
    assert "y" in first.observed_data


def test_no_observations_gives_the_prior():
    idata = smc(Builder().rv("mu", Normal(1.0, 2.0)), draws=500, chains=2)
    assert idata.sample_stats.attrs["log_marginal_likelihood"] == 0.0
    assert idata.sample_stats["beta"].values.tolist() == [[1.0], [1.0]]


@pytest.mark.parametrize("argument, bad, message", [
    ("draws", 1, "draws must be an integer >= 2"),
    ("draws", 10.5, "draws must be an integer"),
    ("chains", 0, "chains must be an integer >= 1"),
    ("kernel", "nuts", "kernel must be one of 'imh', 'mh', 'hmc'"),
    ("resampling", "stratified", "resampling must be one of"),
    ("threshold", 1.0, r"threshold must be a number in \(0, 1\)"),
    ("correlation_threshold", 0, "correlation_threshold must be"),
    ("max_steps", 0, "max_steps must be an integer >= 1"),
    ("cores", 0, "cores must be an integer >= 1"),
])
def test_bad_arguments(argument, bad, message):
    with pytest.raises(ValueError, match=message):
        exmc.sample_smc(normal_normal_model(), **{argument: bad})


def test_prior_without_random_draws_is_refused():
    model = (Builder().rv("mu", Custom(-0.5 * value * value))
             .obs("y", Normal("mu", 1.0), NN_Y))
    with pytest.raises(ValueError, match="variable 'mu' .Custom. has no random-draw function"):
        exmc.sample_smc(model, progressbar=False)
    improper = Builder().rv("mu", exmc.Flat()).obs("y", Normal("mu", 1.0), NN_Y)
    with pytest.raises(ValueError, match="variable 'mu' .Flat. has no random-draw function"):
        exmc.sample_smc(improper, progressbar=False)


def test_in_the_background_gives_the_same_draws_and_can_be_aborted():
    options = dict(draws=300, chains=2, seed=7, progressbar=False)
    handle = exmc.sample_smc(normal_normal_model(), blocking=False, **options)
    background = handle.wait(120)
    assert handle.done() and set(handle.beta().values()) == {1.0}
    np.testing.assert_array_equal(background.posterior["mu"].values,
                                  exmc.sample_smc(normal_normal_model(), **options).posterior["mu"].values)
    stopped = exmc.sample_smc(normal_normal_model(), blocking=False, **options)
    stopped._stop.set()  # before the first stage ends: no chain reaches the posterior
    assert stopped.abort(120) is None and stopped.done()
    assert all(beta < 1.0 for beta in stopped.beta().values())
