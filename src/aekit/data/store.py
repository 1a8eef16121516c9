"""The sharded activation store: safetensors shards + manifest.json.

Layout of a store directory:
    manifest.json                 format, d, dtype, total rows, provenance, and one entry per shard
    shard_00000.safetensors       tensor "activations" of shape (rows, d)
A shard is written to a temporary name, fsynced and renamed, and only then listed in the manifest (itself
replaced atomically), so a reader never sees a shard that is not complete. Each entry carries the shard's
SHA-256, checked when the shard is read.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save
from torch import Tensor

from .._version import __version__
from ..errors import FormatError, StoreError
from ..fileio import atomic_write_bytes, atomic_write_json, read_json
from .stream import ShuffledChunkStream, StreamBackedSource, chunk_permutation
from .validate import check_activations

MANIFEST = "manifest.json"
STORE_FORMAT = "aekit-activation-store"
STORE_VERSION = 1
TENSOR_NAME = "activations"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def is_store(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


class ActivationStoreWriter:
    """Append activation batches; full shards are flushed as they fill. Use as a context manager."""

    def __init__(
        self,
        path: str | Path,
        d: int,
        dtype: str = "float32",
        rows_per_shard: int = 65536,
        provenance: dict[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        if dtype not in DTYPES:
            raise StoreError(f"{self.path}: dtype {dtype!r} is not supported; choose one of {sorted(DTYPES)}")
        if rows_per_shard < 1:
            raise StoreError(f"{self.path}: rows_per_shard must be ≥ 1 (got {rows_per_shard})")
        if self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise StoreError(f"{self.path}: directory exists and is not empty; choose a new path or pass overwrite")
        self.path.mkdir(parents=True, exist_ok=True)
        for old in self.path.glob("shard_*.safetensors"):
            old.unlink()
        self.d, self.dtype, self.rows_per_shard = d, dtype, rows_per_shard
        self.provenance = dict(provenance or {})
        self.shards: list[dict[str, Any]] = []
        self._pending: list[Tensor] = []
        self._pending_rows = 0
        self._write_manifest(complete=False)

    def append(self, batch: Tensor) -> None:
        batch = check_activations(batch.detach().cpu(), f"{self.path}: appended batch", self.d)
        stored = batch.to(DTYPES[self.dtype])
        if not bool(torch.isfinite(stored).all()):  # e.g. |x| > 65504 overflows float16 to inf
            raise StoreError(
                f"{self.path}: appended batch has values beyond the range of {self.dtype} "
                f"(max {torch.finfo(stored.dtype).max:g}); store as float32 or rescale the activations"
            )
        self._pending.append(stored)
        self._pending_rows += len(batch)
        while self._pending_rows >= self.rows_per_shard:
            rows = torch.cat(self._pending)
            self._flush(rows[: self.rows_per_shard])
            rest = rows[self.rows_per_shard :]
            self._pending, self._pending_rows = ([rest] if len(rest) else []), len(rest)

    def _flush(self, rows: Tensor) -> None:
        name = f"shard_{len(self.shards):05d}.safetensors"
        data = save({TENSOR_NAME: rows.contiguous()})
        atomic_write_bytes(self.path / name, data)
        self.shards.append({"file": name, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()})
        self._write_manifest(complete=False)

    def _write_manifest(self, complete: bool) -> None:
        atomic_write_json(
            self.path / MANIFEST,
            {
                "format": STORE_FORMAT,
                "format_version": STORE_VERSION,
                "aekit_version": __version__,
                "d": self.d,
                "dtype": self.dtype,
                "rows": sum(s["rows"] for s in self.shards),
                "rows_per_shard": self.rows_per_shard,
                "complete": complete,
                "provenance": self.provenance,
                "shards": self.shards,
            },
        )

    def close(self) -> ActivationStore:
        if self._pending_rows:
            self._flush(torch.cat(self._pending))
            self._pending, self._pending_rows = [], 0
        self._write_manifest(complete=True)
        return ActivationStore(self.path)

    def __enter__(self) -> ActivationStoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def write_store(path: str | Path, x: Tensor, rows_per_shard: int = 65536, **kwargs: Any) -> ActivationStore:
    """Write a whole (n, d) tensor as a store."""
    with ActivationStoreWriter(path, x.shape[1], rows_per_shard=rows_per_shard, **kwargs) as writer:
        for start in range(0, len(x), rows_per_shard):
            writer.append(x[start : start + rows_per_shard])
    return ActivationStore(path)


class ActivationStore:
    """Read access to a complete store; checks the manifest up front and each shard when it is read."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            manifest = read_json(self.path / MANIFEST, "activation store manifest")
        except FormatError as e:  # a store problem is a StoreError, like every other one below
            raise StoreError(str(e)) from None
        where = self.path / MANIFEST
        if manifest.get("format") != STORE_FORMAT or manifest.get("format_version") != STORE_VERSION:
            raise StoreError(
                f"{where}: not an aekit activation store of format version {STORE_VERSION} "
                f"(format={manifest.get('format')!r}, version={manifest.get('format_version')!r})"
            )
        if not manifest.get("complete"):
            raise StoreError(f"{where}: the store was never closed (the writer stopped early); re-create it")
        try:
            self.d = int(manifest["d"])
            self.dtype = str(manifest["dtype"])
            self.shards = [
                {"file": str(s["file"]), "rows": int(s["rows"]), "sha256": str(s["sha256"])}
                for s in manifest["shards"]
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"{where}: manifest is missing or has a malformed field ({e})") from None
        if self.dtype not in DTYPES:
            raise StoreError(f"{where}: unsupported dtype {self.dtype!r}")
        self.provenance = dict(manifest.get("provenance") or {})
        self.rows = sum(s["rows"] for s in self.shards)
        if self.rows == 0:
            raise StoreError(f"{where}: the store holds no rows (empty dataset)")
        for shard in self.shards:
            if not (self.path / shard["file"]).is_file():
                raise StoreError(f"{self.path / shard['file']}: shard listed in the manifest is missing")

    def __len__(self) -> int:
        return self.rows

    def read_shard(self, i: int, verify: bool = True) -> Tensor:
        """Rows of shard i; `verify` checks its SHA-256 and that every value is finite."""
        shard = self.shards[i]
        file = self.path / shard["file"]
        try:
            data = file.read_bytes()
        except OSError as e:
            raise StoreError(f"{file}: cannot read shard ({e.strerror})") from None
        if verify and hashlib.sha256(data).hexdigest() != shard["sha256"]:
            raise StoreError(f"{file}: checksum mismatch (the shard is truncated or was modified); re-create the store")
        try:
            rows = load_safetensors_bytes(data)[TENSOR_NAME]
        except (SafetensorError, KeyError, ValueError) as e:
            raise StoreError(f"{file}: cannot read shard ({e}); re-create the store") from None
        if tuple(rows.shape) != (shard["rows"], self.d):
            raise StoreError(f"{file}: shard has shape {tuple(rows.shape)}, manifest says ({shard['rows']}, {self.d})")
        return check_activations(rows, str(file)) if verify else rows

    def read_all(self) -> Tensor:
        return torch.cat([self.read_shard(i) for i in range(len(self.shards))])


