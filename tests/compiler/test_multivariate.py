"""Multivariate families and vector transforms: densities against scipy, gradients, sampled moments.

Densities are checked through the compiled model, with the transform's
log-Jacobian computed here independently (numerically, from the forward map);
the samplers' moments are checked in MCSE units (tests/stats.py) with a
negative control each.
"""
import functools

import numpy as np
import pytest
from scipy import stats

import exmc
from exmc import math as em
from exmc import ref
from exmc.compiler import compile_model, transforms
from exmc.ir.evaluate import evaluate
from tests.stats import assert_expectations_close

RNG = np.random.default_rng(7)
K = 3
_A = RNG.normal(size=(K, K))
COV = _A @ _A.T + K * np.eye(K)
Y = RNG.normal(size=(6, K))


def flat(shape):
    return exmc.Custom(logp=0.0 * exmc.value, shape=shape)


# name -> (model builder, log density at the constrained values, from scipy)
MODELS = {
    "mvnormal-cov": (lambda: exmc.Builder().rv("mu", flat(K)).obs("y", exmc.MvNormal("mu", cov=COV), Y),
                     lambda v: stats.multivariate_normal(v["mu"], COV).logpdf(Y).sum()),
    "mvnormal-chol": (lambda: exmc.Builder().rv("mu", flat(K))
                      .obs("y", exmc.MvNormal("mu", chol=np.linalg.cholesky(COV)), Y),
                      lambda v: stats.multivariate_normal(v["mu"], COV).logpdf(Y).sum()),
    "mvnormal-computed-cov": (
        lambda: (exmc.Builder().rv("mu", flat(K)).rv("s", flat(K))
                 .det("cov", em.exp(ref("s")) * np.eye(K) + 0.3)
                 .obs("y", exmc.MvNormal("mu", cov="cov"), Y)),
        lambda v: stats.multivariate_normal(v["mu"], np.diag(np.exp(v["s"])) + 0.3).logpdf(Y).sum()),
    "dirichlet": (lambda: exmc.Builder().rv("p", exmc.Dirichlet(np.array([2.0, 3.0, 4.0]))),
                  lambda v: stats.dirichlet([2.0, 3.0, 4.0]).logpdf(v["p"])),
    "dirichlet-observed": (lambda: exmc.Builder().rv("a", exmc.HalfNormal(2.0, shape=K))
                           .obs("y", exmc.Dirichlet("a"), np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])),
                           lambda v: stats.halfnorm(scale=2.0).logpdf(v["a"]).sum()
                           + sum(stats.dirichlet(v["a"]).logpdf(y) for y in ([0.2, 0.3, 0.5], [0.6, 0.1, 0.3]))),
    "zerosumnormal": (lambda: exmc.Builder().rv("a", exmc.ZeroSumNormal(1.5, shape=4)),
                      lambda v: stats.norm(0.0, 1.5).logpdf(v["a"]).sum()
                      - stats.norm(0.0, 1.5).logpdf(0.0)),  # N(0, s^2 I) on the 3-d subspace
    "lkj": (lambda: exmc.Builder().rv("L", exmc.LKJCorrCholesky(2.0, n=3)), None),
    "lkj-cholesky-cov": (lambda: exmc.Builder()
                         .lkj_cholesky_cov("chol", eta=2.0, n=K, sd_dist=exmc.Exponential(1.0))
                         .obs("y", exmc.MvNormal(np.zeros(K), chol="chol"), Y), None),
}


@functools.cache
def compiled(name):
    return compile_model(MODELS[name][0]())


def log_jacobian(cm, z):
    """Sum of the free variables' log-Jacobians, from finite differences of each transform."""
    total = 0.0
    for slot in cm.pointmap.free:
        transform, lower, upper = cm.pointmap.transforms[slot.name]
        zs = z[slot.offset:slot.offset + slot.size]
        bounds = [None if b is None else evaluate(b, {}) for b in (lower, upper)]
        total += numeric_log_jacobian(transform, zs, *bounds)
    return total


