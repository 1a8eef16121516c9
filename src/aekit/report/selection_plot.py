"""PNG of a data selection: the distribution of candidate scores, the selected part and the cut."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_png  # noqa: E402


def plot_selection_scores(scores, selected, path: str | Path, title: str = "", score_name: str = "score") -> Path:
    """Histogram of the candidates' scores, the selected ones stacked in another colour, a line at the cut (the
    lowest selected score)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    chosen = np.zeros(scores.size, dtype=bool)
    chosen[np.asarray(selected, dtype=np.int64)] = True
    low, high = float(scores.min()), float(scores.max())
    bins = np.linspace(low, high if high > low else low + 1.0, 51)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist([scores[~chosen], scores[chosen]], bins=bins, stacked=True, color=["tab:gray", "tab:orange"],
            label=[f"not selected ({int((~chosen).sum())})", f"selected ({int(chosen.sum())})"])
    if chosen.any():
        cut = float(scores[chosen].min())
        ax.axvline(cut, color="tab:red", linestyle="--", label=f"cut = {cut:.4g}")
    ax.set_yscale("log")  # the selection is usually a thin tail of the distribution
    ax.set_xlabel(score_name)
    ax.set_ylabel("candidate documents")
    ax.set_title(title or "selection scores")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)
