"""PNG of an LV-RAE study: PSNR against relative latent noise for both decoders, and what the noise does to images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .plots import save_png  # noqa: E402
from .psvae_plot import show_image_rows  # noqa: E402

__all__ = ["plot_lvrae"]


def plot_lvrae(record: dict, rows: dict[str, torch.Tensor], path: str | Path, title: str = "") -> Path:
    """Left: PSNR (dB) vs σ per model, the stated σ marked. Right: one row of images per entry of `rows`
    (e.g. the originals, then each model's decodes at σ = 0 and at the stated σ), labelled by its key."""
    fig, (curve, grid) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.4]},
                                   layout="constrained")
    for name, values in record["psnr"].items():
        curve.plot(record["sigmas"], values, marker="o", label=f"{name} (drop {record['drop'][name]:.2f} dB)")
    curve.axvline(record["stated_sigma"], color="grey", ls="--", lw=0.8)
    curve.set_xlabel("latent noise σ (× each latent's standard deviation)")
    curve.set_ylabel("PSNR on held-out scenes (dB)")
    curve.legend(fontsize=8)
    curve.grid(alpha=0.3)
    show_image_rows(grid, rows)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)
