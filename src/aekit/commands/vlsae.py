"""`aekit vlsae`: VL-SAE on a CLIP's image and caption embeddings of the scenes world, against per-modality SAEs.

Embeds seeded train-split scenes and their captions with the CLIP (default: the bundled toy CLIP), trains VL-SAE
(as in the paper, and with per-modality centring), two separate TopK SAEs and one TopK SAE on both modalities with
the same width, k and steps (`aekit.analysis.vl_alignment.scene_study`), and scores concept alignment on held-out
test-split pairs. Writes vlsae.json, vlsae.png and model/ (the paper's VL-SAE) after everything is computed, so a
bad setting or model directory leaves no output behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "MODEL_DIR", "PNG_NAME", "run_vlsae"]

JSON_NAME, PNG_NAME, MODEL_DIR = "vlsae.json", "vlsae.png", "model"


def run_vlsae(clip: str | Path | None = None, out: str | Path = "vlsae-out", *, pairs: int = 5000,
              eval_pairs: int = 1000, latents: int = 256, k: int = 8, steps: int = 2000, seed: int = 0,
              device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the comparison and write vlsae.json, vlsae.png and model/ into `out`; return the record with the paths."""
    from ..analysis.vl_alignment import BATCH_SIZE, scene_study
    from ..data.vision import load_vision_model
    from ..report.vlsae_plot import plot_vlsae

    out = Path(out)
    if pairs < BATCH_SIZE or eval_pairs < 10:
        raise ConfigError(f"vlsae: needs --pairs ≥ {BATCH_SIZE} and --eval-pairs ≥ 10 (got {pairs}, {eval_pairs})")
    if not 1 <= k <= latents:
        raise ConfigError(f"vlsae: --k must be between 1 and --latents={latents} (got {k})")
    if seed < 0 or steps < 1:
        raise ConfigError(f"vlsae: --seed must be ≥ 0 and --steps ≥ 1 (got {seed}, {steps})")
    refuse_existing_file(out)
    if clip is None:
        from ..worlds.toy_vision import bundled_toy_clip_path

        clip = bundled_toy_clip_path()
    vm = load_vision_model(clip, device=device)
    if vm.family != "clip":
        raise ConfigError(f"{clip}: VL-SAE needs a CLIP model (image and text towers), not a {vm.family} model")
    train_device = "cuda" if vm.device.type == "cuda" else "cpu"
    study, model = scene_study(vm, pairs=pairs, eval_pairs=eval_pairs, n_latents=latents, k=k, steps=steps,
                               seed=seed, device=train_device, progress=progress)
    settings = {"clip": str(clip), "pairs": pairs, "eval_pairs": eval_pairs, "latents": latents, "k": k,
                "steps": steps, "seed": seed, "d": study["d"]}
    model.provenance = {"source_model": str(clip), "dataset": "aekit.worlds.scenes train split with captions",
                        **{key: settings[key] for key in ("pairs", "steps", "seed")}}
    record = {"aekit_version": __version__, "settings": settings, "methods": study["methods"]}
    write_all(out, [(PNG_NAME, lambda p: plot_vlsae(study["methods"], p)),
                    (MODEL_DIR, model.save),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME), "model": str(out / MODEL_DIR)}
