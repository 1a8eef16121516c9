"""Stochastic CCA, ridge CCA, PLS and deep CCA with the Eckhart–Young loss after one epoch, against the exact solution.

Chapman, Aguila & Wells 2024 (ICLR), "Efficient algorithms for the CCA family: unconstrained objectives with unbiased
gradients". Sizes are fixed before measuring: k = 4 directions, one epoch through aekit's Trainer in batches of 32
(linear CCA also at 16 and 64), Adam at the learning rates picked on the multiview world (0.02 linear, 0.003 deep),
seeds 0-2, on split digits (left/right 8×4 halves, 1797 rows) and on the multiview world (20 + 20 dims, 2000 rows,
analytic correlations known). PCC = the sum of the canonical correlations of the k learned projections on the
training rows; the ratio divides it by the exact GEP solution's PCC (scipy eigh, same c). Baselines: scikit-learn's
CCA and, when installed (`pip install aekit[bench]`), cca-zoo's CCA and full-batch CCAEY. Writes
benchmarks/results/stochastic_cca.json and stochastic_cca.png.

    python benchmarks/stochastic_cca.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from aekit.analysis.cca import canonical_correlations, cca_study, load_views
from aekit.report.cca_plot import plot_cca

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import RESULTS, write_results  # noqa: E402

K, EPOCHS = 4, 1
# (label, model, c, batch size)
CONFIGS = [("linear CCA", "linear", 0.0, 32), ("linear CCA", "linear", 0.0, 16), ("linear CCA", "linear", 0.0, 64),
           ("ridge CCA c=0.5", "ridge", 0.5, 32), ("PLS (c=1)", "ridge", 1.0, 32), ("deep CCA", "deep", 0.0, 32)]


def _cca_zoo(data: str) -> dict | str:
    """cca-zoo's exact CCA and its full-batch EY solver on the same views, or why they did not run."""
    try:
        import cca_zoo
        from cca_zoo.linear import CCA, CCAEY
    except ImportError as e:
        return f"not installed ({e})"
    x, y, _ = load_views(data)
    out = {"version": getattr(cca_zoo, "__version__", None)}
    for name, cls, kw in (("cca", CCA, {}), ("ccaey_full_batch", CCAEY, {"random_state": 0})):
        start = time.perf_counter()
        zx, zy = cls(n_components=K, **kw).fit((x, y)).transform((x, y))
        out[name] = {"pcc": float(canonical_correlations(zx, zy).sum()), "seconds": time.perf_counter() - start}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the models are tiny: threads only add overhead
    runs, summary, baselines = [], [], {}
    for data in ("digits", "multiview"):
        baselines[data] = {"cca_zoo": _cca_zoo(data)}
        for label, model, c, batch in CONFIGS:
            group = []
            for seed in range(args.seeds):
                start = time.perf_counter()
                r = cca_study(data, model, K, epochs=EPOCHS, batch_size=batch, seed=seed, ridge=c)
                r.update(label=label, seconds=round(time.perf_counter() - start, 3))
                group.append(r)
                print(f"{data} {label} batch {batch} seed {seed}: PCC {r['pcc']:.3f} / exact {r['exact_pcc']:.3f} "
                      f"= {r['pcc_ratio']:.3f}", flush=True)
            runs += group
            ratios = [r["pcc_ratio"] for r in group]
            pccs = [r["pcc"] for r in group]
            summary.append({
                "data": data, "label": label, "model": model, "ridge": c, "batch_size": batch,
                "steps": group[0]["steps"], "lr": group[0]["lr"], "pcc_mean": statistics.fmean(pccs),
                "pcc_std": statistics.pstdev(pccs), "ratio_mean": statistics.fmean(ratios),
                "ratio_min": min(ratios), "ratio_std": statistics.pstdev(ratios),
                "exact_pcc": group[0]["exact_pcc"], "cca_exact_pcc": sum(group[0]["cca_correlations"]),
                "sklearn_pcc": group[0]["sklearn_pcc"]})
        first = next(r for r in runs if r["data"] == data)
        baselines[data].update(exact_cca_pcc=sum(first["cca_correlations"]), sklearn_pcc=first["sklearn_pcc"],
                               exact_correlations=first["cca_correlations"],
                               analytic_correlations=first.get("analytic_correlations"))
    payload = {"paper": "Chapman, Aguila and Wells 2024 (ICLR), Efficient algorithms for the CCA family: "
                        "unconstrained objectives with unbiased gradients",
               "settings": {"k": K, "epochs": EPOCHS, "seeds": args.seeds, "metric": "PCC on the training rows"},
               "summary": summary, "baselines": baselines, "runs": runs}
    path = write_results("stochastic_cca", payload, sys.argv[1:] if argv is None else argv)
    plot_cca(next(r for r in runs if r["data"] == "digits" and r["label"] == "linear CCA" and r["batch_size"] == 32),
             RESULTS / "stochastic_cca.png")
    for s in summary:
        print(f"{s['data']:9s} {s['label']:16s} batch {s['batch_size']:3d} ({s['steps']} steps): PCC "
              f"{s['pcc_mean']:.3f} ± {s['pcc_std']:.3f}, ratio {s['ratio_mean']:.3f} (min {s['ratio_min']:.3f}); "
              f"exact {s['exact_pcc']:.3f}, sklearn CCA {s['sklearn_pcc']:.3f}")
    print(baselines)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
