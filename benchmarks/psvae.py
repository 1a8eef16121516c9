"""PS-VAE: pixel + semantic reconstruction against the pixel-only VAE and the frozen teacher, on the scene world.

Zhang et al. 2025, "Both Semantics and Reconstruction Matter". The teacher is the bundled toy ViT (its final
normalised CLS state, standardised per feature). Sizes fixed before measuring: 4000 training and 1000 held-out
32×32 scenes per seed (train split), a 32-number Gaussian latent (β 0.1 per pixel), channels 32,32,64,64, a linear
semantic decoder with w_sem 4 (chosen from {1, 4} on seed 0 at 1000 steps, by probe accuracy), 1000 Trainer steps
of batch 64 (Adam lr 0.001) per model, seeds 0–1. Reports held-out PSNR and linear-probe accuracy (multinomial
logistic regression per Shapes3D factor, fitted on the training scenes) for PS-VAE, the pixel-only VAE
(w_sem = 0, same seed) and the teacher's features; the target is a probe within 2 points of the teacher at a PSNR
no more than 1 dB below the pixel-only VAE's. Writes benchmarks/results/psvae.json.

    python benchmarks/psvae.py [--seeds 0 1] [--steps 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aekit.analysis.psvae import PIXEL_ONLY, PS_VAE, TEACHER, psvae_study, teacher_features
from aekit.data.vision import load_vision_model
from aekit.worlds.scenes import sample_scenes
from aekit.worlds.shapes3d import Shapes3DWorld
from aekit.worlds.toy_vision import bundled_toy_vit_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

N_TRAIN, N_EVAL, N_LATENTS, SEMANTIC_WEIGHT, BETA = 4000, 1000, 32, 4.0, 0.1
METHODS = (TEACHER, PS_VAE, PIXEL_ONLY)


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the models are small: threads only add overhead
    teacher = load_vision_model(bundled_toy_vit_path())
    runs = []
    for seed in args.seeds:
        start = time.perf_counter()
        train = sample_scenes(N_TRAIN, seed, "train")
        held_out = sample_scenes(N_EVAL, seed + 1_000_003, "train")  # as `aekit psvae` draws them
        record, _ = psvae_study(train, held_out, teacher_features(teacher, train.images),
                                teacher_features(teacher, held_out.images), steps=args.steps, seed=seed,
                                n_latents=N_LATENTS, semantic_weight=SEMANTIC_WEIGHT, beta=BETA)
        runs.append({"seed": seed, "seconds": round(time.perf_counter() - start, 1), **record})
        print(f"seed {seed}: " + "; ".join(f"{m} probe {record[m]['probe']['mean']:.3f}"
                                          + ("" if record[m]["psnr"] is None else f" PSNR {record[m]['psnr']:.2f}")
                                          for m in METHODS), flush=True)
    summary = []
    for method in METHODS:
        entry = {"method": method, "probe_mean": _mean_std([r[method]["probe"]["mean"] for r in runs]),
                 "per_factor": {f: _mean_std([r[method]["probe"]["per_factor"][f] for r in runs])
                                for f in Shapes3DWorld.factor_names}}
        if method != TEACHER:
            entry["psnr"] = _mean_std([r[method]["psnr"] for r in runs])
            entry["feature_cosine"] = _mean_std([r[method]["feature_cosine"] for r in runs])
        summary.append(entry)
    by = {s["method"]: s for s in summary}
    probe_gap = 100 * (by[TEACHER]["probe_mean"]["mean"] - by[PS_VAE]["probe_mean"]["mean"])
    psnr_gap = by[PS_VAE]["psnr"]["mean"] - by[PIXEL_ONLY]["psnr"]["mean"]
    payload = {"paper": "Zhang et al. 2025, Both Semantics and Reconstruction Matter: Making Representation Encoders "
                        "Ready for Text-to-Image Generation and Editing",
               "settings": {"teacher": "bundled toy ViT (final normalised CLS state)", "n_train": N_TRAIN,
                            "n_eval": N_EVAL, "n_latents": N_LATENTS, "semantic_weight": SEMANTIC_WEIGHT,
                            "beta": BETA, "channels": runs[0]["settings"]["channels"], "steps": args.steps,
                            "seeds": args.seeds},
               "summary": summary, "runs": runs,
               "targets": {"probe_gap_points": probe_gap, "psnr_gap_db": psnr_gap,
                           "met": bool(probe_gap <= 2.0 and psnr_gap >= -1.0)}}
    path = write_results("psvae", payload, sys.argv[1:] if argv is None else argv)
    for s in summary:
        psnr = f", PSNR {s['psnr']['mean']:.2f} ± {s['psnr']['std']:.2f} dB" if "psnr" in s else ""
        print(f"{s['method']}: probe {s['probe_mean']['mean']:.3f} ± {s['probe_mean']['std']:.3f}{psnr}")
    print(f"probe gap {probe_gap:.1f} points (target ≤ 2), PSNR gap {psnr_gap:+.2f} dB (target ≥ −1); wrote {path}")


if __name__ == "__main__":
    main()
