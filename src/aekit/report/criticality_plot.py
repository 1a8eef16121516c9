"""PNG of a criticality study: E[z²] per layer, one panel per activation, critical against off-critical C_W."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .plots import save_png  # noqa: E402


def plot_criticality(study: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """One panel per activation: the seed-mean E[z²] against layer (log scale) for every C_W scale, the critical
    one bold, with the infinite-width kernel recursion dashed."""
    activations = study["activations"]
    fig, axes = plt.subplots(1, len(activations), figsize=(4.2 * len(activations), 3.8), squeeze=False)
    for ax, (name, result) in zip(axes[0], activations.items(), strict=True):
        for key, run in result["runs"].items():
            values = np.asarray(run["mean_sq_preactivation"], dtype=np.float64)
            layers = np.arange(1, values.size + 1)
            critical = run["c_w_scale"] == 1.0
            line, = ax.plot(layers, values, marker="o", markersize=2.5, linewidth=2.2 if critical else 1.2,
                            label=f"C_W × {key}" + (" (critical)" if critical else ""))
            theory = np.asarray(run["theory"], dtype=np.float64)
            ax.plot(layers, theory, linestyle="--", linewidth=0.9, color=line.get_color())
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer")
        ax.set_ylabel("E[z²]")
        ax.set_title(f"{name}: C_b {result['c_b']:.4g}, C_W {result['c_w']:.4g}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(title or f"mean squared preactivation, depth {study['depth']}, width {study['width']}, "
                 f"{study['seeds']} seeds (dashed: kernel recursion)")
    fig.tight_layout()
    return save_png(fig, path)
