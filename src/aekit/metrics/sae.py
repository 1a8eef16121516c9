"""Reconstruction and sparsity metrics: arrays in, numbers out."""

from __future__ import annotations

import torch
from torch import Tensor


def mse(x: Tensor, x_hat: Tensor) -> float:
    """Mean squared error per element."""
    return float((x - x_hat).pow(2).mean())


def fraction_of_variance_unexplained(x: Tensor, x_hat: Tensor) -> float:
    """Σ||x - x̂||² / Σ||x - mean(x)||²: 0 is perfect, 1 is no better than predicting the mean."""
    residual = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0)).pow(2).sum().clamp_min(1e-30)
    return float(residual / total)


def l0(active: Tensor) -> float:
    """Mean number of active latents per sample, from a boolean (batch, n_latents) mask."""
    return float(active.sum(-1).float().mean())


def feature_density(fire_counts: Tensor, n_samples: int) -> Tensor:
    """Fraction of samples on which each latent fires."""
    return fire_counts.double() / max(n_samples, 1)


def dead_fraction(density: Tensor) -> float:
    """Share of latents that never fired."""
    return float((density == 0).double().mean())


def dense_fraction(density: Tensor, threshold: float = 0.1) -> float:
    """Share of latents firing on more than `threshold` of samples (too dense to be a feature)."""
    return float((density > threshold).double().mean())


def density_histogram(density: Tensor, bins: int = 40, low: float = -7.0) -> dict[str, list[float]]:
    """Histogram of log10 feature density; dead latents are counted separately."""
    alive = density[density > 0]
    counts, edges = torch.histogram(alive.log10().float(), bins=bins, range=(low, 0.0))
    return {"log10_density_edges": edges.tolist(), "counts": counts.tolist(), "dead": int((density == 0).sum())}
