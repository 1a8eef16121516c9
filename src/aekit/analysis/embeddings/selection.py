"""Task-specific data selection with SAE codes: rank candidate documents by how much they resemble a few target
examples, then keep the best `budget` (after "Task-Specific Data Selection for Instruction Tuning via Monosemantic
Neuronal Activations", 2025).

The method represents each document by its pooled SAE codes (a `DocumentEmbeddings` row, non-negative), builds a
*prototype* of the target task as the mean of the examples' pooled codes, and scores each candidate x by the
generalised Jaccard similarity

    J(x, p) = Σ_i min(x_i, p_i) / Σ_i max(x_i, p_i),

which rewards sharing the prototype's latents at its strengths and penalises latents the prototype lacks. It is
computed on the sparse matrix directly: Σ min only over each row's non-zeros (min(x_i, p_i) = 0 where x_i = 0), and
Σ max = Σ x + Σ p − Σ min. The baselines are the cosine similarity of mean-pooled hidden states to the examples'
mean, Okapi BM25 with the examples' text as the query, and random scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ...errors import ConfigError, DataError, ShapeError
from ...seeding import derive_seed
from .embed import DocumentEmbeddings

__all__ = ["BM25_B", "BM25_K1", "SELECTION_METHODS", "bm25_scores", "cosine_scores", "generalized_jaccard",
           "jaccard_scores", "prototype", "random_scores", "select"]

SELECTION_METHODS = ("jaccard", "cosine", "bm25", "random")
BM25_K1, BM25_B = 1.5, 0.75  # the usual Okapi settings (Robertson & Zaragoza, 2009)


def _as_csr(matrix: DocumentEmbeddings | sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    if isinstance(matrix, DocumentEmbeddings):
        matrix = matrix.matrix
    return sp.csr_matrix(matrix, dtype=np.float64)


def prototype(examples: DocumentEmbeddings | sp.spmatrix | np.ndarray) -> np.ndarray:
    """The target prototype: the element-wise mean of the examples' pooled codes, a dense (n_latents,) vector."""
    matrix = _as_csr(examples)
    if matrix.shape[0] == 0:
        raise DataError("examples: none given; the prototype needs at least one target example")
    return np.asarray(matrix.mean(axis=0), dtype=np.float64).ravel()


def generalized_jaccard(candidates: DocumentEmbeddings | sp.spmatrix | np.ndarray,
                        reference: np.ndarray) -> np.ndarray:
    """J(x, p) = Σ min(x, p) / Σ max(x, p) of every row x against `reference` p (all values must be ≥ 0).

    A row that is all zero against an all-zero reference scores 0 (the ratio is undefined; 0 ranks it last).
    """
    matrix = _as_csr(candidates)
    p = np.asarray(reference, dtype=np.float64).ravel()
    if matrix.shape[1] != p.shape[0]:
        raise ShapeError(f"reference: {p.shape[0]} values but the candidates have {matrix.shape[1]} latents")
    if (matrix.data < 0).any() or (p < 0).any():
        raise DataError("codes: generalised Jaccard needs non-negative values; pool the SAE codes with max, mean, "
                        "sum or count")
    smaller = sp.csr_matrix((np.minimum(matrix.data, p[matrix.indices]), matrix.indices, matrix.indptr),
                            shape=matrix.shape)
    sum_min = np.asarray(smaller.sum(axis=1)).ravel()
    sum_max = np.asarray(matrix.sum(axis=1)).ravel() + p.sum() - sum_min
    return np.divide(sum_min, sum_max, out=np.zeros_like(sum_min), where=sum_max > 0)


def jaccard_scores(candidates: DocumentEmbeddings, examples: DocumentEmbeddings) -> np.ndarray:
    """The method's score of every candidate: generalised Jaccard to the mean of the examples' pooled codes."""
    if candidates.n_latents != examples.n_latents:
        raise ShapeError(f"examples: {examples.n_latents} latents but the candidates have {candidates.n_latents}; "
                         "embed both with the same SAE")
    return generalized_jaccard(candidates.matrix, prototype(examples.matrix))


