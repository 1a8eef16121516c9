"""PNG of a raster mapping: the true unit map beside each method's map (clusters coloured by their matched unit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from .plots import save_png  # noqa: E402

__all__ = ["plot_maps"]


def plot_maps(maps: dict[str, np.ndarray], n_units: int, path: str | Path,
              scores: dict[str, dict[str, Any]] | None = None) -> Path:
    """One panel per map, in order ("true" first); colour u is unit u, and black a cluster no unit was matched to."""
    colours = [plt.get_cmap("tab10")(u % 10) for u in range(n_units)] + [(0, 0, 0, 1)]
    cmap = ListedColormap(colours)
    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 4.0))
    for ax, (name, unit_map) in zip(np.atleast_1d(axes), maps.items(), strict=True):
        ax.imshow(np.asarray(unit_map), cmap=cmap, vmin=-0.5, vmax=n_units + 0.5, interpolation="nearest")
        score = (scores or {}).get(name)
        title = name if score is None else f"{name}\naccuracy {score['accuracy']:.3f}, κ {score['kappa']:.3f}"
        ax.set_title(title if name != "true" else "true units", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_png(fig, path)
