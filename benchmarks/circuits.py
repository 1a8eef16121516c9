"""Circuit discovery on the bundled toy GPT-2: the discrete-code method against exhaustive patching and baselines.

For each task family (IOI, greater-than, docstring, induction):
  * ground truth from exhaustive patching on --truth-prompts held-out prompts (every head mean- and
    resample-ablated; every head pair path-patched), with the threshold rule of `aekit.analysis.circuits`;
  * for each of --seeds seeds, --n-prompts fresh prompt pairs and every method on them, timed in this process:
    the discrete-code method (O'Neill & Bui 2024), greedy ACDC-style pruning, attribution patching, HISP,
    and exhaustive head ablation / path patching on the same few prompts (the ablation cost the method avoids);
  * the ROC AUC of each method's head ranking against the truth (mean ± sd over seeds), and of the discrete-code
    edge scores against path-patching edges where the truth has edges;
  * a diagnostic of the method's premise: the AUC of ranking heads by how far their averaged outputs separate
    positive from negative prompts (distance of the class means over the pooled spread), no SAE involved;
  * sensitivity of the discrete-code node AUC to the number of prompts and of latents.
With --scale, the same methods are timed on a randomly initialised GPT-2-small-shaped model (12 layers × 12 heads,
width 768; no ground truth): the cost of each method as the number of heads grows. Edge path patching there is
timed on --scale-paths paths and its total extrapolated to all paths (marked as an estimate in the results).

    python benchmarks/circuits.py                    # the full study (~30 min on 2 cores)
    python benchmarks/circuits.py --quick            # 2 seeds, small sensitivity grid, written to circuits_quick.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.analysis.circuits import (
    DiscreteCodeSettings,
    ablation_effects,
    acdc_heads,
    attribution_patching,
    discrete_code_circuit,
    ground_truth,
    head_importance,
    head_vectors,
    path_patching_effects,
    toy_task,
)
from aekit.analysis.circuits.patching import path_patched_logits
from aekit.data.lm import load_lm
from aekit.metrics.circuits import ranking_auc
from aekit.worlds.language import TASK_FAMILIES
from aekit.worlds.toy_lm import bundled_toy_lm_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import RESULTS, write_results  # noqa: E402

TRUTH_SEED = 10_000  # ground-truth prompts come from a seed no method run uses
EDGE_THRESHOLD = 0.01  # true edges: path effect ≥ 1 % of the clean–negative gap (single paths are small here)
METHODS = ("discrete_codes", "acdc", "attribution_patching", "hisp", "exhaustive_ablation")


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def separation(model, task) -> torch.Tensor:
    """Per head: distance between the mean positive and mean negative head vector over the pooled spread."""
    pos = head_vectors(model, task.pairs.positive_ids, task.pairs.mask)
    neg = head_vectors(model, task.pairs.negative_ids, task.pairs.mask)
    spread = ((pos - pos.mean(0)).pow(2).sum(-1).mean(0) + (neg - neg.mean(0)).pow(2).sum(-1).mean(0)).sqrt()
    return (pos.mean(0) - neg.mean(0)).norm(dim=-1) / spread.clamp_min(1e-12)


def _summary(values: list[float]) -> dict[str, float | int | None]:
    finite = [v for v in values if not np.isnan(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(finite)), "std": float(np.std(finite)), "n": len(finite)}


def run_seed(model, tokenizer, family: str, seed: int, n_prompts: int, truth, settings: DiscreteCodeSettings,
             with_edges: bool) -> dict[str, Any]:
    """Every method on one prompt sample: node AUCs, the code method's edge AUC and wall-clock seconds."""
    task = toy_task(family, tokenizer, n_prompts, seed=seed)
    codes, t_codes = _timed(lambda: discrete_code_circuit(model, task, settings))
    (acdc, _), t_acdc = _timed(lambda: acdc_heads(model, task))
    attribution, t_attr = _timed(lambda: attribution_patching(model, task))
    hisp, t_hisp = _timed(lambda: head_importance(model, task))
    (_, _, effects), t_ablate = _timed(lambda: ablation_effects(model, task))
    exhaustive = torch.stack([e.abs() for e in effects.values()]).max(0).values
    row = {
        "auc": {"discrete_codes": ranking_auc(codes.node_scores, truth.heads), "acdc": ranking_auc(acdc, truth.heads),
                "attribution_patching": ranking_auc(attribution, truth.heads),
                "hisp": ranking_auc(hisp, truth.heads), "exhaustive_ablation": ranking_auc(exhaustive, truth.heads),
                "separation": ranking_auc(separation(model, task), truth.heads)},
        "seconds": {"discrete_codes": t_codes, "acdc": t_acdc, "attribution_patching": t_attr, "hisp": t_hisp,
                    "exhaustive_ablation": t_ablate, "discrete_codes_sae": codes.seconds["sae"]},
        "edge_auc": ranking_auc(codes.edge_scores, truth.edges),
    }
    if with_edges:
        _, row["seconds"]["exhaustive_path_patching"] = _timed(lambda: path_patching_effects(model, task))
    return row


