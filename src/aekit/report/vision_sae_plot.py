"""PNGs of a vision-SAE study: OOD score histograms with AUROCs, factor alignment, and feature image grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .images import image_grid  # noqa: E402
from .plots import save_png  # noqa: E402

__all__ = ["plot_feature_grid", "plot_vision_sae"]

SCORE_NAMES = {"sae_error": "SAE reconstruction error", "sae_rarity": "SAE latent rarity",
               "max_softmax": "1 − max softmax", "mahalanobis": "Mahalanobis (final CLS)"}


def plot_vision_sae(record: dict[str, Any], path: str | Path) -> Path:
    """One histogram per OOD score (test vs OOD images, AUROC in the title) and per-factor alignment bars."""
    scores = record["ood"]["scores"]
    names = list(scores["test"])
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(3.4 * (len(names) + 1), 3.0))
    for ax, name in zip(axes, names, strict=False):
        test, ood = np.asarray(scores["test"][name]), np.asarray(scores["ood"][name])
        bins = np.linspace(min(test.min(), ood.min()), max(test.max(), ood.max()), 40)
        ax.hist(test, bins=bins, alpha=0.6, label="test (seen pairs)", color="tab:blue")
        ax.hist(ood, bins=bins, alpha=0.6, label="OOD (held-out pairs)", color="tab:red")
        ax.set_title(f"{SCORE_NAMES.get(name, name)}\nAUROC {record['ood']['auroc'][name]:.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    factors = [k for k, v in record["alignment"].items() if isinstance(v, dict)]
    x = np.arange(len(factors))
    ax.bar(x - 0.2, [record["alignment"][f]["latent_f1"] for f in factors], 0.4, label="best single latent")
    ax.bar(x + 0.2, [record["alignment"][f]["probe_f1"] for f in factors], 0.4, label="linear probe")
    ax.set_xticks(x, [f.replace("_", " ") for f in factors], rotation=40, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title("factor alignment (mean F1 over values)", fontsize=8)
    ax.legend(fontsize=7)
    fig.suptitle(f"{record['settings']['hook']} ({record['settings']['tokens']} tokens), "
                 f"{record['settings']['n_latents']} latents, k {record['settings']['k']}", fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)


def plot_feature_grid(images: torch.Tensor, rows: list[tuple[str, list[int]]], path: str | Path) -> Path:
    """One row of top-activating images per latent, labelled with the factor value the latent matches best."""
    per_row = max(len(indices) for _, indices in rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.0 * per_row + 2.0, 1.05 * len(rows)), squeeze=False)
    for ax, (label, indices) in zip(axes[:, 0], rows, strict=True):
        ax.imshow(image_grid(images[indices], nrow=per_row, padding=1))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)
