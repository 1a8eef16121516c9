"""PNG of a DDMI study: real signals, their D2C-VAE reconstructions at 1× and 2×, and generated samples."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .images import image_grid  # noqa: E402
from .plots import save_png  # noqa: E402

__all__ = ["plot_ddmi", "sdf_to_image"]


def sdf_to_image(fields: torch.Tensor) -> torch.Tensor:
    """Signed distances (n, 1, h, w) as grey images: 0.5 + f clipped to [0, 1], so shapes (f < 0) are dark, the
    boundary is mid-grey and the distance grows lighter outside."""
    return (0.5 + fields).clamp(0.0, 1.0)


def plot_ddmi(rows: dict[str, torch.Tensor], path: str | Path, title: str = "", sdf: bool = False) -> Path:
    """One labelled panel per entry of `rows` (images (n, C, h, w) in [0, 1], or signed distances when `sdf`);
    rows may differ in resolution (1× and 2× decodes of the same latents)."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.35 * len(rows)), layout="constrained", squeeze=False)
    for ax, (name, images) in zip(axes[:, 0], rows.items(), strict=True):
        ax.imshow(image_grid(sdf_to_image(images) if sdf else images, nrow=len(images)), interpolation="nearest")
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)
