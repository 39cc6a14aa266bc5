"""Shared statistical checks: expectations against known truths, in Monte Carlo standard errors.

Every check reduces to one question, asked per component: is the draws' average
of some function f, whose exact expectation is known, within ``z`` Monte Carlo
standard errors of that expectation (BlackJAX's MCSE test)?

- means: f(x) = x_i, truth mu_i;
- variances, through the draws' second moments about the true mean:
  f(x) = (x_i - mu_i)**2, truth Sigma_ii (unbiased, no estimated mean inside);
- correlations: f(x) = (x_i - mu_i)(x_j - mu_j) / (sd_i sd_j), truth rho_ij;
- whitened moments, for Gaussian targets: w = L^{-1}(x - mu) with L L^T = Sigma
  has E[w] = 0 and E[w w^T] = I.  On a strongly correlated target this is far
  more sensitive than the correlation product (whose variance is 1 + rho**2 in
  every direction): it measures each principal direction's spread relative to
  its own size.

The MCSE is ArviZ's (``az.mcse(method="mean")``: sd / sqrt(ESS), with the
autocorrelation ESS of the mean, no rank normalisation), computed from the same
draws.  A check also demands ESS >= ``MIN_ESS``: a stuck chain has a huge MCSE
and would otherwise pass everything, and the MCSE itself is only trustworthy
with enough ESS (the posterior tests' smallest ESS is about 650).

Failure budget (false failures, i.e. a correct sampler failing):

- Under a correct sampler, (estimate - truth) / MCSE is close to standard
  normal; because the MCSE is itself estimated, treat it as Student-t.  With
  ESS >= MIN_ESS = 400 the MCSE rests on hundreds of effective draws; we take
  t with 100 degrees of freedom as a conservative stand-in.
- Two-sided tail at z = 5: 2 * P(T_100 > 5) = 2.5e-6 (standard normal: 5.7e-7).
- The suite makes fewer than ``CHECK_BUDGET`` = 300 such scalar comparisons
  (tests/samplers makes about 200: count them with ``checks_made``).
- Union bound: 300 * 2.5e-6 = 7.5e-4 < 1e-3 for the whole suite, per choice of
  seeds.  Seeds are fixed, so a given tree either passes or fails every time;
  the budget is the chance that re-seeding (or a change to the sampler's use
  of randomness that leaves it correct) turns a correct sampler red.
- Checked empirically: the 118 comparisons of tests/samplers/test_posteriors.py
  run under 8 seeds (944 z-scores) had mean 0.03, sd 1.05 and max |z| 3.5.

Power (what a wrong target must exceed to be caught): 5 MCSE, e.g. 0.16 sd for
a mean with ESS 1000, and about 25% of a variance (sd of (x - mu)**2 is
sqrt(2) var for a Gaussian, and the ESS of squares is usually lower).  Each
harness in the suite has a negative control showing a wrong target fails; the
controls are sized to miss by 10 to 40 MCSE, so a control that wrongly passes
is far rarer than the false failures budgeted above.
"""
import arviz as az
import numpy as np

Z = 5.0
MIN_ESS = 400.0
CHECK_BUDGET = 300

checks_made = 0  # scalar comparisons made in this process, for the budget above


