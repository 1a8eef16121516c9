"""Property retrieval: find the documents that share a property with a few examples (Jiang et al., 2025).

The query is a handful of example documents that have the property (formal register, one topic, ...). A latent's
query score is r − f: the fraction of the examples in which it fires minus the fraction of the whole corpus in
which it fires. It is high for a latent every example shows and most documents do not, so latents common to the
whole corpus (function words, punctuation) score near zero however often the examples show them; the difference
rather than the ratio, because with five examples a ratio is won by rare latents that one example happens to
show. Ties go to the rarer latent, the more specific one.

A document's score is the mean, over the query latents, of its pooled value divided by that latent's largest
pooled value in the corpus: a graded "how strongly does it show the query's latents", in which no latent counts
more because its activations happen to be larger.

`dense_rank` is the baseline: cosine similarity of mean-pooled hidden states to the mean of the examples, after
subtracting the corpus mean (without it every document's hidden state shares one large common direction and the
cosines barely differ).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import ConfigError, DataError
from .embed import DocumentEmbeddings

__all__ = ["DEFAULT_QUERY_LATENTS", "MIN_QUERY_EXAMPLES", "dense_rank", "document_scores", "query_latents",
           "query_scores", "rank_documents"]

DEFAULT_QUERY_LATENTS = 20
MIN_QUERY_EXAMPLES = 2  # one document has many properties; two or more show which one is meant


def _example_rows(example_rows: Sequence[int] | np.ndarray, n_documents: int) -> np.ndarray:
    rows = np.asarray(example_rows, dtype=np.int64).ravel()
    if np.unique(rows).size != rows.size:
        raise DataError("examples: a document is given twice")
    if rows.size < MIN_QUERY_EXAMPLES:
        raise DataError(f"examples: {rows.size} example document(s); give at least {MIN_QUERY_EXAMPLES}")
    if rows.min() < 0 or rows.max() >= n_documents:
        raise DataError(f"examples: row indices must lie in [0, {n_documents}) (the embedded documents)")
    return rows


def query_scores(emb: DocumentEmbeddings, example_rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """(n_latents,) query score of every latent: its firing rate on the examples minus its corpus frequency."""
    rows = _example_rows(example_rows, emb.n_documents)
    rate = np.asarray(emb.fires()[rows].sum(axis=0), dtype=np.float64).ravel() / rows.size
    return rate - emb.firing_frequency()


def query_latents(emb: DocumentEmbeddings, example_rows: Sequence[int] | np.ndarray,
                  n: int = DEFAULT_QUERY_LATENTS) -> np.ndarray:
    """The (at most) `n` latents of highest positive query score, best first, ties to the rarer latent."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"n: the number of query latents must be an integer ≥ 1 (got {n!r})")
    scores = query_scores(emb, example_rows)
    order = np.lexsort((emb.firing_frequency(), -scores))
    chosen = order[scores[order] > 0][:n]
    if chosen.size == 0:
        raise DataError("examples: no latent fires more often on the examples than on the corpus; give examples "
                        "that share a property")
    return chosen.astype(np.int64)


def document_scores(emb: DocumentEmbeddings, latents: Sequence[int] | np.ndarray) -> np.ndarray:
    """(n_documents,) mean over `latents` of each document's pooled value scaled by the latent's corpus maximum."""
    latents = np.asarray(latents, dtype=np.int64).ravel()
    if latents.size == 0:
        raise ConfigError("latents: give at least one latent to rank by")
    if latents.min() < 0 or latents.max() >= emb.n_latents:
        raise ConfigError(f"latents: indices must lie in [0, {emb.n_latents}) (the latents of the embeddings)")
    values = emb.matrix[:, latents].toarray().astype(np.float64)
    peak = values.max(axis=0)
    # A latent that never fires adds nothing; dividing by 1 keeps its zeros instead of NaN.
    return (values / np.where(peak > 0, peak, 1.0)).mean(axis=1)


def _ranked(scores: np.ndarray, exclude: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.ones(scores.size, dtype=bool)
    keep[np.asarray(exclude, dtype=np.int64).ravel()] = False
    rows = np.flatnonzero(keep)
    order = np.argsort(-scores[rows], kind="stable")  # equal scores keep corpus order: the same run, the same list
    return rows[order], scores[rows[order]]


def rank_documents(emb: DocumentEmbeddings, latents: Sequence[int] | np.ndarray,
                   exclude: Sequence[int] | np.ndarray = ()) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of every document not in `exclude` (e.g. the examples), best first, by `document_scores`."""
    exclude = np.asarray(exclude, dtype=np.int64).ravel()
    if exclude.size and (exclude.min() < 0 or exclude.max() >= emb.n_documents):
        raise DataError(f"exclude: row indices must lie in [0, {emb.n_documents}) (the embedded documents)")
    return _ranked(document_scores(emb, latents), exclude)


def dense_rank(dense: np.ndarray, example_rows: Sequence[int] | np.ndarray,
               exclude_examples: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosines) of the documents by centred cosine similarity to the mean of the examples (the baseline)."""
    dense = np.asarray(dense, dtype=np.float64)
    if dense.ndim != 2 or not np.isfinite(dense).all():
        raise DataError("dense: must be a finite (n_documents, width) array")
    rows = _example_rows(example_rows, dense.shape[0])
    centred = dense - dense.mean(axis=0)
    query = centred[rows].mean(axis=0)
    norms = np.linalg.norm(centred, axis=1) * np.linalg.norm(query)
    cosine = centred @ query / np.where(norms > 0, norms, 1.0)
    return _ranked(cosine, rows if exclude_examples else ())
