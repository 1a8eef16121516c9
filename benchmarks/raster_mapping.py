"""Stacked autoencoder + k-means mapping of a multispectral raster, against PCA + k-means and raw k-means.

Sizes and settings are fixed before measuring: a 96×96 scene of 5 units over 12 bands (the world's defaults:
border mixing τ 1.5 px, warp 6 px, illumination ±20 %, noise σ 0.02, 5 labelled pixels per unit), scene seeds 0–4;
the stacked autoencoder is 12 → 32 → 16 → 4 (1500 Trainer steps per pretrained layer, 3000 fine-tuning steps,
batch 256, Adam lr 0.003), PCA keeps 4 components, k-means uses K = 5 and 10 restarts. Reports Hungarian-matched
accuracy and Cohen's kappa per method and seed, and their means. Writes benchmarks/results/raster_mapping.json and
raster_mapping.png (the maps of the first seed).

    python benchmarks/raster_mapping.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from aekit.analysis.raster_mapping import METHODS, mapping_study
from aekit.report.raster_plot import plot_maps
from aekit.worlds.raster import RasterWorldConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import RESULTS, write_results  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the networks are tiny: threads only add overhead
    runs, first = [], None
    for seed in range(args.seeds):
        print(f"seed {seed}", flush=True)
        study = mapping_study(RasterWorldConfig(seed=seed), progress=lambda line: print("  " + line, flush=True))
        first = first or study
        runs.append({"seed": seed, "methods": study["methods"]})
    summary = {name: {stat: round(statistics.mean(r["methods"][name][stat] for r in runs), 4)
                      for stat in ("accuracy", "kappa")}
               | {"accuracy_min": round(min(r["methods"][name]["accuracy"] for r in runs), 4),
                  "wins_over_both_baselines": sum(
                      r["methods"][name]["accuracy"] > max(r["methods"]["PCA + k-means"]["accuracy"],
                                                           r["methods"]["raw k-means"]["accuracy"]) for r in runs)}
               for name in METHODS}
    settings = {key: value for key, value in first["settings"].items() if key != "seed"}
    payload = {"method": "Stacked autoencoder (greedy layer-wise pretraining, end-to-end fine-tuning) codes → "
                         "k-means", "settings": settings, "seeds": args.seeds, "summary": summary, "runs": runs}
    path = write_results("raster_mapping", payload, sys.argv[1:] if argv is None else argv)
    plot_maps(first["maps"], first["settings"]["n_units"], RESULTS / "raster_mapping.png", first["methods"])
    for name, s in summary.items():
        print(f"{name}: accuracy {s['accuracy']:.3f} (min {s['accuracy_min']:.3f}), kappa {s['kappa']:.3f}, "
              f"beats both baselines on {s['wins_over_both_baselines']} of {args.seeds} seeds")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
