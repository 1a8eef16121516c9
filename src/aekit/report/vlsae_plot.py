"""PNG of a VL-SAE comparison: alignment and purity per method, and purity per attribute of the image codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_png  # noqa: E402

__all__ = ["plot_vlsae"]

BARS = (("shared_fraction", "shared latents / active"), ("pair_jaccard", "pair overlap (Jaccard)"),
        ("purity", "factor purity"), ("recall_at_1", "image→caption recall@1"))


def plot_vlsae(methods: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Left: grouped bars of each method's alignment metrics (chance purity dotted). Right: each attribute's mean
    purity over the image latents best matched to it, per method (a missing bar: no latent matched it)."""
    trained = {name: m for name, m in methods.items() if "shared_fraction" in m}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
    width = 0.8 / max(len(trained), 1)
    x = np.arange(len(BARS))
    for i, (name, m) in enumerate(trained.items()):
        left.bar(x + i * width, [m[key] or 0.0 for key, _ in BARS], width, label=name)  # None: no live latent
    chances = [m["purity_shuffled"] for m in trained.values() if m["purity_shuffled"] is not None]
    if chances:
        chance = float(np.mean(chances))
        left.axhline(chance, color="grey", ls=":", lw=1, label=f"chance purity ({chance:.2f})")
    left.set_xticks(x + 0.4 - width / 2, [label for _, label in BARS], fontsize=8)
    left.set_ylim(0, 1.05)
    left.legend(fontsize=7)
    left.set_title("concept alignment on held-out pairs", fontsize=9)
    attributes = list(next(iter(trained.values()))["purity_by_attribute_image"]) if trained else []
    xa = np.arange(len(attributes))
    for i, (name, m) in enumerate(trained.items()):
        values = [m["purity_by_attribute_image"][a]["purity"] for a in attributes]
        right.bar(xa + i * width, [0 if v is None else v for v in values], width, label=name)
    right.set_xticks(xa + 0.4 - width / 2, attributes, fontsize=8)
    right.set_ylim(0, 1.05)
    right.set_title("purity of the image latents best matched to each attribute", fontsize=9)
    return save_png(fig, path)
