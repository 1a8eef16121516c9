"""DDMI on the scene world and the SDF world: D2C-VAE reconstruction at 1× and 2×, latent-diffusion sample quality.

Park et al., "DDMI: Domain-Agnostic Latent Diffusion Models for Synthesizing High-Quality Implicit Neural
Representations" (ICLR 2024). Sizes are fixed before measuring. Scenes: 4000 train-split 32×32 scenes, a D2C-VAE
(latent grid 4 × 8 × 8) trained 1200 Trainer steps (batch 32, Adam lr 0.001), a latent diffusion model (diffusers
UNet2DModel, widths 32/64) trained 1200 steps (batch 64) on its posterior means, 500 test-split scenes for
reconstruction (2× against their 64×64 renders) and 500 samples per generator scored by the bundled toy ViT.
SDF: 4000 scenes of 1–3 circles/boxes, 32×32 fields plus 256 exact off-grid values each, 600 steps, 500 held-out
scenes scored against the exact field at 32×32 and 64×64. Writes benchmarks/results/ddmi.json.

    python benchmarks/ddmi.py [--seed 0] [--steps 1200] [--diffusion-steps 1200] [--sdf-steps 600]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from aekit.analysis.ddmi import scenes_study, sdf_study
from aekit.data.vision import load_vision_model
from aekit.worlds.toy_vision import bundled_toy_vit_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

N_TRAIN, N_EVAL = 4000, 500


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1200, help="D2C-VAE steps on the scene world")
    parser.add_argument("--diffusion-steps", type=int, default=1200)
    parser.add_argument("--sdf-steps", type=int, default=600, help="D2C-VAE steps on the SDF world")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the models are small: threads only add overhead on a shared machine
    vm = load_vision_model(bundled_toy_vit_path(), device="cpu")
    start = time.perf_counter()
    scenes, _ = scenes_study(vm, n_train=N_TRAIN, n_eval=N_EVAL, steps=args.steps,
                             diffusion_steps=args.diffusion_steps, seed=args.seed)
    scenes["seconds"] = round(time.perf_counter() - start, 1)
    r = scenes["reconstruction"]
    print(f"scenes: PSNR {r['psnr_1x']:.2f} dB (1×), {r['psnr_2x']:.2f} dB (2×); bilinear 2× "
          f"{r['bilinear_psnr_2x']:.2f}; {scenes['seconds']:.0f} s", flush=True)
    for name, s in scenes["samples"].items():
        print(f"  {name:>24}: coverage {s['coverage']:.3f}, entropy {s['entropy']:.2f}, held-out "
              f"{s['held_out_share']:.3f}, confidence {s['confidence']:.3f}, Fréchet {s['frechet']:.1f}", flush=True)
    start = time.perf_counter()
    sdf, _ = sdf_study(n_train=N_TRAIN, n_eval=N_EVAL, steps=args.sdf_steps, seed=args.seed)
    sdf["seconds"] = round(time.perf_counter() - start, 1)
    r = sdf["reconstruction"]
    print(f"sdf: PSNR {r['psnr_1x']:.2f} dB (1×), {r['psnr_2x']:.2f} dB (2×, exact field); sign accuracy 2× "
          f"{r['sign_accuracy_2x']:.3f}; {sdf['seconds']:.0f} s", flush=True)
    ddmi, floor = scenes["samples"]["DDMI (latent diffusion)"], scenes["samples"]["real (second draw)"]
    payload = {"paper": "Park et al., DDMI: Domain-Agnostic Latent Diffusion Models for Synthesizing High-Quality "
                        "Implicit Neural Representations (ICLR 2024)",
               "settings": {"seed": args.seed, "n_train": N_TRAIN, "n_eval": N_EVAL, "steps": args.steps,
                            "diffusion_steps": args.diffusion_steps, "sdf_steps": args.sdf_steps,
                            "classifier": "bundled toy ViT"},
               "scenes": scenes, "sdf": sdf,
               "targets": {"scenes_psnr_drop_2x": scenes["reconstruction"]["psnr_1x"]
                           - scenes["reconstruction"]["psnr_2x"],
                           "sdf_psnr_drop_2x": sdf["reconstruction"]["psnr_1x"] - sdf["reconstruction"]["psnr_2x"],
                           "ddmi_frechet_over_floor": ddmi["frechet"] / floor["frechet"],
                           "ddmi_beats_prior": ddmi["frechet"] < scenes["samples"]["VAE prior N(0, I)"]["frechet"],
                           "ddmi_beats_gaussian_fit": ddmi["frechet"]
                           < scenes["samples"]["Gaussian fit to latents"]["frechet"]}}
    path = write_results("ddmi", payload, sys.argv[1:] if argv is None else argv)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
