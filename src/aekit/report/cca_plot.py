"""PNG of a stochastic CCA run: the learned canonical correlations beside the exact solution's and scikit-learn's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_png  # noqa: E402

__all__ = ["plot_cca"]


def plot_cca(record: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars per canonical direction: learned (EY loss), exact GEP, scikit-learn CCA, and the analytic
    population correlations where the data is the multiview world."""
    series = [("learned (EY, Trainer)", record["learned_correlations"], "tab:blue"),
              ("exact GEP (eigh)", record["exact_correlations"], "tab:red"),
              ("scikit-learn CCA", record["sklearn_correlations"], "tab:gray")]
    if "analytic_correlations" in record:
        series.append(("analytic (population)", record["analytic_correlations"], "tab:green"))
    k = len(record["learned_correlations"])
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, values, color) in enumerate(series):
        ax.bar(np.arange(k) + (i - (len(series) - 1) / 2) * width, values[:k], width, label=label, color=color)
    ax.set_xticks(np.arange(k), [str(i + 1) for i in range(k)])
    ax.set_xlabel("canonical direction")
    ax.set_ylabel("canonical correlation")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{record['data']}, {record['model']} (c={record['ridge']:g}): PCC {record['pcc']:.3f} = "
                 f"{record['pcc_ratio']:.3f} × exact, {record['epochs']} epoch(s) of batch {record['batch_size']}",
                 fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)
