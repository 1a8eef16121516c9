"""Sources: endless shuffled streams of (batch, d) float tensors with a resumable cursor."""

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
