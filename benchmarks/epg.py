"""EPG: a pixel-space diffusion model from scratch vs after self-supervised pre-training of its encoder.

Lei et al. 2025, "Advancing End-to-End Pixel Space Generative Modeling via Self-supervised Pre-training". Sizes
fixed before measuring: 4000 training scenes (train split, 32×32), a denoiser of diffusers UNet blocks (patch 2,
widths 32,64,64, about 1.05M parameters), batch 64, Adam lr 0.001 with 50 warm-up steps and no decay, 250 stage-1
steps, 500 stage-2 steps per run with the FD measured every 100 steps on 400 DDIM samples (10 steps) against 1000
real test scenes in the bundled toy ViT's final CLS features, seed 0. The threshold, FD 150, was fixed before the
comparison was run, between the FD of real scenes at a quarter of their resolution (about 244) and at half (about
81), from those references and a pilot of the from-scratch run alone (FD 198 after 300 steps). Writes
benchmarks/results/epg.json.

    python benchmarks/epg.py [--seed 0] [--steps 500] [--pretrain-steps 250]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from aekit.analysis.epg import FROM_SCRATCH, PRETRAINED, epg_study
from aekit.commands.epg import DEFAULT_THRESHOLD
from aekit.data.vision import load_vision_model
from aekit.worlds.toy_vision import bundled_toy_vit_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

N_TRAIN, N_EVAL, N_SAMPLES, EVAL_EVERY = 4000, 1000, 400, 100


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--pretrain-steps", type=int, default=250)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the models are small: threads only add overhead
    start = time.perf_counter()
    record, _, _ = epg_study(load_vision_model(bundled_toy_vit_path()), n_train=N_TRAIN, n_eval=N_EVAL,
                             n_samples=N_SAMPLES, pretrain_steps=args.pretrain_steps, steps=args.steps,
                             eval_every=EVAL_EVERY, threshold=DEFAULT_THRESHOLD, seed=args.seed)
    runs = record["runs"]
    scratch, epg = runs[FROM_SCRATCH], runs[PRETRAINED]
    payload = {"paper": "Lei et al. 2025, Advancing End-to-End Pixel Space Generative Modeling via Self-supervised "
                        "Pre-training",
               "seconds": round(time.perf_counter() - start, 1), **record,
               "targets": {"final_frechet_gain": scratch["final_frechet"] - epg["final_frechet"],
                           "pretrained_better_at_equal_stage2_steps": epg["final_frechet"] < scratch["final_frechet"],
                           "steps_to_threshold": {name: run["steps_to_threshold"] for name, run in runs.items()}}}
    path = write_results("epg", payload, sys.argv[1:] if argv is None else argv)
    for name, run in runs.items():
        print(f"{name}: " + "  ".join(f"{p['step']}: {p['frechet']:.1f}" for p in run["curve"])
              + f"; steps to FD ≤ {record['threshold']:g}: {run['steps_to_threshold']}")
    print(f"floor {record['floor_frechet']:.1f}, quarter resolution {record['quarter_resolution_frechet']:.1f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
