"""VL-SAE against per-modality SAEs on the bundled toy CLIP: concept alignment of image and caption codes.

Shen et al., "VL-SAE: Interpreting and Enhancing Vision-Language Alignment with a Unified Concept Set" (NeurIPS 2025).
Sizes are fixed before measuring: 5000 train-split scenes with their usual captions (each attribute named with
probability 0.5), 1000 held-out test-split scenes with full captions, 256 latents, k 8, 2000 Trainer steps per model
(batch 256, Adam lr 0.001), seeds 0–2. Methods (`aekit.analysis.vl_alignment.scene_study`): VL-SAE as in the paper,
VL-SAE with per-modality centring, two separate TopK SAEs (one per modality, independent seeds) and one TopK SAE on
both modalities' rows; the raw CLIP embeddings give the retrieval reference. Targets (issue 17): shared latents
≥ 0.5 of active latents, and factor purity above the separate SAEs'. Writes benchmarks/results/vlsae.json.

    python benchmarks/vlsae.py [--seeds 0 1 2] [--steps 2000] [--clip DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aekit.analysis.vl_alignment import scene_study
from aekit.data.vision import load_vision_model
from aekit.worlds.toy_vision import bundled_toy_clip_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

PAIRS, EVAL_PAIRS, LATENTS, K = 5000, 1000, 256, 8
METRICS = ("shared_fraction", "one_modality_fraction", "pair_jaccard", "purity_image", "purity_text", "purity",
           "purity_shuffled", "recall_at_1", "fvu_image", "fvu_text")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--clip", default=None, help="a CLIP directory; default: the bundled toy CLIP")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small models: threads only add overhead on a shared machine
    clip = args.clip or bundled_toy_clip_path()
    vm = load_vision_model(clip, device="cpu")
    runs = []
    for seed in args.seeds:
        start = time.perf_counter()
        study, _ = scene_study(vm, pairs=PAIRS, eval_pairs=EVAL_PAIRS, n_latents=LATENTS, k=K, steps=args.steps,
                               seed=seed)
        seconds = round(time.perf_counter() - start, 1)
        for method, m in study["methods"].items():
            runs.append({"seed": seed, "method": method, "seconds": seconds, **m})
            print(f"seed {seed}: {method} " + " ".join(f"{k} {m[k]:.3f}" for k in METRICS
                                                       if isinstance(m.get(k), float)), flush=True)
    summary = []
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = [r for r in runs if r["method"] == method]
        entry = {"method": method, "seeds": len(rows)}
        for k in METRICS:
            values = [r[k] for r in rows if r.get(k) is not None]
            if values:
                entry[f"{k}_mean"], entry[f"{k}_std"] = float(np.mean(values)), float(np.std(values))
        summary.append(entry)
    by_name = {s["method"]: s for s in summary}
    paper, separate = by_name["VL-SAE"], by_name["separate TopK SAEs"]
    payload = {"paper": "Shen, Sun, Huang and Wang, VL-SAE: Interpreting and Enhancing Vision-Language Alignment "
                        "with a Unified Concept Set (NeurIPS 2025)",
               "settings": {"clip": args.clip or "bundled toy CLIP", "d": study["d"], "pairs": PAIRS,
                            "eval_pairs": EVAL_PAIRS, "latents": LATENTS, "k": K, "steps": args.steps,
                            "seeds": args.seeds},
               "summary": summary, "runs": runs,
               "targets": {"vlsae_shared_fraction": paper["shared_fraction_mean"],
                           "shared_fraction_met": paper["shared_fraction_mean"] >= 0.5,
                           "vlsae_minus_separate_purity": paper["purity_mean"] - separate["purity_mean"],
                           "purity_met": paper["purity_mean"] > separate["purity_mean"]}}
    path = write_results("vlsae", payload, sys.argv[1:] if argv is None else argv)
    for s in summary:
        print(f"{s['method']}: " + ", ".join(f"{k} {s[k + '_mean']:.3f} ± {s[k + '_std']:.3f}" for k in METRICS
                                             if k + "_mean" in s))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
