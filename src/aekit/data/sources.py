"""Sources: endless shuffled streams of (batch, d) float tensors (or dicts of tensors) with a resumable cursor."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .readers import read_array
from .store import ActivationStore, StoreSource, is_store
from .stream import ShuffledChunkStream, StreamBackedSource
from .validate import check_activations


class Source(Protocol):
    d: int
    batch_size: int

    def __iter__(self): ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ArraySource(StreamBackedSource):
    """Shuffled batches from an in-memory (n, d) array."""

    def __init__(self, x: Tensor | np.ndarray, batch_size: int, seed: int = 0, where: str = "array"):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as e:  # object arrays, ragged lists, ...
            raise DataError(f"{where}: activations must be an array of numbers ({e})") from None
        self.x = check_activations(x, where).float()
        self.d = self.x.shape[1]
        self.stream = ShuffledChunkStream(1, lambda epoch, chunk: self.x, batch_size, seed)

    def __len__(self) -> int:
        return len(self.x)


class DictArraySource(StreamBackedSource):
    """Shuffled batches of dicts, e.g. {"x": images, "labels": factors}, from in-memory arrays of equal length.

    Rows of every array are drawn with one shared permutation, so row i of each key belongs together; arrays may
    have any trailing shape (images stay (batch, C, H, W)). Floating arrays come out as float32, integer arrays
    (labels, uint8 images) keep their dtype. The cursor is the same exact, resumable one as ArraySource's.
    """

    MAX_ROWS = 2**24  # row numbers travel through the float32 stream; beyond 2**24 they would round

    def __init__(self, arrays: dict[str, Tensor | np.ndarray], batch_size: int, seed: int = 0, where: str = "arrays"):
        if not arrays:
            raise DataError(f"{where}: no arrays given; pass e.g. {{'x': images, 'labels': factors}}")
        self.arrays = {key: _as_tensor(value, f"{where}[{key!r}]") for key, value in arrays.items()}
        lengths = {key: len(value) for key, value in self.arrays.items()}
        n = next(iter(lengths.values()))
        if len(set(lengths.values())) > 1 or n == 0 or n > self.MAX_ROWS:
            raise DataError(f"{where}: arrays must hold the same number of rows, between 1 and {self.MAX_ROWS} "
                            f"(got {lengths})")
        first = next(iter(self.arrays.values()))
        self.d = int(np.prod(first.shape[1:], dtype=np.int64))
        rows = torch.arange(n, dtype=torch.float32).unsqueeze(1)
        self.stream = ShuffledChunkStream(1, lambda epoch, chunk: rows, batch_size, seed)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __iter__(self):
        for rows in self.stream:
            index = rows[:, 0].long()
            yield {key: _batch_dtype(value[index]) for key, value in self.arrays.items()}


def _as_tensor(value: Tensor | np.ndarray, where: str) -> Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as e:
        raise DataError(f"{where}: must be an array of numbers ({e})") from None
    if t.ndim == 0 or t.dtype == torch.bool or t.dtype.is_complex:
        raise DataError(f"{where}: must be an array of real numbers with a row dimension (got {t.dtype}, "
                        f"shape {tuple(t.shape)})")
    if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
        raise DataError(f"{where}: contains NaN or Inf; clean or drop those rows")
    return t


def _batch_dtype(t: Tensor) -> Tensor:
    return t.float() if t.dtype.is_floating_point else t


def open_source(path: str | Path, batch_size: int, seed: int = 0, buffer_rows: int = 262144) -> Source:
    """A store directory becomes a StoreSource; an array file (.npy/.npz/.safetensors/.pt) an ArraySource."""
    path = Path(path)
    if is_store(path):
        return StoreSource(ActivationStore(path), batch_size, seed=seed, buffer_rows=buffer_rows)
    if path.is_dir():
        raise DataError(f"{path}: directory has no manifest.json, so it is not an activation store")
    return ArraySource(read_array(path), batch_size, seed=seed, where=str(path))


def read_dataset(path: str | Path) -> Tensor:
    """All rows of a store or array file (for evaluation)."""
    path = Path(path)
    if is_store(path):
        return ActivationStore(path).read_all().float()
    if path.is_dir():
        raise DataError(f"{path}: directory has no manifest.json, so it is not an activation store")
    return read_array(path)
