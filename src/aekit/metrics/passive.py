"""Active, passive and mixed VAE latents (Bonheme & Grzes, "Be More Active!", 2022).

A VAE latent whose encoder variance σ²(x) stays near 1 for every input carries no information (passive: its mean
collapses and its sample is prior noise); one whose σ²(x) stays near 0 is active; one that switches between the
two regimes depending on the input is mixed. Passive latents are what make the mean representation look far more
correlated (higher total correlation) than the sampled one, so the report scores each group separately.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ShapeError
from .disentanglement import gaussian_total_correlation

SPREAD_LIMIT = 0.1  # the variance over inputs of σ²(x) below which a latent is in one regime for every input
ACTIVE_MAX_MEAN = 0.1  # active: mean σ²(x) ≤ this
PASSIVE_MEAN_RANGE = (0.9, 1.1)  # passive: mean σ²(x) within this range (the prior's variance is 1)
GROUPS = ("active", "passive", "mixed")


def _variances(encoder_variances: np.ndarray) -> np.ndarray:
    v = np.asarray(encoder_variances, dtype=np.float64)
    if v.ndim != 2 or len(v) < 2 or v.shape[1] == 0:
        raise ShapeError(f"encoder_variances: expected an (n, J) array of σ² with n ≥ 2; got shape {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise DataError("encoder_variances: must be finite and ≥ 0 (pass variances σ², not log-variances)")
    return v


def classify_latents(encoder_variances: np.ndarray) -> list[str]:
    """"active", "passive" or "mixed" for each latent, from the mean and variance over inputs of σ²(x) (n, J)."""
    v = _variances(encoder_variances)
    mean, spread = v.mean(axis=0), v.var(axis=0)
    labels = []
    for m, s in zip(mean, spread, strict=True):
        if s < SPREAD_LIMIT and m <= ACTIVE_MAX_MEAN:
            labels.append("active")
        elif s < SPREAD_LIMIT and PASSIVE_MEAN_RANGE[0] <= m <= PASSIVE_MEAN_RANGE[1]:
            labels.append("passive")
        else:
            labels.append("mixed")
    return labels


def passive_report(means: np.ndarray, samples: np.ndarray, encoder_variances: np.ndarray) -> dict:
    """Per group of latents: their indices and the Gaussian total correlation of the mean representation μ(x)
    and of the sampled representation z ~ N(μ(x), σ²(x)), each (n, J).

    Returns {"labels": [...], "active" | "passive" | "mixed": {"latents", "tc_mean", "tc_sampled"}}; a total
    correlation is None for an empty group and NaN where a latent of the group is constant (undefined).
    """
    v = _variances(encoder_variances)
    means, samples = np.asarray(means, dtype=np.float64), np.asarray(samples, dtype=np.float64)
    if means.shape != v.shape or samples.shape != v.shape:
        raise ShapeError(f"means, samples and encoder_variances: must share one (n, J) shape; got {means.shape}, "
                         f"{samples.shape} and {v.shape}")
    labels = classify_latents(v)
    report: dict = {"labels": labels}
    for group in GROUPS:
        members = [j for j, label in enumerate(labels) if label == group]
        entry: dict = {"latents": members, "tc_mean": None, "tc_sampled": None}
        if members:
            for key, representation in (("tc_mean", means), ("tc_sampled", samples)):
                column = representation[:, members]
                entry[key] = gaussian_total_correlation(column) if np.all(column.std(axis=0) > 0) else float("nan")
        report[group] = entry
    return report
