"""Scores of a discovered circuit against a true one: ROC AUC of a ranking, precision and recall of a set."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from ..errors import ShapeError

__all__ = ["circuit_precision_recall", "ranking_auc"]


def _flat(scores, truth) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    if scores.shape != truth.shape:
        raise ShapeError(f"circuit scores have shape {scores.shape} but the true circuit {truth.shape}")
    keep = ~np.isnan(scores)  # NaN marks pairs that are not edges (e.g. a receiver before its sender)
    return scores[keep], truth[keep]


def ranking_auc(scores, truth) -> float:
    """ROC AUC of ranking components by `scores` against the boolean `truth` (ties count one half);
    NaN when the truth has only one class, where no ranking can be judged."""
    scores, truth = _flat(scores, truth)
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, scores))


def circuit_precision_recall(selected, truth) -> tuple[float, float]:
    """(precision, recall) of a boolean selection against the boolean truth (NaN precision when none selected)."""
    selected, truth = np.asarray(selected, dtype=bool).ravel(), np.asarray(truth, dtype=bool).ravel()
    if selected.shape != truth.shape:
        raise ShapeError(f"selected components {selected.shape} do not match the true circuit {truth.shape}")
    hits = int((selected & truth).sum())
    precision = hits / int(selected.sum()) if selected.any() else float("nan")
    recall = hits / int(truth.sum()) if truth.any() else float("nan")
    return precision, recall
