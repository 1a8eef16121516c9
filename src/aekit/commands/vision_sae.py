"""`aekit vision-sae`: an SAE on a vision transformer's residual stream, scored against the scene world.

Trains a TopK SAE at one hook of a ViT or CLIP image tower (default: the bundled toy ViT) on training scenes, then
writes vision_sae.json (spliced accuracy, factor alignment, OOD AUROCs of the SAE scores and the baselines),
vision_sae.png (OOD score histograms and alignment bars), features.png (top-activating test scenes of the latent
that best detects each shape and object hue) and sae/ (the SAE as an aekit model directory). Everything is
computed before anything is written, so a bad setting leaves no output behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..analysis.vision_sae import VisionSAEStudy, vision_sae_study
from ..data.hooks import parse_hook_name
from ..data.vision import TOKEN_SELECTIONS, load_vision_model
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file, require_fresh_directory
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "run_vision_sae"]

JSON_NAME, PNG_NAME, FEATURES_NAME, SAE_DIR = "vision_sae.json", "vision_sae.png", "features.png", "sae"
GRID_IMAGES = 8
GRID_FACTORS = ("shape", "object_hue")


def _check(hook: str, tokens: str, n_latents: int, k: int, steps: int, n_train: int, n_eval: int) -> None:
    parse_hook_name(hook)
    if tokens not in TOKEN_SELECTIONS:
        raise ConfigError(f"vision-sae: --tokens must be one of {', '.join(TOKEN_SELECTIONS)} (got {tokens!r})")
    if min(n_latents, k, steps, n_train, n_eval) < 1:
        raise ConfigError("vision-sae: --latents, --k, --steps, --n-train and --n-eval must be ≥ 1")
    if k > n_latents:
        raise ConfigError(f"vision-sae: --k {k} exceeds --latents {n_latents}")


def _grid_rows(study: VisionSAEStudy) -> list[tuple[str, list[int]]]:
    """(label, top test-image indices) for the best latent of each value of the grid factors."""
    from ..worlds.scenes import COLOUR_WORDS
    from ..worlds.shapes3d import SHAPES

    words = {"shape": SHAPES, "object_hue": COLOUR_WORDS}
    rows = []
    for factor in GRID_FACTORS:
        for value, (latent, f1) in study.record["alignment"][factor]["best"].items():
            top = torch.argsort(study.codes[:, latent], descending=True)[:GRID_IMAGES].tolist()
            rows.append((f"latent {latent}\n{factor} = {words[factor][int(value)]}\nF1 {f1:.2f}", top))
    return rows


def run_vision_sae(model: str | Path | None = None, hook: str = "blocks.2.hook_resid_post", *, tokens: str = "all",
                   n_latents: int = 1024, k: int = 16, steps: int = 2000, n_train: int = 4000, n_eval: int = 1000,
                   seed: int = 0, device: str | None = None, out: str | Path = "vision-sae-out",
                   progress: bool = False) -> dict[str, Any]:
    """Run the study and write its outputs into `out`; return the record with the output paths.

    `device` None means CUDA when available, else the CPU (the model and the SAE's training both run there).
    """
    from ..report.vision_sae_plot import plot_feature_grid, plot_vision_sae
    from ..worlds.toy_vision import bundled_toy_vit_path

    out = Path(out)
    _check(hook, tokens, n_latents, k, steps, n_train, n_eval)
    refuse_existing_file(out)
    require_fresh_directory(out / SAE_DIR, "the SAE directory")
    vm = load_vision_model(model if model is not None else bundled_toy_vit_path(), device=device)
    study = vision_sae_study(vm, hook, tokens=tokens, n_latents=n_latents, k=k, steps=steps, n_train=n_train,
                             n_eval=n_eval, seed=seed, device=vm.device.type, progress=progress)
    record = {"aekit_version": __version__, **study.record}
    study.sae.provenance.update({"model": vm.path, "hook": hook, "tokens": tokens, "source": "aekit vision-sae"})
    write_all(out, [(SAE_DIR, study.sae.save),
                    (PNG_NAME, lambda p: plot_vision_sae(record, p)),
                    (FEATURES_NAME, lambda p: plot_feature_grid(study.test.images, _grid_rows(study), p)),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME),
            "features": str(out / FEATURES_NAME), "sae": str(out / SAE_DIR)}
