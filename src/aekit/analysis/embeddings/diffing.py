"""Dataset diffing: which SAE latents fire in more (or fewer) documents of corpus B than of corpus A (Jiang et al.,
2025).

A latent *fires* in a document when its pooled value is above `threshold` (0 by default; with `count` pooling,
`threshold=1` asks for at least two tokens). For each latent the document frequencies f_A and f_B are compared
either by the absolute difference f_B − f_A or by the relative difference log((f_B + ε) / (f_A + ε)) with
ε = `EPSILON` = 1e-3, which keeps a latent absent from one corpus finite. Ranking by the relative difference alone
surfaces latents that fire in three documents of B and none of A, so a minimum-coverage mask first keeps only the
latents firing in at least `min_coverage` of A or of B.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ...errors import ConfigError, ShapeError
from .embed import DocumentEmbeddings

__all__ = ["DIFF_BY", "EPSILON", "LatentDifference", "diff_latents", "document_frequency", "firing", "top_documents"]

DIFF_BY = ("absolute", "relative")
EPSILON = 1e-3  # added to both frequencies of the relative difference, so log(f_B / 0) stays finite


@dataclass
class LatentDifference:
    """How differently one latent fires in corpus A and corpus B."""

    latent: int
    frequency_a: float
    frequency_b: float
    absolute: float  # f_B − f_A
    relative: float  # log((f_B + ε) / (f_A + ε))
    top_documents_a: list[str] = field(default_factory=list)  # ids of the documents it fires on most strongly
    top_documents_b: list[str] = field(default_factory=list)
    label: str | None = None


def firing(embeddings: DocumentEmbeddings, threshold: float = 0.0) -> sp.csr_matrix:
    """Boolean (n_documents, n_latents) CSR: pooled value > `threshold`."""
    return embeddings.fires(threshold)


def document_frequency(embeddings: DocumentEmbeddings, threshold: float = 0.0) -> np.ndarray:
    """Fraction of documents in which each latent fires (pooled value > `threshold`)."""
    return embeddings.firing_frequency(threshold)


def _top_rows(columns: sp.csc_matrix, latent: int, n: int, threshold: float) -> np.ndarray:
    start, end = columns.indptr[latent], columns.indptr[latent + 1]
    rows, values = columns.indices[start:end], columns.data[start:end]
    keep = values > threshold
    rows, values = rows[keep], values[keep]
    return rows[np.lexsort((rows, -values))[:n]]  # strongest first; ties in document order


def top_documents(embeddings: DocumentEmbeddings, latent: int, n: int, threshold: float = 0.0) -> list[str]:
    """Ids of the (at most `n`) documents where `latent` has its largest pooled values above `threshold`."""
    return [embeddings.doc_ids[i] for i in _top_rows(embeddings.matrix.tocsc(), latent, n, threshold)]


def diff_latents(a: DocumentEmbeddings, b: DocumentEmbeddings, *, by: str = "absolute", min_coverage: float = 0.02,
                 top: int = 20, threshold: float = 0.0, n_examples: int = 5,
                 labels: Sequence[str | None] | None = None, epsilon: float = EPSILON) -> list[LatentDifference]:
    """The `top` latents whose document frequency differs most between A and B, by |absolute| or |relative|.

    Only latents firing in at least `min_coverage` of A or of B are ranked; ties keep latent order. `labels`
    (one per latent, optional) are copied onto the results; `n_examples` top document ids are kept per corpus.
    """
    if by not in DIFF_BY:
        raise ConfigError(f"by: must be one of {', '.join(DIFF_BY)} (got {by!r})")
    if not 0 <= min_coverage <= 1:
        raise ConfigError(f"min_coverage: must be in [0, 1] (got {min_coverage})")
    if top < 1 or n_examples < 0:
        raise ConfigError("top: must be ≥ 1 and n_examples ≥ 0")
    if epsilon <= 0:
        raise ConfigError(f"epsilon: must be > 0 (got {epsilon})")
    if a.n_latents != b.n_latents:
        raise ShapeError(f"embeddings: corpus A has {a.n_latents} latents but corpus B has {b.n_latents}; embed both "
                         "with the same SAE")
    if labels is not None and len(labels) != a.n_latents:
        raise ShapeError(f"labels: {len(labels)} labels for {a.n_latents} latents")
    fa, fb = document_frequency(a, threshold), document_frequency(b, threshold)
    absolute = fb - fa
    relative = np.log((fb + epsilon) / (fa + epsilon))
    covered = np.flatnonzero(np.maximum(fa, fb) >= max(min_coverage, np.finfo(float).tiny))
    score = np.abs(absolute if by == "absolute" else relative)[covered]
    chosen = covered[np.argsort(-score, kind="stable")[:top]]
    columns_a, columns_b = a.matrix.tocsc(), b.matrix.tocsc()
    return [LatentDifference(int(j), float(fa[j]), float(fb[j]), float(absolute[j]), float(relative[j]),
                             [a.doc_ids[i] for i in _top_rows(columns_a, j, n_examples, threshold)],
                             [b.doc_ids[i] for i in _top_rows(columns_b, j, n_examples, threshold)],
                             None if labels is None else labels[j])
            for j in chosen]
