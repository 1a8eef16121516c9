"""Checks every data path shares: shape, emptiness, finiteness, dimension."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DataError, ShapeError


def check_activations(x: Tensor, where: str, d: int | None = None) -> Tensor:
    """Return x as a 2-D float tensor, or raise a DataError naming `where` and what to fix."""
    if x.dtype.is_complex or x.dtype == torch.bool or not (x.dtype.is_floating_point or x.dtype in _INT_TYPES):
        raise DataError(f"{where}: activations must be real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ShapeError(f"{where}: activations must be a 2-D array (samples, features), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{where}: the dataset is empty (shape {tuple(x.shape)})")
    if d is not None and x.shape[1] != d:
        raise ShapeError(f"{where}: activations have {x.shape[1]} features but {d} are expected")
    if x.dtype.is_floating_point:
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            bad = (~finite).nonzero()[0].tolist()
            value = x[bad[0], bad[1]].item()
            raise DataError(
                f"{where}: contains a non-finite value ({value}) at row {bad[0]}, column {bad[1]}; "
                "clean or drop those rows"
            )
    return x


_INT_TYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
