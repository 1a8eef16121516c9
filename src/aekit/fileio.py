"""Safe file I/O: atomic writes and loaders that never execute a pickle.

Every file aekit writes goes to a temporary name in the same directory, is fsynced and then renamed, so a
reader (or a crash) never sees half a file. Every tensor file aekit reads is safetensors; anything else is
refused with a clear message before a byte of it is interpreted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from .errors import ConfigError, FormatError

PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # raw pickle protocol byte, zip container of torch.save


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse to fsync directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process's umask. Linux shows it in /proc without touching it; elsewhere it is set and restored, which
    for an instant gives other threads' new files umask 0."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_if_created(path: str | os.PathLike, mode: int) -> None:
    """Give a temporary file or directory the permissions a plain open()/mkdir() would have given it:
    mkstemp and mkdtemp create them owner-only, which would hide models, stores and reports from other users."""
    os.chmod(path, mode & ~_umask())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that `path` holds either the old content or all of the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _as_if_created(tmp, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_safetensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=metadata))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place only if the block succeeds.

    An existing directory at `path` is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    _as_if_created(tmp, 0o777)
    try:
        yield tmp
        _fsync_dir(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def refuse_existing_file(path: Path) -> None:
    """Refuse an output directory path that names an existing file (or anything else that is not a directory)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is an existing file, not a directory; choose another path for --out")


def require_fresh_directory(path: Path, what: str, hint: str = "") -> None:
    """Refuse an output path that exists and is not an empty directory (so nothing of the user's is lost)."""
    refuse_existing_file(path)
    if path.exists() and any(path.iterdir()):
        raise ConfigError(f"{path}: {what} already exists and is not empty; choose a new --out{hint}")


def discard_partial_output(path: Path, created: bool) -> None:
    """Undo a failed job's output: remove the directory it created, or empty the empty one it was given."""
    if created:
        shutil.rmtree(path, ignore_errors=True)
        return
    if path.is_dir():
        for child in list(path.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def read_json(path: str | os.PathLike, what: str = "file") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: {what} not found")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: {what} is not valid JSON ({e}); restore or recreate it") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: {what} must hold a JSON object")
    return obj


def check_safetensors_header(path: Path) -> None:
    """Refuse anything that is not a safetensors file before handing it to a parser."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise FormatError(f"{path}: cannot read ({e.strerror})") from None
    looks_like_safetensors = len(head) == 9 and head[8:9] == b"{"
    # a safetensors header length can itself start with byte 0x80, so test the safetensors shape first
    if not looks_like_safetensors and head.startswith(PICKLE_MAGIC):
        raise FormatError(
            f"{path}: is a pickle/torch.save file, not safetensors; aekit never loads pickles "
            "(convert it with safetensors.torch.save_file)"
        )
    if not looks_like_safetensors:
        raise FormatError(f"{path}: is not a safetensors file (bad header)")
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > path.stat().st_size - 8:
        raise FormatError(f"{path}: safetensors file is truncated (header says {header_len} bytes)")


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning every failure into a `FormatError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: file not found")
    check_safetensors_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise FormatError(f"{path}: cannot read safetensors ({e}); the file is corrupt or truncated") from None
