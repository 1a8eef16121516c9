"""The bundled toy ViT and CLIP on held-out scenes, and SAEs on their residual streams (issue 17, items 1–3).

Evaluates both bundled models (factor accuracy of the ViT, zero-shot attribute accuracy of the CLIP) on 2000
held-out test scenes and 2000 scenes of held-out (shape, hue) pairs, then, for each model and seed, trains a TopK
SAE (1024 latents, k 16, 2000 steps of 1024 tokens, Adam lr 0.001) on every token of blocks.2.hook_resid_post of
4000 training scenes and scores it on 1000 test and 1000 OOD scenes: FVU, accuracy with the SAE spliced in
(recovered fraction against mean ablation), best single-latent F1 per factor value against a linear probe, and
OOD AUROC of the SAE's reconstruction error and latent rarity against max-softmax and Mahalanobis (ViT only).
Sizes were fixed before measuring. Writes benchmarks/results/vision_sae.json.

    python benchmarks/vision_sae.py [--seeds 0 1 2] [--steps 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aekit.analysis.vision_sae import vision_sae_study
from aekit.data.vision import load_vision_model
from aekit.worlds.toy_vision import bundled_toy_clip_path, bundled_toy_vit_path, evaluate_toy_clip, evaluate_toy_vit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

HOOK, TOKENS, LATENTS, K, N_TRAIN, N_EVAL = "blocks.2.hook_resid_post", "all", 1024, 16, 4000, 1000


def _summary(runs: list[dict]) -> dict:
    """Mean and standard deviation over seeds of every number a study reports."""
    flat = [{"fvu": r["fvu"], "latent_f1": r["alignment"]["mean_latent_f1"],
             "probe_f1": r["alignment"]["mean_probe_f1"],
             **{f"auroc_{k}": v for k, v in r["ood"]["auroc"].items()},
             **{f"spliced_{k}": v for k, v in r.get("spliced", {}).items()}} for r in runs]
    return {k: {"mean": float(np.mean([f[k] for f in flat])), "std": float(np.std([f[k] for f in flat]))}
            for k in flat[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small models: threads only add overhead on a shared CPU
    paths = {"vit": bundled_toy_vit_path(), "clip": bundled_toy_clip_path()}
    models = {"vit": evaluate_toy_vit(paths["vit"], n=2000), "clip": evaluate_toy_clip(paths["clip"], n=2000)}
    for name, result in models.items():
        print(f"toy {name}: test {result['test']['mean']:.3f}, ood {result['ood']['mean']:.3f}", flush=True)
    studies: dict[str, dict] = {}
    for name, path in paths.items():
        vm = load_vision_model(path, device="cpu")
        runs = []
        for seed in args.seeds:
            start = time.perf_counter()
            record = vision_sae_study(vm, HOOK, tokens=TOKENS, n_latents=LATENTS, k=K, steps=args.steps,
                                      n_train=N_TRAIN, n_eval=N_EVAL, seed=seed).record
            record["ood"].pop("scores")  # the raw per-image scores stay out of the committed file
            record["seconds"] = round(time.perf_counter() - start, 1)
            runs.append(record)
            print(f"{name} seed {seed}: FVU {record['fvu']:.3f}, recovered {record['spliced']['recovered']:.3f}, "
                  f"latent F1 {record['alignment']['mean_latent_f1']:.3f}, AUROC "
                  + ", ".join(f"{k} {v:.3f}" for k, v in record["ood"]["auroc"].items()), flush=True)
        studies[name] = {"summary": _summary(runs), "runs": runs}
    payload = {"settings": {"hook": HOOK, "tokens": TOKENS, "n_latents": LATENTS, "k": K, "steps": args.steps,
                            "n_train": N_TRAIN, "n_eval": N_EVAL, "seeds": args.seeds},
               "models": models, "studies": studies,
               "targets": {"vit_test_accuracy": models["vit"]["test"]["mean"],
                           "clip_zero_shot_accuracy": models["clip"]["test"]["mean"],
                           "best_sae_ood_auroc": max(studies["vit"]["summary"][k]["mean"]
                                                     for k in ("auroc_sae_error", "auroc_sae_rarity"))}}
    print(f"wrote {write_results('vision_sae', payload, sys.argv[1:] if argv is None else argv)}")


if __name__ == "__main__":
    main()
