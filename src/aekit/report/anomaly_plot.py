"""PNG of an anomaly-scoring run: a few test channels and the StackVAE-G score, true anomalies shaded."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..metrics.anomaly import segments  # noqa: E402
from .plots import save_png  # noqa: E402

__all__ = ["plot_anomaly"]


def plot_anomaly(test: np.ndarray, scores: np.ndarray, labels: np.ndarray, path: str | Path, channels: int = 3,
                 title: str = "") -> Path:
    """`channels` test channels and the per-step score, one panel each, with the true anomaly segments shaded."""
    shown = min(channels, test.shape[1])
    fig, axes = plt.subplots(shown + 1, 1, figsize=(11, 1.6 * (shown + 1)), sharex=True)
    series = [(test[:, j], f"channel {j}") for j in range(shown)] + [(scores, "score (−log p)")]
    pad = max(0.5, len(scores) / 800)  # widen one-step anomalies so they stay visible at this width
    for ax, (values, name) in zip(axes, series, strict=True):
        ax.plot(values, lw=0.5, color="tab:blue" if name.startswith("channel") else "tab:red")
        for start, stop in segments(labels):
            ax.axvspan(start - pad, stop - 1 + pad, color="tab:orange", alpha=0.3, lw=0)
        ax.set_ylabel(name, fontsize=8)
    axes[-1].set_yscale("symlog")
    axes[-1].set_xlabel("test time step (true anomalies shaded)")
    axes[0].set_title(title, fontsize=9)
    return save_png(fig, path)