def study_task(model, tokenizer, family: str, args) -> dict[str, Any]:
    truth = ground_truth(model, toy_task(family, tokenizer, args.truth_prompts, seed=TRUTH_SEED), edges=True,
                         edge_threshold=EDGE_THRESHOLD)
    settings = lambda seed, **kw: DiscreteCodeSettings(seed=seed, **kw)  # noqa: E731
    rows = []
    for seed in range(args.seeds):
        rows.append(run_seed(model, tokenizer, family, seed, args.n_prompts, truth, settings(seed), seed == 0))
        print(f"  {family} seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1]["auc"].items()),
              flush=True)
    result: dict[str, Any] = {
        "truth": {"clean_metric": truth.clean_metric, "negative_metric": truth.negative_metric,
                  "effects": {k: v.tolist() for k, v in truth.effects.items()},
                  "heads": truth.heads.int().tolist(), "n_heads": int(truth.heads.sum()),
                  "n_edges": int(truth.edges.sum()), "threshold": truth.threshold, "edge_threshold": EDGE_THRESHOLD,
                  "max_edge_effect": float(torch.nan_to_num(truth.edge_effects.abs()).max()),
                  "seconds": truth.seconds, "prompts": args.truth_prompts},
        "auc": {m: _summary([r["auc"][m] for r in rows]) for m in rows[0]["auc"]},
        "edge_auc": _summary([r["edge_auc"] for r in rows]),
        "seconds": {m: _summary([r["seconds"][m] for r in rows if m in r["seconds"]])
                    for m in rows[0]["seconds"]},
    }
    sensitivity: dict[str, dict[str, Any]] = {"prompts": {}, "latents": {}}
    for n in args.sens_prompts:
        aucs = [ranking_auc(discrete_code_circuit(model, toy_task(family, tokenizer, n, seed=s),
                                                  settings(s)).node_scores, truth.heads)
                for s in range(args.sens_seeds)]
        sensitivity["prompts"][str(n)] = _summary(aucs)
    for n_latents in args.sens_latents:
        aucs = [ranking_auc(discrete_code_circuit(model, toy_task(family, tokenizer, args.n_prompts, seed=s),
                                                  settings(s, n_latents=n_latents)).node_scores, truth.heads)
                for s in range(args.sens_seeds)]
        sensitivity["latents"][str(n_latents)] = _summary(aucs)
    result["sensitivity"] = sensitivity
    print(f"{family}: truth {result['truth']['n_heads']} heads, {result['truth']['n_edges']} edges; sensitivity "
          + str({k: {n: round(v['mean'], 2) for n, v in d.items() if v['mean'] is not None}
                 for k, d in sensitivity.items()}), flush=True)
    return result