def numeric_log_jacobian(transform, z, lower=None, upper=None):
    """log sqrt(det(J^T J)) of the forward map onto the support's free coordinates."""
    def coords(y):
        x = transform.forward(y, lower, upper)
        if transform.name == "simplex":
            return x[:-1]
        if transform.name == "corr_cholesky":
            return x[np.tril_indices(x.shape[0], -1)]
        return np.ravel(x)
    step = 1e-6
    J = np.stack([(coords(z + e) - coords(z - e)) / (2 * step) for e in np.eye(z.size) * step], axis=1)
    return 0.5 * np.linalg.slogdet(J.T @ J)[1]


@pytest.mark.parametrize("name", [n for n, (_, ref_) in MODELS.items() if ref_ is not None])
def test_log_density_matches_scipy(name):
    cm = compiled(name)
    z = 0.5 * np.random.default_rng(1).normal(size=cm.dim)
    values = {k: v[0] for k, v in cm.constrain(z[None]).items()}
    logp, _, status = cm.logp_and_grad(z)
    assert status == 0
    np.testing.assert_allclose(logp, MODELS[name][1](values) + log_jacobian(cm, z), rtol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("seed", [2, 3])
def test_gradient_matches_finite_differences(name, seed):
    cm = compiled(name)
    z = 0.5 * np.random.default_rng(seed).normal(size=cm.dim)
    _, grad, status = cm.logp_and_grad(z)
    assert status == 0
    numeric = np.array([(cm.logp_and_grad(z + e)[0] - cm.logp_and_grad(z - e)[0]) / 2e-6
                        for e in np.eye(cm.dim) * 1e-6])
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(transforms.VECTOR))
def test_vector_transform_round_trip_and_support(name):
    transform = transforms.VECTOR[name]
    shape = (4, 4) if name in ("corr_cholesky", "corr") else (4,)
    z = np.random.default_rng(4).normal(size=transform.free_shape(shape))
    x = transform.forward(z)
    assert x.shape == shape
    np.testing.assert_allclose(transform.inverse(x), z, rtol=1e-9, atol=1e-9)
    if name == "simplex":
        assert np.all(x > 0) and abs(x.sum() - 1) < 1e-12
    if name == "ordered":
        assert np.all(np.diff(x) > 0)
    if name == "zerosum":
        assert abs(x.sum()) < 1e-12
    if name == "corr_cholesky":
        np.testing.assert_allclose(np.diag(x @ x.T), 1.0, rtol=1e-12)
    if name == "corr":
        np.testing.assert_allclose(np.diag(x), 1.0, rtol=1e-12)
        assert np.all(np.linalg.eigvalsh(x) > 0)


def test_lkj_log_density_is_the_kernel_plus_the_jacobian():
    from exmc.compiler.families import lkj_corr_cholesky_logp
    cm = compiled("lkj")
    z = 0.5 * np.random.default_rng(5).normal(size=cm.dim)
    L = cm.constrain(z[None])["L"][0]
    expected = lkj_corr_cholesky_logp(L, 2.0) + log_jacobian(cm, z)
    np.testing.assert_allclose(cm.logp_and_grad(z)[0], expected, rtol=1e-6)


def test_pointwise_log_likelihood_of_a_multivariate_observation():
    cm = compiled("mvnormal-cov")
    z = np.random.default_rng(6).normal(size=cm.dim)
    mu = cm.constrain(z[None])["mu"][0]
    loglik = cm.log_likelihood(z[None])["y"]
    assert loglik.shape == (1, Y.shape[0])
    np.testing.assert_allclose(loglik[0], stats.multivariate_normal(mu, COV).logpdf(Y), rtol=1e-10)


