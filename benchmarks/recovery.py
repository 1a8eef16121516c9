"""Ground-truth recovery of every SAE architecture at matched L0 on synthetic feature worlds.

Study "uncorrelated": 8× superposition (d=64, 512 features), L0 ≈ 10; every architecture in
aekit.nn.bottlenecks.BOTTLENECKS. TopK-style architectures get k = 10; ReLU-L1, Gated and JumpReLU get their
sparsity coefficient calibrated by bisection (short runs) until their L0 lands near 10.
Study "hierarchical": parents with children (a child fires only with its parent, direction at cosine 0.5 to
it); TopK, BatchTopK and Matryoshka at the same k, scored on parents and children separately.
Study "hierarchical_unit_norm": the same world with every sample rescaled to norm 1 (as normalised LM
activations are), which removes the norm-grows-with-L0 effect that batch-level sparsity reacts to.
Study "absorption": the toy setting of the feature-absorption and Matryoshka papers (Chanin et al. 2024;
Nabeshima 2024; Bussmann et al. 2025): orthonormal directions, parents whose children fire only with them and
one at a time (each with probability 0.2), unit magnitudes, as many latents as features; TopK, BatchTopK and
Matryoshka at the same k, 3 seeds, scored on absorption (parent recall when a child fires, absorption rate,
parent decoder cosine) as well as F1 and FVU.

Study "sweep": superposition 2×, 4×, 8×, 16× × firing law (independent, copula-correlated ρ 0.6, Zipf) in
d = 32 at L0 ≈ 6; TopK, BatchTopK, Matryoshka at k = 6 and ReLU-L1 calibrated to it; MCC against ratio plotted.

Prints tables (mean ± std over seeds) and writes benchmarks/results/recovery.json, one entry per study with its
own settings and provenance: a run of some studies replaces those and keeps the others. Plots: recovery.png
(the default studies), recovery_sweep.png (the sweep), recovery_<studies>.png for other selections.

    OMP_NUM_THREADS=1 python benchmarks/recovery.py --threads 1    # the default studies, ~45 min on one core
    OMP_NUM_THREADS=1 python benchmarks/recovery.py --threads 1 --studies sweep
    python benchmarks/recovery.py --quick    # smaller worlds and fewer steps (~5 min), recovery_quick.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from aekit import SAEConfig, SparseAutoencoder
from aekit.data import ArraySource
from aekit.models.evaluate import evaluate_reconstruction
from aekit.nn.bottlenecks import BOTTLENECKS
from aekit.report.plots import plt
from aekit.train import TrainConfig, Trainer
from aekit.worlds import FeatureWorld, FeatureWorldConfig
from aekit.worlds.scoring import absorption_scores, latent_activity, recovery_scores

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import RESULTS, provenance, read_results, write_results  # noqa: E402

DEFAULT_STUDIES = ["uncorrelated", "hierarchical", "hierarchical_unit_norm", "absorption"]
TOPK_STYLE = ("topk", "batchtopk", "matryoshka")
COEFFICIENT = {"relu": "l1_coefficient", "gated": "l1_coefficient", "jumprelu": "l0_coefficient"}
# JumpReLU in normalised units (E||x||² = 1): feature magnitudes here are ~1/sqrt(L0) ≈ 0.3, so the STE
# kernel and the initial threshold are set to 0.01 rather than the tiny library defaults.
JUMPRELU = {"jumprelu_bandwidth": 0.01, "jumprelu_init_threshold": 0.01}


def train_one(world, data, arch, seed, args, l0_target, coefficient=None, steps=None, latents_per_feature=None):
    per = latents_per_feature or args.latents_per_feature
    settings = {"d_in": world.config.d, "n_latents": per * world.config.n_features, "architecture": arch,
                "k": l0_target}
    if arch == "jumprelu":
        settings.update(JUMPRELU)
    if coefficient is not None:
        settings[COEFFICIENT[arch]] = coefficient
    cfg = TrainConfig(steps=steps or args.steps, batch_size=args.batch_size, lr=args.lr, seed=seed,
                      progress=False, checkpoint_every=0, log_every=max(1, (steps or args.steps) // 20))
    model = SparseAutoencoder(SAEConfig(**settings), seed=seed)
    Trainer(model, ArraySource(data, cfg.batch_size, seed=seed), cfg).fit()
    return model


def calibrate(world, data, held_out, arch, seed, args, l0_target):
    """Bisect log(coefficient) on short runs until eval L0 is within 10% of the target."""
    low, high = math.log(1e-5), math.log(10.0)
    best = None
    for _ in range(args.calibration_rounds):
        mid = (low + high) / 2
        model = train_one(world, data, arch, seed, args, l0_target, math.exp(mid), steps=args.calibration_steps)
        l0 = evaluate_reconstruction(model, held_out.x[:5000])["l0"]
        if best is None or abs(l0 - l0_target) < abs(best[1] - l0_target):
            best = (math.exp(mid), l0)
        if abs(l0 - l0_target) <= 0.1 * l0_target:
            break
        low, high = (mid, high) if l0 > l0_target else (low, mid)
    print(f"    calibrated {arch}: {COEFFICIENT[arch]}={best[0]:.3g} (short-run L0 {best[1]:.1f})", flush=True)
    return best[0]


def score(model, world, held_out, groups, absorption=False):
    metrics = evaluate_reconstruction(model, held_out.x)
    active = latent_activity(model, held_out.x)
    row = {key: metrics[key] for key in ("fvu", "l0", "dead_fraction", "shrinkage")}
    for name, ids in groups.items():
        scores = recovery_scores(model, world, held_out, feature_ids=ids, active=active)
        prefix = "" if name == "all" else f"{name}_"
        row[f"{prefix}mcc"], row[f"{prefix}f1"] = scores["mcc"], scores["mean_best_f1"]
    if absorption:  # parent_f1 here is the same best-F1 as above; the rest is what absorption changes
        row.update(absorption_scores(model, world, held_out, active=active))
    return row


def run_study(name, world, archs, args, l0_target, groups, absorption=False, latents_per_feature=None, seeds=None):
    print(f"\n== {name}: d={world.config.d}, {world.config.n_features} features "
          f"({world.superposition:.0f}× superposition), E[L0]={world.expected_l0:.1f}", flush=True)
    rows = []
    for seed in seeds or args.seeds:
        data = world.sample(args.train_rows, seed=100 + seed, with_magnitudes=False).x
        held_out = world.sample(args.eval_rows, seed=200 + seed)
        for arch in archs:
            start = time.perf_counter()
            coefficient = calibrate(world, data, held_out, arch, seed, args, l0_target) if arch in COEFFICIENT else None
            model = train_one(world, data, arch, seed, args, l0_target, coefficient,
                              latents_per_feature=latents_per_feature)
            row = {"study": name, "architecture": arch, "seed": seed, "coefficient": coefficient,
                   **score(model, world, held_out, groups, absorption),
                   "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print("   ", {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    return rows


def summarise(rows, columns):
    table = {}
    for row in rows:
        table.setdefault(row["architecture"], []).append(row)
    lines = ["| architecture | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    summary = {}
    for arch, group in table.items():
        cells, summary[arch] = [], {}
        for col in columns:
            values = [r[col] for r in group]
            mean = statistics.fmean(values)
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[arch][col] = {"mean": mean, "std": spread}
            cells.append(f"{mean:.3f} ± {spread:.3f}" if len(values) > 1 else f"{mean:.3f}")
        lines.append(f"| {arch} | " + " | ".join(cells) + " |")
    return "\n".join(lines), summary


def plot(summaries, path):
    fig, axes = plt.subplots(1, len(summaries), figsize=(6 * len(summaries), 4), squeeze=False)
    for ax, (title, (summary, metrics)) in zip(axes[0], summaries.items(), strict=True):
        archs = list(summary)
        width = 0.8 / len(metrics)
        for i, metric in enumerate(metrics):
            means = [summary[a][metric]["mean"] for a in archs]
            errs = [summary[a][metric]["std"] for a in archs]
            ax.bar([j + i * width for j in range(len(archs))], means, width, yerr=errs, label=metric, capsize=3)
        ax.set_xticks([j + width * (len(metrics) - 1) / 2 for j in range(len(archs))], archs, rotation=20)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def absorption_world(d: int) -> FeatureWorldConfig:
    """The absorption papers' toy world in d dims: d orthonormal features, d/8 parents with 3 exclusive children.

    As in Nabeshima's toy (Matryoshka SAEs): each child fires with probability 0.2 given its parent, so 40% of
    parent firings have no child; unit magnitudes, no noise. The other half of the features fire independently.
    Every root (parent or independent) has the same firing probability; E[L0] = 4 (d/16 + 2 in general).
    """
    return FeatureWorldConfig(d=d, n_features=d, orthogonal=True, n_parents=d // 8, children_per_parent=3,
                              child_probability=0.2, exclusive_children=True, child_parent_cosine=0.0,
                              probability_spread=1.0, mean_active=d / 16, magnitude_std=0.0, noise_std=0.0, seed=0)


SWEEP_LAWS = {  # firing laws of the sweep: name -> FeatureWorldConfig overrides
    "independent": {},
    "correlated": {"correlation": 0.6, "correlation_block": 8},
    "zipf": {"probability_law": "zipf", "zipf_exponent": 1.0},
}
SWEEP_RATIOS = (2, 4, 8, 16)
SWEEP_ARCHS = ("topk", "batchtopk", "matryoshka", "relu")


def run_sweep(args, results, tables, summaries, quick, plot_path):
    """Superposition 2×–16× × firing law (independent, copula-correlated, Zipf) at L0 ≈ 6 in d = 32: MCC, F1, FVU
    per architecture (TopK-style at k = 6, ReLU-L1 calibrated to the same L0), shorter runs than the 8× study."""
    d, l0 = 32, 6
    sweep_args = argparse.Namespace(**{**vars(args), "steps": 600 if quick else 3000})
    archs = [a for a in SWEEP_ARCHS if a in args.archs]
    rows = []
    for law, overrides in SWEEP_LAWS.items():
        for ratio in SWEEP_RATIOS[:2] if quick else SWEEP_RATIOS:
            world = FeatureWorld.with_superposition(ratio, d=d, l0=l0, seed=0, **overrides)
            for row in run_study(f"sweep {law} {ratio}×", world, archs, sweep_args, l0, {"all": None}):
                rows.append({**row, "law": law, "ratio": ratio})
    table = {}
    for row in rows:
        table.setdefault((row["law"], row["ratio"], row["architecture"]), []).append(row)
    lines = ["| law | superposition | architecture | MCC | F1 | FVU | L0 |", "|---|---|---|---|---|---|---|"]
    summary = {}
    for (law, ratio, arch), group in table.items():
        cells = {}
        for col in ("mcc", "f1", "fvu", "l0"):
            values = [r[col] for r in group]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells[col] = {"mean": statistics.fmean(values), "std": spread}
        summary[f"{law} {ratio}x {arch}"] = cells
        lines.append(f"| {law} | {ratio}× | {arch} | " + " | ".join(
            f"{cells[c]['mean']:.3f} ± {cells[c]['std']:.3f}" if len(group) > 1 else f"{cells[c]['mean']:.3f}"
            for c in ("mcc", "f1", "fvu", "l0")) + " |")
    tables["sweep"] = "\n".join(lines)
    results["sweep"] = {"rows": rows, "summary": summary, "d": d, "l0": l0, "steps": sweep_args.steps,
                        "ratios": list(SWEEP_RATIOS[:2] if quick else SWEEP_RATIOS), "laws": list(SWEEP_LAWS),
                        "plot": plot_path.name}
    plot_sweep(summary, archs, plot_path)


def plot_sweep(summary, archs, path):
    """MCC against superposition ratio, one panel per firing law, one line per architecture."""
    fig, axes = plt.subplots(1, len(SWEEP_LAWS), figsize=(5 * len(SWEEP_LAWS), 3.8), squeeze=False)
    for ax, law in zip(axes[0], SWEEP_LAWS, strict=True):
        for arch in archs:
            keys = [(r, f"{law} {r}x {arch}") for r in SWEEP_RATIOS]
            points = [(r, summary[key]["mcc"]) for r, key in keys if key in summary]
            if points:
                ax.errorbar([p[0] for p in points], [p[1]["mean"] for p in points],
                            yerr=[p[1]["std"] for p in points], marker="o", capsize=3, label=arch)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("superposition (features / d)")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{law} firing")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("MCC (decoder vs true directions)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--archs", nargs="+", default=sorted(BOTTLENECKS))
    parser.add_argument("--studies", nargs="+", default=DEFAULT_STUDIES,
                        choices=[*DEFAULT_STUDIES, "sweep"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--name", default=None,
                        help="write benchmarks/results/<name>.json (default recovery; recovery_quick with --quick)")
    args = parser.parse_args(argv)
    name = args.name or ("recovery_quick" if args.quick else "recovery")
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    args.seeds = args.seeds or ([0] if quick else [0, 1])
    args.steps = 1200 if quick else 3000
    args.calibration_steps = 400 if quick else 600
    args.calibration_rounds = 5
    args.batch_size = 1024
    args.lr = 2e-3
    args.latents_per_feature = 2
    args.train_rows = 100_000 if quick else 300_000
    args.eval_rows = 10_000 if quick else 20_000
    d = 32 if quick else 64
    l0 = 10
    results, tables, summaries = {}, {}, {}

    if "uncorrelated" in args.studies:
        world = FeatureWorld.with_superposition(8, d=d, l0=l0, seed=0)
        rows = run_study("uncorrelated", world, args.archs, args, l0, {"all": None})
        tables["uncorrelated"], summary = summarise(rows, ["mcc", "f1", "fvu", "l0", "dead_fraction", "shrinkage"])
        summaries["uncorrelated: 8× superposition, L0≈10"] = (summary, ["mcc", "f1"])
        results["uncorrelated"] = {"rows": rows, "summary": summary}

    for study in ("hierarchical", "hierarchical_unit_norm"):
        if study not in args.studies:
            continue
        n_features = (4 if quick else 8) * d
        config = FeatureWorldConfig(d=d, n_features=n_features, n_parents=n_features // 8,
                                    children_per_parent=4, child_probability=0.5, child_parent_cosine=0.5,
                                    mean_active=6.0, seed=0, unit_norm=study.endswith("unit_norm"))
        world = FeatureWorld(config)
        groups = {"all": None, "parent": world.parent_ids, "child": world.child_ids}
        archs = [a for a in TOPK_STYLE if a in args.archs]
        rows = run_study(study, world, archs, args, 6, groups)
        columns = ["mcc", "f1", "parent_mcc", "parent_f1", "child_mcc", "child_f1", "fvu", "l0"]
        tables[study], summary = summarise(rows, columns)
        summaries[f"{study}: parents/children"] = (summary, ["parent_mcc", "parent_f1", "child_mcc", "child_f1"])
        results[study] = {"rows": rows, "summary": summary}

    if "absorption" in args.studies:
        world = FeatureWorld(absorption_world(d))
        groups = {"parent": world.parent_ids, "child": world.child_ids}
        archs = [a for a in TOPK_STYLE if a in args.archs]
        k = round(world.expected_l0)
        seeds = args.seeds if len(args.seeds) >= 3 else [*args.seeds, *range(max(args.seeds) + 1, 100)][:3]
        rows = run_study("absorption", world, archs, args, k, groups, absorption=True, latents_per_feature=1,
                         seeds=seeds)
        columns = ["parent_f1", "parent_recall_with_child", "absorption_rate", "parent_decoder_cosine", "child_f1",
                   "fvu", "l0"]
        tables["absorption"], summary = summarise(rows, columns)
        summaries["absorption: parents and children"] = (summary, columns[:5])
        results["absorption"] = {"rows": rows, "summary": summary, "world": world.config.to_dict(), "k": k}

    if "sweep" in args.studies:
        run_sweep(args, results, tables, summaries, quick, RESULTS / f"{name}_sweep.png")

    RESULTS.mkdir(parents=True, exist_ok=True)
    plot_name = None
    if summaries:
        studies = [s for s in args.studies if s != "sweep"]
        plot_name = f"{name}.png" if set(studies) == set(DEFAULT_STUDIES) else f"{name}_{'_'.join(studies)}.png"
        plot(summaries, RESULTS / plot_name)
    settings = {k: v for k, v in vars(args).items() if k not in ("studies", "name")}
    origin = provenance(argv)  # one per study: studies are run by separate commands and merged into one file
    for study, entry in results.items():
        entry.update(settings=settings, provenance=origin)
        if plot_name and study != "sweep":
            entry["plot"] = plot_name
    previous = read_results(name) or {}  # a run of some studies updates them and keeps the others' results
    results = {**{k: v for k, v in previous.items() if k in (*DEFAULT_STUDIES, "sweep")}, **results}
    path = write_results(name, results, argv, with_provenance=False)
    for name, table in tables.items():
        print(f"\n### {name}\n{table}")
    if "uncorrelated" in results and "topk" in results["uncorrelated"]["summary"]:
        mcc = results["uncorrelated"]["summary"]["topk"]["mcc"]["mean"]
        verdict = "met" if mcc >= 0.95 else "NOT met"
        print(f"\ntarget: TopK MCC ≥ 0.95 at 8× superposition, L0≈10 -> {mcc:.3f} ({verdict})")
    for study in ("hierarchical", "hierarchical_unit_norm"):
        s = results.get(study, {}).get("summary", {})
        if "matryoshka" in s and "batchtopk" in s:
            m, b = s["matryoshka"]["parent_f1"]["mean"], s["batchtopk"]["parent_f1"]["mean"]
            print(f"target ({study}): Matryoshka beats BatchTopK on parent features (F1) -> {m:.3f} vs {b:.3f} "
                  f"({'met' if m > b else 'NOT met'})")
    s = results.get("absorption", {}).get("summary", {})
    if "matryoshka" in s and "batchtopk" in s:
        m, b = (s[a]["parent_recall_with_child"]["mean"] for a in ("matryoshka", "batchtopk"))
        ma, ba = (s[a]["absorption_rate"]["mean"] for a in ("matryoshka", "batchtopk"))
        print(f"target (absorption): Matryoshka keeps parents that BatchTopK absorbs -> parent recall with a child "
              f"{m:.3f} vs {b:.3f}, absorption rate {ma:.3f} vs {ba:.3f} ({'met' if m > b and ma < ba else 'NOT met'})")
    print(f"\nwrote {path}" + (f" and {plot_name}" if plot_name else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