def as_draws(draws):
    """(chains, draws, k) float array from (draws,), (chains, draws) or (chains, draws, ...)."""
    x = np.asarray(draws, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    return x.reshape(x.shape[0], x.shape[1], -1)


def expectation_error(values):
    """(average, MCSE, ESS) of draws of a scalar function, shaped (chains, draws)."""
    values = np.asarray(values, dtype=float)
    return (float(values.mean()), float(np.asarray(az.mcse(values, method="mean")).squeeze()),
            float(az.ess(values, method="mean")))


def assert_expectations_close(values, truths, labels, z=Z, min_ess=MIN_ESS, what="E[f]"):
    """Each ``values[..., k]`` (chains, draws, K) averages to ``truths[k]`` within z MCSE.

    Raises AssertionError naming every component that is off, with its estimate,
    truth, MCSE and z-score, or whose ESS is below ``min_ess``.
    """
    global checks_made
    values = as_draws(values)
    truths = np.broadcast_to(np.asarray(truths, dtype=float), (values.shape[2],))
    failures = []
    for k in range(values.shape[2]):
        checks_made += 1
        v = values[:, :, k]
        if not np.all(np.isfinite(v)):
            failures.append(f"{what} {labels[k]}: non-finite draws")
            continue
        estimate, mcse, ess = expectation_error(v)
        score = (estimate - truths[k]) / mcse if mcse > 0 else (
            0.0 if estimate == truths[k] else np.inf)
        if ess < min_ess:
            failures.append(f"{what} {labels[k]}: ESS {ess:.0f} < {min_ess:.0f}")
        elif not abs(score) <= z:
            failures.append(f"{what} {labels[k]}: estimate {estimate:.5g}, truth {truths[k]:.5g}, "
                            f"MCSE {mcse:.3g}, z = {score:.2f} (bound {z})")
    if failures:
        raise AssertionError("; ".join(failures))


def _index_labels(k):
    return [f"[{i}]" for i in range(k)]


def assert_mean_close(draws, true_mean, z=Z, min_ess=MIN_ESS):
    """Posterior mean of every component within z MCSE of ``true_mean``.

    draws : (draws,), (chains, draws) or (chains, draws, *shape); true_mean broadcasts to
    the flattened component axis.
    """
    x = as_draws(draws)
    assert_expectations_close(x, true_mean, _index_labels(x.shape[2]), z, min_ess, "mean")


def assert_variance_close(draws, true_mean, true_var, z=Z, min_ess=MIN_ESS):
    """Posterior variance of every component, as E[(x - true_mean)**2], within z MCSE."""
    x = as_draws(draws)
    centred = x - np.broadcast_to(np.asarray(true_mean, dtype=float), (x.shape[2],))
    assert_expectations_close(centred ** 2, true_var, _index_labels(x.shape[2]), z, min_ess,
                              "variance")


def assert_correlation_close(draws, true_mean, true_cov, z=Z, min_ess=MIN_ESS):
    """Every pairwise correlation, as E[(x_i - mu_i)(x_j - mu_j)] / (sd_i sd_j), within z MCSE."""
    x = as_draws(draws)
    cov = np.asarray(true_cov, dtype=float)
    sd = np.sqrt(np.diag(cov))
    standard = (x - np.asarray(true_mean, dtype=float)) / sd
    pairs = [(i, j) for i in range(x.shape[2]) for j in range(i + 1, x.shape[2])]
    if not pairs:
        return
    products = np.stack([standard[:, :, i] * standard[:, :, j] for i, j in pairs], axis=-1)
    truths = [cov[i, j] / (sd[i] * sd[j]) for i, j in pairs]
    assert_expectations_close(products, truths, [f"[{i},{j}]" for i, j in pairs], z, min_ess,
                              "correlation")


def assert_whitened_close(draws, true_mean, true_cov, z=Z, min_ess=MIN_ESS):
    """w = L^{-1}(x - mu), L L^T = true_cov: E[w_i] = 0 and E[w_i w_j] = delta_ij within z MCSE."""
    x = as_draws(draws)
    lower = np.linalg.cholesky(np.asarray(true_cov, dtype=float))
    centred = x - np.asarray(true_mean, dtype=float)
    w = np.linalg.solve(lower, centred.reshape(-1, x.shape[2]).T).T.reshape(x.shape)
    k = x.shape[2]
    assert_expectations_close(w, 0.0, _index_labels(k), z, min_ess, "whitened mean")
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    products = np.stack([w[:, :, i] * w[:, :, j] for i, j in pairs], axis=-1)
    assert_expectations_close(products, [float(i == j) for i, j in pairs],
                              [f"[{i},{j}]" for i, j in pairs], z, min_ess, "whitened moment")


def assert_moments_close(draws, true_mean, true_cov, z=Z, min_ess=MIN_ESS):
    """Means, variances and (for more than one component) correlations against a known posterior."""
    cov = np.atleast_2d(np.asarray(true_cov, dtype=float))
    assert_mean_close(draws, true_mean, z, min_ess)
    assert_variance_close(draws, true_mean, np.diag(cov), z, min_ess)
    assert_correlation_close(draws, true_mean, cov, z, min_ess)
