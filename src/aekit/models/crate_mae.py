"""CRATE-MAE, the white-box masked autoencoder, and the standard MAE it is measured against.

CRATE (Yu et al. 2023, "White-Box Transformers via Sparse Rate Reduction") derives every transformer layer from
one step of optimising the sparse rate reduction of the tokens Z (d × N). An encoder layer (pre-LayerNorm, as in
the reference code) is

    Z ← Z + MSSA(LN(Z)),    MSSA(Z) = Σ_k U_k · (U_kᵀZ) softmax((U_kᵀZ)ᵀ(U_kᵀZ) / √p)
    Z ← ISTA(LN(Z)),        ISTA(Z) = ReLU(Z + η Dᵀ(Z − DZ) − ηλ)

MSSA is a gradient step that compresses the tokens against K subspaces U_k (d × p, one projection per head used
as query, key and value, and again to map back); ISTA is one non-negative proximal-gradient step of
min_{A≥0} ½‖Z − DA‖² + λ‖A‖₁ started at A = Z, which sparsifies them in the learned dictionary D (d × d).

CRATE-MAE (Pai et al. 2024, "Masked Completion via Structured Diffusion with White-Box Transformers") decodes
with the structured inverses of these steps, one decoder layer per encoder layer:

    Y ← E · LN(Y)               (the linear counterpart of the ISTA step)
    Y ← Y − MSSA(LN(Y))         (the compression step run backwards: a diffusion step away from the subspaces)

As in the reference implementation, masked patches enter the encoder as a learned mask token, so encoder and
decoder see the same N tokens. A layer costs 2d² weights, against 12d² for a ViT block (attention 4d², 4× MLP
8d²): that is where CRATE-MAE's saving comes from.

`MAE` (He et al. 2022) is the baseline: pre-LN ViT blocks (`torch.nn.TransformerEncoderLayer`, GELU, 4× MLP) of the
same width, depth and heads; the encoder sees the visible patches only, a linear map and the mask token prepare
the decoder's input, as in the MAE recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import setting
from .masked_patches import MaskedPatchAutoencoder, MaskedPatchConfig, fill_masked

__all__ = ["MAE", "CrateMAE", "CrateMAEConfig", "MAEConfig", "SubspaceAttention", "SparseCodingStep"]


class SubspaceAttention(nn.Module):
    """MSSA: per head k, attention among the tokens' coordinates U_kᵀz, mapped back by the same U_k and summed."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.subspaces = nn.Linear(width, width, bias=False)  # rows k·p … (k+1)·p − 1 hold U_kᵀ

    def forward(self, z: Tensor) -> Tensor:
        b, n, d = z.shape
        w = self.subspaces(z).reshape(b, n, self.heads, d // self.heads).transpose(1, 2)  # U_kᵀz: (b, K, N, p)
        attended = F.scaled_dot_product_attention(w, w, w)  # softmax(wwᵀ/√p) w, one head per subspace
        return attended.transpose(1, 2).reshape(b, n, d) @ self.subspaces.weight  # Σ_k U_k (…)


class SparseCodingStep(nn.Module):
    """ISTA: one non-negative proximal-gradient step of ½‖Z − DA‖² + λ‖A‖₁ from A = Z, in dictionary D."""

    def __init__(self, width: int, step: float, threshold: float):
        super().__init__()
        self.step, self.threshold = step, threshold
        self.dictionary = nn.Parameter(torch.empty(width, width))
        nn.init.kaiming_uniform_(self.dictionary)  # as the reference code: entries of variance 2/d

    def forward(self, z: Tensor) -> Tensor:
        residual = z - F.linear(z, self.dictionary)  # rows are tokens: z Dᵀ is D z
        return F.relu(z + self.step * (residual @ self.dictionary) - self.step * self.threshold)


class CrateEncoderLayer(nn.Module):
    """Compress (Z + MSSA), then sparsify (ISTA), each after a LayerNorm."""

    def __init__(self, width: int, heads: int, step: float, threshold: float):
        super().__init__()
        self.norm_attention, self.norm_sparse = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = SubspaceAttention(width, heads)
        self.sparse = SparseCodingStep(width, step, threshold)

    def forward(self, z: Tensor) -> Tensor:
        z = z + self.attention(self.norm_attention(z))
        return self.sparse(self.norm_sparse(z))


class CrateDecoderLayer(nn.Module):
    """The structured inverse of an encoder layer: a linear dictionary map, then Y − MSSA(Y)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_linear, self.norm_attention = nn.LayerNorm(width), nn.LayerNorm(width)
        self.linear = nn.Linear(width, width, bias=False)  # E, the dictionary that undoes the sparse code
        self.attention = SubspaceAttention(width, heads)

    def forward(self, y: Tensor) -> Tensor:
        y = self.linear(self.norm_linear(y))
        return y - self.attention(self.norm_attention(y))


@dataclass
class CrateMAEConfig(MaskedPatchConfig):
    ista_step: float = setting(0.1, "step size η of the ISTA sparsification")
    ista_threshold: float = setting(0.5, "sparsity weight λ of the ISTA step (the ReLU's threshold is ηλ)")

    def validate(self) -> None:
        super().validate()
        self._require(math.isfinite(self.ista_step) and self.ista_step > 0, "ista_step", "must be a number > 0")
        self._require(math.isfinite(self.ista_threshold) and self.ista_threshold >= 0, "ista_threshold",
                      "must be a number ≥ 0")


class CrateMAE(MaskedPatchAutoencoder):
    """White-box masked autoencoder: MSSA + ISTA encoder layers, their structured inverses as decoder layers."""

    kind = "crate_mae"
    config_class = CrateMAEConfig

    def build_layers(self) -> None:
        c = self.config
        self.encoder_layers.extend(CrateEncoderLayer(c.width, c.heads, c.ista_step, c.ista_threshold)
                                   for _ in range(c.depth))
        self.decoder_layers.extend(CrateDecoderLayer(c.width, c.heads) for _ in range(c.depth))

    def encode_tokens(self, patches: Tensor, masked: Tensor | None) -> Tensor:
        z = self.embed(patches)
        if masked is not None:  # the encoder sees every position; hidden ones hold the mask token
            z = torch.where(masked.unsqueeze(-1), self.mask_token.to(z.dtype), z)
        z = z + self.positions
        for layer in self.encoder_layers:
            z = layer(z)
        return z

    def decode_tokens(self, z: Tensor, masked: Tensor | None) -> Tensor:
        for layer in self.decoder_layers:
            z = layer(z)
        return self.to_pixels(z)


@dataclass
class MAEConfig(MaskedPatchConfig):
    mlp_ratio: int = setting(4, "hidden width of each block's MLP, in multiples of width")

    def validate(self) -> None:
        super().validate()
        self._require(self.mlp_ratio >= 1, "mlp_ratio", "must be ≥ 1")


class MAE(MaskedPatchAutoencoder):
    """Masked autoencoder with pre-LN ViT blocks: encoder on the visible patches, decoder on all of them."""

    kind = "mae"
    config_class = MAEConfig

    def _block(self) -> nn.TransformerEncoderLayer:
        c = self.config
        return nn.TransformerEncoderLayer(c.width, c.heads, c.mlp_ratio * c.width, dropout=0.0, activation="gelu",
                                          batch_first=True, norm_first=True)

    def build_layers(self) -> None:
        c = self.config
        self.encoder_layers.extend(self._block() for _ in range(c.depth))
        self.encoder_norm = nn.LayerNorm(c.width)
        self.decoder_embed = nn.Linear(c.width, c.width)
        self.decoder_layers.extend(self._block() for _ in range(c.depth))

    def encode_tokens(self, patches: Tensor, masked: Tensor | None) -> Tensor:
        z = self.embed(patches) + self.positions
        if masked is not None:  # keep the visible tokens only, in their positional order
            z = z[~masked].reshape(len(z), -1, z.shape[-1])
        for layer in self.encoder_layers:
            z = layer(z)
        return self.encoder_norm(z)

    def decode_tokens(self, z: Tensor, masked: Tensor | None) -> Tensor:
        y = self.decoder_embed(z)
        if masked is not None:
            y = fill_masked(y, masked, self.mask_token)
        y = y + self.positions
        for layer in self.decoder_layers:
            y = layer(y)
        return self.to_pixels(y)
