"""Disentanglement metrics on representations whose answer is known: the identity code, duplicated latents, a
random rotation, pure noise, exact importance matrices, Gaussians with closed-form total correlation and
constructed VAE variances."""

import functools
import math

import numpy as np
import pytest
import scipy.stats

from aekit.errors import ConfigError, DataError, ShapeError
from aekit.metrics import (
    classify_latents,
    dci,
    dci_from_importance,
    gaussian_total_correlation,
    infomec,
    mig,
    mig_per_factor,
    passive_report,
    sap,
)

N, SIZES = 2000, (10, 8, 4, 15)
_rng = np.random.default_rng(0)
FACTORS = np.stack([_rng.integers(0, s, N) for s in SIZES], axis=1)
IDENTITY = FACTORS / (np.array(SIZES) - 1.0) + 1e-3 * _rng.standard_normal((N, len(SIZES)))
ROTATION = np.linalg.qr(_rng.standard_normal((len(SIZES), len(SIZES))))[0]
REPRESENTATIONS = {
    "identity": IDENTITY,
    "duplicated": np.repeat(IDENTITY, 2, axis=1) + 1e-3 * _rng.standard_normal((N, 2 * len(SIZES))),
    "rotated": (IDENTITY - IDENTITY.mean(axis=0)) @ ROTATION,
    "noise": _rng.standard_normal((N, len(SIZES))),
}


@functools.cache
def scores(name: str) -> dict:
    z = REPRESENTATIONS[name]
    d = dci(FACTORS, z, seed=0, n_estimators=10)
    return {**infomec(FACTORS, z), "mig": mig(FACTORS, z), "sap": sap(FACTORS, z),
            "D": d["disentanglement"], "C": d["completeness"], "I": d["informativeness"]}


def test_identity_representation_is_perfect():
    s = scores("identity")
    for key in ("mig", "D", "C", "I", "infom", "infoc", "infoe"):
        assert s[key] >= 0.95, (key, s[key])


def test_duplicated_latents_are_modular_but_not_compact():
    s = scores("duplicated")
    assert s["mig"] <= 0.1  # two latents share every factor: no gap
    assert s["sap"] <= 0.05
    assert s["infom"] >= 0.95 and s["D"] >= 0.95  # each latent still holds a single factor
    assert s["infoc"] <= 0.6  # each factor is split over two latents
    assert abs(s["C"] - (1 - math.log(2) / math.log(2 * len(SIZES)))) < 0.05  # importance split in half


def test_random_rotation_scores_clearly_lower():
    identity, rotated = scores("identity"), scores("rotated")
    for key in ("mig", "D", "infom", "infoc"):
        assert rotated[key] < identity[key] - 0.3, (key, rotated[key], identity[key])
    assert rotated["infoe"] >= 0.95  # a rotation loses no linearly decodable information
    assert rotated["sap"] < identity["sap"] - 0.1


def test_infoe_separates_information_from_noise():
    assert scores("identity")["infoe"] >= 0.99
    assert abs(scores("noise")["infoe"]) <= 0.05
    assert scores("noise")["I"] < 0.3 and scores("noise")["mig"] < 0.02


def test_dci_from_importance_exact_anchors():
    # K = 10 factors, each held by two latents (J = 20): every latent is pure (D = 1 exactly) and every factor is
    # split evenly over two of the 20 latents: C = 1 − H_20(½, ½) = 1 − ln 2 / ln 20.
    duplicated = np.kron(np.eye(10), np.ones((2, 1)))
    d, c = dci_from_importance(duplicated)
    assert abs(d - 1.0) < 1e-12 and abs(c - (1 - math.log(2) / math.log(20))) < 1e-12
    # The transpose (10 latents, each holding two of 20 factors) swaps the roles.
    d, c = dci_from_importance(duplicated.T)
    assert abs(d - (1 - math.log(2) / math.log(20))) < 1e-12 and abs(c - 1.0) < 1e-12
    # The anchor: a diagonal importance whose columns (factors) are duplicated — 5 latents, K = 10 factors,
    # each latent equally important for two factors — gives D = 1 − ln 2 / ln 10 exactly (and C = 1).
    d, c = dci_from_importance(np.hstack([np.eye(5), np.eye(5)]))
    assert abs(d - (1 - math.log(2) / math.log(10))) < 1e-12 and abs(c - 1.0) < 1e-12
    assert dci_from_importance(np.ones((5, 3))) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert dci_from_importance(np.zeros((4, 3))) == (0.0, 0.0)
    assert dci_from_importance(np.eye(6)) == pytest.approx((1.0, 1.0), abs=1e-12)