def test_lkj_cholesky_cov_recovers_a_covariance():
    truth_sd, truth_corr = np.array([1.0, 2.0, 0.5]), np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2],
                                                                [-0.3, 0.2, 1.0]])
    y = np.random.default_rng(3).multivariate_normal(
        np.zeros(3), truth_corr * np.outer(truth_sd, truth_sd), size=300)
    model = (exmc.Builder().lkj_cholesky_cov("chol", eta=2.0, n=3, sd_dist=exmc.Exponential(1.0))
             .obs("y", exmc.MvNormal(np.zeros(3), chol="chol"), y))
    post = sample(model, num_warmup=500, num_samples=500).posterior
    for name, truth in (("chol_stds", truth_sd), ("chol_corr", truth_corr)):
        mean, sd = post[name].mean(("chain", "draw")).values, post[name].std(("chain", "draw")).values
        assert np.all(np.abs(mean - truth) <= 4 * sd + 1e-9), (name, mean, truth, sd)
    chol = post["chol"].values
    assert np.allclose(np.triu(chol[..., :, :], 1), 0.0)


def test_a_batch_of_simplexes_is_refused_by_name():
    with pytest.raises(exmc.ModelError, match="'p': the simplex transform needs a 1-d variable"):
        compile_model(exmc.Builder().rv("p", exmc.Dirichlet(np.ones((2, 3)))))


def test_mismatched_mvnormal_shapes_are_named():
    with pytest.raises(exmc.ModelError, match="MvNormal needs mu of shape"):
        exmc.Builder().rv("x", exmc.MvNormal(np.zeros(3), cov=np.eye(4))).validate()


# ---- sampled moments --------------------------------------------------------------------------
def sample(model, **kwargs):
    options = dict(chains=2, num_warmup=500, num_samples=1500, seed=11, progressbar=False)
    return exmc.sample(model, **{**options, **kwargs})


@pytest.fixture(scope="module")
def prior_draws():
    model = (exmc.Builder().rv("p", exmc.Dirichlet(np.array([1.0, 2.0, 3.0])))
             .rv("a", exmc.ZeroSumNormal(2.0, shape=4))
             .rv("L", exmc.LKJCorrCholesky(2.0, n=3)))
    idata = sample(model)
    return {k: idata.posterior[k].values for k in ("p", "a", "L")}


def moments(draws):
    """(values, truths) for E[p], E[a_i^2] and E[r^2] of each correlation of LKJ(2), n = 3."""
    p, a, L = draws["p"], draws["a"], draws["L"]
    corr = np.einsum("cdij,cdkj->cdik", L, L)
    r = np.stack([corr[..., 1, 0], corr[..., 2, 0], corr[..., 2, 1]], axis=-1)
    values = np.concatenate([p, a ** 2, r ** 2], axis=-1)
    # Dirichlet mean a / sum a; ZeroSumNormal variance sigma^2 (k - 1) / k;
    # LKJ(eta): each r = 2 B - 1 with B ~ Beta(b, b), b = eta - 1 + n / 2, so E[r^2] = 1 / (2b + 1).
    b = 2.0 - 1.0 + 3 / 2
    truths = np.concatenate([[1 / 6, 2 / 6, 3 / 6], [4.0 * 3 / 4] * 4, [1 / (2 * b + 1)] * 3])
    return values, truths


def test_prior_moments_of_the_multivariate_families(prior_draws):
    values, truths = moments(prior_draws)
    assert_expectations_close(values, truths, labels=[f"m{k}" for k in range(truths.size)])
    assert np.allclose(prior_draws["p"].sum(-1), 1.0) and np.allclose(prior_draws["a"].sum(-1), 0.0)


def test_negative_control_a_wrong_zero_sum_variance_fails(prior_draws):
    values, truths = moments(prior_draws)
    truths[3:7] = 4.0  # sigma^2 instead of sigma^2 (k - 1) / k
    with pytest.raises(AssertionError):
        assert_expectations_close(values, truths, labels=[f"m{k}" for k in range(truths.size)])
