"""Pictures and pages of the data-analysis commands: the latent document-frequency histogram (`aekit embed`), the
NPMI heatmap of the most correlated latents (`aekit correlations`) and the dataset-diff table (`aekit diff`).

The diff page is one self-contained HTML file; every piece of corpus text, label and file name passes through
`html.escape`, so a document holding `<script>` is shown as text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_png  # noqa: E402

__all__ = ["plot_document_frequency", "plot_npmi_heatmap", "render_diff_html"]

EXAMPLE_CHARS = 400  # a document shown in the diff page is cut here; the full text stays in the corpus


def plot_document_frequency(frequency: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Histogram of log10 document frequency of the latents that fire at all (the dead ones counted in the title)."""
    frequency = np.asarray(frequency, dtype=np.float64)
    alive = frequency[frequency > 0]
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(alive):
        ax.hist(np.log10(alive), bins=40, color="tab:blue", edgecolor="white")
    ax.set_xlabel("log10 document frequency (fraction of documents where the latent fires)")
    ax.set_ylabel("latents")
    ax.set_title(title or f"latent document frequency ({len(frequency) - len(alive)} of {len(frequency)} latents "
                 "never fire, not shown)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def plot_npmi_heatmap(npmi: np.ndarray, latents: Sequence[int], path: str | Path,
                      labels: Sequence[str | None] | None = None, title: str = "") -> Path:
    """NPMI among `latents` (rows and columns in the given order), −1 blue to +1 red; excluded entries grey."""
    latents = list(latents)
    block = np.asarray(npmi, dtype=np.float64)[np.ix_(latents, latents)] if latents else np.zeros((0, 0))
    size = max(4.0, min(14.0, 2.5 + 0.3 * len(latents)))
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(block), cmap=cmap, vmin=-1, vmax=1)
    names = [f"{j}" + (f" {labels[k]}" if labels and labels[k] else "") for k, j in enumerate(latents)]
    ax.set_xticks(range(len(latents)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(latents)), names, fontsize=7)
    ax.set_title(title or "NPMI of the latents in the most correlated pairs")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="NPMI")
    fig.tight_layout()
    return save_png(fig, path)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}.meta th{text-align:left}
.doc{font-family:ui-monospace,monospace;font-size:90%;white-space:pre-wrap;background:#fafafa;margin:2px 0;
padding:2px 4px}.up{color:#b22}.down{color:#26a}.muted{color:#888}
"""


def _examples(ids: Sequence[str], texts: Sequence[str | None] | None) -> str:
    if not ids:
        return '<span class="muted">—</span>'
    if texts is None:
        return _e(" ".join(ids))
    docs = []
    for doc_id, text in zip(ids, texts, strict=True):
        shown = text if text is None or len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " …"
        docs.append(f'<div class="doc" title="document {_e(doc_id)}">{_e(shown)}</div>')
    return "".join(docs)


def render_diff_html(record: dict[str, Any]) -> str:
    """The diff page of an `aekit diff` record: settings, then one table row per latent, largest difference first."""
    settings = record["settings"]
    meta = {"corpus A": record["a"]["source"], "corpus B": record["b"]["source"],
            "documents": f"A {record['a']['n_documents']}, B {record['b']['n_documents']}",
            "ranked by": f"|{settings['by']}| difference", "minimum coverage": settings["min_coverage"],
            "fires when pooled value >": settings["threshold"], "labels": record.get("labels") or "none"}
    rows = []
    for row in record["latents"]:
        direction = "up" if row["absolute"] > 0 else "down"
        rows.append(
            f"<tr><td class=n>{row['rank']}</td><td class=n>{row['latent']}</td>"
            f"<td>{_e(row['label']) if row['label'] else '<span class=muted>—</span>'}</td>"
            f"<td class=n>{100 * row['frequency_a']:.1f}%</td><td class=n>{100 * row['frequency_b']:.1f}%</td>"
            f"<td class='n {direction}'>{100 * row['absolute']:+.1f} pt</td>"
            f"<td class='n {direction}'>{row['relative']:+.2f}</td>"
            f"<td>{_examples(row['top_documents_a'], row.get('examples_a'))}</td>"
            f"<td>{_examples(row['top_documents_b'], row.get('examples_b'))}</td></tr>")
    header = ("<tr><th>rank</th><th>latent</th><th>label</th><th>fires in A</th><th>fires in B</th>"
              "<th>B − A</th><th>log ratio</th><th>strongest in A</th><th>strongest in B</th></tr>")
    title = "Dataset diff: which latents fire more in B than in A"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1><table class=meta>"
            + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta.items())
            + f"</table><p>{len(record['latents'])} of {record['covered_latents']} latents that fire in at least "
            f"{100 * settings['min_coverage']:g}% of A or B; the log ratio is log((f_B + ε) / (f_A + ε)), "
            f"ε = {settings['epsilon']:g}.</p><table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"
            "</body></html>")
