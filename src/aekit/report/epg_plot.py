"""PNG of an EPG study: FD-vs-step curves of both runs with the threshold and the floor, and sample rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .plots import save_png  # noqa: E402
from .psvae_plot import show_image_rows  # noqa: E402

__all__ = ["plot_epg"]


def plot_epg(record: dict[str, Any], rows: dict[str, torch.Tensor], path: str | Path, title: str = "") -> Path:
    """Left: FD to real test scenes against stage-2 step for each run in `record["runs"]` (the pre-trained run also
    drawn shifted right by its pre-training steps), the threshold and the real-vs-real floor. Right: one row of
    images per entry of `rows` (real scenes, then each run's final samples)."""
    fig, (curves, grid) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.2, 1]},
                                       layout="constrained")
    shift = record["pretraining"]["steps"]
    for i, (name, run) in enumerate(record["runs"].items()):
        steps = [r["step"] for r in run["curve"]]
        values = [r["frechet"] for r in run["curve"]]
        curves.plot(steps, values, "o-", color=f"C{i}", label=name)
        if i and shift:  # the pre-trained run: also at equal total steps (stage 1 + stage 2)
            curves.plot([s + shift for s in steps], values, "o:", color=f"C{i}", alpha=0.5,
                        label=f"{name}, plotted at stage-1 + stage-2 steps")
    curves.axhline(record["threshold"], color="k", ls="--", lw=1, label=f"threshold {record['threshold']:g}")
    curves.axhline(record["floor_frechet"], color="grey", ls=":", lw=1,
                   label=f"real-vs-real floor {record['floor_frechet']:.1f}")
    curves.set_xlabel("Trainer steps")
    curves.set_ylabel("Fréchet distance (toy-ViT CLS features)")
    curves.set_yscale("log")
    curves.legend(fontsize=7)
    show_image_rows(grid, rows)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)
