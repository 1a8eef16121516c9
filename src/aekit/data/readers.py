"""Read (samples, features) activation arrays from .npy, .npz, .safetensors and .pt files.

No reader executes code from the file: numpy files are read with allow_pickle=False, .pt files with
torch.load(weights_only=True), and safetensors cannot hold code at all.
"""

from __future__ import annotations

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


NUMPY_MAGIC = (b"\x93NUMPY", b"PK\x03\x04")  # .npy header, zip container of .npz
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # zip container of torch.save, its legacy pickle-framed format
EXPECTED = {
    ".npy": "an array written by numpy.save",
    ".npz": "arrays written by numpy.savez",
    ".pt": "tensors written by torch.save",
    ".pth": "tensors written by torch.save",
}


def _check_magic(path: Path, suffix: str, magic: tuple[bytes, ...]) -> None:
    """Refuse a file whose first bytes are not what its extension promises, before any parser reads it."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(magic):
        return
    if not head:
        reason = "it is empty"
    elif head.startswith(b"\x80"):
        reason = "it is a Python pickle, which aekit never loads"
    elif _looks_like_text(head):
        reason = "it is a text file"
    else:
        reason = "its header is not recognised"
    raise DataError(f"{path}: is not a {suffix} file ({reason}); expected {EXPECTED[suffix]}")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # only a multi-byte character cut at the end of the head may fail
            return False
        text = head[: e.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _read_numpy(path: Path, suffix: str) -> object:
    _check_magic(path, suffix, NUMPY_MAGIC)
    try:
        # np.load decides by content, not by name: a .npz may hold one plain array and a .npy an archive
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded as z:
            return _pick({k: z[k] for k in z.files}, path)
    except ValueError as e:
        if "pickle" in str(e):  # numpy refused an object array; its advice to allow pickles is not repeated
            raise DataError(f"{path}: holds Python objects (an object array), not numbers; aekit never "
                            "unpickles them; save a numeric 2-D array") from None
        raise


def _read_torch(path: Path, suffix: str) -> object:
    _check_magic(path, suffix, TORCH_MAGIC)
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, RuntimeError, zipfile.BadZipFile):
        raise  # a damaged file: read_array reports it like any other format's
    except Exception as e:  # the weights-only unpickler rejects foreign objects with many exception types
        raise DataError(
            f"{path}: refused to load: torch.load(weights_only=True) rejected it (it holds pickled objects or is "
            f"not a tensor file); save plain tensors or use .safetensors: {_first_line(e)}"
        ) from None
    return _pick(value, path) if isinstance(value, dict) else value


def read_array(path: str | Path) -> Tensor:
    """Load a 2-D activation array as float32, validated (non-empty, finite)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".npy", ".npz"):
            value = _read_numpy(path, suffix)
        elif suffix == ".safetensors":
            value = _pick(load_safetensors(path), path)
        elif suffix in (".pt", ".pth"):
            value = _read_torch(path, suffix)
        else:
            raise DataError(f"{path}: unsupported data format {suffix!r}; use one of {', '.join(SUPPORTED)}")
    except AekitError:
        raise
    except (ValueError, OSError, EOFError, RuntimeError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot read {suffix} file ({_first_line(e)})") from None
    x = check_activations(_to_tensor(value, path), str(path))
    return x.float()
