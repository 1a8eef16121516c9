"""QLAE: the quantised-latent autoencoder of Hsu et al. 2023, "Disentanglement via Latent Quantization".

Each latent snaps to one of a few values in its own learnable scalar codebook (10 values, evenly spaced on
[−0.5, 0.5] at start); the decoder reads the quantised latents with a straight-through gradient. The recipe
that makes it disentangle: twice as many latents as factors, quantisation and commitment losses weighted 0.01
each against a per-pixel mean reconstruction loss, and strong decoupled weight decay (0.1) on the network's
weights but not on biases or codebooks — the decoder, unable to use large weights, prefers to give each
factor its own latent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..nn.quantize import ScalarQuantizer
from .image_ae import ImageAEConfig, ImageAutoencoder


@dataclass
class QLAEConfig(ImageAEConfig):
    n_values: int = 10  # values per latent's codebook
    quantize_weight: float = 0.01
    commit_weight: float = 0.01
    weight_decay: float = 0.1

    def validate(self) -> None:
        super().validate()
        self._require(self.n_values >= 2, "n_values", "must be ≥ 2")
        for name in ("quantize_weight", "commit_weight"):
            self._require(math.isfinite(getattr(self, name)) and getattr(self, name) >= 0, name, "must be ≥ 0")


class QLAE(ImageAutoencoder):
    """Codes are the quantised values; metrics read the codeword indices (discrete latents)."""

    kind = "qlae"
    config_class = QLAEConfig
    discrete_latents = True

    def build_bottleneck(self) -> None:
        self.quantizer = ScalarQuantizer(self.config.n_latents, self.config.n_values)

    def bottleneck(self, h: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        q = self.quantizer(h)
        losses = {"quantize": self.config.quantize_weight * q.quantize_loss,
                  "commit": self.config.commit_weight * q.commit_loss}
        return q.straight_through, q.straight_through, losses

    def metric_latents(self, x: Tensor) -> Tensor:
        return self.quantizer(self.encoder(self.images(x))).indices

    def traversal_values(self, reference: Tensor, n_steps: int) -> Tensor:
        """Every latent's own codebook, in increasing order (n_values columns; `n_steps` is not used)."""
        return torch.sort(self.quantizer.values.detach(), dim=1).values
