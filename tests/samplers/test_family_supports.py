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
