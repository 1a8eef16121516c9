"""Pictures and pages of `aekit cluster` and `aekit retrieve`: documents projected on the axis latents and
coloured by cluster (PNG), and the ranking of a property query (one self-contained HTML page).

Every piece of corpus text and every file name on the page passes through `html.escape`, so a document holding
`<script>` is shown as text.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import save_png  # noqa: E402

__all__ = ["plot_clusters", "render_retrieval_html"]

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # outlines of the example documents, one per value
DOC_CHARS = 400  # a document shown on the page is cut here; the full text stays in the corpus


def plot_clusters(points: np.ndarray, clusters: np.ndarray, path: str | Path, *,
                  examples: Mapping[str, np.ndarray] | None = None, title: str = "",
                  axis_labels: Sequence[str] = ("component 1", "component 2")) -> Path:
    """Scatter of (n, 2) `points` coloured by cluster; the example documents of each value (name → boolean (n,)
    mask) outlined in black, one marker shape per value."""
    points = np.asarray(points, dtype=np.float64)
    clusters = np.asarray(clusters)
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab10")
    for i, cluster in enumerate(np.unique(clusters)):
        mask = clusters == cluster
        ax.scatter(points[mask, 0], points[mask, 1], s=14, alpha=0.6, color=cmap(i % 10), linewidths=0,
                   label=f"cluster {cluster} ({int(mask.sum())})")
    for i, (value, mask) in enumerate((examples or {}).items()):
        mask, marker = np.asarray(mask, dtype=bool), MARKERS[i % len(MARKERS)]
        ax.scatter(points[mask, 0], points[mask, 1], s=50, marker=marker, facecolors="none", edgecolors="black",
                   linewidths=1.0, label=f"examples: {value}")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _doc(text: str | None) -> str:
    if text is None:
        return '<span class="muted">—</span>'
    shown = text if len(text) <= DOC_CHARS else text[:DOC_CHARS] + " …"
    return f'<div class="doc">{_e(shown)}</div>'


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:3px 10px;border-bottom:1px solid #eee;
vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}.meta th{text-align:left}
.doc{font-family:ui-monospace,monospace;font-size:90%;white-space:pre-wrap;background:#fafafa;margin:2px 0;
padding:2px 4px}.muted{color:#888}
"""


def render_retrieval_html(record: dict[str, Any]) -> str:
    """The page of an `aekit retrieve` record: settings, the query's examples and latents, then the ranking."""
    settings = record["settings"]
    meta = {"embeddings": record["source"], "corpus": record.get("corpus") or "none (document ids only)",
            "documents": record["n_documents"], "query latents": settings["n_latents"],
            "documents shown": settings["top"]}
    examples = record["query"]
    example_rows = "".join(f"<tr><td>{_e(q['doc_id'])}</td><td>{_doc(q.get('text'))}</td></tr>" for q in examples)
    latent_rows = "".join(
        f"<tr><td class=n>{x['latent']}</td><td class=n>{x['score']:.3f}</td>"
        f"<td class=n>{100 * x['example_rate']:.0f}%</td><td class=n>{100 * x['corpus_frequency']:.1f}%</td></tr>"
        for x in record["latents"])
    ranked_rows = "".join(
        f"<tr><td class=n>{r['rank']}</td><td>{_e(r['doc_id'])}</td><td class=n>{r['score']:.3f}</td>"
        f"<td>{_doc(r.get('text'))}</td></tr>" for r in record["ranking"])
    title = f"Documents like the {len(examples)} examples"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1><table class=meta>"
            + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta.items())
            + "</table><h2>Query examples</h2><table><thead><tr><th>document</th><th>text</th></tr></thead>"
            f"<tbody>{example_rows}</tbody></table>"
            "<h2>Query latents</h2><p>score = fraction of the examples where the latent fires − fraction of the "
            "corpus where it fires.</p><table><thead><tr><th>latent</th><th>score</th><th>fires in examples</th>"
            f"<th>fires in corpus</th></tr></thead><tbody>{latent_rows}</tbody></table>"
            "<h2>Ranking</h2><p>A document's score is the mean over the query latents of its pooled value divided "
            "by the latent's largest pooled value in the corpus; the examples themselves are left out.</p>"
            "<table><thead><tr><th>rank</th><th>document</th><th>score</th><th>text</th></tr></thead>"
            f"<tbody>{ranked_rows}</tbody></table></body></html>")
