"""The causal video VAE on the moving-shapes world: training, PSNR per frame position, compression, causality.

`video_vae_study` trains a `VideoVAE` with the one Trainer and scores held-out clips:
- reconstruction PSNR of every frame position t (pooled over the clips), from the posterior means;
- the same for two codecs that need no training: each clip's own mean frame repeated (it keeps the static
  content and blurs the motion), and keyframes — frames 0, τ, 2τ, … (τ the temporal compression) area-averaged to
  the VAE's latent grid side — upsampled bilinearly in space and linearly in time (a fixed spatio-temporal
  subsampling with about the VAE's number of stored values per clip);
- the compression: frames per latent frame, pixels per latent site, values in / values out;
- causality: every frame after τ·j is replaced by noise and the latents of frames ≤ j must stay bit-identical
  (torch.equal) while latent j + 1 changes, in eval and in train mode; the decoder is checked the same way (frames
  ≤ τ·j from latents ≤ j).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics.representation import psnr
from ..models.video_vae import VideoVAE, VideoVAEConfig
from ..seeding import derive_seed
from .image_models import fit_image_model

__all__ = ["BATCH_SIZE", "LR", "causality_check", "compression", "frame_psnr", "keyframe_baseline",
           "mean_frame_baseline", "reconstruct", "video_vae_study"]

BATCH_SIZE, LR = 8, 3e-3  # fixed before measuring, on seed 0 of the default world (1500 steps)


@torch.no_grad()
def reconstruct(model: VideoVAE, videos: Tensor, batch_size: int = 64) -> Tensor:
    """(n, T, C, H, W) reconstructions in [0, 1] of clips from their posterior means, in eval mode on the CPU."""
    model.cpu().eval()
    return torch.cat([model.decode_grid(model.posterior(videos[s : s + batch_size])[0])
                      for s in range(0, len(videos), batch_size)])


def frame_psnr(videos: Tensor, reconstructions: Tensor) -> list[float]:
    """PSNR (dB) of every frame position t, the squared error pooled over all clips' frame t."""
    return [psnr(videos[:, t], reconstructions[:, t]) for t in range(videos.shape[1])]


def mean_frame_baseline(videos: Tensor) -> Tensor:
    """Each clip's mean frame, repeated for every frame."""
    return videos.mean(1, keepdim=True).expand_as(videos)


def keyframe_baseline(videos: Tensor, temporal: int, side: int) -> Tensor:
    """Frames 0, τ, 2τ, … area-averaged to side × side, then bilinear in space and linear in time between them."""
    n, frames, c, size, _ = videos.shape
    keys = F.adaptive_avg_pool2d(videos[:, ::temporal].flatten(0, 1), side)
    keys = F.interpolate(keys, size=(size, size), mode="bilinear", align_corners=False).reshape(n, -1, c, size, size)
    if temporal == 1:
        return keys
    t = torch.arange(frames)
    left, frac = t // temporal, (t % temporal).float() / temporal
    right = (left + 1).clamp(max=keys.shape[1] - 1)
    w = frac[None, :, None, None, None]
    return keys[:, left] * (1 - w) + keys[:, right] * w


def compression(config: VideoVAEConfig) -> dict[str, Any]:
    """How much smaller the latent grid is than the clip, in time, in space and in values."""
    return {"frames": config.frames, "latent_frames": config.latent_frames,
            "temporal": config.frames / config.latent_frames, "temporal_per_group": config.temporal,
            "spatial": config.spatial**2, "latent_grid": [config.latent_channels, config.latent_frames,
                                                          config.latent_size, config.latent_size],
            "pixel_values": config.n_pixels, "latent_values": config.n_latents,
            "ratio": config.n_pixels / config.n_latents}


@torch.no_grad()
def causality_check(model: VideoVAE, videos: Tensor, seed: int = 0) -> dict[str, Any]:
    """Perturb the future and compare the past, for every latent frame j, in eval and train mode (see the module
    docstring). Returns per mode whether the past stayed bit-identical, the largest past difference seen, and
    whether the next latent changed (so the check is not vacuous); the model ends in eval mode."""
    tau, g = model.config.temporal, torch.Generator().manual_seed(derive_seed("video_vae.causality", seed))
    x = videos.float()
    record: dict[str, Any] = {}
    for mode in ("eval", "train"):
        model.train(mode == "train")
        mean, logvar = model.posterior(x)
        z = torch.randn(mean.shape, generator=g)
        frames = model.decode_grid(z)
        past_equal, future_changed, decoder_equal, largest = True, True, True, 0.0
        for j in range(mean.shape[2] - 1):
            perturbed = x.clone()
            perturbed[:, tau * j + 1:] = torch.rand(perturbed[:, tau * j + 1:].shape, generator=g)
            mean2, logvar2 = model.posterior(perturbed)
            past = slice(0, j + 1)
            past_equal &= torch.equal(mean2[:, :, past], mean[:, :, past]) and torch.equal(logvar2[:, :, past],
                                                                                          logvar[:, :, past])
            largest = max(largest, float((mean2[:, :, past] - mean[:, :, past]).abs().max()))
            future_changed &= not torch.equal(mean2[:, :, j + 1], mean[:, :, j + 1])
            z2 = z.clone()
            z2[:, :, j + 1:] = torch.randn(z2[:, :, j + 1:].shape, generator=g)
            decoder_equal &= torch.equal(model.decode_grid(z2)[:, : tau * j + 1], frames[:, : tau * j + 1])
        record[mode] = {"past_bit_identical": past_equal, "max_past_difference": largest,
                        "future_changed": future_changed, "decoder_past_bit_identical": decoder_equal}
    model.eval()
    record["causal"] = all(record[m]["past_bit_identical"] and record[m]["decoder_past_bit_identical"]
                           and record[m]["future_changed"] for m in ("eval", "train"))
    return record


def video_vae_study(train_frames: Tensor, eval_videos: Tensor, config: VideoVAEConfig, *, steps: int, seed: int,
                    device: str = "cpu", progress: bool = False) -> tuple[dict[str, Any], VideoVAE, Tensor]:
    """Train a VideoVAE on `train_frames` (uint8 or float clips) and score it on `eval_videos` (float in [0, 1]).

    Returns (record, the trained model, its reconstructions of `eval_videos`)."""
    model = VideoVAE(config)
    start = time.perf_counter()
    history = fit_image_model(model, train_frames, steps=steps, seed=seed, batch_size=BATCH_SIZE, lr=LR,
                              device=device, progress=progress)
    seconds = time.perf_counter() - start
    recon = reconstruct(model, eval_videos)
    baselines = {"clip mean frame": mean_frame_baseline(eval_videos),
                 "keyframes, bilinear": keyframe_baseline(eval_videos, config.temporal, config.latent_size)}
    n, frames, c, size, _ = eval_videos.shape
    methods = {"causal video VAE": {"psnr": psnr(eval_videos, recon), "frame_psnr": frame_psnr(eval_videos, recon),
                                    "values_per_clip": config.n_latents}}
    for name, guess in baselines.items():
        stored = c * size**2 if name == "clip mean frame" else c * config.latent_frames * config.latent_size**2
        methods[name] = {"psnr": psnr(eval_videos, guess), "frame_psnr": frame_psnr(eval_videos, guess),
                         "values_per_clip": stored}
    record = {"config": config.to_dict(), "steps": steps, "seed": seed, "batch_size": BATCH_SIZE, "lr": LR,
              "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": round(seconds, 1),
              "final_train_loss": history[-1]["loss"], "compression": compression(config), "methods": methods,
              "causality": causality_check(model, eval_videos[:4], seed)}
    return record, model, recon
