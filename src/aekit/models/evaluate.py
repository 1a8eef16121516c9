"""Evaluate a trained autoencoder's reconstruction and sparsity on a dataset."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import metrics
from ..data.validate import check_activations
from .base import Autoencoder


@torch.no_grad()
def evaluate_reconstruction(model: Autoencoder, x: Tensor, batch_size: int = 4096) -> dict[str, Any]:
    """MSE, FVU, L0, dead/dense fractions and the feature-density histogram of `model` on rows `x`."""
    d_in = model.config.d_in
    x = check_activations(x, "evaluation data", d_in).float()
    model.eval()
    device = next(model.parameters()).device
    n_latents = model.config.n_latents
    counts = torch.zeros(n_latents, dtype=torch.long)
    sq_err, l0_sum = 0.0, 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        codes = model.encode(xb)
        x_hat = model.decode(codes)
        sq_err += float((x_hat - xb).double().pow(2).sum())
        l0_sum += float(codes.l0().double().sum())
        counts += codes.fire_counts().cpu()
    total_var = float((x.double() - x.double().mean(0)).pow(2).sum())
    density = metrics.feature_density(counts, len(x))
    return {
        "n_samples": len(x),
        "mse": sq_err / x.numel(),
        "fvu": sq_err / max(total_var, 1e-30),
        "l0": l0_sum / len(x),
        "dead_fraction": metrics.dead_fraction(density),
        "dense_fraction": metrics.dense_fraction(density),
        "density_histogram": metrics.density_histogram(density),
    }
