"""LV-RAE: a decoder trained on noisy latents against the plain one — PSNR against relative latent noise.

Noise-augmented decoding after Zheng et al. 2025 (RAE) and Liu et al. 2026 (LV-RAE), on the conv autoencoder of
`aekit.models.image_ae`. Sizes fixed before measuring: 4000 training and 1000 held-out 32×32 scenes per seed
(`aekit.worlds.scenes`, train split), a 32-number latent, channels 32,32,64,64, 1000 Trainer steps of batch 64
(Adam lr 0.001) per model, training noise σ uniform in [0, 1] latent standard deviations, seeds 0–2. Reports the
held-out PSNR at σ = 0, 0.1, 0.25, 0.5, 1 for both models, the PSNR drop at σ = 0.5 and the ratio of the drops
(target ≤ 0.5). Writes benchmarks/results/lvrae.json.

    python benchmarks/lvrae.py [--seeds 0 1 2] [--steps 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aekit.analysis.lvrae import lvrae_study
from aekit.worlds.scenes import sample_scenes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

N_TRAIN, N_EVAL, N_LATENTS, NOISE_MAX = 4000, 1000, 32, 1.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the model is small: threads only add overhead
    runs = []
    for seed in args.seeds:
        start = time.perf_counter()
        train = sample_scenes(N_TRAIN, seed, "train").images
        held_out = sample_scenes(N_EVAL, seed + 1_000_003, "train").images  # as `aekit lvrae` draws them
        record, _ = lvrae_study(train, held_out, steps=args.steps, seed=seed, n_latents=N_LATENTS, noise_max=NOISE_MAX)
        runs.append({"seed": seed, "seconds": round(time.perf_counter() - start, 1), **record})
        print(f"seed {seed}: " + "; ".join(f"{name} " + " ".join(f"{v:.2f}" for v in curve)
                                          for name, curve in record["psnr"].items())
              + f"; drop ratio {record['drop_ratio']:.3f}", flush=True)
    sigmas, stated = runs[0]["sigmas"], runs[0]["stated_sigma"]
    summary = []
    for name in runs[0]["psnr"]:
        curves = np.array([r["psnr"][name] for r in runs])
        drops = np.array([r["drop"][name] for r in runs])
        summary.append({"model": name, "psnr_mean": curves.mean(0).tolist(), "psnr_std": curves.std(0).tolist(),
                        "drop_mean": float(drops.mean()), "drop_std": float(drops.std())})
    ratios = np.array([r["drop_ratio"] for r in runs])
    ratio_of_means = summary[1]["drop_mean"] / summary[0]["drop_mean"]
    payload = {"paper": "Zheng et al. 2025, Diffusion Transformers with Representation Autoencoders (noise-augmented "
                        "decoding); Liu et al. 2026, Improving Reconstruction of Representation Autoencoder (LV-RAE)",
               "settings": {"n_train": N_TRAIN, "n_eval": N_EVAL, "n_latents": N_LATENTS, "noise_max": NOISE_MAX,
                            "channels": runs[0]["channels"], "steps": args.steps, "seeds": args.seeds,
                            "sigmas": sigmas, "stated_sigma": stated},
               "summary": summary, "runs": runs,
               "targets": {"drop_ratio_mean_of_seeds": float(ratios.mean()), "drop_ratio_max": float(ratios.max()),
                           "drop_ratio_of_mean_drops": ratio_of_means, "met": bool(ratio_of_means <= 0.5)}}
    path = write_results("lvrae", payload, sys.argv[1:] if argv is None else argv)
    for s in summary:
        print(f"{s['model']}: PSNR " + " ".join(f"{v:.2f}" for v in s["psnr_mean"])
              + f", drop at σ {stated:g} {s['drop_mean']:.2f} ± {s['drop_std']:.2f} dB")
    print(f"drop ratio {ratio_of_means:.3f} (per seed {', '.join(f'{r:.3f}' for r in ratios)}); wrote {path}")


if __name__ == "__main__":
    main()
