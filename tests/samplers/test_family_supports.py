"""NUTS through each continuous family's support and transform: every latent case of
tests/ir/test_random.py sampled in one model, its mean against its density's, in MCSE units."""
import numpy as np
import pytest

import exmc
from tests.ir.test_random import FAMILY_CASES, _density_moments
from tests.stats import assert_mean_close

pytestmark = pytest.mark.timeout(300)

LATENT = [d for d in FAMILY_CASES if not (d.discrete or getattr(d, "observed_only", False))]


@pytest.fixture(scope="module")
def draws_and_means():
    model = exmc.Builder()
    for i, dist in enumerate(LATENT):
        model.rv(f"v{i}", dist)
    idata = exmc.sample(model, chains=2, num_warmup=1000, num_samples=1000, seed=20261202,
                        progressbar=False)
    draws = np.stack([idata.posterior[f"v{i}"].values for i in range(len(LATENT))], axis=-1)
    return draws, np.array([_density_moments(d)[1] for d in LATENT])


def test_every_continuous_family_samples_its_own_mean(draws_and_means):
    draws, means = draws_and_means
    assert {d.family for d in LATENT} >= {"TruncatedNormal", "VonMises", "Pareto", "Triangular",
                                          "Kumaraswamy", "Wald", "LogitNormal", "Rice"}
    assert_mean_close(draws, means)


def test_negative_control_a_wrong_mean_fails(draws_and_means):
    draws, means = draws_and_means
    sd = draws.reshape(-1, draws.shape[-1]).std(axis=0)
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close(draws, means + 0.3 * sd * (np.arange(len(means)) == 3))


def test_a_von_mises_angle_goes_round_through_pi():
    """Centred near pi, a VonMises holds mass on both sides of the cut at +-pi: the circular
    transform (two free values per angle) reaches it; the share below 0 matches the
    density's in MCSE units, and a control with the other side's share fails."""
    from scipy import integrate, special
    mu, kappa = 3.0, 2.0
    idata = exmc.sample(exmc.Builder().rv("theta", exmc.VonMises(mu, kappa)), chains=2,
                        num_warmup=500, num_samples=1000, seed=3, progressbar=False)
    theta = idata.posterior["theta"].values[..., None]
    density = lambda x: np.exp(kappa * np.cos(x - mu)) / (2 * np.pi * special.i0(kappa))
    below = integrate.quad(density, -np.pi, 0.0)[0]  # about 0.06: the tail past -pi
    assert_mean_close((theta < 0).astype(float), np.array([below]))
    with pytest.raises(AssertionError, match="mean"):
        assert_mean_close((theta < 0).astype(float), np.array([1.0 - below]))
    assert_mean_close(np.cos(theta - mu), np.array([special.i1(kappa) / special.i0(kappa)]))
