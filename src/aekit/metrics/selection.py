"""Scores of a data selection against known targets: arrays in, numbers out."""

from __future__ import annotations

import numpy as np

from ..errors import DataError

__all__ = ["selection_precision", "selection_recall"]


def _checked(selected, is_target) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(selected, dtype=np.int64).ravel()
    truth = np.asarray(is_target, dtype=bool).ravel()
    if rows.size and (rows.min() < 0 or rows.max() >= truth.size):
        raise DataError(f"selected: row indices must lie in [0, {truth.size}) (the length of is_target)")
    if np.unique(rows).size != rows.size:
        raise DataError("selected: a row index appears twice")
    return rows, truth


def selection_precision(selected, is_target) -> float:
    """Fraction of the selected rows that are targets (NaN for an empty selection)."""
    rows, truth = _checked(selected, is_target)
    return float(truth[rows].mean()) if rows.size else float("nan")


def selection_recall(selected, is_target) -> float:
    """Fraction of all targets that were selected (NaN when there is no target)."""
    rows, truth = _checked(selected, is_target)
    return float(truth[rows].sum() / truth.sum()) if truth.any() else float("nan")
