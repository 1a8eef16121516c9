"""Training and reading the conv image autoencoders of the vision studies (PS-VAE, LV-RAE) on the scene world.

One place for what those studies share: fitting a model with the one Trainer under a seeded random stream (the
reparametrisation and latent-noise draws come from torch's global generator, which this forks so the caller's
stream is untouched), encoding a set of images in batches, and decoding codes back to pixels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..data.sources import DictArraySource
from ..errors import ConfigError
from ..models.image_ae import ImageAutoencoder
from ..seeding import derive_seed
from ..train.config import TrainConfig
from ..train.trainer import Trainer

__all__ = ["BATCH_SIZE", "CHANNELS", "LR", "check_scene_study", "decode_latents", "encode_latents",
           "fit_image_model", "trainer_device"]

BATCH_SIZE, LR = 64, 1e-3  # the disentanglement studies' conv-AE recipe, fixed before measuring
CHANNELS = "32,32,64,64"  # four stride-2 convs: 32×32 scenes → 2×2 feature maps


def fit_image_model(model: ImageAutoencoder, data: Tensor | dict[str, Tensor], *, steps: int, seed: int,
                    batch_size: int = BATCH_SIZE, lr: float = LR, device: str = "cpu",
                    progress: bool = False) -> list[dict[str, Any]]:
    """Train `model` on images (or a dict of aligned tensors with the images under "x") by the Trainer; returns
    the logged history. The model ends on the CPU in eval mode."""
    arrays = data if isinstance(data, dict) else {"x": data}  # images keep their (n, C, H, W) shape in a dict source
    source = DictArraySource(arrays, batch_size, seed=derive_seed("vision-batches", seed), where="training images")
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(100, steps // 10),
                         checkpoint_every=0, log_every=max(1, steps // 20), progress=progress, seed=seed,
                         device=device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("vision-noise", seed))  # reparametrisation and latent-noise draws
        history = Trainer(model, source, config).fit().history
    model.cpu().eval()
    return history


@torch.no_grad()
def encode_latents(model: ImageAutoencoder, images: Tensor, batch_size: int = 500) -> Tensor:
    """(n, n_latents) codes of the images (posterior means for the VAEs), in eval mode."""
    model.eval()
    return torch.cat([model.encode(images[s : s + batch_size]).dense for s in range(0, len(images), batch_size)])


@torch.no_grad()
def decode_latents(model: ImageAutoencoder, codes: Tensor, batch_size: int = 500) -> Tensor:
    """Images in [0, 1] decoded from (n, n_latents) codes, clipped to the valid range."""
    from ..nn.codes import Codes

    model.eval()
    n = model.config.n_latents
    out = [model.decode(Codes(n, dense=codes[s : s + batch_size])) for s in range(0, len(codes), batch_size)]
    return torch.cat(out).clamp(0, 1)


def check_scene_study(command: str, *, steps: int, seed: int, n_latents: int, n_train: int, n_eval: int) -> None:
    """Refuse the sizes a scene-world study cannot run with, naming the flag."""
    if steps < 1 or seed < 0 or n_latents < 1:
        raise ConfigError(f"{command}: --steps and --n-latents must be ≥ 1 and --seed ≥ 0 (got {steps}, "
                          f"{n_latents}, {seed})")
    if n_train < BATCH_SIZE or n_eval < 2:
        raise ConfigError(f"{command}: --n-train must be ≥ {BATCH_SIZE} (one batch) and --n-eval ≥ 2 (got "
                          f"{n_train}, {n_eval})")


def trainer_device(device: str | None, command: str) -> str:
    """The Trainer's device name for a command's --device (None: CUDA when available, else the CPU)."""
    if device not in (None, "cpu", "cuda"):
        raise ConfigError(f"{command}: --device must be cpu or cuda (got {device!r}); leave it out for cuda when "
                          "available, else cpu")
    return device or "auto"
