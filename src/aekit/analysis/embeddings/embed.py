"""SAE document embeddings: one sparse row of pooled SAE latents per document (Jiang et al., 2025).

Each document is run through the language model, the activations at one hook are encoded by the SAE, and the
codes of its real tokens (padding and BOS dropped, as in training) are pooled over tokens: `max` (the default,
"how strongly does the document express the latent anywhere"), `mean`, `sum` or `count` (the number of tokens on
which the latent fires). `binary=True` keeps only whether a latent fires at all. Documents are streamed in
batches and only the sparse pooled rows are kept, so memory grows with the non-zeros of the result, not with the
corpus's tokens. `dense_embeddings` gives the baseline the methods are compared with: mean-pooled hidden states.

The result is stored as safetensors (the CSR arrays) with the document ids and settings in its metadata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...data.corpus import batched
from ...data.hooks import ActivationCapture, parse_hook_name
from ...errors import ConfigError, DataError, FormatError, ShapeError
from ...fileio import atomic_write_safetensors, load_safetensors

__all__ = ["POOLINGS", "DocumentEmbeddings", "dense_embeddings", "pool_tokens", "sae_embeddings"]

POOLINGS = ("max", "mean", "sum", "count")
FORMAT = "aekit.document_embeddings"


@dataclass
class DocumentEmbeddings:
    """Pooled codes of documents: `matrix` (n_documents, n_latents) CSR, row i belongs to `doc_ids[i]`."""

    matrix: sp.csr_matrix
    doc_ids: list[str]
    pooling: str = "max"
    binary: bool = False
    hook: str = ""
    docs_per_second: float = float("nan")

    def __post_init__(self) -> None:
        if self.matrix.shape[0] != len(self.doc_ids):
            raise ShapeError(f"embeddings: {self.matrix.shape[0]} rows but {len(self.doc_ids)} document ids")
        if len(set(self.doc_ids)) != len(self.doc_ids):
            raise DataError("embeddings: document ids must be unique")

    @property
    def n_documents(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_latents(self) -> int:
        return self.matrix.shape[1]

    def binarized(self) -> DocumentEmbeddings:
        """The same documents with 1 wherever a latent fires."""
        matrix = self.matrix.copy()
        matrix.data = (matrix.data > 0).astype(np.float32)
        matrix.eliminate_zeros()
        return DocumentEmbeddings(matrix, list(self.doc_ids), self.pooling, True, self.hook, self.docs_per_second)

    def fires(self, threshold: float = 0.0) -> sp.csr_matrix:
        """Boolean (n_documents, n_latents) CSR: the latent's pooled value in the document is above `threshold`
        (with count pooling, threshold 1 means it fires on at least two tokens)."""
        matrix = self.matrix.tocsr().copy()
        matrix.data = matrix.data > threshold
        matrix.eliminate_zeros()
        return matrix.astype(bool)

    def firing_frequency(self, threshold: float = 0.0) -> np.ndarray:
        """Fraction of documents in which each latent fires (pooled value above `threshold`)."""
        fires = self.fires(threshold)
        return np.bincount(fires.indices, minlength=fires.shape[1]) / max(fires.shape[0], 1)

    def rows(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Row indices of `doc_ids`; an unknown id is a `DataError`."""
        index = {doc: i for i, doc in enumerate(self.doc_ids)}
        missing = [d for d in doc_ids if d not in index]
        if missing:
            raise DataError(f"documents: unknown id(s) {', '.join(map(repr, missing[:3]))}"
                            f"{' …' if len(missing) > 3 else ''}")
        return np.array([index[d] for d in doc_ids], dtype=np.int64)

    def subset(self, rows: Sequence[int] | np.ndarray) -> DocumentEmbeddings:
        rows = np.asarray(rows, dtype=np.int64)
        return DocumentEmbeddings(self.matrix[rows], [self.doc_ids[i] for i in rows], self.pooling, self.binary,
                                  self.hook, self.docs_per_second)

    def save(self, path: str | Path) -> Path:
        """Write the embeddings as one safetensors file (atomically)."""
        path = Path(path)
        matrix = self.matrix.tocsr()
        matrix.sort_indices()
        tensors = {"data": torch.from_numpy(matrix.data.astype(np.float32)),
                   "indices": torch.from_numpy(matrix.indices.astype(np.int64)),
                   "indptr": torch.from_numpy(matrix.indptr.astype(np.int64))}
        meta = {"format": FORMAT, "shape": json.dumps(list(matrix.shape)), "doc_ids": json.dumps(self.doc_ids),
                "pooling": self.pooling, "binary": json.dumps(self.binary), "hook": self.hook,
                "docs_per_second": json.dumps(None if np.isnan(self.docs_per_second) else self.docs_per_second)}
        atomic_write_safetensors(path, tensors, metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> DocumentEmbeddings:
        """Read embeddings written by `save`; anything else is a `FormatError` naming the file."""
        from safetensors import safe_open

        path = Path(path)
        tensors = load_safetensors(path)
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT or set(tensors) != {"data", "indices", "indptr"}:
            raise FormatError(f"{path}: is not an aekit document-embeddings file (write one with `aekit embed`)")
        try:
            shape = tuple(json.loads(meta["shape"]))
            doc_ids = json.loads(meta["doc_ids"])
            speed = json.loads(meta.get("docs_per_second", "null"))
            matrix = sp.csr_matrix((tensors["data"].numpy(), tensors["indices"].numpy(), tensors["indptr"].numpy()),
                                   shape=shape)
            return cls(matrix, [str(d) for d in doc_ids], meta.get("pooling", "max"),
                       bool(json.loads(meta.get("binary", "false"))), meta.get("hook", ""),
                       float("nan") if speed is None else float(speed))
        except (KeyError, ValueError, TypeError) as e:
            raise FormatError(f"{path}: document-embeddings metadata is damaged ({e})") from None


def pool_tokens(codes: Tensor, keep: Tensor, pooling: str) -> Tensor:
    """Pool (batch, seq, n_latents) codes over the positions where `keep` (batch, seq) is true."""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling: must be one of {', '.join(POOLINGS)} (got {pooling!r})")
    weight = keep.to(codes.dtype).unsqueeze(-1)
    if pooling == "max":  # codes of an SAE are ≥ 0 for every architecture aekit trains, so 0 is a safe floor
        return (codes * weight).amax(dim=1).clamp_min(0)
    if pooling == "count":
        return ((codes > 0).to(codes.dtype) * weight).sum(dim=1)
    total = (codes * weight).sum(dim=1)
    if pooling == "sum":
        return total
    return total / weight.sum(dim=1).clamp_min(1)


def _kept_positions(ids: Tensor, mask: Tensor, bos_token_id: int | None) -> Tensor:
    keep = mask.bool()
    if bos_token_id is not None:
        keep &= ids != bos_token_id
    return keep


@torch.no_grad()
def _pooled_rows(model: nn.Module, tokenizer, hook: str, documents: Iterable[str], encode, *, batch_size: int,
                 max_length: int, progress: bool, total: int | None, what: str):
    """Stream documents; yield (number of documents, pooled float32 numpy rows) per batch."""
    parse_hook_name(hook)
    capture = ActivationCapture(model, [hook])
    device = next(model.parameters()).device
    bar = tqdm(total=total, unit="doc", desc=what, disable=not progress, dynamic_ncols=True)
    try:
        for batch in batched(documents, batch_size):
            encoded = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
            ids, mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
            acts = capture.run(ids, mask)[hook]
            acts = acts.reshape(*acts.shape[:2], -1).float()
            keep = _kept_positions(ids, mask, tokenizer.bos_token_id)
            if not bool(keep.any(dim=1).all()):
                empty = int((~keep.any(dim=1)).nonzero()[0, 0])
                raise DataError(f"documents: document {batch[empty][:40]!r} has no tokens once BOS and padding are "
                                "dropped")
            yield len(batch), encode(acts, keep)
            bar.update(len(batch))
    finally:
        bar.close()
        capture.remove()


def sae_embeddings(sae: nn.Module, model: nn.Module, tokenizer, hook: str, documents: Iterable[str], *,
                   doc_ids: Sequence[str] | None = None, pooling: str = "max", binary: bool = False,
                   batch_size: int = 32, max_length: int = 128, total: int | None = None,
                   progress: bool = True) -> DocumentEmbeddings:
    """Pooled SAE codes of every document (any iterable, streamed); ids default to "0", "1", …"""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling: must be one of {', '.join(POOLINGS)} (got {pooling!r})")
    if batch_size < 1:
        raise ConfigError("batch_size: must be ≥ 1")
    sae_device = next(sae.parameters()).device
    width, n_latents = sae.config.d_in, sae.config.n_latents

    def encode(acts: Tensor, keep: Tensor) -> np.ndarray:
        if acts.shape[-1] != width:
            raise ShapeError(f"sae: d_in {width} does not match {hook} of this model (width {acts.shape[-1]})")
        flat = sae.encode(acts.reshape(-1, width).to(sae_device)).to_dense().float()
        codes = flat.reshape(*acts.shape[:2], n_latents).to(keep.device)
        pooled = pool_tokens(codes, keep, pooling)
        return (pooled > 0).float().cpu().numpy() if binary else pooled.cpu().numpy()

    blocks: list[sp.csr_matrix] = []
    start = time.perf_counter()
    n = 0
    for count, rows in _pooled_rows(model, tokenizer, hook, documents, encode, batch_size=batch_size,
                                    max_length=max_length, progress=progress, total=total, what="embedding"):
        blocks.append(sp.csr_matrix(rows.astype(np.float32)))
        n += count
    seconds = time.perf_counter() - start
    if n == 0:
        raise DataError("documents: none given")
    ids = [str(i) for i in range(n)] if doc_ids is None else [str(d) for d in doc_ids]
    if len(ids) != n:
        raise DataError(f"doc_ids: {len(ids)} ids for {n} documents")
    matrix = sp.vstack(blocks, format="csr")
    matrix.sort_indices()
    return DocumentEmbeddings(matrix, ids, pooling, binary, hook, n / seconds if seconds > 0 else float("nan"))


def dense_embeddings(model: nn.Module, tokenizer, hook: str, documents: Iterable[str], *, batch_size: int = 32,
                     max_length: int = 128, total: int | None = None, progress: bool = True) -> np.ndarray:
    """Mean-pooled hidden states at `hook` (n_documents, width): the dense baseline of every SAE-based method."""
    rows = [pooled for _, pooled in _pooled_rows(
        model, tokenizer, hook, documents, lambda acts, keep: pool_tokens(acts, keep, "mean").cpu().numpy(),
        batch_size=batch_size, max_length=max_length, progress=progress, total=total, what="dense embedding")]
    if not rows:
        raise DataError("documents: none given")
    return np.concatenate(rows).astype(np.float32)
