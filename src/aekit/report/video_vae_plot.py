"""PNG of a causal video VAE study: PSNR at every frame position per method, and clips against their reconstructions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .plots import save_png  # noqa: E402
from .psvae_plot import show_image_rows  # noqa: E402

__all__ = ["plot_video_vae"]


def plot_video_vae(record: dict, rows: dict[str, torch.Tensor], path: str | Path, title: str = "") -> Path:
    """Top: PSNR (dB) of each frame position for every method in `record["methods"]`, the frames that close a
    latent frame marked. Bottom: one row of frames per entry of `rows` (e.g. a clip, then its reconstruction)."""
    fig, (curve, strip) = plt.subplots(2, 1, figsize=(12, 3.2 + 0.75 * len(rows)),
                                       gridspec_kw={"height_ratios": [3, 0.9 * len(rows)]}, layout="constrained")
    tau = record["compression"]["temporal_per_group"]
    for name, method in record["methods"].items():
        values = method["frame_psnr"]
        curve.plot(range(len(values)), values, marker="o", ms=3,
                   label=f"{name} ({method['values_per_clip']:,} values/clip; {method['psnr']:.2f} dB)")
    for t in range(0, record["compression"]["frames"], tau):
        curve.axvline(t, color="grey", lw=0.6, ls=":")  # frame τ·j: the last frame latent frame j sees
    curve.set_xlabel(f"frame position t (dotted: t = {tau}·j, the newest frame latent frame j reads)")
    curve.set_ylabel("PSNR on held-out clips (dB)")
    curve.legend(fontsize=8)
    curve.grid(alpha=0.3)
    show_image_rows(strip, rows)
    fig.suptitle(title, fontsize=9)
    return save_png(fig, path)
