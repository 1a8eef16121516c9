"""LV-RAE study: how much reconstruction a decoder loses when its latents are noisy, with and without noise training.

Two conv autoencoders of one architecture are trained on the same scenes with the same seed: the plain one
(noise_max = 0) and the noise-trained one (`LatentNoiseAE`). Each held-out image's latent z is perturbed as
z + σ·s ⊙ ε, with s the per-dimension standard deviation of that model's own latents over the held-out set (so σ
means the same for both models) and one fixed ε per image shared by every σ and both models; the PSNR of the
decoded images against the originals at each σ is the curve, and the drop PSNR(0) − PSNR(σ*) at the stated σ*
is the robustness number. The target is a noise-trained drop of at most half the plain one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..metrics.representation import psnr
from ..models.lvrae import LatentNoiseAE, LatentNoiseAEConfig, add_latent_noise
from ..seeding import derive_seed
from .image_models import CHANNELS, decode_latents, encode_latents, fit_image_model

__all__ = ["SIGMAS", "STATED_SIGMA", "lvrae_study", "noise_curve", "noisy_reconstructions"]

SIGMAS = (0.0, 0.1, 0.25, 0.5, 1.0)
STATED_SIGMA = 0.5  # the noise level the target is stated at, in units of each latent's standard deviation


def _decode_noisy(model: LatentNoiseAE, codes: Tensor, sigma: float, seed: int) -> Tensor:
    # a fresh generator per call: every σ and every model of a study sees the same ε per image
    g = torch.Generator().manual_seed(derive_seed("lvrae-eval-noise", seed))
    return decode_latents(model, add_latent_noise(codes, sigma, codes.std(0), generator=g))


def noisy_reconstructions(model: LatentNoiseAE, images: Tensor, sigma: float, seed: int = 0) -> Tensor:
    """Images decoded from their latents plus σ·s ⊙ ε (s: the latents' per-dimension std over `images`)."""
    return _decode_noisy(model, encode_latents(model, images), sigma, seed)


def noise_curve(model: LatentNoiseAE, images: Tensor, sigmas=SIGMAS, seed: int = 0) -> list[float]:
    """PSNR (dB) of the reconstructions of `images` at each relative latent-noise level σ."""
    codes = encode_latents(model, images)
    return [psnr(images, _decode_noisy(model, codes, sigma, seed)) for sigma in sigmas]


def _config(image_size: int, n_latents: int, noise_max: float, channels: str) -> LatentNoiseAEConfig:
    return LatentNoiseAEConfig(image_size=image_size, n_latents=n_latents, channels=channels, noise_max=noise_max)


def lvrae_study(train_images: Tensor, eval_images: Tensor, *, steps: int, seed: int, n_latents: int = 32,
                noise_max: float = 1.0, channels: str = CHANNELS, sigmas=SIGMAS, stated_sigma: float = STATED_SIGMA,
                device: str = "cpu", progress: bool = False) -> tuple[dict[str, Any], dict[str, LatentNoiseAE]]:
    """Train the plain and the noise-trained AE and measure their PSNR-vs-noise curves on `eval_images`.

    Returns (record, {"plain": model, "noise-trained": model}); the record holds the curves, the drops at
    `stated_sigma` and their ratio (noise-trained / plain; the target is ≤ 0.5)."""
    if stated_sigma not in sigmas or 0.0 not in sigmas:
        raise ConfigError(f"lvrae: the σ grid {list(sigmas)} must contain 0 and the stated σ {stated_sigma}")
    if noise_max <= 0:
        raise ConfigError(f"lvrae: --noise-max must be > 0 for the noise-trained model (got {noise_max})")
    # _config validates n_latents and the rest before any training starts
    size = train_images.shape[-1]
    configs = {"plain": _config(size, n_latents, 0.0, channels),
               "noise-trained": _config(size, n_latents, noise_max, channels)}
    models, curves, final_losses = {}, {}, {}
    for name, config in configs.items():
        model = LatentNoiseAE(config, seed=derive_seed("lvrae-init", seed))  # the same initial weights for both
        history = fit_image_model(model, train_images, steps=steps, seed=seed, device=device, progress=progress)
        models[name], final_losses[name] = model, history[-1]["loss"]
        curves[name] = noise_curve(model, eval_images, sigmas, seed)
    at = list(sigmas).index(stated_sigma)
    drops = {name: curve[0] - curve[at] for name, curve in curves.items()}
    record = {"sigmas": list(sigmas), "stated_sigma": stated_sigma, "noise_max": noise_max, "n_latents": n_latents,
              "channels": channels,
              "psnr": curves, "drop": drops, "final_train_loss": final_losses,
              "drop_ratio": drops["noise-trained"] / drops["plain"] if drops["plain"] > 0 else float("nan")}
    return record, models