class StoreSource(StreamBackedSource):
    """Shuffled batches from a store, holding at most `buffer_rows` rows (whole shards) in memory."""

    def __init__(self, store: ActivationStore, batch_size: int, seed: int = 0, buffer_rows: int = 262144):
        self.store = store
        self.d = store.d
        largest = max(s["rows"] for s in store.shards)
        # whole shards per chunk; a shard larger than the buffer is read alone
        self.shards_per_chunk = max(1, buffer_rows // largest)
        n_chunks = math.ceil(len(store.shards) / self.shards_per_chunk)
        layout = f"{len(store.shards)} shards, {self.shards_per_chunk} per chunk"
        self.stream = ShuffledChunkStream(n_chunks, self._load_chunk, batch_size, seed, layout=layout)
        self._verified: set[int] = set()

    def __len__(self) -> int:
        return len(self.store)

    def _load_chunk(self, epoch: int, chunk: int) -> Tensor:
        order = chunk_permutation(len(self.store.shards), self.stream.seed, epoch)
        shard_ids = order[chunk * self.shards_per_chunk : (chunk + 1) * self.shards_per_chunk]
        # each shard's checksum and values are verified on its first read in this process; later epochs
        # re-read the bytes without hashing them again (the hash cost as much as the read)
        rows = [self.store.read_shard(i, verify=i not in self._verified) for i in shard_ids]
        self._verified.update(shard_ids)
        return torch.cat(rows)
