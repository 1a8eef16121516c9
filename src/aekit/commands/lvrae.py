"""`aekit lvrae`: a decoder trained on noisy latents against the plain one, on the scene world.

Trains both conv autoencoders (`aekit.analysis.lvrae`), measures their PSNR at each relative latent-noise level on
held-out scenes and writes lvrae.json (the curves, the drops at the stated σ and their ratio) and lvrae.png (the
curves and noisy reconstructions). Everything is validated and computed before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "run_lvrae"]

JSON_NAME, PNG_NAME = "lvrae.json", "lvrae.png"
SHOWN = 8  # held-out scenes in the PNG's image rows


def run_lvrae(out: str | Path = "lvrae-out", *, seed: int = 0, steps: int = 1000, n_train: int = 4000,
              n_eval: int = 1000, n_latents: int = 32, noise_max: float = 1.0, device: str | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Train the plain and the noise-trained AE on `n_train` scenes, score them on `n_eval` held-out ones."""
    from ..analysis.image_models import check_scene_study, trainer_device
    from ..analysis.lvrae import lvrae_study, noisy_reconstructions
    from ..report.lvrae_plot import plot_lvrae
    from ..worlds.scenes import sample_scenes

    out = Path(out)
    check_scene_study("lvrae", steps=steps, seed=seed, n_latents=n_latents, n_train=n_train, n_eval=n_eval)
    if not (math.isfinite(noise_max) and noise_max > 0):
        raise ConfigError(f"lvrae: --noise-max must be a number > 0 (got {noise_max})")
    train_device = trainer_device(device, "lvrae")
    refuse_existing_file(out)
    train = sample_scenes(n_train, seed, "train")
    held_out = sample_scenes(n_eval, seed + 1_000_003, "train")  # other scenes of the same distribution
    record, models = lvrae_study(train.images, held_out.images, steps=steps, seed=seed, n_latents=n_latents,
                                 noise_max=noise_max, device=train_device, progress=progress)
    sigma = record["stated_sigma"]
    shown = held_out.images[:SHOWN]
    rows = {"original": shown}
    for name, model in models.items():
        rows[f"{name}, σ 0"] = noisy_reconstructions(model, shown, 0.0, seed)
        rows[f"{name}, σ {sigma:g}"] = noisy_reconstructions(model, shown, sigma, seed)
    record = {"aekit_version": __version__, "world": "scenes", "seed": seed, "steps": steps, "n_train": n_train,
              "n_eval": n_eval, **record, "target_met": bool(record["drop_ratio"] <= 0.5)}
    title = (f"LV-RAE: PSNR drop at σ {sigma:g}: plain {record['drop']['plain']:.2f} dB, noise-trained "
             f"{record['drop']['noise-trained']:.2f} dB (ratio {record['drop_ratio']:.2f}; target ≤ 0.5)")
    write_all(out, [(PNG_NAME, lambda p: plot_lvrae(record, rows, p, title=title)),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
