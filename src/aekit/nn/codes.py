"""Latent codes: dense (batch, n_latents) or sparse (values, indices)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import native


def at_least_float32(t: Tensor) -> Tensor:
    """Half-precision tensors (autocast) become float32; float32/float64 pass through unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


@dataclass
class Codes:
    """The output of a bottleneck.

    Exactly one form is set: `dense` (batch, n_latents), or `values`/`indices` (batch, k) for codes that
    activate at most k latents per row. Inactive slots in the sparse form hold value 0.
    """

    n_latents: int
    dense: Tensor | None = None
    values: Tensor | None = None
    indices: Tensor | None = None

    @property
    def is_sparse(self) -> bool:
        return self.dense is None

    def to_dense(self) -> Tensor:
        if self.dense is not None:
            return self.dense
        out = torch.zeros(
            self.values.shape[0], self.n_latents, dtype=self.values.dtype, device=self.values.device
        )
        return out.scatter_add_(1, self.indices, self.values)

    def l0(self) -> Tensor:
        """Number of firing latents per row."""
        if self.dense is not None:
            return (self.dense > 0).sum(-1)
        return (self.values > 0).sum(-1)

    def fire_counts(self) -> Tensor:
        """(n_latents,) int64: on how many rows of this batch each latent fired."""
        if self.dense is not None:
            if self.dense.ndim == 2 and native.usable(None, self.dense):
                return native.count_positive(self.dense)  # PyTorch's column-wise sum of (dense > 0) is ~20× slower
            return (self.dense > 0).sum(0)
        if native.usable(self.indices, self.values):  # bincount over a boolean-masked copy is ~10× slower
            return native.count_fired(self.indices, self.values, self.n_latents)
        return torch.bincount(self.indices[self.values > 0], minlength=self.n_latents)

