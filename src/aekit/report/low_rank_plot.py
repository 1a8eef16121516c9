"""PNG of the low-rank denoiser study: test error against N/d with seed error bars, the optimal error as a floor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_png  # noqa: E402

__all__ = ["plot_denoiser_study"]


def plot_denoiser_study(study: dict[str, Any], path: str | Path) -> Path:
    """Left: normalised test error (mean ± std over seeds, seeds as dots) against N/d on log axes, the optimal
    denoiser's error dashed. Right: the largest matched principal angle to the true subspaces."""
    summary = study["summary"]
    ratios = np.array([s["ratio"] for s in summary])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, mean, std, label in (
        (left, "test_error", "error_mean", "error_std", "test error ‖D(x_t) − x‖² / ‖x‖²"),
        (right, "max_angle_deg", "max_angle_mean", None, "largest principal angle (degrees)"),
    ):
        runs = study["runs"]
        ax.scatter([r["ratio"] for r in runs], [r[key] for r in runs], s=12, color="tab:gray", alpha=0.6,
                   label="one seed")
        means = np.array([s[mean] for s in summary])
        errs = np.array([s[std] for s in summary]) if std else None
        ax.errorbar(ratios, means, yerr=errs, marker="o", color="tab:blue", capsize=3, label="mean over seeds")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training samples per dimension N / d")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    left.axhline(study["optimal_error"], color="tab:red", linestyle="--",
                 label=f"optimal denoiser {study['optimal_error']:.4f}")
    left.set_yscale("log")
    left.legend()
    right.set_ylim(0, 92)
    w = study["world"]
    fig.suptitle(f"low-rank denoiser: d={w['d']}, K={w['n_components']}, r={w['rank']}, σ={study['sigma']}, "
                 f"{study['seeds']} seeds")
    fig.tight_layout()
    return save_png(fig, path)
