"""Evaluate a trained autoencoder's reconstruction and sparsity on a dataset."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import metrics
from ..data.validate import check_activations
from .base import Autoencoder


@torch.no_grad()
def evaluate_reconstruction(model: Autoencoder, batch: Tensor, batch_size: int = 4096) -> dict[str, Any]:
    """MSE, FVU, L0, dead/dense fractions and the feature-density histogram of `model` on `batch`.

    For a transcoder the rows are [x | y] and the errors are measured on y."""
    width = model.config.d_in + (getattr(model.config, "d_out", None) or 0)
    batch = check_activations(batch, "evaluation data", width).float()
    model.eval()
    device = next(model.parameters()).device
    counts = torch.zeros(model.config.n_latents, dtype=torch.long)
    sq_err, l0_sum, cross, recon_sq = 0.0, 0.0, 0.0, 0.0
    target_sum = target_sq = None
    for start in range(0, len(batch), batch_size):
        x, y = model.split_batch(batch[start : start + batch_size].to(device))
        codes = model.encode(x)
        y_hat = model.decode(codes).double()
        sq_err += float((y_hat - y).double().pow(2).sum())
        cross += float((y_hat * y.double()).sum())
        recon_sq += float(y_hat.pow(2).sum())
        l0_sum += float(codes.l0().double().sum())
        counts += codes.fire_counts().cpu()
        y = y.double().cpu()
        target_sum = y.sum(0) if target_sum is None else target_sum + y.sum(0)
        target_sq = y.pow(2).sum(0) if target_sq is None else target_sq + y.pow(2).sum(0)
    n = len(batch)
    total_var = float((target_sq - target_sum.pow(2) / n).sum())
    density = metrics.feature_density(counts, n)
    return {
        "n_samples": n,
        "mse": sq_err / (n * model.config.target_dim),
        "fvu": sq_err / max(total_var, 1e-30),
        "l0": l0_sum / n,
        # γ minimising ||ŷ/γ − y||² (Rajamanoharan et al. 2024a); below 1: reconstructions shrink
        "shrinkage": recon_sq / max(cross, 1e-30),
        "dead_fraction": metrics.dead_fraction(density),
        "dense_fraction": metrics.dense_fraction(density),
        "density_histogram": metrics.density_histogram(density),
    }
