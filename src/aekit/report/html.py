"""The feature report: one self-contained HTML file (inline CSS, SVG and a little JavaScript, no external assets).

Every piece of text that comes from data — corpus text, token strings, model and file names — passes through
`html.escape`, and the script only reorders existing table rows, so a corpus line holding `<script>` is shown as
text and never runs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..analysis.features import Context
from ..fileio import atomic_write_bytes

__all__ = ["FeatureCard", "ReportData", "render_report", "write_report"]


@dataclass
class FeatureCard:
    """Everything shown for one feature."""

    index: int
    density: float
    max_activation: float
    contexts: list[Context]
    activations: np.ndarray  # the feature's nonzero activations, for the histogram
    promoted: list[tuple[str, float]] = field(default_factory=list)
    suppressed: list[tuple[str, float]] = field(default_factory=list)
    heads: list[float] | None = None  # share of the decoder row norm per head (hook_z SAEs)


@dataclass
class ReportData:
    title: str
    meta: dict[str, str]
    density: np.ndarray  # every feature
    max_activation: np.ndarray
    cards: list[FeatureCard]


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}
th[data-sort]{cursor:pointer;text-decoration:underline dotted}
.meta td{text-align:left}.feature{border-top:2px solid #888;margin-top:2em;padding-top:.5em}
.ctx{font-family:ui-monospace,monospace;white-space:pre-wrap;margin:2px 0;padding:2px 4px;background:#fafafa}
.tok{border-radius:2px}.cols{display:flex;gap:3em;flex-wrap:wrap}.muted{color:#888}
.bar{display:inline-block;height:10px;background:#4a7fb5;vertical-align:middle}
.index{max-height:420px;overflow-y:auto;display:inline-block;border:1px solid #ddd;padding-right:6px}
thead th{position:sticky;top:0;background:#fff}
"""

# Sorts the index by a column when its header is clicked; reads numbers from data-value, moves existing rows only.
_SCRIPT = """
document.querySelectorAll('th[data-sort]').forEach(function (th) {
  th.addEventListener('click', function () {
    var body = document.getElementById('index-body');
    var col = Number(th.dataset.sort);
    var descending = th.dataset.order !== 'desc';
    th.dataset.order = descending ? 'desc' : 'asc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = Number(a.cells[col].dataset.value), y = Number(b.cells[col].dataset.value);
      return descending ? y - x : x - y;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _histogram_svg(values: np.ndarray, bins: int = 30, width: int = 320, height: int = 90) -> str:
    if len(values) == 0:
        return '<p class="muted">never fires</p>'
    counts, edges = np.histogram(values, bins=bins)
    scale = (height - 14) / max(int(counts.max()), 1)
    bar = width / bins
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - 14 - c * scale:.1f}" width="{bar - 1:.1f}" height="{c * scale:.1f}">'
        f"<title>{edges[i]:.3g}–{edges[i + 1]:.3g}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    return (f'<svg class="hist" width="{width}" height="{height}" role="img" aria-label="activation histogram">'
            f'<g fill="#4a7fb5">{rects}</g><text x="0" y="{height - 2}" font-size="10">{edges[0]:.3g}</text>'
            f'<text x="{width}" y="{height - 2}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text></svg>')


def _context_html(context: Context, scale: float) -> str:
    spans = []
    for text, value in context.pieces:
        if value > 0:
            alpha = min(1.0, value / scale) if scale > 0 else 0.0
            spans.append(f'<span class="tok" style="background:rgba(255,140,0,{alpha:.2f})" '
                         f'title="{value:.4g}">{_e(text)}</span>')
        else:
            spans.append(_e(text))
    return f'<div class="ctx" data-peak="{context.peak:.6g}">{"".join(spans)}</div>'


def _token_table(title: str, rows: Sequence[tuple[str, float]]) -> str:
    body = "".join(f"<tr><td>{_e(repr(token))}</td><td>{value:+.3f}</td></tr>" for token, value in rows)
    return f"<div><h4>{_e(title)}</h4><table>{body}</table></div>"


def _heads_html(shares: Sequence[float]) -> str:
    rows = "".join(
        f'<tr><td>head {h}</td><td><span class="bar" style="width:{150 * s:.1f}px"></span> {100 * s:.1f}%</td></tr>'
        for h, s in enumerate(shares)
    )
    return f'<div><h4>head attribution (decoder norm share)</h4><table class="heads">{rows}</table></div>'


def _card_html(card: FeatureCard) -> str:
    contexts = "".join(_context_html(c, card.max_activation) for c in card.contexts) or '<p class="muted">—</p>'
    side = [_token_table("promoted tokens", card.promoted), _token_table("suppressed tokens", card.suppressed)]
    if card.heads is not None:
        side.append(_heads_html(card.heads))
    return (
        f'<section class="feature" id="f{card.index}"><h2>Feature {card.index}</h2>'
        f"<p>density {100 * card.density:.3f}% · max activation {card.max_activation:.4g} · "
        f"{len(card.activations)} firings</p>"
        f'<div class="cols"><div><h4>activation histogram</h4>{_histogram_svg(card.activations)}</div>'
        f'{"".join(side)}</div><h4>top-activating contexts</h4>{contexts}</section>'
    )


def _index_html(data: ReportData) -> str:
    carded = {card.index for card in data.cards}
    rows = []
    for f in np.argsort(-data.density, kind="stable"):
        name = f'<a href="#f{f}">{f}</a>' if f in carded else str(f)
        rows.append(f'<tr><td data-value="{f}">{name}</td><td data-value="{data.density[f]:.8g}">'
                    f'{100 * data.density[f]:.3f}%</td><td data-value="{data.max_activation[f]:.6g}">'
                    f"{data.max_activation[f]:.4g}</td></tr>")
    return ('<h2>Index</h2><div class="index"><table id="index"><thead><tr><th data-sort="0">feature</th>'
            '<th data-sort="1">density</th><th data-sort="2">max activation</th></tr></thead>'
            f'<tbody id="index-body">{"".join(rows)}</tbody></table></div>')


def render_report(data: ReportData) -> str:
    """The whole report as one HTML string."""
    meta = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in data.meta.items())
    alive = int((data.density > 0).sum())
    summary = (f"<p>{alive} of {len(data.density)} features fire on this text; "
               f"{len(data.cards)} are shown in detail (click a column header to sort the index).</p>")
    cards = "".join(_card_html(card) for card in data.cards)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(data.title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{_e(data.title)}</h1>"
            f'<table class="meta">{meta}</table>{summary}{_index_html(data)}{cards}'
            f"<script>{_SCRIPT}</script></body></html>")


def write_report(data: ReportData, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_bytes(path, render_report(data).encode("utf-8"))
    return path
