"""PNG of a head-level circuit: heads placed by (layer, head), coloured and sized by node score, joined by the
highest-scoring edges, with the selected heads and (when known) the true circuit's heads marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..errors import ShapeError  # noqa: E402
from .plots import save_png  # noqa: E402

__all__ = ["MAX_EDGES", "plot_circuit"]

MAX_EDGES = 200  # more lines than this turn a GPT-2-sized plot into a grey block


def _as_array(values, what: str, shape: tuple[int, ...] | None = None, dtype=np.float64) -> np.ndarray:
    """A numpy copy of a tensor or array-like, its shape checked against `shape` when given."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=dtype)
    if shape is not None and array.shape != shape:
        raise ShapeError(f"plot_circuit: {what} has shape {array.shape}, expected {shape} (layers, heads)")
    return array


def _top_edges(edges: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (k, 4) and scores (k,) of the `limit` highest edges with score > 0, lowest first (so the
    strongest are drawn on top)."""
    finite = np.nan_to_num(edges, nan=0.0)
    index = np.argwhere(finite > 0)
    scores = finite[tuple(index.T)]
    order = np.argsort(scores, kind="stable")[-limit:]
    return index[order], scores[order]


def _edge_curve(i: int, s: int, j: int, r: int, points: int = 17) -> np.ndarray:
    """(points, 2) path from head (i, s) to (j, r): straight between adjacent layers, bowed upwards by the layers it
    skips, so an edge never runs straight through the heads in between."""
    t = np.linspace(0.0, 1.0, points)
    bow = min(0.15 * (j - i - 1), 0.4) * 4 * t * (1 - t)  # capped: stays inside the axes above head 0
    return np.stack([i + (j - i) * t, s + (r - s) * t - bow], axis=1)


def _draw_edges(ax, edges: np.ndarray) -> int:
    """Lines from sender to receiver whose width and opacity grow with the edge score; returns how many."""
    index, scores = _top_edges(edges, MAX_EDGES)
    if len(scores) == 0:
        return 0
    weight = scores / scores.max()
    segments = [_edge_curve(i, s, j, r) for i, s, j, r in index]
    colours = np.zeros((len(weight), 4))
    colours[:, :3] = 0.35
    colours[:, 3] = 0.15 + 0.6 * weight
    ax.add_collection(LineCollection(segments, linewidths=0.4 + 2.6 * weight, colors=colours, zorder=1))
    return len(scores)


def _marker_size(n_layers: int, n_heads: int) -> float:
    """Largest node area (points²) that keeps neighbouring heads apart at the figure sizes used here."""
    return 420.0 if max(n_layers, n_heads) <= 6 else 160.0


def plot_circuit(node_scores, edge_scores, path: str | Path, title: str = "", selected=None, truth=None) -> Path:
    """Write the circuit PNG at `path`, atomically: x = layer, y = head; `edge_scores` is (L, H, L, H) with NaN
    where a pair is not an edge; `selected` and `truth` are optional boolean (L, H) masks."""
    nodes = _as_array(node_scores, "node_scores")
    if nodes.ndim != 2 or 0 in nodes.shape:
        raise ShapeError(f"plot_circuit: node_scores must be a non-empty (layers, heads) array, got {nodes.shape}")
    n_layers, n_heads = nodes.shape
    edges = _as_array(edge_scores, "edge_scores", (n_layers, n_heads, n_layers, n_heads))

    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * n_layers + 3), max(4.0, 0.45 * n_heads + 2)))
    n_edges = _draw_edges(ax, edges)
    layer_grid, head_grid = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    biggest = _marker_size(n_layers, n_heads)
    top = max(float(np.nanmax(nodes)), 1e-12)
    sizes = biggest * (0.2 + 0.8 * np.clip(nodes, 0, None) / top)
    points = ax.scatter(layer_grid.ravel(), head_grid.ravel(), s=sizes.ravel(), c=nodes.ravel(), cmap="viridis",
                        vmin=0, vmax=max(top, 1.0), edgecolors="white", linewidths=0.5, zorder=2)
    fig.colorbar(points, ax=ax, label="node score", fraction=0.05, pad=0.02)

    shown = f"top {n_edges}" if n_edges == MAX_EDGES else f"{n_edges}"
    handles = [Line2D([], [], color="0.35", lw=2, label=f"{shown} edges with score > 0")]
    if selected is not None:
        mask = _as_array(selected, "selected", (n_layers, n_heads), bool)
        ax.scatter(layer_grid[mask], head_grid[mask], s=biggest * 1.5, facecolors="none", edgecolors="tab:red",
                   linewidths=2, zorder=3)
        handles.append(Line2D([], [], marker="o", ls="", mfc="none", mec="tab:red", mew=2, ms=10,
                              label="selected head"))
    if truth is not None:
        mask = _as_array(truth, "truth", (n_layers, n_heads), bool)
        ax.scatter(layer_grid[mask], head_grid[mask], s=biggest * 2.2, marker="s", facecolors="none",
                   edgecolors="black", linewidths=1.2, linestyle="--", zorder=3)
        handles.append(Line2D([], [], marker="s", ls="", mfc="none", mec="black", ms=11, label="true circuit head"))

    ax.set_xticks(range(n_layers))
    ax.set_yticks(range(n_heads))
    ax.set_xlim(-0.6, n_layers - 0.4)
    ax.set_ylim(n_heads - 0.4, -0.6)  # head 0 on top: heads read downwards like a list
    ax.set_xlabel("layer")
    ax.set_ylabel("head")
    ax.set_title(title or "circuit")
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # leave the bottom strip to the legend
    return save_png(fig, path)