def test_dci_from_importance_matches_disentanglement_lib_formula():
    r = np.random.default_rng(1).random((7, 4)) ** 3

    def reference(matrix, axis):  # disentanglement_lib: entropy with +1e-11, weighted by row/column importance
        p = matrix.T if axis == 0 else matrix
        per = 1 - scipy.stats.entropy(p.T + 1e-11, base=p.shape[1])
        return float(np.sum(per * p.sum(axis=1) / p.sum()))

    d, c = dci_from_importance(r)
    assert d == pytest.approx(reference(r, 1), abs=1e-8)
    assert c == pytest.approx(reference(r, 0), abs=1e-8)


def test_mig_exact_for_a_perfect_and_a_constant_latent():
    factor = np.random.default_rng(2).integers(0, 4, 500)[:, None]
    latents = np.stack([factor[:, 0] * 1.0, np.full(500, 3.0)], axis=1)
    np.testing.assert_allclose(mig_per_factor(factor, latents), [1.0], atol=1e-12)
    np.testing.assert_allclose(mig_per_factor(factor, latents[:, :1]), [1.0], atol=1e-12)  # one latent: gap to 0


def test_sap_with_binary_factors_reaches_its_ceiling():
    rng = np.random.default_rng(3)
    factors = rng.integers(0, 2, (1000, 3))
    z = factors + 0.1 * rng.standard_normal((1000, 3))
    assert sap(factors, z) >= 0.45  # best latent ≈ 100 % accurate, runner-up ≈ chance (50 %)


def test_infomec_discrete_and_continuous_paths():
    codes = FACTORS.astype(np.float64)
    discrete = infomec(FACTORS, codes, discrete_latents=True)
    assert discrete["infom"] >= 0.95 and discrete["infoc"] >= 0.95 and discrete["infoe"] >= 0.99
    assert discrete["nmi"].shape == (4, 4)
    np.testing.assert_allclose(np.diag(discrete["nmi"]), 1.0, atol=1e-12)  # plug-in I(s; s) / H(s) = 1 exactly
    doubled = infomec(FACTORS[:800], np.repeat(codes[:800], 2, axis=1), discrete_latents=True)
    # Plug-in MI of independent variables is biased up by ≈ (C_i − 1)(C_j − 1) / 2n, hence ≥ 0.9 at n = 800.
    assert doubled["infom"] >= 0.9 and doubled["infoc"] <= 0.6
    continuous = infomec(FACTORS, codes)
    assert continuous["infom"] >= 0.9 and continuous["infoc"] >= 0.9


def test_infomec_drops_inactive_latents():
    z = np.concatenate([IDENTITY, np.zeros((N, 1)), 1e-3 * IDENTITY[:, :1]], axis=1)  # dead + tiny-range latent
    continuous = infomec(FACTORS, z)
    assert continuous["active"].tolist() == [True] * 4 + [False, False]
    assert continuous["nmi"].shape == (4, 4) and continuous["infom"] >= 0.95
    rare = (np.arange(N) == 7).astype(np.float64)  # one sample differs: a tiny range, still a used code
    codes = np.concatenate([FACTORS, np.zeros((N, 1)), rare[:, None]], axis=1)
    discrete = infomec(FACTORS, codes, discrete_latents=True)
    assert discrete["active"].tolist() == [True] * 4 + [False, True]  # any spread counts for discrete codes
    assert discrete["nmi"].shape == (4, 5)
    assert infomec(FACTORS, np.zeros((N, 3)))["active"].sum() == 0


def test_metrics_are_deterministic_for_a_seed():
    z = REPRESENTATIONS["rotated"][:600]
    a, b = infomec(FACTORS[:600], z, seed=5), infomec(FACTORS[:600], z, seed=5)
    assert a["infom"] == b["infom"] and np.array_equal(a["nmi"], b["nmi"])
    assert dci(FACTORS[:600], z, seed=1, n_estimators=5)["disentanglement"] == \
        dci(FACTORS[:600], z, seed=1, n_estimators=5)["disentanglement"]


def _with_sample_covariance(covariance: np.ndarray, n: int = 1000) -> np.ndarray:
    """Samples whose (ddof = 1) sample covariance is exactly `covariance`."""
    x = np.random.default_rng(4).standard_normal((n, len(covariance)))
    x -= x.mean(axis=0)
    white = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False)).T)
    return white @ np.linalg.cholesky(covariance).T


