"""Read (samples, features) activation arrays from .npy, .npz, .safetensors and .pt files.

No reader executes code from the file: numpy files are read with allow_pickle=False, .pt files with
torch.load(weights_only=True), and safetensors cannot hold code at all.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import AekitError, DataError
from ..fileio import load_safetensors
from .validate import check_activations

PREFERRED_KEYS = ("activations", "x", "data")
SUPPORTED = (".npy", ".npz", ".safetensors", ".pt", ".pth")


def _pick(arrays: dict, path: Path) -> object:
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    for key in PREFERRED_KEYS:
        if key in arrays:
            return arrays[key]
    raise DataError(f"{path}: holds several arrays {sorted(arrays)}; name one 'activations' or keep only one")


def _to_tensor(value: object, path: Path) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise DataError(f"{path}: holds {value.dtype} values, not plain numbers; save a numeric 2-D array")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise DataError(f"{path}: expected an array of activations, found {type(value).__name__}")


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_array(path: str | Path) -> Tensor:
    """Load a 2-D activation array as float32, validated (non-empty, finite)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".npy", ".npz"):
            # np.load decides by content, not by name: a .npz may hold one plain array and a .npy an archive
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                value = loaded
            else:
                with loaded as z:
                    value = _pick({k: z[k] for k in z.files}, path)
        elif suffix == ".safetensors":
            value = _pick(load_safetensors(path), path)
        elif suffix in (".pt", ".pth"):
            value = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(value, dict):
                value = _pick(value, path)
        else:
            raise DataError(f"{path}: unsupported data format {suffix!r}; use one of {', '.join(SUPPORTED)}")
    except AekitError:
        raise
    except pickle.UnpicklingError as e:
        raise DataError(
            f"{path}: refused to load: torch.load(weights_only=True) rejected it (it holds pickled objects or is "
            f"not a tensor file); save plain tensors or use .safetensors: {_first_line(e)}"
        ) from None
    except (ValueError, OSError, EOFError, RuntimeError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read {suffix} file ({_first_line(e)})") from None
    x = check_activations(_to_tensor(value, path), str(path))
    return x.float()
