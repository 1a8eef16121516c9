"""Time-series anomaly detection scores: F1 at the best threshold, point-adjusted F1, AUROC, graph recovery.

Point adjustment (PA) is the protocol most time-series anomaly papers report: if any time step inside a true
anomaly segment is flagged, every step of that segment counts as detected. It inflates the score, a lot for long
segments (one lucky hit in an 80-step segment earns 80 true positives, and a random scorer can reach a high PA-F1),
so report it next to the unadjusted F1, never alone.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError

__all__ = ["best_f1", "best_pa_f1", "f1_at", "graph_auroc", "point_adjust", "roc_auc", "segments"]


def _labels_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(bool).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ShapeError(f"anomaly metrics: {len(y)} labels but {len(s)} scores")
    return y, s


def segments(labels) -> list[tuple[int, int]]:
    """[start, stop) of every run of consecutive 1s in `labels`."""
    y = np.concatenate([[0], np.asarray(labels).astype(np.int8).ravel(), [0]])
    edges = np.flatnonzero(np.diff(y))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def f1_at(labels, predictions) -> float:
    """F1 of binary predictions (0 when nothing is predicted or nothing is anomalous)."""
    y, p = _labels_scores(labels, predictions)
    p = p.astype(bool)
    tp = int((y & p).sum())
    if tp == 0:
        return 0.0
    precision, recall = tp / p.sum(), tp / y.sum()
    return float(2 * precision * recall / (precision + recall))


def point_adjust(labels, predictions) -> np.ndarray:
    """Predictions with every true segment that holds at least one flagged step flagged entirely (the PA protocol)."""
    y, p = _labels_scores(labels, predictions)
    p = p.astype(bool).copy()
    for start, stop in segments(y):
        if p[start:stop].any():
            p[start:stop] = True
    return p.astype(np.int64)


def best_f1(labels, scores) -> dict[str, float]:
    """The largest F1 over all thresholds (flag score ≥ threshold) and the threshold that reaches it."""
    from sklearn.metrics import precision_recall_curve

    y, s = _labels_scores(labels, scores)
    if not y.any():
        return {"f1": 0.0, "threshold": float("inf")}
    precision, recall, thresholds = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    i = int(np.argmax(f1))
    return {"f1": float(f1[i]), "threshold": float(thresholds[i])}


def best_pa_f1(labels, scores) -> dict[str, float]:
    """The largest point-adjusted F1 over all thresholds. A segment is fully detected at threshold θ exactly when
    its highest score is ≥ θ, so PA-F1 at every θ is the plain F1 of scores raised to their segment's maximum."""
    y, s = _labels_scores(labels, scores)
    adjusted = s.copy()
    for start, stop in segments(y):
        adjusted[start:stop] = s[start:stop].max()
    return best_f1(y, adjusted)


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (scikit-learn); nan when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, s = _labels_scores(labels, scores)
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def graph_auroc(learned, true) -> float:
    """AUROC of learned adjacency weights against the true graph's off-diagonal edges; the learned matrix is
    symmetrised (A + Aᵀ) because the true graph is undirected while attention rows are not."""
    a, t = np.asarray(learned, dtype=float), np.asarray(true)
    if a.shape != t.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"graph_auroc: learned {a.shape} and true {t.shape} must be the same square shape")
    off = ~np.eye(len(a), dtype=bool)
    return roc_auc((t != 0)[off], (a + a.T)[off])
