"""`aekit psvae`: a VAE reconstructing pixels and a frozen ViT's features, against the pixel-only VAE and the teacher.

Loads the teacher (the bundled toy ViT unless --teacher names another Hugging Face ViT or CLIP directory), runs
the study of `aekit.analysis.psvae` on scenes of the world and writes psvae.json (probe accuracies per factor,
PSNR, the two target gaps) and psvae.png (probe bars and reconstructions). Everything is validated and computed
before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "run_psvae"]

JSON_NAME, PNG_NAME = "psvae.json", "psvae.png"
SHOWN = 8  # held-out scenes in the PNG's image rows


def run_psvae(out: str | Path = "psvae-out", *, teacher: str | Path | None = None, seed: int = 0, steps: int = 1000,
              n_train: int = 4000, n_eval: int = 1000, n_latents: int = 32, semantic_weight: float = 4.0,
              beta: float = 0.1, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train PS-VAE and the pixel-only VAE on `n_train` scenes; probe them and the teacher on `n_eval` others."""
    from ..analysis.image_models import check_scene_study, decode_latents, encode_latents, trainer_device
    from ..analysis.psvae import PIXEL_ONLY, PS_VAE, TEACHER, psvae_study, teacher_features
    from ..data.vision import load_vision_model
    from ..report.psvae_plot import plot_psvae
    from ..worlds.scenes import sample_scenes
    from ..worlds.toy_vision import bundled_toy_vit_path

    out = Path(out)
    check_scene_study("psvae", steps=steps, seed=seed, n_latents=n_latents, n_train=n_train, n_eval=n_eval)
    for name, value in (("--semantic-weight", semantic_weight), ("--beta", beta)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"psvae: {name} must be a number ≥ 0 (got {value})")
    train_device = trainer_device(device, "psvae")
    refuse_existing_file(out)
    teacher_dir = Path(teacher) if teacher is not None else bundled_toy_vit_path()
    vm = load_vision_model(teacher_dir, device=device or "cpu")
    train = sample_scenes(n_train, seed, "train")
    held_out = sample_scenes(n_eval, seed + 1_000_003, "train")  # other scenes of the same distribution
    features = teacher_features(vm, train.images), teacher_features(vm, held_out.images)
    record, models = psvae_study(train, held_out, *features, steps=steps, seed=seed, n_latents=n_latents,
                                 semantic_weight=semantic_weight, beta=beta, device=train_device, progress=progress)
    shown = held_out.images[:SHOWN]
    rows = {"original": shown, **{name: decode_latents(m, encode_latents(m, shown)) for name, m in models.items()}}
    record = {"aekit_version": __version__, "world": "scenes", "teacher_dir": str(teacher_dir), **record}
    t = record["targets"]
    title = (f"PS-VAE: probe {record[PS_VAE]['probe']['mean']:.3f} vs teacher {record[TEACHER]['probe']['mean']:.3f}"
             f" (gap {t['probe_gap_points']:.1f} points; target ≤ 2), PSNR {record[PS_VAE]['psnr']:.2f} vs pixel-only "
             f"{record[PIXEL_ONLY]['psnr']:.2f} dB (target ≥ −1 dB)")
    probes = {name: record[name]["probe"] for name in (TEACHER, PS_VAE, PIXEL_ONLY)}
    write_all(out, [(PNG_NAME, lambda p: plot_psvae(probes, rows, p, title=title)),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
