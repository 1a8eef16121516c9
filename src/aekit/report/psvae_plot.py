"""PNG of a PS-VAE study: linear-probe accuracy per factor for each representation, and reconstructions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .images import image_grid  # noqa: E402
from .plots import save_png  # noqa: E402

__all__ = ["plot_psvae", "show_image_rows"]


def show_image_rows(ax, rows: dict[str, torch.Tensor]) -> None:
    """Draw one row of images per entry of `rows` on `ax`, each row labelled by its key."""
    n = min(len(images) for images in rows.values())
    ax.imshow(image_grid(torch.cat([images[:n] for images in rows.values()]), nrow=n))
    side = rows[next(iter(rows))].shape[-1] + 2  # tile height including the grid's padding
    ax.set_yticks([2 + side * (i + 0.5) for i in range(len(rows))], list(rows), fontsize=8)
    ax.set_xticks([])


def plot_psvae(probes: dict[str, dict], rows: dict[str, torch.Tensor], path: str | Path, title: str = "") -> Path:
    """Left: held-out probe accuracy per factor, one bar per representation (`probes`: name → probe_accuracy
    result). Right: one row of images per entry of `rows` (the originals, then each model's reconstructions)."""
    fig, (bars, grid) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.2, 1]},
                                     layout="constrained")
    factors = list(next(iter(probes.values()))["per_factor"])
    x, width = np.arange(len(factors) + 1), 0.8 / len(probes)
    for i, (name, probe) in enumerate(probes.items()):
        values = [probe["per_factor"][f] for f in factors] + [probe["mean"]]
        bars.bar(x + (i - (len(probes) - 1) / 2) * width, values, width, label=f"{name} (mean {probe['mean']:.3f})")
    bars.set_xticks(x, [*factors, "mean"], rotation=30, fontsize=8)
    bars.set_ylabel("linear-probe accuracy (held-out scenes)")
    bars.set_ylim(0, 1.05)
    bars.legend(fontsize=8, loc="lower left")
    show_image_rows(grid, rows)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)
