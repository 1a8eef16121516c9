"""Scores of a document ranking against known relevant documents: arrays in, numbers out.

A ranking is an array of item indices, best first; relevance is binary, given as a boolean mask over all items.
Both metrics follow the TREC convention for a ranking shorter than `k`: the missing positions count as misses.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["ndcg_at_k", "precision_at_k"]


def _checked(ranking, relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(ranking, dtype=np.int64).ravel()
    truth = np.asarray(relevant, dtype=bool).ravel()
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k: must be an integer ≥ 1 (got {k!r})")
    if rows.size and (rows.min() < 0 or rows.max() >= truth.size):
        raise DataError(f"ranking: item indices must lie in [0, {truth.size}) (the length of relevant)")
    if np.unique(rows).size != rows.size:
        raise DataError("ranking: an item appears twice")
    return rows, truth


def precision_at_k(ranking, relevant, k: int) -> float:
    """Fraction of the first `k` ranked items that are relevant."""
    rows, truth = _checked(ranking, relevant, k)
    return float(truth[rows[:k]].sum() / k)


def ndcg_at_k(ranking, relevant, k: int) -> float:
    """Normalised discounted cumulative gain of the first `k` items with binary relevance.

    DCG@k = Σ_{i=1..k} rel_i / log2(i + 1), divided by the DCG of the ideal ranking (every relevant item first),
    so 1 means the top min(k, number relevant) positions are all relevant. NaN when no item is relevant.
    """
    rows, truth = _checked(ranking, relevant, k)
    n_relevant = int(truth.sum())
    if n_relevant == 0:
        return float("nan")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = rows[:k]
    gain = float((truth[top] * discounts[: top.size]).sum())
    ideal = float(discounts[: min(k, n_relevant)].sum())
    return gain / ideal
