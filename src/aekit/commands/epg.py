"""`aekit epg`: a pixel-space diffusion model with and without EPG's self-supervised encoder pre-training.

Loads the judge (the bundled toy ViT unless --judge names another Hugging Face ViT directory), runs the study of
`aekit.analysis.epg` on scenes of the world and writes epg.json (both FD curves, steps to the threshold, the floor
and the pre-training's cost), epg.png (the curves and sample rows) and model/ (the final denoiser that started from
the pre-trained encoder). Everything is validated and computed before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["DEFAULT_THRESHOLD", "JSON_NAME", "MODEL_DIR", "PNG_NAME", "run_epg"]

JSON_NAME, PNG_NAME, MODEL_DIR = "epg.json", "epg.png", "model"
DEFAULT_THRESHOLD = 150.0  # toy-ViT FD to real test scenes, fixed before the comparison was measured


def _check(*, steps: int, pretrain_steps: int, eval_every: int, seed: int, n_train: int, n_eval: int,
           n_samples: int, threshold: float) -> None:
    """Refuse the sizes the study cannot run with, naming the flag."""
    from ..analysis.epg import BATCH_SIZE

    if min(steps, pretrain_steps, eval_every) < 1 or seed < 0:
        raise ConfigError(f"epg: --steps, --pretrain-steps and --eval-every must be ≥ 1 and --seed ≥ 0 (got {steps}, "
                          f"{pretrain_steps}, {eval_every}, {seed})")
    if eval_every > steps:
        raise ConfigError(f"epg: --eval-every ({eval_every}) must be at most --steps ({steps})")
    if n_train < BATCH_SIZE or n_eval < 2 or n_samples < 8:
        raise ConfigError(f"epg: --n-train must be ≥ {BATCH_SIZE} (one batch), --n-eval ≥ 2 and --n-samples ≥ 8 "
                          f"(got {n_train}, {n_eval}, {n_samples})")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ConfigError(f"epg: --threshold must be a positive number (got {threshold})")


def run_epg(out: str | Path = "epg-out", *, judge: str | Path | None = None, seed: int = 0, steps: int = 500,
            pretrain_steps: int = 250, eval_every: int = 100, n_train: int = 4000, n_eval: int = 1000,
            n_samples: int = 400, threshold: float = DEFAULT_THRESHOLD, device: str | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Pre-train, train both denoisers, score them along the way; write epg.json, epg.png and model/ into `out`."""
    from ..analysis.epg import FROM_SCRATCH, PRETRAINED, epg_study
    from ..analysis.image_models import trainer_device
    from ..data.vision import load_vision_model
    from ..report.epg_plot import plot_epg
    from ..worlds.toy_vision import bundled_toy_vit_path

    out = Path(out)
    _check(steps=steps, pretrain_steps=pretrain_steps, eval_every=eval_every, seed=seed, n_train=n_train,
           n_eval=n_eval, n_samples=n_samples, threshold=threshold)
    train_device = trainer_device(device, "epg")
    refuse_existing_file(out)
    judge_dir = Path(judge) if judge is not None else bundled_toy_vit_path()
    vm = load_vision_model(judge_dir, device="cpu")
    if vm.family != "vit":
        raise ConfigError(f"{judge_dir}: the judge must be a ViT image classifier, not a {vm.family} model")
    record, rows, model = epg_study(vm, n_train=n_train, n_eval=n_eval, n_samples=n_samples,
                                    pretrain_steps=pretrain_steps, steps=steps, eval_every=eval_every,
                                    threshold=threshold, seed=seed, device=train_device, progress=progress)
    model.provenance = {"world": "scenes", "split": "train", "n_train": n_train, "seed": seed, "steps": steps,
                        "pretrain_steps": pretrain_steps}
    record = {"aekit_version": __version__, "world": "scenes", "judge_dir": str(judge_dir), **record}
    runs = record["runs"]
    title = (f"EPG: final FD {runs[PRETRAINED]['final_frechet']:.1f} (pre-trained encoder) vs "
             f"{runs[FROM_SCRATCH]['final_frechet']:.1f} (from scratch) after {steps} steps; floor "
             f"{record['floor_frechet']:.1f}; pre-training {pretrain_steps} steps")
    write_all(out, [(PNG_NAME, lambda p: plot_epg(record, rows, p, title=title)),
                    (MODEL_DIR, model.save),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME), "model": str(out / MODEL_DIR)}
