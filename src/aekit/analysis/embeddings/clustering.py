"""Clustering along an axis: group documents by one property of interest, chosen with a few example documents,
instead of by whatever dominates their embeddings (Jiang et al., 2025).

Choosing the latents of an axis. Each value of the axis (e.g. formal / informal, or five topics) is given a few
example documents. For every latent, r_v is the fraction of value v's examples in which it fires (pooled value
> 0), and its score for v is r_v − max_{u≠v} r_u: how much more often it fires on v's examples than on those of
any other value (for two sides, the difference of the two firing rates). Values then take turns picking their
best remaining latent with a positive score, so each value is represented by its own latents and a value with
many strong latents cannot crowd out the others. Latents firing in fewer than `min_coverage` of all documents are
skipped (they cannot split the corpus, and with a handful of examples rare latents win by chance); ties go to the
latent whose corpus frequency is closest to one half.

Clustering. k-means (scikit-learn) runs on the chosen latents only, on whether each fires in the document, each
document's vector centred on its own mean. Binarised rather than pooled values, because the latents were chosen
by how often they fire, and because pooled magnitudes differ between latents by orders of magnitude that say
nothing about the axis; centring per document, because a long document fires more of every latent, and without
it k-means readily splits the corpus by length instead of by the axis. What is left is which of the axis's
latents a document expresses, relative to the others.

`cluster_dense` is the baseline: k-means on standardised mean-pooled hidden states, which clusters by whatever
varies most in them (on the toy language, the topic), whichever axis was meant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ...errors import ConfigError, DataError, ShapeError
from .embed import DocumentEmbeddings

__all__ = [
    "DEFAULT_AXIS_LATENTS",
    "DEFAULT_MIN_COVERAGE",
    "MIN_EXAMPLES",
    "axis_features",
    "axis_latents",
    "axis_scores",
    "cluster_along_axis",
    "cluster_dense",
    "concept_axis_latents",
    "value_axis_latents",
]

DEFAULT_AXIS_LATENTS = 10
DEFAULT_MIN_COVERAGE = 0.02
MIN_EXAMPLES = 2  # per value: one example cannot tell the latents of the axis from those of that one document
N_INIT = 10  # k-means restarts; the best of them (lowest inertia) is kept


def _example_groups(emb: DocumentEmbeddings, groups: Sequence[Sequence[int] | np.ndarray]) -> list[np.ndarray]:
    """Row-index arrays of each value's examples, checked: in range, ≥ MIN_EXAMPLES each, no row in two values."""
    if len(groups) < 2:
        raise ConfigError(f"examples: an axis needs examples of at least 2 values (got {len(groups)})")
    out, seen = [], set()
    for i, group in enumerate(groups):
        rows = np.unique(np.asarray(group, dtype=np.int64).ravel())
        if rows.size < MIN_EXAMPLES:
            raise DataError(f"examples: value {i} has {rows.size} example document(s); give at least {MIN_EXAMPLES}")
        if rows.min() < 0 or rows.max() >= emb.n_documents:
            raise DataError(f"examples: row indices must lie in [0, {emb.n_documents}) (the embedded documents)")
        if seen & set(rows.tolist()):
            raise DataError(f"examples: document {sorted(seen & set(rows.tolist()))[0]} is an example of two values")
        seen |= set(rows.tolist())
        out.append(rows)
    return out


def axis_scores(emb: DocumentEmbeddings, groups: Sequence[Sequence[int] | np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rates), both (n_values, n_latents): rates[v] is the fraction of value v's example rows in which each
    latent fires, scores[v] = rates[v] − the largest rate among the other values."""
    rows = _example_groups(emb, groups)
    fires = emb.fires()
    rates = np.stack([np.asarray(fires[r].sum(axis=0), dtype=np.float64).ravel() / r.size for r in rows])
    scores = np.empty_like(rates)
    for v in range(len(rows)):
        scores[v] = rates[v] - np.delete(rates, v, axis=0).max(axis=0)
    return scores, rates


def value_axis_latents(emb: DocumentEmbeddings, groups: Sequence[Sequence[int] | np.ndarray] | Mapping,
                       n: int = DEFAULT_AXIS_LATENTS, *, min_coverage: float = DEFAULT_MIN_COVERAGE) -> np.ndarray:
    """The latents of an axis with any number of values, given example row indices per value (a sequence, or a
    mapping value → rows): at most `n` latents, taken in turn by the values, each value's best first (module
    docstring). A `DataError` when no latent fires more often on one value's examples than on the others'."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"n: the number of axis latents must be an integer ≥ 1 (got {n!r})")
    if not 0 <= min_coverage < 1:
        raise ConfigError(f"min_coverage: must be in [0, 1) (got {min_coverage})")
    groups = list(groups.values()) if isinstance(groups, Mapping) else list(groups)
    scores, _ = axis_scores(emb, groups)
    frequency = emb.firing_frequency()
    balance = np.minimum(frequency, 1 - frequency)
    eligible = frequency >= max(min_coverage, np.finfo(float).tiny)
    # Per value: latents with a positive score, best first, ties to the most balanced corpus frequency.
    queues = [[int(j) for j in np.lexsort((-balance, -s)) if s[j] > 0 and eligible[j]] for s in scores]
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < n and any(queues):
        for queue in queues:
            while queue and queue[0] in taken:
                queue.pop(0)
            if queue and len(chosen) < n:
                latent = queue.pop(0)
                chosen.append(latent)
                taken.add(latent)
    if not chosen:
        raise DataError("examples: no latent fires more often on the examples of one value than on the others'; "
                        "give more (or more typical) examples, or lower min_coverage")
    return np.array(chosen, dtype=np.int64)


