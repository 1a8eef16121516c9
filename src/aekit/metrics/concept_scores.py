"""Concept recovery: how well single SAE latents capture known concepts, next to a supervised probe upper bound.

Inputs are token-level: `codes` (n_tokens, n_latents) latent activations, `labels` (n_tokens,) concept values with
-1 where the concept does not apply (those tokens are left out), and for graded concepts `targets` (n_tokens, C)
such as log p(c | x_≤t).

- `concept_best_f1`: for every concept value, the best F1 of "latent fires" against "token has this value" over
  all latents (the detection view used by SAE-bench style concept scores);
- `matched_correlation`: Hungarian one-to-one matching of latents to target columns by Pearson correlation;
- `probe_f1` / `probe_correlation`: the same scores from a supervised linear probe on the raw activations
  (logistic regression one-vs-rest / ridge regression) fitted on a training split and scored on held-out tokens,
  the upper bound a single latent is compared with.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csc_matrix, issparse

from ..errors import ShapeError

__all__ = ["concept_best_f1", "matched_correlation", "probe_correlation", "probe_f1"]


def _check(codes, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or codes.shape[0] != len(labels):
        raise ShapeError(f"labels: expected one label per token ({codes.shape[0]}), got shape {labels.shape}")
    return labels


def concept_best_f1(codes, labels: np.ndarray) -> dict[int, tuple[int, float]]:
    """{concept value: (best latent, its F1)} over tokens whose label is not -1."""
    labels = _check(codes, labels)
    keep = labels >= 0
    fires = csc_matrix(codes[keep] if issparse(codes) else np.asarray(codes)[keep]) > 0
    fires = csc_matrix(fires, dtype=np.float64)
    labels = labels[keep]
    fire_counts = np.asarray(fires.sum(axis=0)).ravel()
    result = {}
    for value in np.unique(labels):
        truth = (labels == value).astype(np.float64)
        tp = fires.T @ truth  # per latent: tokens where it fires and the value holds
        f1 = np.where(fire_counts + truth.sum() > 0, 2 * tp / (fire_counts + truth.sum()), 0.0)
        best = int(np.argmax(f1))
        result[int(value)] = (best, float(f1[best]))
    return result


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of a with every column of b (constant columns give 0)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    norm = np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (a.T @ b) / norm
    return np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)


def matched_correlation(codes, targets: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean matched correlation, latent matched to each target column, the matched correlations)."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or targets.shape[0] != codes.shape[0]:
        raise ShapeError(f"targets: expected shape ({codes.shape[0]}, C), got {targets.shape}")
    dense = codes.toarray() if issparse(codes) else np.asarray(codes, dtype=np.float64)
    alive = np.flatnonzero(dense.std(0) > 0)
    corr = _correlation(dense[:, alive], targets)  # (alive latents, C)
    rows, cols = linear_sum_assignment(-corr)
    matched = np.full(targets.shape[1], -1)
    values = np.zeros(targets.shape[1])
    matched[cols] = alive[rows]
    values[cols] = corr[rows, cols]
    return float(values.mean()), matched, values


def _split(n: int, seed: int, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(train_fraction * n))
    return order[:cut], order[cut:]


def _standardize(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    mean, std = x[train].mean(0), x[train].std(0)
    return (x - mean) / np.where(std > 0, std, 1.0)


def probe_f1(activations: np.ndarray, labels: np.ndarray, *, seed: int = 0,
             train_fraction: float = 0.7) -> dict[int, float]:
    """{concept value: held-out F1 of a one-vs-rest logistic-regression probe} over tokens whose label is not -1."""
    from sklearn.linear_model import LogisticRegression

    activations = np.asarray(activations, dtype=np.float64)
    labels = _check(activations, labels)
    keep = labels >= 0
    x, y = activations[keep], labels[keep]
    train, test = _split(len(y), seed, train_fraction)
    x = _standardize(x, train)
    result = {}
    for value in np.unique(y):
        truth = y == value
        if truth[train].all() or not truth[train].any():
            result[int(value)] = 0.0
            continue
        probe = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x[train], truth[train])
        predicted = probe.predict(x[test])
        tp = np.sum(predicted & truth[test])
        denominator = predicted.sum() + truth[test].sum()
        result[int(value)] = float(2 * tp / denominator) if denominator else 0.0
    return result


def probe_correlation(activations: np.ndarray, targets: np.ndarray, *, seed: int = 0,
                      train_fraction: float = 0.7, alpha: float = 1.0) -> np.ndarray:
    """Held-out Pearson correlation of a ridge-regression probe's prediction with each target column."""
    from sklearn.linear_model import Ridge

    activations = np.asarray(activations, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or len(targets) != len(activations):
        raise ShapeError(f"targets: expected shape ({len(activations)}, C), got {targets.shape}")
    train, test = _split(len(targets), seed, train_fraction)
    x = _standardize(activations, train)
    predicted = Ridge(alpha=alpha).fit(x[train], targets[train]).predict(x[test])
    return np.diag(_correlation(predicted.reshape(len(test), -1), targets[test]))
