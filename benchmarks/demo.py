"""The language demo (`aekit demo`) as a benchmark: its metrics and wall time, with the machine they came from.

Runs `aekit.commands.demo.language_demo`, the job `aekit demo` runs (the bundled toy GPT-2 → generated text →
activation store → TopK SAE on blocks.1.hook_resid_post → spliced CE loss, concept recovery, HTML report), in
--out or a temporary directory, and writes benchmarks/results/demo.json: FVU, L0, dead latents, CE loss clean /
with the SAE / zero- and mean-ablated, CE loss recovered both ways, KL, Δ LM loss, per-concept SAE best F1 against
the probe F1, and the wall time of the whole demo.

    python benchmarks/demo.py                              # the defaults of `aekit demo`, in a temporary directory
    python benchmarks/demo.py --out demo-out      # keep the outputs (benchmarks/screen_survivors.py reads them)
    python benchmarks/demo.py --steps 50 --documents 300 --name demo_smoke   # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from aekit.commands.demo import LANGUAGE_HOOK, language_demo

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402


def run(out: Path, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    metrics = language_demo(out, steps=args.steps, seed=args.seed, progress=False, n_documents=args.documents)
    wall = time.perf_counter() - start
    rec, spliced, concepts = metrics["reconstruction"], metrics["spliced"], metrics["concepts"]
    return {
        "benchmark": "demo",
        "settings": {"steps": args.steps, "seed": args.seed, "documents": args.documents, "hook": LANGUAGE_HOOK,
                     "sae": "topk, 1024 latents, k 16, batch 1024", "threads": torch.get_num_threads()},
        "wall_seconds": wall,
        "demo_wall_seconds": metrics["wall_seconds"],
        "reconstruction": {key: rec[key] for key in ("fvu", "l0", "dead_fraction", "mse", "shrinkage") if key in rec},
        "spliced": spliced,
        "concepts": {name: {key: row[key] for key in ("sae_best_f1", "probe_f1", "ratio", "values")}
                     for name, row in concepts["concepts"].items()},
        "topic_posterior": {key: concepts["topic_posterior"][key]
                            for key in ("sae_matched_correlation", "probe_correlation", "ratio")},
        "scored_tokens": concepts["tokens"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None,
                   help="demo output directory, kept (default: a temporary directory, removed afterwards)")
    p.add_argument("--steps", type=int, default=1500, help="SAE steps (the default of `aekit demo`)")
    p.add_argument("--documents", type=int, default=6000, help="generated documents cached (as `aekit demo`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--name", default="demo", help="write benchmarks/results/<name>.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out is not None:
        result = run(args.out, args)
    else:
        with tempfile.TemporaryDirectory(prefix="aekit-demo-") as tmp:
            result = run(Path(tmp) / "demo-out", args)
    rec, spliced = result["reconstruction"], result["spliced"]
    print(f"demo: {result['wall_seconds']:.1f} s wall; FVU {rec['fvu']:.3f}, L0 {rec['l0']:.1f}, "
          f"dead {100 * rec['dead_fraction']:.1f}%; CE clean {spliced['ce_clean']:.3f}, with SAE "
          f"{spliced['ce_sae']:.3f}, recovered {spliced['ce_recovered_zero']:.3f} (zero) / "
          f"{spliced['ce_recovered_mean']:.3f} (mean)")
    for name, row in result["concepts"].items():
        print(f"  {name:>14}: SAE best F1 {row['sae_best_f1']:.3f}, probe F1 {row['probe_f1']:.3f}")
    print(f"wrote {write_results(args.name, result, argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
