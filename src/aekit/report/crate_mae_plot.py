"""PNG of the CRATE-MAE study: masked completions of both models, and the per-layer coding rate and sparsity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from ..models.masked_patches import patchify, unpatchify  # noqa: E402
from .plots import save_png  # noqa: E402

__all__ = ["plot_crate_mae"]

MASK_GREY = 0.5  # what a hidden patch shows in the "masked input" row


def _masked_input(images: Tensor, masked: Tensor, patch: int) -> Tensor:
    patches = patchify(images, patch)
    shown = torch.where(masked.unsqueeze(-1), torch.full_like(patches, MASK_GREY), patches)
    return unpatchify(shown, patch, images.shape[1])


def _layer_axis(record: dict[str, Any], name: str, key: str) -> list[float]:
    layers = record["models"][name]["layers"]
    return [entry[key] for entry in layers["encoder"] + layers["decoder"]]


def plot_crate_mae(record: dict[str, Any], examples: dict[str, Tensor], path: str | Path) -> Path:
    """Rows of original / masked input / each model's completion, then coding rate and zero fraction per layer."""
    patch, models = record["settings"]["patch"], list(record["models"])
    rows = [("original", examples["original"]),
            ("masked input", _masked_input(examples["original"], examples["masked"], patch))]
    rows += [(f"{name}\n{record['models'][name]['psnr']['held_out']:.1f} dB", examples[name]) for name in models]
    k = len(examples["original"])
    fig = plt.figure(figsize=(max(8.0, 1.3 * k), 1.3 * len(rows) + 3.2))
    outer = fig.add_gridspec(2, 1, height_ratios=[1.3 * len(rows), 3.0])
    pictures, curves = outer[0].subgridspec(len(rows), k), outer[1].subgridspec(1, 2)
    for r, (label, images) in enumerate(rows):
        for c in range(k):
            ax = fig.add_subplot(pictures[r, c])
            ax.imshow(images[c].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    depth = len(record["models"][models[0]]["layers"]["encoder"])
    ticks = [f"E{i + 1}" for i in range(depth)] + [f"D{i + 1}" for i in range(depth)]
    for col, key, ylabel in ((0, "coding_rate", f"coding rate R(Z), ε = {record['settings']['epsilon']}"),
                             (1, "zero_fraction", "fraction of zero entries")):
        ax = fig.add_subplot(curves[0, col])
        for name in models:
            ax.plot(range(2 * depth), _layer_axis(record, name, key), marker="o", label=name)
        ax.axvline(depth - 0.5, color="grey", lw=0.8, ls=":")
        ax.set_xticks(range(2 * depth), ticks, fontsize=7)
        ax.set_xlabel("layer (E: encoder, D: decoder)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ratio = record["parameter_ratio"]
    fig.suptitle(f"masked completion ({record['settings']['mask_ratio']:.0%} of patches hidden); CRATE-MAE has "
                 f"{ratio:.2f}× the MAE's parameters", fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)