def axis_latents(emb: DocumentEmbeddings, positive_rows: Sequence[int] | np.ndarray,
                 negative_rows: Sequence[int] | np.ndarray, n: int = DEFAULT_AXIS_LATENTS, *,
                 min_coverage: float = DEFAULT_MIN_COVERAGE) -> np.ndarray:
    """The latents of a two-sided axis from example rows of each side: those whose firing rate differs most between
    the two example sets, the two sides taking turns (`value_axis_latents`)."""
    return value_axis_latents(emb, [positive_rows, negative_rows], n, min_coverage=min_coverage)


def concept_axis_latents(emb: DocumentEmbeddings, labels: Sequence[int] | np.ndarray,
                         n: int = DEFAULT_AXIS_LATENTS, *, min_coverage: float = DEFAULT_MIN_COVERAGE) -> np.ndarray:
    """The latents of a known concept: every document is an example of its label (labels < 0 are left out)."""
    labels = np.asarray(labels).ravel()
    if labels.size != emb.n_documents:
        raise ShapeError(f"labels: {labels.size} labels for {emb.n_documents} documents")
    values = [v for v in np.unique(labels) if v >= 0]
    return value_axis_latents(emb, [np.flatnonzero(labels == v) for v in values], n, min_coverage=min_coverage)


def axis_features(emb: DocumentEmbeddings, latents: Sequence[int] | np.ndarray) -> np.ndarray:
    """(n_documents, len(latents)) float: whether each latent fires, each row centred on its mean (except for a
    single latent, which centring would zero out)."""
    latents = np.asarray(latents, dtype=np.int64).ravel()
    if latents.size == 0:
        raise ConfigError("latents: give at least one latent to cluster on")
    if latents.min() < 0 or latents.max() >= emb.n_latents:
        raise ConfigError(f"latents: indices must lie in [0, {emb.n_latents}) (the latents of the embeddings)")
    fires = emb.fires()[:, latents].toarray().astype(np.float64)
    if latents.size == 1:
        return fires
    return fires - fires.mean(axis=1, keepdims=True)


def _kmeans(features: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer) or n_clusters < 2:
        raise ConfigError(f"n_clusters: must be an integer ≥ 2 (got {n_clusters!r})")
    if n_clusters > features.shape[0]:
        raise ConfigError(f"n_clusters: {n_clusters} clusters for only {features.shape[0]} documents")
    model = KMeans(n_clusters=int(n_clusters), n_init=N_INIT, random_state=seed)
    return model.fit_predict(features).astype(np.int64)


def cluster_along_axis(emb: DocumentEmbeddings, latents: Sequence[int] | np.ndarray, n_clusters: int = 2,
                       seed: int = 0) -> np.ndarray:
    """(n_documents,) cluster of each document: k-means on the chosen latents only (features: module docstring)."""
    return _kmeans(axis_features(emb, latents), n_clusters, seed)


def cluster_dense(dense: np.ndarray, n_clusters: int = 2, seed: int = 0) -> np.ndarray:
    """(n_documents,) cluster of each document: k-means on standardised dense embeddings (the baseline)."""
    dense = np.asarray(dense, dtype=np.float64)
    if dense.ndim != 2 or not np.isfinite(dense).all():
        raise DataError("dense: must be a finite (n_documents, width) array")
    scale = dense.std(axis=0)
    # A constant dimension carries nothing; dividing by 1 keeps it at zero instead of NaN.
    features = (dense - dense.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    return _kmeans(features, n_clusters, seed)
