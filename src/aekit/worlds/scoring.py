"""Score a sparse autoencoder against a feature world's ground truth."""

from __future__ import annotations

import torch

from ..metrics import matched_cosine, mean_best_f1
from ..models.sae import SparseAutoencoder
from .features import FeatureSample, FeatureWorld


@torch.no_grad()
def latent_activity(model: SparseAutoencoder, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Boolean (n, n_latents): which latents fire on each row."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(x[i : i + chunk].to(device)).to_dense().cpu() > 0 for i in range(0, len(x), chunk)])


@torch.no_grad()
def recovery_scores(
    model: SparseAutoencoder,
    world: FeatureWorld,
    sample: FeatureSample,
    feature_ids: torch.Tensor | None = None,
    active: torch.Tensor | None = None,
) -> dict[str, float]:
    """MCC (Hungarian-matched cosine of decoder rows to true directions) and mean best-F1 of firing.

    `feature_ids` restricts the scores to a subset of true features (e.g. a hierarchy's parents); `active`
    reuses a `latent_activity` result when several subsets are scored.
    """
    ids = torch.arange(world.config.n_features) if feature_ids is None else feature_ids
    mcc, _ = matched_cosine(world.directions[ids], model.W_dec.detach().cpu())
    active = latent_activity(model, sample.x) if active is None else active
    return {"mcc": mcc, "mean_best_f1": mean_best_f1(sample.active[:, ids], active)}
