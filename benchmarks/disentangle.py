"""Disentanglement study on the procedural 3D Shapes world, every model at the same CPU budget.

Trains AE, β-VAE, QLAE and XFactors (optionally β-TCVAE and VQ-VAE) for the same steps and batch size, 3 seeds
each, scores them on held-out images (InfoM/InfoC/InfoE, MIG, DCI, SAP, PSNR) and checks the targets of the
issue: QLAE above AE and β-VAE on InfoM and on D, XFactors (with labels) at D ≥ 0.9. Runs already finished in
--work are reused, so the study can be stopped and restarted, and models can be added in a later call.

Writes benchmarks/results/disentangle.json (with its provenance), disentangle.md (the table) and
disentangle_traversals/*.png (--name changes the "disentangle" prefix).

    python benchmarks/disentangle.py                                   # ~1 h on 2 shared CPU cores
    python benchmarks/disentangle.py --models ae,betavae,qlae,xfactors,betatcvae,vqvae
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from aekit.commands.disentangle import run_disentangle
from aekit.fileio import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import RESULTS, write_results  # noqa: E402


def targets(summary: dict) -> list[dict]:
    """The issue's targets on the means, each with whether the 95% intervals also separate (`clear`)."""
    checks = []

    def stat(model: str, metric: str) -> tuple[float | None, float]:
        entry = summary.get(model, {}).get(metric, {})
        ci = entry.get("ci95")
        return entry.get("mean"), ci if ci is not None else float("nan")

    for metric in ("infom", "dci_d"):
        for rival in ("ae", "betavae"):
            (q, q_ci), (r, r_ci) = stat("qlae", metric), stat(rival, metric)
            if q is not None and r is not None:
                checks.append({"target": f"qlae {metric} > {rival} {metric}", "qlae": q, rival: r, "met": q > r,
                               "clear": bool(q - q_ci > r + r_ci)})
    d, d_ci = stat("xfactors", "dci_d")
    if d is not None:
        checks.append({"target": "xfactors dci_d >= 0.9", "xfactors": d, "met": d >= 0.9,
                       "clear": bool(d - d_ci >= 0.9)})
    return checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="shapes3d")
    parser.add_argument("--models", default="ae,betavae,qlae,xfactors")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=30_000)
    parser.add_argument("--n-eval", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("runs/disentangle"), help="models and per-run results")
    parser.add_argument("--name", default="disentangle", help="results are written as benchmarks/results/<name>.*")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on 2 shared cores, 2 OpenMP threads made conv training ~6x slower")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = run_disentangle(args.world, models=args.models.split(","), seeds=args.seeds, steps=args.steps,
                              out_dir=args.work, batch_size=args.batch_size, n_eval=args.n_eval,
                              n_train=args.n_train, progress=not args.no_progress)
    results["targets"] = targets(results["summary"])
    table = (args.work / "table.md").read_text()
    lines = [f"- {'met' if c['met'] else 'NOT met'}: {c['target']} "
             f"({', '.join(f'{k} {v:.3f}' for k, v in c.items() if k not in ('target', 'met', 'clear'))}; "
             f"95% intervals {'separate' if c['clear'] else 'overlap or n/a'})"
             for c in results["targets"]]
    report = table + "\nTargets (on the means):\n" + "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_results(args.name, results, argv)
    atomic_write_bytes(RESULTS / f"{args.name}.md", report.encode())
    pictures = RESULTS / f"{args.name}_traversals"
    pictures.mkdir(exist_ok=True)
    for png in sorted((args.work / "traversals").glob("*.png")):
        atomic_write_bytes(pictures / png.name, png.read_bytes())
    print(report)


if __name__ == "__main__":
    main()