def scale_timing(args) -> dict[str, Any]:
    """Seconds per method on a random GPT-2-small-shaped model with the toy tokenizer (IOI prompts)."""
    import transformers

    _, tokenizer = load_lm(bundled_toy_lm_path(), device="cpu", progress=False)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=len(tokenizer), n_positions=96,
                                     bos_token_id=0, eos_token_id=0, pad_token_id=1)
    model = transformers.GPT2LMHeadModel(config).eval()
    task = toy_task("ioi", tokenizer, args.n_prompts, seed=0)
    seconds: dict[str, Any] = {}
    _, seconds["discrete_codes"] = _timed(lambda: discrete_code_circuit(model, task, DiscreteCodeSettings()))
    _, seconds["acdc"] = _timed(lambda: acdc_heads(model, task))
    _, seconds["attribution_patching"] = _timed(lambda: attribution_patching(model, task))
    _, seconds["hisp"] = _timed(lambda: head_importance(model, task))
    _, seconds["exhaustive_ablation"] = _timed(lambda: ablation_effects(model, task))
    n_paths = sum(12 * 12 * (11 - i) for i in range(12))
    delta = torch.zeros(*task.pairs.positive_ids.shape, 768)
    _, sample = _timed(lambda: [path_patched_logits(model, task.pairs.positive_ids, task.pairs.mask,
                                                    (1 + i % 11, i % 12), delta) for i in range(args.scale_paths)])
    seconds["exhaustive_path_patching_estimate"] = sample / args.scale_paths * n_paths
    print("scale: " + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()), flush=True)
    return {"model": "random GPT-2, 12 layers × 12 heads, width 768, toy vocabulary", "heads": 144,
            "paths": n_paths, "paths_timed": args.scale_paths, "n_prompts": args.n_prompts, "seconds": seconds}


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(payload["tasks"])
    methods = [*METHODS, "separation"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        means = [payload["tasks"][t]["auc"][method]["mean"] or np.nan for t in tasks]
        stds = [payload["tasks"][t]["auc"][method]["std"] or 0 for t in tasks]
        axes[0].bar(np.arange(len(tasks)) + i * width, means, width, yerr=stds, label=method.replace("_", " "))
    axes[0].axhline(0.85, color="k", ls="--", lw=0.8)
    axes[0].axhline(0.5, color="grey", ls=":", lw=0.8)
    axes[0].set_xticks(np.arange(len(tasks)) + 0.4 - width / 2, tasks)
    axes[0].set_ylabel("head ROC AUC vs exhaustive patching")
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(fontsize=7, loc="lower left")
    for ax, key, label in ((axes[1], "prompts", "prompt pairs"), (axes[2], "latents", "SAE latents")):
        for t in tasks:
            grid = payload["tasks"][t]["sensitivity"][key]
            xs = [int(n) for n in grid]
            ax.errorbar(xs, [grid[n]["mean"] for n in grid], yerr=[grid[n]["std"] for n in grid], marker="o",
                        capsize=3, label=t)
        ax.set_xscale("log")
        ax.axhline(0.85, color="k", ls="--", lw=0.8)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(label)
        ax.set_ylabel("discrete-code node AUC")
        ax.legend(fontsize=7)
    fig.suptitle("Circuit discovery on the toy GPT-2 (mean ± sd over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n-prompts", type=int, default=10)
    parser.add_argument("--truth-prompts", type=int, default=200)
    parser.add_argument("--sens-prompts", type=int, nargs="+", default=[5, 10, 50, 250])
    parser.add_argument("--sens-latents", type=int, nargs="+", default=[5, 10, 25, 50, 100, 200, 250])
    parser.add_argument("--sens-seeds", type=int, default=10)
    parser.add_argument("--tasks", nargs="+", default=list(TASK_FAMILIES), choices=TASK_FAMILIES)
    parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--scale-paths", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 seeds and a small grid, to circuits_quick.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.sens_seeds, args.sens_prompts, args.sens_latents = 2, 2, [5, 10], [25, 200]
        args.truth_prompts, args.scale = 100, False
    torch.set_num_threads(args.threads)
    model, tokenizer = load_lm(bundled_toy_lm_path(), device="cpu", progress=False)
    payload: dict[str, Any] = {
        "benchmark": "circuits",
        "settings": {"seeds": args.seeds, "n_prompts": args.n_prompts, "truth_prompts": args.truth_prompts,
                     "sae": "relu, 200 latents, l1 0.02, Adam 1e-3, 500 full-batch steps",
                     "sens_seeds": args.sens_seeds, "threads": torch.get_num_threads()},
        "tasks": {},
    }
    for family in args.tasks:
        payload["tasks"][family] = study_task(model, tokenizer, family, args)
    if args.scale:
        payload["scale"] = scale_timing(args)
    name = "circuits_quick" if args.quick else "circuits"
    write_results(name, payload, argv)
    plot(payload, RESULTS / f"{name}.png")
    print(f"wrote {RESULTS / (name + '.json')} and {name}.png")


if __name__ == "__main__":
    main()
