"""Low-rank denoisers learn subspaces: generalisation against training-set size on a mixture of low-rank Gaussians.

Wang et al. 2024, "Diffusion models learn low-dimensional distributions via subspace clustering". Sizes are fixed
before measuring: d = 64, K = 2 subspaces of rank r = 4, σ = 0.1, N/d from 1/16 to 8, 3 seeds each, 1000 Trainer
steps per run. Reports the normalised test error of the trained `LowRankDenoiser` on 4000 fresh samples, the
optimal denoiser's error on the same samples (the floor) and the largest matched principal angle to the true
subspaces, with data seeding (default) and with random initial bases. Writes
benchmarks/results/low_rank_denoiser.json and low_rank_denoiser.png.

    python benchmarks/low_rank_denoiser.py [--seeds 3] [--steps 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aekit.analysis.low_rank import DEFAULT_RATIOS, denoiser_study
from aekit.report.low_rank_plot import plot_denoiser_study

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import RESULTS, write_results  # noqa: E402

D, K, R, SIGMA = 64, 2, 4, 0.1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the model is tiny: threads only add overhead
    studies = {}
    for init in ("data", "random"):
        print(f"init: {init}", flush=True)
        studies[init] = denoiser_study(D, K, R, SIGMA, DEFAULT_RATIOS, args.seeds, steps=args.steps, init=init,
                                       progress=lambda line: print("  " + line, flush=True))
    main_study = studies["data"]
    payload = {"paper": "Wang et al. 2024, Diffusion models learn low-dimensional distributions via subspace "
                        "clustering", **main_study,
               "random_init": {"summary": studies["random"]["summary"], "runs": studies["random"]["runs"]}}
    path = write_results("low_rank_denoiser", payload, sys.argv[1:] if argv is None else argv)
    plot_denoiser_study(main_study, RESULTS / "low_rank_denoiser.png")
    print(f"optimal error {main_study['optimal_error']:.4f}")
    for init, study in studies.items():
        for s in study["summary"]:
            print(f"{init}: N/d {s['ratio']:g}: error {s['error_mean']:.4f} ± {s['error_std']:.4f} "
                  f"(max {s['error_max']:.4f}), angle {s['max_angle_mean']:.1f}° (worst {s['max_angle_max']:.1f}°)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
