"""A conv autoencoder whose decoder is trained to be robust to noise on its latents (LV-RAE-style decoding).

Representation autoencoders decode latents that a generator produced, and a generated latent is never exactly on
the encoder's manifold: Zheng et al. 2025 (RAE) train the decoder on noise-augmented latents for this reason, and
Liu et al. 2026 (LV-RAE) fine-tune the decoder to damp its response to latent perturbations. Here the same conv
encoder/decoder as `ImageAutoencoder` is trained on

    x̂ = D(z + σ·s ⊙ ε),   z = E(x),   ε ~ N(0, I),   σ ~ U(0, noise_max) per image,

where s is the per-dimension standard deviation of z over the batch, held constant for gradients. Measuring the
noise in units of each latent's own spread makes it scale-free: the encoder cannot escape it by growing its
latents. With noise_max = 0 the model is exactly the plain `ImageAutoencoder`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..config_base import setting
from ..errors import ShapeError
from .image_ae import ImageAEConfig, ImageAutoencoder

__all__ = ["LatentNoiseAE", "LatentNoiseAEConfig", "add_latent_noise"]


def add_latent_noise(z: Tensor, sigma: Tensor | float, scale: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """z + σ·scale·ε with ε ~ N(0, I): `sigma` is a number or one value per row, `scale` one value per latent."""
    if z.ndim != 2 or scale.shape != (z.shape[1],):
        raise ShapeError(f"latent noise: latents must be (n, d) with a (d,) scale; got {tuple(z.shape)} and "
                         f"{tuple(scale.shape)}")
    sigma = torch.as_tensor(sigma, dtype=z.dtype, device=z.device)
    sigma = sigma.reshape(-1, 1) if sigma.ndim else sigma
    eps = torch.randn(z.shape, generator=generator, dtype=z.dtype, device="cpu" if generator else z.device)
    return z + sigma * scale * eps.to(z.device)


@dataclass
class LatentNoiseAEConfig(ImageAEConfig):
    noise_max: float = setting(1.0, "training noise on the latents: σ per image uniform in [0, noise_max], in "
                                    "units of each latent's batch standard deviation", "1.0; 0 = a plain AE")

    def validate(self) -> None:
        super().validate()
        self._require(math.isfinite(self.noise_max) and self.noise_max >= 0, "noise_max", "must be a number ≥ 0")


class LatentNoiseAE(ImageAutoencoder):
    """The plain conv AE, its decoder trained on latents perturbed by scale-relative Gaussian noise."""

    kind = "lvrae"
    config_class = LatentNoiseAEConfig

    def bottleneck(self, h: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        if not self.training or self.config.noise_max == 0:
            return h, h, {}
        if len(h) < 2:
            raise ShapeError("lvrae: training noise is relative to the batch's latent spread; use batches of ≥ 2")
        # the spread is a yardstick, not a target: no gradient may shrink or grow the latents through it
        scale = h.detach().std(0)
        sigma = torch.rand(len(h), device=h.device, dtype=h.dtype) * self.config.noise_max
        return add_latent_noise(h, sigma, scale), h, {}
