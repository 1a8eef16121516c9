"""Criticality at initialisation (Roberts, Yaida and Hanin 2022) measured on deep MLPs and real data.

For ReLU, tanh, GELU and linear MLPs of `--depth` nn.Linear layers of width `--width`, initialised by
`aekit.nn.init.critical_` at C_W × 0.8, × 1 (critical) and × 1.25, the mean squared preactivation E[z²] and the
backward signal E[(∂L/∂z)²] (L = sum of the outputs) of every layer are measured on the first `--examples`
standardised scikit-learn digits and averaged over `--seeds` networks. Reported per activation and scale: E[z²]
last/first, the largest relative deviation of any layer from layer 1, the standard error of last/first over seeds
(one network's E[z²] wanders with a log-variance that grows like depth/width, so flatness within a few per cent
needs many seeds), the backward signal's first/last ratio and the largest deviation from the infinite-width kernel
recursion started at the measured layer 1. Writes benchmarks/results/criticality.json and criticality.png.

    python benchmarks/criticality.py [--seeds 200] [--examples 256] [--depth 24] [--width 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from aekit.analysis.criticality import criticality_study, digits
from aekit.nn.init import ACTIVATIONS
from aekit.report.criticality_plot import plot_criticality

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import RESULTS, write_results  # noqa: E402

SCALES = (0.8, 1.0, 1.25)


def summarise(study: dict) -> list[dict]:
    rows = []
    for name, result in study["activations"].items():
        for run in result["runs"].values():
            spread = run["per_seed_std_ratio"]
            rows.append({
                "activation": name, "c_w_scale": run["c_w_scale"], "c_b": run["c_b"], "c_w": run["c_w"],
                "ratio_last_first": run["ratio_last_first"],
                "ratio_standard_error": None if spread is None else spread / math.sqrt(study["seeds"]),
                "max_relative_deviation": run["max_relative_deviation"],
                "grad_sq_ratio_first_last": run["grad_sq_ratio_first_last"],
                "max_deviation_from_theory": run["max_deviation_from_theory"],
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="networks per activation and scale; default: 200")
    parser.add_argument("--examples", type=int, default=256, help="digits in the batch; default: 256")
    parser.add_argument("--depth", type=int, default=24, help="nn.Linear layers; default: 24")
    parser.add_argument("--width", type=int, default=256, help="units per layer; default: 256")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; default: 1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    study = criticality_study(ACTIVATIONS, depth=args.depth, width=args.width, seeds=args.seeds, scales=SCALES,
                              x=digits(args.examples))
    seconds = time.perf_counter() - started
    rows = summarise(study)
    png = RESULTS / "criticality.png"
    plot_criticality(study, png)
    path = write_results("criticality", {"summary": rows, "study": study, "seconds": round(seconds, 1),
                                         "data": "scikit-learn digits, standardised per pixel", "png": png.name})
    print(f"{'activation':<8} {'scale':>5} {'last/first':>11} {'± s.e.':>8} {'max dev':>8} {'grad² 1/L':>10} "
          f"{'vs theory':>9}")
    for r in rows:
        se = r["ratio_standard_error"]
        print(f"{r['activation']:<8} {r['c_w_scale']:>5g} {r['ratio_last_first']:>11.4g} "
              f"{(se if se is not None else float('nan')):>8.3g} {r['max_relative_deviation']:>8.3g} "
              f"{r['grad_sq_ratio_first_last']:>10.4g} {r['max_deviation_from_theory']:>9.3g}")
    print(f"{seconds:.0f} s; wrote {path} and {png}")


if __name__ == "__main__":
    main()
