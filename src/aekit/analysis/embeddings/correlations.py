"""Which SAE latents fire in the same documents: normalised pointwise mutual information (Jiang et al., 2025).

For binarised latents x, y over n documents, with P estimated as document fractions,

    NPMI(x, y) = log(P(x, y) / (P(x) P(y))) / (−log P(x, y))

which is 1 for latents that always fire together, 0 for independent ones and −1 for latents that never fire
together. Conventions: NPMI = −1 when P(x, y) = 0 (the limit); NPMI = 0 when P(x, y) = 1 (both fire in every
document, so P(x, y) = P(x) P(y): a constant latent is independent of everything); the diagonal and every pair
with a latent firing in fewer than `min_count` documents are NaN (excluded: a latent seen twice has a meaningless
estimate). Co-occurrence counts come from one sparse product XᵀX, so the cost grows with the non-zeros of X, not
with n_documents × n_latents²; the result is dense (n_latents² floats).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ...errors import ConfigError, ShapeError
from .labels import LatentLabel, label_concept

__all__ = ["cooccurrence", "npmi_matrix", "pair_rank", "same_concept_mask", "top_pairs"]


def cooccurrence(fires: sp.spmatrix | np.ndarray) -> tuple[np.ndarray, int]:
    """(n_latents, n_latents) counts of documents where both latents fire (diagonal: where each fires), and n."""
    x = sp.csr_matrix(fires).astype(bool).astype(np.int64)  # integer counts: exact for any corpus size
    return (x.T @ x).toarray(), x.shape[0]


def npmi_matrix(fires: sp.spmatrix | np.ndarray, min_count: int = 1) -> np.ndarray:
    """(n_latents, n_latents) NPMI of binarised latents (`fires`: documents × latents); NaN where excluded."""
    if min_count < 1:
        raise ConfigError(f"min_count: must be ≥ 1 (got {min_count})")
    counts, n = cooccurrence(fires)
    if n == 0:
        raise ShapeError("fires: no documents")
    p_xy = counts / n
    p = np.diag(p_xy).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        npmi = np.log(p_xy / np.outer(p, p)) / -np.log(p_xy)
    npmi[p_xy == 0] = -1.0
    npmi[p_xy == 1] = 0.0  # both fire everywhere: P(x, y) = P(x) P(y), independent, not "always together"
    rare = np.diag(counts) < min_count
    npmi[rare, :] = np.nan
    npmi[:, rare] = np.nan
    np.fill_diagonal(npmi, np.nan)
    return npmi


def _concepts(labels: Sequence[str | LatentLabel | None]) -> list[str | None]:
    return [label_concept(label.label if isinstance(label, LatentLabel) else label) for label in labels]


def same_concept_mask(labels: Sequence[str | LatentLabel | None]) -> np.ndarray:
    """(n, n) true where both latents are labelled with the same concept ('tense=past' and 'tense=present' alike)."""
    concepts = np.array([c if c is not None else "" for c in _concepts(labels)], dtype=object)
    labelled = concepts != ""
    return (concepts[:, None] == concepts[None, :]) & labelled[:, None] & labelled[None, :]


def top_pairs(npmi: np.ndarray, k: int = 20, exclude: np.ndarray | Sequence[str | LatentLabel | None] | None = None
              ) -> list[tuple[int, int, float]]:
    """The `k` pairs (i < j) of highest NPMI, as (i, j, npmi), highest first (ties: lowest i, then j).

    `exclude` is an (n, n) boolean mask of pairs to skip, or one label per latent: then pairs of latents labelled
    with the same concept (synonyms and a concept's values) are skipped.
    """
    n = npmi.shape[0]
    if npmi.shape != (n, n):
        raise ShapeError(f"npmi: must be square, got {npmi.shape}")
    i, j = np.triu_indices(n, k=1)
    values = npmi[i, j]
    keep = np.isfinite(values)
    if exclude is not None:
        mask = np.asarray(exclude, dtype=bool) if isinstance(exclude, np.ndarray) else same_concept_mask(exclude)
        if mask.shape != (n, n):
            raise ShapeError(f"exclude: must be one label per latent or an ({n}, {n}) mask")
        keep &= ~mask[i, j]
    i, j, values = i[keep], j[keep], values[keep]
    order = np.lexsort((j, i, -values))[:k]
    return [(int(i[o]), int(j[o]), float(values[o])) for o in order]


def pair_rank(npmi: np.ndarray, labels: Sequence[str | LatentLabel | None], concept_a: str, concept_b: str
              ) -> int | None:
    """Rank (1 = top) of the best latent pair labelled (`concept_a`, `concept_b`), either order, by NPMI.

    The pairs ranked are the pairs of two labelled latents with a finite NPMI whose labels name different
    concepts. Two latents of one concept are synonyms (or a concept's exclusive values) and would crowd the top
    with correlations that say nothing new; an unlabelled latent's concept is unknown, so its pairs could be
    synonyms too and are left out. Rank = 1 + the number of ranked pairs with a strictly higher NPMI; None when
    no pair carries the two labels.
    """
    n = npmi.shape[0]
    if len(labels) != n:
        raise ShapeError(f"labels: {len(labels)} labels for {n} latents")
    names = np.array([(label.label if isinstance(label, LatentLabel) else label) or "" for label in labels],
                     dtype=object)
    i, j = np.triu_indices(n, k=1)
    values = npmi[i, j]
    keep = np.isfinite(values) & (names[i] != "") & (names[j] != "") & ~same_concept_mask(labels)[i, j]
    i, j, values = i[keep], j[keep], values[keep]
    target = ((names[i] == concept_a) & (names[j] == concept_b)) | ((names[i] == concept_b) & (names[j] == concept_a))
    if not target.any():
        return None
    return int((values > values[target].max()).sum()) + 1
