"""PNG plots of training runs, and `save_png`, which the other matplotlib figures of aekit are written with too."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from ..fileio import atomic_write_bytes  # noqa: E402


def save_png(fig, path: str | Path) -> Path:
    """Write a matplotlib figure to `path` as a PNG (110 dpi, atomically) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_training(history: list[dict[str, Any]], histogram: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Loss curve (every logged loss term, log scale) beside the feature-density histogram."""
    fig, (ax_loss, ax_density) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in history]
    terms = [k for k in ("loss", "mse", "aux_k", "l1") if any(k in r for r in history)]
    for term in terms:
        ax_loss.plot(steps, [max(r.get(term, float("nan")), 1e-12) for r in history], label=term)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss (normalised units)")
    ax_loss.set_title("training loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)

    edges, counts = histogram["log10_density_edges"], histogram["counts"]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax_density.bar(edges[:-1], counts, width=widths, align="edge", color="tab:blue", edgecolor="white")
    ax_density.set_xlabel("log10 feature density (fraction of samples firing)")
    ax_density.set_ylabel("latents")
    ax_density.set_title(f"feature density ({histogram['dead']} dead latents not shown)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_png(fig, path)
