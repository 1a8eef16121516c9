"""Codebook quantisers: per-dimension scalar codebooks (QLAE) and a shared vector codebook (VQ-VAE).

Both snap each slot of the encoder output to its nearest codeword and pass the gradient straight through
(the decoder sees q, the encoder receives the gradient of q as if it were z). Two losses train what the
straight-through path cannot: the quantisation loss ||sg(z) − q||² moves the codewords towards the encoder
outputs, the commitment loss ||z − sg(q)||² keeps the encoder outputs near their codewords. Both are means
over every element, so their size does not grow with the number of latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ShapeError


@dataclass
class Quantized:
    """What a quantiser returns for a batch."""

    straight_through: Tensor  # the values of q with the gradient of z: what the decoder reads
    quantized: Tensor  # q itself (its gradient reaches the codebook)
    indices: Tensor  # (batch, n_slots) int64: which codeword each slot took
    quantize_loss: Tensor  # mean ||sg(z) − q||²: trains the codebook
    commit_loss: Tensor  # mean ||z − sg(q)||²: trains the encoder


def nearest_codewords(z: Tensor, codebooks: Tensor) -> Tensor:
    """(batch, n_slots) indices of the nearest codeword for z (batch, n_slots, dim).

    `codebooks` is (n_slots, K, dim) — one codebook per slot — or (1, K, dim), shared by every slot.
    ||z − e||² = ||z||² − 2 z·e + ||e||², and ||z||² is the same for every candidate, so it is left out.
    """
    books = codebooks.expand(z.shape[1], -1, -1)
    scores = books.pow(2).sum(-1).unsqueeze(0) - 2 * torch.einsum("bsd,skd->bsk", z, books)
    return scores.argmin(-1)


class CodebookQuantizer(nn.Module):
    """Nearest-codeword quantisation of (batch, n_slots, dim) inputs with a straight-through gradient."""

    def __init__(self, codebooks: Tensor):
        super().__init__()
        self.codebooks = nn.Parameter(codebooks)  # (n_books, K, dim); n_books is n_slots or 1 (shared)

    @property
    def n_codes(self) -> int:
        return self.codebooks.shape[1]

    def lookup(self, indices: Tensor) -> Tensor:
        """(batch, n_slots) codeword indices → (batch, n_slots, dim) codewords."""
        books = self.codebooks.expand(indices.shape[1], -1, -1)
        slots = torch.arange(indices.shape[1], device=indices.device)
        return books[slots, indices]

    def quantize_slots(self, z: Tensor) -> Quantized:
        with torch.no_grad():
            indices = nearest_codewords(z.detach(), self.codebooks.detach())
        q = self.lookup(indices)
        return Quantized(
            straight_through=z + (q - z).detach(),
            quantized=q,
            indices=indices,
            quantize_loss=(z.detach() - q).pow(2).mean(),
            commit_loss=(z - q.detach()).pow(2).mean(),
        )


class ScalarQuantizer(CodebookQuantizer):
    """QLAE's latent space: each latent has its own learnable scalar codebook of `n_values` values.

    Codebooks start evenly spaced on [low, high] (Hsu et al. 2023 use 10 values on [−0.5, 0.5]); the latent
    space is their Cartesian product, so a latent can only say "which of my n_values", which is what pushes
    each latent towards one factor.
    """

    def __init__(self, n_latents: int, n_values: int = 10, low: float = -0.5, high: float = 0.5):
        grid = torch.linspace(low, high, n_values)
        super().__init__(grid.repeat(n_latents, 1).unsqueeze(-1))

    @property
    def values(self) -> Tensor:
        """(n_latents, n_values) the current codebooks."""
        return self.codebooks.squeeze(-1)

    def forward(self, z: Tensor) -> Quantized:
        if z.ndim != 2 or z.shape[1] != self.codebooks.shape[0]:
            raise ShapeError(f"quantizer input has shape {tuple(z.shape)}; expected (batch, {self.codebooks.shape[0]})")
        out = self.quantize_slots(z.unsqueeze(-1))
        out.straight_through = out.straight_through.squeeze(-1)
        out.quantized = out.quantized.squeeze(-1)
        return out


class VectorQuantizer(CodebookQuantizer):
    """VQ-VAE (van den Oord et al. 2017): every slot of `dim` numbers snaps to one of `n_codes` shared vectors."""

    def __init__(self, n_codes: int, dim: int, generator: torch.Generator | None = None):
        limit = math.sqrt(3.0 / dim)  # unit variance per codebook vector, like the encoder's outputs at start
        codebook = (torch.rand(1, n_codes, dim, generator=generator) * 2 - 1) * limit
        super().__init__(codebook)
        self.dim = dim

    def forward(self, z: Tensor) -> Quantized:
        """z (batch, n_slots·dim) → straight_through/quantized (batch, n_slots·dim), indices (batch, n_slots)."""
        if z.ndim != 2 or z.shape[1] % self.dim:
            raise ShapeError(f"quantizer input has shape {tuple(z.shape)}; expected (batch, n_slots·{self.dim})")
        out = self.quantize_slots(z.view(z.shape[0], -1, self.dim))
        out.straight_through = out.straight_through.flatten(1)
        out.quantized = out.quantized.flatten(1)
        return out