def cosine_scores(candidates: np.ndarray, examples: np.ndarray) -> np.ndarray:
    """Baseline: cosine similarity of each candidate's dense vector (e.g. mean-pooled hidden states, see
    `dense_embeddings`) to the mean of the examples' vectors; a zero vector scores 0."""
    x = np.asarray(candidates, dtype=np.float64)
    e = np.asarray(examples, dtype=np.float64)
    if x.ndim != 2 or e.ndim != 2 or x.shape[1] != e.shape[1]:
        raise ShapeError(f"cosine: candidates {x.shape} and examples {e.shape} must be 2-D with the same width")
    if e.shape[0] == 0:
        raise DataError("examples: none given; the cosine baseline needs at least one target example")
    centre = e.mean(axis=0)
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(centre)
    dots = x @ centre
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _term_counts(documents: Sequence[str], vocabulary: dict[str, int]) -> sp.csr_matrix:
    """(n_documents, len(vocabulary)) CSR of whitespace-token counts; `vocabulary` grows with new tokens."""
    indptr, indices = [0], []
    for doc in documents:
        indices.extend(vocabulary.setdefault(token, len(vocabulary)) for token in doc.split())
        indptr.append(len(indices))
    counts = sp.csr_matrix((np.ones(len(indices)), np.array(indices, dtype=np.int64), np.array(indptr)),
                           shape=(len(documents), len(vocabulary)))
    counts.sum_duplicates()  # repeated (row, token) entries become the token's count in the document
    return counts


def bm25_scores(documents: Sequence[str], query: str | Sequence[str], k1: float = BM25_K1,
                b: float = BM25_B) -> np.ndarray:
    """Baseline: Okapi BM25 score of every document for `query` (a text, or several whose tokens are pooled).

    Tokens are whitespace-separated words, case kept. The query is the *set* of its distinct tokens, and
    score(D) = Σ_{t ∈ query} idf(t) · f(t, D) (k1 + 1) / (f(t, D) + k1 (1 − b + b |D| / avgdl)), with the
    standard, always positive idf(t) = log((N − n(t) + 0.5) / (n(t) + 0.5) + 1) over the N `documents`, n(t) of
    which contain t; |D| is the document's token count and avgdl the mean of |D|.
    """
    if not documents:
        raise DataError("documents: none given; BM25 needs a corpus to score")
    if k1 < 0 or not 0 <= b <= 1:
        raise ConfigError(f"bm25: k1 must be ≥ 0 and b in [0, 1] (got k1={k1}, b={b})")
    vocabulary: dict[str, int] = {}
    counts = _term_counts(documents, vocabulary)
    n_docs = counts.shape[0]
    texts = [query] if isinstance(query, str) else list(query)
    terms = {vocabulary[t] for text in texts for t in text.split() if t in vocabulary}  # unseen terms add 0
    if not terms:
        return np.zeros(n_docs)
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    mean_length = lengths.mean() if lengths.mean() > 0 else 1.0
    in_docs = np.bincount(counts.indices, minlength=counts.shape[1])  # n(t): documents containing t
    idf = np.log((n_docs - in_docs + 0.5) / (in_docs + 0.5) + 1.0)
    tf = counts.data
    row_length = np.repeat(lengths, np.diff(counts.indptr))
    weights = idf[counts.indices] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * row_length / mean_length))
    in_query = np.zeros(counts.shape[1])
    in_query[list(terms)] = 1.0
    scored = sp.csr_matrix((weights, counts.indices, counts.indptr), shape=counts.shape)
    return np.asarray(scored @ in_query).ravel()


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    """Baseline: n independent uniform scores (seeded), so `select` takes a uniformly random subset."""
    return np.random.default_rng(derive_seed("selection.random", seed)).random(n)


def select(scores: np.ndarray, budget: int, exclude: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Row indices of the `budget` highest scores, best first (ties: lower index first); rows in `exclude`
    (e.g. the examples themselves) are never selected."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if np.isnan(scores).any():
        raise DataError("scores: contain NaN; every candidate needs a score")
    allowed = np.ones(len(scores), dtype=bool)
    if exclude is not None:
        allowed[np.asarray(exclude, dtype=np.int64)] = False
    available = int(allowed.sum())
    if not 1 <= budget <= available:
        raise ConfigError(f"budget: must be between 1 and the {available} candidates (got {budget})")
    candidates = np.flatnonzero(allowed)
    order = np.argsort(-scores[candidates], kind="stable")  # stable: equal scores keep document order
    return candidates[order[:budget]]
