"""`aekit ddmi`: a D2C-VAE and a latent diffusion model (DDMI) on the scene world or the SDF world.

On the scene world it trains the D2C-VAE and the latent diffusion model, scores reconstruction at 1× and 2× and the
samples under a factor classifier (the bundled toy ViT unless `vit` names another ViT directory); on the SDF world
it trains the D2C-VAE with off-grid supervision and scores reconstruction against the exact field. Writes
ddmi.json, ddmi.png and the trained models (d2c_vae/ and, for scenes, latent_diffusion/) in aekit's format.
Everything is validated and computed before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "WORLDS", "run_ddmi"]

JSON_NAME, PNG_NAME, VAE_DIR, DIFFUSION_DIR = "ddmi.json", "ddmi.png", "d2c_vae", "latent_diffusion"
WORLDS = ("scenes", "sdf")
MIN_TRAIN = 64  # one batch of the diffusion model's training latents


def _factor_classifier(path: str | None):
    """The ViT that scores samples: `path`, or the bundled toy ViT; it must read the six Shapes3D factors."""
    from ..data.vision import load_vision_model
    from ..worlds.shapes3d import Shapes3DWorld
    from ..worlds.toy_vision import bundled_toy_vit_path

    vm = load_vision_model(path or bundled_toy_vit_path(), device="cpu")
    expected = sum(Shapes3DWorld().factor_sizes)
    if vm.family != "vit" or vm.model.config.num_labels != expected:
        raise ConfigError(f"ddmi: --vit {vm.path} must be a ViT classifier with one logit block per Shapes3D factor "
                          f"({expected} logits), like the bundled toy ViT")
    return vm


def run_ddmi(out: str | Path = "ddmi-out", *, world: str = "scenes", seed: int = 0, steps: int = 1200,
             diffusion_steps: int = 1200, n_train: int = 4000, n_eval: int = 500, vit: str | None = None,
             device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train and score DDMI on `world`; write ddmi.json, ddmi.png and the models into `out`."""
    from ..analysis.ddmi import scenes_study, sdf_study
    from ..analysis.image_models import trainer_device
    from ..report.ddmi_plot import plot_ddmi

    out = Path(out)
    if world not in WORLDS:
        raise ConfigError(f"ddmi: --world must be one of {', '.join(WORLDS)} (got {world!r})")
    if steps < 1 or diffusion_steps < 1 or seed < 0:
        raise ConfigError(f"ddmi: --steps and --diffusion-steps must be ≥ 1 and --seed ≥ 0 (got {steps}, "
                          f"{diffusion_steps}, {seed})")
    if n_train < MIN_TRAIN or n_eval < 2:
        raise ConfigError(f"ddmi: --n-train must be ≥ {MIN_TRAIN} and --n-eval ≥ 2 (got {n_train}, {n_eval})")
    train_device = trainer_device(device, "ddmi")
    refuse_existing_file(out)
    if world == "scenes":
        vm = _factor_classifier(vit)
        record, artifacts = scenes_study(vm, n_train=n_train, n_eval=n_eval, steps=steps,
                                         diffusion_steps=diffusion_steps, seed=seed, device=train_device,
                                         progress=progress)
        record["classifier"] = vm.path
        s = record["samples"]["DDMI (latent diffusion)"]
        title = (f"DDMI on scenes: PSNR {record['reconstruction']['psnr_1x']:.2f} dB (1×), "
                 f"{record['reconstruction']['psnr_2x']:.2f} dB (2×); samples: coverage {s['coverage']:.2f}, "
                 f"Fréchet {s['frechet']:.1f} (real floor {record['samples']['real (second draw)']['frechet']:.1f})")
    else:
        record, artifacts = sdf_study(n_train=n_train, n_eval=n_eval, steps=steps, seed=seed, device=train_device,
                                      progress=progress)
        r = record["reconstruction"]
        title = (f"D2C-VAE on SDF shapes: PSNR {r['psnr_1x']:.2f} dB (1×), {r['psnr_2x']:.2f} dB (2×, exact field); "
                 f"sign accuracy at 2× {r['sign_accuracy_2x']:.3f}")
    record = {"aekit_version": __version__, "seed": seed, **record}
    provenance = {"world": world, "seed": seed, "n_train": n_train, "steps": steps,
                  "diffusion_steps": diffusion_steps}
    writers = [(PNG_NAME, lambda p: plot_ddmi(artifacts["rows"], p, title=title, sdf=world == "sdf")),
               (JSON_NAME, lambda p: atomic_write_json(p, record))]
    for name, key in ((VAE_DIR, "vae"), (DIFFUSION_DIR, "diffusion")):
        if key in artifacts:
            artifacts[key].provenance = dict(provenance)
            writers.append((name, artifacts[key].save))
    write_all(out, writers)
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME), "models": str(out)}
