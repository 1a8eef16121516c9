"""The sparse autoencoder: pre-encoder bias, unit-norm decoder rows, a pluggable bottleneck, AuxK for TopK.

Inputs are scaled by `input_scale` so that E||x·s||² = 1 during training (hyper-parameters then transfer
between models and layers); `prepare_for_save` folds the scale into the biases, so a saved model maps raw
activations to raw reconstructions and its codes are in raw units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigBase
from ..errors import ShapeError
from ..nn.bottlenecks import BOTTLENECKS, make_bottleneck
from ..nn.codes import Codes
from ..nn.distributed import global_total_variance
from ..nn.sparse_ops import sparse_decode, sparse_encode
from .base import Autoencoder, Output


@dataclass
class SAEConfig(ConfigBase):
    """Everything that defines a sparse autoencoder's shape and objective."""

    section = "model"

    d_in: int = 0
    n_latents: int = 0
    architecture: str = "topk"
    k: int = 32
    l1_coefficient: float = 1e-3
    aux_k: int | None = None  # latents the AuxK loss may use; default d_in // 2
    aux_coefficient: float = 1 / 32
    normalize_input: bool = True

    def validate(self) -> None:
        self._require(self.architecture in BOTTLENECKS, "architecture", f"choose one of {sorted(BOTTLENECKS)}")
        self._require(self.d_in >= 1, "d_in", "must be a positive integer")
        self._require(self.n_latents >= 1, "n_latents", "must be a positive integer")
        if self.architecture == "topk":
            self._require(1 <= self.k <= self.n_latents, "k", f"must be between 1 and n_latents={self.n_latents}")
        self._require(self.l1_coefficient >= 0 and math.isfinite(self.l1_coefficient), "l1_coefficient",
                      "must be a finite number ≥ 0")
        self._require(self.aux_k is None or self.aux_k >= 1, "aux_k", "must be ≥ 1 or null")
        self._require(self.aux_coefficient >= 0, "aux_coefficient", "must be ≥ 0")

    @property
    def effective_aux_k(self) -> int:
        return min(self.aux_k or max(1, self.d_in // 2), self.n_latents)


class SparseAutoencoder(Autoencoder):
    kind = "sae"
    config_class = SAEConfig

    def __init__(self, config: SAEConfig, seed: int | None = None):
        super().__init__(config)
        n, d = config.n_latents, config.d_in
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        W_dec = torch.randn(n, d, generator=generator)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.clone())  # tied initialisation (Gao et al.; Conerly et al.)
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("input_scale", torch.ones(()))
        self.bottleneck = make_bottleneck(config.architecture, n, config.k, config.l1_coefficient)

    # --- encode / decode in normalised units --------------------------------------------------------
    def _encode_normalized(self, x_n: Tensor) -> tuple[Codes, Tensor]:
        """Codes of normalised inputs, plus the detached dense pre-activations (AuxK reuses them)."""
        x_c = x_n - self.b_dec
        if self.bottleneck.sparse:
            with torch.no_grad():
                pre = F.linear(x_c, self.W_enc, self.b_enc)
                idx = self.bottleneck.select(pre)
            values = self.bottleneck.activate(sparse_encode(x_c, self.W_enc, self.b_enc, idx, pre.gather(1, idx)))
            return Codes(self.config.n_latents, values=values, indices=idx), pre
        pre = F.linear(x_c, self.W_enc, self.b_enc)
        return Codes(self.config.n_latents, dense=self.bottleneck.activate(pre)), pre.detach()

    def _decode_normalized(self, codes: Codes) -> Tensor:
        if codes.is_sparse:
            return sparse_decode(codes.values, codes.indices, self.W_dec) + self.b_dec
        return codes.dense @ self.W_dec + self.b_dec

    def encode(self, x: Tensor) -> Codes:
        self._check_input(x)
        return self._encode_normalized(x * self.input_scale)[0]

    def decode(self, codes: Codes) -> Tensor:
        return self._decode_normalized(codes) / self.input_scale

    def forward(self, x: Tensor, dead_mask: Tensor | None = None) -> Output:
        """Reconstruct x; `dead_mask` (n_latents,) marks latents the AuxK loss may revive."""
        self._check_input(x)
        x_n = x * self.input_scale
        codes, pre = self._encode_normalized(x_n)
        x_hat_n = self._decode_normalized(codes)
        losses = {"mse": (x_hat_n - x_n).pow(2).sum(-1).mean()}
        losses.update(self.bottleneck.penalties(codes, self.W_dec.norm(dim=1)))
        if dead_mask is not None and self.bottleneck.sparse and self.config.aux_coefficient > 0:
            aux = self._aux_k_loss(x_n, x_hat_n, pre, dead_mask)
            if aux is not None:
                losses["aux_k"] = aux
        return Output(x_hat=x_hat_n / self.input_scale, codes=codes, losses=losses)

    def _aux_k_loss(self, x_n: Tensor, x_hat_n: Tensor, pre: Tensor, dead_mask: Tensor) -> Tensor | None:
        """AuxK (Gao et al. 2024): dead latents learn to predict the main reconstruction's residual.

        The residual x - x̂ already excludes b_dec (x̂ contains it), so the auxiliary reconstruction uses
        the decoder rows alone; adding b_dec again would double-count it.
        """
        n_dead = int(dead_mask.sum())
        if n_dead == 0:
            return None
        k_aux = min(self.config.effective_aux_k, n_dead)
        with torch.no_grad():
            aux_idx = pre.masked_fill(~dead_mask, float("-inf")).topk(k_aux, dim=-1, sorted=False).indices
        x_c = x_n - self.b_dec
        aux_values = torch.relu(sparse_encode(x_c, self.W_enc, self.b_enc, aux_idx, pre.gather(1, aux_idx)))
        residual = (x_n - x_hat_n).detach()
        residual_hat = sparse_decode(aux_values, aux_idx, self.W_dec)
        scale = global_total_variance(residual).clamp_min(1e-12)
        return self.config.aux_coefficient * (residual_hat - residual).pow(2).sum(-1).mean() / scale

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.config.d_in:
            raise ShapeError(
                f"input has shape {tuple(x.shape)} but this SAE expects (batch, {self.config.d_in})"
            )

    # --- Trainer hooks ------------------------------------------------------------------------------
    @torch.no_grad()
    def initialize_from_data(self, x: Tensor) -> None:
        if self.config.normalize_input:
            self.input_scale.fill_(1.0 / x.pow(2).sum(-1).mean().sqrt().clamp_min(1e-12).item())
        self.b_dec.copy_((x * self.input_scale).mean(0))

    @torch.no_grad()
    def before_optimizer_step(self) -> None:
        """Remove the gradient component parallel to each decoder row (it could only change its norm)."""
        if self.W_dec.grad is not None:
            g, W = self.W_dec.grad, self.W_dec
            g -= (g * W).sum(-1, keepdim=True) * W

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def prepare_for_save(self) -> None:
        """Fold input_scale s into the biases: pre/s and codes/s, so raw x maps to raw x̂ exactly."""
        s = float(self.input_scale)
        if s == 1.0:
            return
        self.b_enc /= s
        self.b_dec /= s
        self.bottleneck.fold_scale(s)
        self.input_scale.fill_(1.0)
        self.provenance["input_scale_folded"] = s
