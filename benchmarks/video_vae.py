"""The causal spatio-temporal VAE (LaVin-DiT's ST-VAE, small) on the moving-shapes world: PSNR per frame position.

Wang et al., "LaVin-DiT: Large Vision Diffusion Transformer" (2024). Sizes are `aekit video-vae`'s defaults, fixed
before measuring: clips of 17 frames of 32×32 RGB with two sprites, 1000 training clips of the seed's world and 200
held-out clips of another seed, a VAE with time ×4 (first frame alone: 17 → 5 latent frames) and space ×4 (8×8
sites, 4 channels), 1500 Trainer steps (batch 8, Adam lr 0.003), β 0.001. Each method is scored by the PSNR of
every frame position on the held-out clips, summarised as frame 0 (encoded alone) and the four positions inside a
group of four frames (t = 4j + 1 … 4j + 4), against each clip's mean frame and against bilinear keyframes (frames
0, 4, 8, … at 8×8, interpolated linearly in time). The causality check (future frames replaced by noise, past latents
compared bit for bit in eval and train mode) is recorded. Writes benchmarks/results/video_vae.json.

    python benchmarks/video_vae.py [--seeds 0] [--steps 1500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aekit.analysis.video_vae import video_vae_study
from aekit.commands.video_vae import SPATIAL_CHANNELS
from aekit.models.video_vae import VideoVAEConfig
from aekit.worlds.video import moving_shapes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

FRAMES, N_TRAIN, N_EVAL, SPRITES, SPATIAL, LATENT_CHANNELS, BETA = 17, 1000, 200, 2, 4, 4, 1e-3
EVAL_SEED_OFFSET = 1_000_003  # the held-out clips come from another seed of the world, as in `aekit video-vae`


def positions(frame_psnr: list[float], temporal: int) -> dict[str, float]:
    """Mean PSNR of frame 0 and of each position 4j + k (k = 1 … τ) inside the groups that follow it."""
    out = {"frame 0": frame_psnr[0]}
    for k in range(1, temporal + 1):
        out[f"4j+{k}"] = float(np.mean(frame_psnr[k::temporal]))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small convolutions: threads only add overhead on a shared machine
    runs, compression = [], None
    for seed in args.seeds:
        train = moving_shapes(N_TRAIN, seed, frames=FRAMES, sprites=SPRITES)
        held_out = moving_shapes(N_EVAL, seed + EVAL_SEED_OFFSET, frames=FRAMES, sprites=SPRITES).videos
        config = VideoVAEConfig(frames=FRAMES, channels=SPATIAL_CHANNELS[SPATIAL], latent_channels=LATENT_CHANNELS,
                                beta=BETA, seed=seed)
        start = time.perf_counter()
        record, _, _ = video_vae_study(train.frames, held_out, config, steps=args.steps, seed=seed)
        compression = record["compression"]
        temporal = compression["temporal_per_group"]
        for name, m in record["methods"].items():
            runs.append({"seed": seed, "method": name, "psnr": m["psnr"], "frame_psnr": m["frame_psnr"],
                         "positions": positions(m["frame_psnr"], temporal), "values_per_clip": m["values_per_clip"]})
        runs[-len(record["methods"])].update({"causality": record["causality"], "parameters": record["parameters"],
                                              "train_seconds": record["train_seconds"],
                                              "final_train_loss": record["final_train_loss"]})
        print(f"seed {seed} ({time.perf_counter() - start:.0f} s): " + ", ".join(
            f"{name} {m['psnr']:.2f} dB" for name, m in record["methods"].items())
            + f"; causal {record['causality']['causal']}", flush=True)
    summary = []
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = [r for r in runs if r["method"] == method]
        entry = {"method": method, "seeds": len(rows), "values_per_clip": rows[0]["values_per_clip"],
                 "psnr_mean": float(np.mean([r["psnr"] for r in rows])),
                 "psnr_std": float(np.std([r["psnr"] for r in rows])),
                 "positions": {k: float(np.mean([r["positions"][k] for r in rows])) for k in rows[0]["positions"]}}
        if "causality" in rows[0]:
            entry["causal"] = all(r["causality"]["causal"] for r in rows)
        summary.append(entry)
    vae, baselines = summary[0], summary[1:]
    payload = {"paper": "Wang et al., LaVin-DiT: Large Vision Diffusion Transformer (2024)",
               "settings": {"frames": FRAMES, "n_train": N_TRAIN, "n_eval": N_EVAL, "sprites": SPRITES,
                            "spatial": SPATIAL, "latent_channels": LATENT_CHANNELS, "beta": BETA,
                            "steps": args.steps, "seeds": args.seeds},
               "compression": compression, "summary": summary, "runs": runs,
               "targets": {"causal": vae["causal"],
                           "psnr_minus_best_baseline": vae["psnr_mean"] - max(b["psnr_mean"] for b in baselines)}}
    path = write_results("video_vae", payload, sys.argv[1:] if argv is None else argv)
    for s in summary:
        print(f"{s['method']}: PSNR {s['psnr_mean']:.2f} ± {s['psnr_std']:.2f} dB; "
              + ", ".join(f"{k} {v:.2f}" for k, v in s["positions"].items()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
