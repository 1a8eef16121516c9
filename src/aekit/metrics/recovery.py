"""Ground-truth recovery scores for synthetic worlds with known features."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from torch import Tensor


def cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


def matched_cosine(true_directions: Tensor, learned_directions: Tensor) -> tuple[float, np.ndarray]:
    """Mean cosine similarity under the one-to-one (Hungarian) matching of true to learned directions.

    Returns the mean over true features (the "MCC" of the SAE literature) and, per true feature, the index
    of its matched latent (-1 when there are fewer latents than features).
    """
    cos = cosine_matrix(true_directions.double(), learned_directions.double()).numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    match = np.full(cos.shape[0], -1)
    match[rows] = cols
    scores = np.zeros(cos.shape[0])
    scores[rows] = cos[rows, cols]
    return float(scores.mean()), match


def best_f1_per_feature(true_active: Tensor, latent_active: Tensor) -> Tensor:
    """For each true feature, the best F1 of any single latent's firing as a detector of it.

    `true_active` (n, n_features) and `latent_active` (n, n_latents) are boolean firing masks.
    """
    t = true_active.float()
    a = latent_active.float()
    tp = t.T @ a  # (n_features, n_latents)
    f1 = 2 * tp / (t.sum(0)[:, None] + a.sum(0)[None, :]).clamp_min(1)
    return f1.max(dim=1).values


def mean_best_f1(true_active: Tensor, latent_active: Tensor) -> float:
    return float(best_f1_per_feature(true_active, latent_active).mean())


__all__ = ["best_f1_per_feature", "cosine_matrix", "matched_cosine", "mean_best_f1"]