def test_gaussian_total_correlation_closed_forms():
    for rho in (0.0, 0.3, 0.8, -0.95):
        cross = rho * math.sqrt(2.0) * 0.5  # standard deviations √2 and 0.5
        z = _with_sample_covariance(np.array([[2.0, cross], [cross, 0.25]]))
        assert gaussian_total_correlation(z) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-10)
    correlation = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, -0.3], [0.2, -0.3, 1.0]])
    expected = -0.5 * math.log(np.linalg.det(correlation))
    assert gaussian_total_correlation(_with_sample_covariance(correlation * 3.0)) == pytest.approx(expected, abs=1e-10)
    independent = np.random.default_rng(5).standard_normal((50_000, 4))
    assert 0 <= gaussian_total_correlation(independent) < 1e-3
    assert gaussian_total_correlation(independent[:, :1]) == 0.0
    assert gaussian_total_correlation(np.repeat(independent[:, :1], 2, axis=1)) == math.inf
    with pytest.raises(DataError, match=r"z\[:, 1\]"):
        gaussian_total_correlation(np.stack([independent[:, 0], np.ones(50_000)], axis=1))


def test_classify_latents_by_encoder_variance():
    n = 400
    half = np.arange(n) < n // 2
    rng = np.random.default_rng(6)
    variances = np.stack([
        0.01 + 0.01 * rng.random(n),  # active: σ² ≈ 0 for every input
        1.0 + 0.05 * rng.standard_normal(n),  # passive: σ² ≈ 1 (the prior) for every input
        np.where(half, 0.01, 1.0),  # mixed: active for half the inputs, passive for the rest (spread ≈ 0.25)
        np.full(n, 0.5),  # mixed: neither regime
        np.full(n, 1.2),  # mixed: above the passive band
        np.full(n, 0.09),  # active: low mean, no spread
        1.0 + np.where(half, -0.35, 0.35),  # mixed: mean 1 but spread 0.1225 ≥ 0.1
    ], axis=1)
    assert classify_latents(variances) == ["active", "passive", "mixed", "mixed", "mixed", "active", "mixed"]
    with pytest.raises(DataError, match="encoder_variances"):
        classify_latents(-variances)


def test_passive_report_separates_mean_and_sampled_correlation():
    n, rng = 4000, np.random.default_rng(7)
    variances = np.concatenate([np.full((n, 2), 0.01), np.full((n, 2), 1.0)], axis=1)
    shared = rng.standard_normal(n)
    means = np.concatenate([rng.standard_normal((n, 2)),  # active latents: independent codes
                            1e-3 * (shared[:, None] + 0.05 * rng.standard_normal((n, 2)))], axis=1)  # collapsed
    samples = means + np.sqrt(variances) * rng.standard_normal((n, 4))
    report = passive_report(means, samples, variances)
    assert report["labels"] == ["active", "active", "passive", "passive"]
    assert report["active"]["latents"] == [0, 1] and report["passive"]["latents"] == [2, 3]
    assert report["passive"]["tc_mean"] > 2.0  # passive means move together
    assert report["passive"]["tc_sampled"] < 0.01  # their samples are independent prior noise
    assert report["active"]["tc_mean"] < 0.01
    assert report["mixed"] == {"latents": [], "tc_mean": None, "tc_sampled": None}
    with pytest.raises(ShapeError, match="means"):
        passive_report(means[:, :3], samples, variances)


def test_bad_inputs_are_refused_with_the_argument_named():
    with pytest.raises(ShapeError, match="same number"):
        mig(FACTORS[:10], IDENTITY[:11])
    with pytest.raises(DataError, match="NaN"):
        infomec(FACTORS[:10], np.full((10, 2), np.nan))
    constant = FACTORS[:50].copy()
    constant[:, 2] = 1
    with pytest.raises(DataError, match=r"factors\[:, 2\]"):
        mig(constant, IDENTITY[:50])
    with pytest.raises(ConfigError, match="train_fraction"):
        sap(FACTORS, IDENTITY, train_fraction=1.0)
    with pytest.raises(ConfigError, match="discrete_latents"):
        infomec(FACTORS, IDENTITY, discrete_latents=True)  # continuous codes passed as discrete
    with pytest.raises(ConfigError, match="n_bins"):
        mig(FACTORS, IDENTITY, n_bins=1)
