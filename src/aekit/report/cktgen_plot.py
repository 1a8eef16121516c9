"""PNG of a CktGen run: target against achieved gain and bandwidth of the generated circuits, and a few designs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_png  # noqa: E402

__all__ = ["plot_cktgen"]


def plot_cktgen(targets: np.ndarray, achieved: dict[str, np.ndarray], examples: list[dict], path: str | Path,
                tolerance: float, title: str = "") -> Path:
    """Two log–log scatters (gain, bandwidth) of achieved against target specification per method, the
    ±tolerance band shaded, and a text panel of example designs (target, circuit, achieved)."""
    fig = plt.figure(figsize=(15, 5))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.5])
    for col, (label, unit) in enumerate((("gain", "V/V"), ("−3 dB bandwidth", "Hz"))):
        ax = fig.add_subplot(grid[0, col])
        lo, hi = np.nanmin(targets[:, col]) / 2, np.nanmax(targets[:, col]) * 2
        line = np.geomspace(lo, hi, 50)
        ax.fill_between(line, line * (1 - tolerance), line * (1 + tolerance), color="0.85", lw=0,
                        label=f"±{tolerance:.0%}")
        for (name, values), marker in zip(achieved.items(), "o^sv", strict=False):
            ok = np.isfinite(values[:, col])
            ax.scatter(targets[ok, col], values[ok, col], s=8, alpha=0.5, marker=marker, label=name)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=f"target {label} ({unit})",
               ylabel=f"achieved {label} ({unit})")
        ax.legend(fontsize=7, loc="upper left")
    ax = fig.add_subplot(grid[0, 2])
    ax.axis("off")
    lines = []
    for e in examples:
        lines.append(f"target gain {e['target'][0]:.3g}, bandwidth {e['target'][1]:.3g} Hz")
        for design in e["designs"]:
            spec = ("invalid" if design["achieved"] is None
                    else f"{design['achieved'][0]:.3g}, {design['achieved'][1]:.3g} Hz")
            mark = " ✓" if design["meets"] else ""
            lines.append(f"   {design['circuit']}   [{spec}]{mark}{' (new)' if design['novel'] else ''}")
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7, transform=ax.transAxes)
    ax.set_title("generated designs (✓ within tolerance)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)
