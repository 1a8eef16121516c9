"""Scores of an unsupervised map against the true one: cluster ids carry no meaning, so clusters are first matched
one-to-one to classes by the Hungarian algorithm (the matching that maximises agreement), then scored by overall
accuracy and Cohen's kappa (agreement corrected for what the two maps' class frequencies would give by chance)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import DataError

__all__ = ["cohen_kappa", "confusion", "hungarian_match", "map_scores"]


def confusion(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(n_true_classes, n_pred_clusters) counts; class and cluster ids are 0..max."""
    true, pred = np.asarray(true).reshape(-1), np.asarray(pred).reshape(-1)
    if true.shape != pred.shape or true.size == 0:
        raise DataError(f"maps must be non-empty and of equal size (got {true.size} and {pred.size} pixels)")
    if true.min() < 0 or pred.min() < 0:
        raise DataError("class and cluster ids must be ≥ 0")
    counts = np.zeros((int(true.max()) + 1, int(pred.max()) + 1), dtype=np.int64)
    np.add.at(counts, (true, pred), 1)
    return counts


def hungarian_match(true: np.ndarray, pred: np.ndarray) -> dict[int, int]:
    """{cluster: class} maximising the number of agreeing pixels; clusters left unmatched (more clusters than
    classes) are absent and count as wrong."""
    rows, cols = linear_sum_assignment(confusion(true, pred), maximize=True)
    return {int(c): int(r) for r, c in zip(rows, cols, strict=True)}


def cohen_kappa(true: np.ndarray, pred: np.ndarray) -> float:
    """(p_o − p_e) / (1 − p_e) for two maps in the same class ids; 1 when both maps are one identical class."""
    true, pred = np.asarray(true).reshape(-1), np.asarray(pred).reshape(-1)
    n_classes = int(max(true.max(), pred.max())) + 1
    counts = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(counts, (true, pred), 1)
    total = counts.sum()
    p_o = np.trace(counts) / total
    p_e = float((counts.sum(0) * counts.sum(1)).sum()) / total**2
    return 1.0 if p_e == 1 else float((p_o - p_e) / (1 - p_e))


def map_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy and kappa of `pred` (cluster ids) after the Hungarian matching; unmatched clusters get a class id
    no true pixel has, so they count against both scores."""
    match = hungarian_match(true, pred)
    unmatched = int(np.asarray(true).max()) + 1
    pred = np.asarray(pred).reshape(-1)
    relabelled = np.array([match.get(int(c), unmatched) for c in range(int(pred.max()) + 1)])[pred]
    true = np.asarray(true).reshape(-1)
    return {"accuracy": float((relabelled == true).mean()), "kappa": cohen_kappa(true, relabelled)}
