"""Score a sparse autoencoder against a feature world's ground truth."""

from __future__ import annotations

import torch

from ..metrics import matched_cosine, mean_best_f1
from ..models.sae import SparseAutoencoder
from .features import FeatureSample, FeatureWorld


@torch.no_grad()
def recovery_scores(model: SparseAutoencoder, world: FeatureWorld, sample: FeatureSample) -> dict[str, float]:
    """MCC (Hungarian-matched cosine of decoder rows to true directions) and mean best-F1 of firing."""
    mcc, _ = matched_cosine(world.directions, model.W_dec.detach().cpu())
    device = next(model.parameters()).device
    active = torch.cat([
        model.encode(sample.x[i : i + 8192].to(device)).to_dense().cpu() > 0 for i in range(0, len(sample.x), 8192)
    ])
    return {"mcc": mcc, "mean_best_f1": mean_best_f1(sample.active, active)}
