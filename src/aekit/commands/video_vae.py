"""`aekit video-vae`: train the causal spatio-temporal VAE on the moving-shapes world and score it.

Trains a `VideoVAE` (`aekit.analysis.video_vae`) on seeded moving-shapes clips, scores held-out clips (PSNR per
frame position against two codecs that need no training), checks causality and writes video_vae.json,
video_vae.png and model/ (the trained VAE, whose provenance names the world). Everything is validated and
computed before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "MODEL_DIR", "PNG_NAME", "SPATIAL_CHANNELS", "run_video_vae"]

JSON_NAME, PNG_NAME, MODEL_DIR = "video_vae.json", "video_vae.png", "model"
SPATIAL_CHANNELS = {4: "16,32", 8: "16,32,64"}  # encoder widths per spatial compression (one halving per stage)
SHOWN = 2  # held-out clips in the PNG's frame strip


def run_video_vae(out: str | Path = "video-vae-out", *, seed: int = 0, steps: int = 1500, n_train: int = 1000,
                  n_eval: int = 200, frames: int = 17, spatial: int = 4, latent_channels: int = 4,
                  beta: float = 1e-3, sprites: int = 2, device: str | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Train on `n_train` clips of the world (seed `seed`), score `n_eval` clips of another seed; write the outputs."""
    from ..analysis.image_models import trainer_device
    from ..analysis.video_vae import BATCH_SIZE, video_vae_study
    from ..models.video_vae import VideoVAEConfig
    from ..report.video_vae_plot import plot_video_vae
    from ..worlds.video import moving_shapes

    out = Path(out)
    if steps < 1 or seed < 0:
        raise ConfigError(f"video-vae: --steps must be ≥ 1 and --seed ≥ 0 (got {steps}, {seed})")
    if n_train < BATCH_SIZE or n_eval < SHOWN:
        raise ConfigError(f"video-vae: --n-train must be ≥ {BATCH_SIZE} (one batch) and --n-eval ≥ {SHOWN} (got "
                          f"{n_train}, {n_eval})")
    if spatial not in SPATIAL_CHANNELS:
        raise ConfigError(f"video-vae: --spatial must be one of {sorted(SPATIAL_CHANNELS)} (got {spatial})")
    if not (math.isfinite(beta) and beta >= 0):
        raise ConfigError(f"video-vae: --beta must be a number ≥ 0 (got {beta})")
    config = VideoVAEConfig(frames=frames, channels=SPATIAL_CHANNELS[spatial], temporal=4,
                            latent_channels=latent_channels, beta=beta, seed=seed)
    config.validate()  # names a bad --frames or --latent-channels before any work
    train_device = trainer_device(device, "video-vae")
    refuse_existing_file(out)
    train = moving_shapes(n_train, seed, frames=frames, sprites=sprites)
    held_out = moving_shapes(n_eval, seed + 1_000_003, frames=frames, sprites=sprites)  # other clips, same law
    eval_videos = held_out.videos
    study, model, recon = video_vae_study(train.frames, eval_videos, config, steps=steps, seed=seed,
                                          device=train_device, progress=progress)
    world = {"name": "moving_shapes", "frames": frames, "size": eval_videos.shape[-1], "sprites": sprites,
             "train_seed": seed, "eval_seed": seed + 1_000_003}
    model.provenance = {"world": world, "n_train": n_train, "steps": steps}
    record = {"aekit_version": __version__, "world": world, "n_train": n_train, "n_eval": n_eval, **study}
    rows = {}
    for i in range(SHOWN):
        rows[f"clip {i}"], rows[f"reconstruction {i}"] = eval_videos[i], recon[i]
    vae, cmp = study["methods"]["causal video VAE"], study["compression"]
    title = (f"causal video VAE: {vae['psnr']:.2f} dB on held-out clips; {cmp['frames']} frames → "
             f"{cmp['latent_frames']} latent frames, {cmp['spatial']}× fewer sites per frame, {cmp['ratio']:.1f}× "
             f"fewer values; causal: {study['causality']['causal']}")
    write_all(out, [(PNG_NAME, lambda p: plot_video_vae(study, rows, p, title=title)),
                    (MODEL_DIR, model.save),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME), "model": str(out / MODEL_DIR)}
