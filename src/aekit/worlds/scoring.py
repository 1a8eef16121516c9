"""Score a sparse autoencoder against a feature world's ground truth."""

from __future__ import annotations

import torch

from ..errors import ConfigError
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


def best_latents(true_active: torch.Tensor, latent_active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(best F1, index of that latent) for each true feature: the single latent that best detects its firing."""
    t, a = true_active.float(), latent_active.float()
    f1 = 2 * (t.T @ a) / (t.sum(0)[:, None] + a.sum(0)[None, :]).clamp_min(1)
    return f1.max(dim=1)


def _mean_defined(values: torch.Tensor) -> float:
    """Mean over the finite entries (a parent with no samples of a kind has no rate); NaN when none is."""
    values = values[torch.isfinite(values)]
    return float(values.mean()) if values.numel() else float("nan")


@torch.no_grad()
def absorption_from_activity(
    true_active: torch.Tensor,
    latent_active: torch.Tensor,
    decoder: torch.Tensor,
    directions: torch.Tensor,
    parent_ids: torch.Tensor,
    child_ids: torch.Tensor,
    child_parent: torch.Tensor,
    min_cosine: float = 0.3,
) -> dict[str, float]:
    """Feature-absorption measures of a hierarchy (Chanin et al. 2024), means over parents.

    Each parent's latent is its best-F1 latent. `parent_recall_with_child` / `_without_child`: how often that
    latent fires when the parent fires with / without one of its children (absorption opens a hole in the
    first only). `absorption_rate`: of the parent-with-child samples, the fraction where the parent's latent is
    silent while another active latent carries the parent's direction (decoder cosine ≥ `min_cosine`), i.e. the
    parent was reconstructed but by a child's latent. `parent_decoder_cosine`: cosine of the parent latent's
    decoder row to the true parent direction. With children tilted towards their parents, set `min_cosine` above
    `child_parent_cosine` so a clean child latent does not count as a carrier.
    """
    parents = true_active[:, parent_ids]
    f1, best = best_latents(parents, latent_active)
    fires = latent_active[:, best]  # (n, parents): the parent's latent fires
    # which parent (column of `parents`) each child belongs to, then "some child of this parent fires"
    column = (child_parent[:, None] == parent_ids[None, :]).float()  # (children, parents)
    some_child = (true_active[:, child_ids].float() @ column) > 0
    with_child, without_child = parents & some_child, parents & ~some_child
    rows = torch.nn.functional.normalize(decoder.double(), dim=1)
    parent_cos = torch.nn.functional.normalize(directions[parent_ids].double(), dim=1) @ rows.T  # (parents, latents)
    carriers = parent_cos >= min_cosine
    carriers[torch.arange(len(parent_ids)), best] = False
    carried = (latent_active.float() @ carriers.T.float()) > 0  # (n, parents): another parent-like latent fires
    absorbed = with_child & ~fires & carried

    def rate(hit: torch.Tensor, among: torch.Tensor) -> float:
        return _mean_defined((hit & among).sum(0) / among.sum(0))  # 0/0 = NaN: no such samples

    return {
        "parent_f1": float(f1.mean()),
        "parent_recall_with_child": rate(fires, with_child),
        "parent_recall_without_child": rate(fires, without_child),
        "absorption_rate": rate(absorbed, with_child),
        "parent_decoder_cosine": float(parent_cos[torch.arange(len(parent_ids)), best].mean()),
    }


@torch.no_grad()
def absorption_scores(
    model: SparseAutoencoder,
    world: FeatureWorld,
    sample: FeatureSample,
    active: torch.Tensor | None = None,
    min_cosine: float = 0.3,
) -> dict[str, float]:
    """`absorption_from_activity` for a model on a hierarchical world's held-out sample."""
    if world.config.n_children == 0:
        raise ConfigError("world.n_parents: absorption needs a hierarchy; set n_parents > 0 in the world config")
    active = latent_activity(model, sample.x) if active is None else active
    return absorption_from_activity(sample.active, active, model.W_dec.detach().cpu(), world.directions,
                                    world.parent_ids, world.child_ids, world.child_parent, min_cosine)
