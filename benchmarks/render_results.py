"""Markdown tables of benchmark results, rendered from the JSON files the benchmarks write.

`render(name)` returns one table followed by the line "Measured with `<command>` on <machine>, <date>.", taken
from the file's provenance (benchmarks/results_io.py). The documentation build calls it for every
`<!-- results: NAME -->` line (docs/hooks/results_tables.py), so the docs show what the files say and nothing
else. An unknown name or a missing or malformed file raises `ResultsError`.

Only the standard library is used, so the documentation builds without torch.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BUNDLED_TOY_LM = REPO / "src" / "aekit" / "worlds" / "bundled" / "toy_gpt2"


class ResultsError(Exception):
    """A results table cannot be rendered: unknown name, missing file or a file without the expected fields."""


# Files written before the benchmarks recorded their provenance. Their dates come from the git history
# (`git log --diff-filter=A --format='%h %cs' -- <file>`, following renames for the toy LM), never from a guess.
LEGACY_ORIGIN = {
    "disentangle.json": "added to the repository on 2026-11-26 (commit 0649304)",
    "disentangle_6000steps_1seed.json": "added to the repository on 2026-11-26 (commit 0649304)",
    "eval.json": "added to the repository with the checkpoint on 2026-11-26 (commit a0fba46)",
}


# --- formatting ---------------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; a '|' inside a cell is escaped."""
    def line(cells: list) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"
    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)])


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _mean_spread(entry: dict, digits: int = 3, spread_key: str = "std", n: int | None = None) -> str:
    """'mean ± spread' for a summary entry {mean, std|ci95[, n]} over n runs; the mean alone for a single run."""
    spread = entry.get(spread_key)
    if spread is None or (n if n is not None else entry.get("n", 2)) < 2:
        return _num(entry["mean"], digits)
    return f"{_num(entry['mean'], digits)} ± {_num(spread, digits)}"


def machine_summary(machine: dict | None) -> str:
    """A short description of a `results_io.machine_description()`."""
    if not machine:
        return "a machine not recorded in the file"
    parts = [machine.get("cpu") or "unknown CPU"]
    cores = machine.get("usable_cores") or machine.get("logical_cores")
    if cores:
        parts.append(f"{cores} logical cores")
    if machine.get("ram_gib"):
        parts.append(f"{machine['ram_gib']:.0f} GiB RAM")
    features = set(machine.get("cpu_features") or ())
    units = [label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16")) if flag in features]
    if not units and "avx512f" in features:
        units.append("AVX-512")
    if units:
        parts.append(" + ".join(units))
    if machine.get("gpus"):
        parts.append(", ".join(machine["gpus"]))
    threads = machine.get("torch_threads")
    torch = f"torch {machine.get('torch', '?')}" + (f" with {threads} thread{'s' * (threads != 1)}" if threads else "")
    return ", ".join(parts) + "; " + torch


def provenance_line(provenance: dict | None, legacy: str | None = None) -> str:
    """'Measured with `<command>` on <machine>, <date>.' from a provenance block."""
    if not provenance:
        return legacy or "Provenance not recorded in the file."
    try:
        date = provenance["date_utc"].replace("T", " ")[:16] + " UTC"
        commit = (provenance.get("git") or {}).get("commit")
        at = f" (aekit {provenance.get('aekit_version', '?')}" + (f", commit {commit[:7]})" if commit else ")")
        return f"Measured with `{provenance['command']}` on {machine_summary(provenance.get('machine'))}, {date}{at}."
    except (KeyError, TypeError, AttributeError) as e:
        raise ResultsError(f"provenance block without {e}") from e


# --- renderers: data -> (table, provenance line) ------------------------------------------------------------
def _sae_step(data: dict) -> tuple[str, str]:
    s = data["sizes"]
    versions = data.get("anchor_versions") or {}
    floor_label = (f"dense {data['dtype']} matmul ({s['batch']}×{s['d_in']})·({s['d_in']}×{s['n_latents']})")
    labels = {
        "dense matmul": f"{floor_label} into a reused buffer, the floor",
        "dense matmul, new output": f"{floor_label} into a new output (allocation and page faults included)",
        "SAELens TopK": f"SAELens {versions.get('sae-lens', '')} `TopKTrainingSAE`".replace("  ", " "),
        "SAELens TopK sparse-acts": f"SAELens {versions.get('sae-lens', '')} `TopKTrainingSAE`, "
                                    "`use_sparse_activations=True`".replace("  ", " "),
        "sparsify SparseCoder": f"sparsify {versions.get('eai-sparsify', '')} `SparseCoder` (Triton off)"
                                .replace("  ", " "),
    }
    rows = []
    for row in data["rows"]:
        label = labels.get(row["name"], row["name"])
        if row["kind"] == "aekit" and "no screen" in row["name"]:
            label += " (the float32 product decides)"
        speedup = f"{row['aekit_topk_speedup']:.2f}×" if "aekit_topk_speedup" in row else ""
        rows.append([label, _num(row["ms_per_step"], 1), _num(row["ratio_to_matmul"], 2), speedup])
    for name, error in (data.get("errors") or {}).items():
        rows.append([name, f"failed: {error}", "", ""])
    header = [f"case: d_in {s['d_in']}, {s['n_latents']} latents, k {s['k']}, batch {s['batch']}, {data['device']}, "
              f"{data['threads']} threads, median of {data['repeats']}"
              + (f", {data['dead_fraction']:.0%} of latents dead" if data.get("dead_fraction") else ""),
              "ms/step", "× dense encoder matmul", "aekit TopK is faster by"]
    return _table(header, rows), provenance_line(data.get("provenance"))


RECOVERY_COLUMNS = {
    "uncorrelated": [("mcc", "MCC"), ("f1", "F1"), ("fvu", "FVU"), ("l0", "L0"), ("dead_fraction", "dead"),
                     ("shrinkage", "shrinkage")],
    "hierarchical": [("mcc", "MCC"), ("f1", "F1"), ("parent_mcc", "parent MCC"), ("parent_f1", "parent F1"),
                     ("child_mcc", "child MCC"), ("child_f1", "child F1"), ("fvu", "FVU"), ("l0", "L0")],
    "absorption": [("parent_f1", "parent F1"), ("parent_recall_with_child", "parent recall when a child fires"),
                   ("absorption_rate", "absorption rate"), ("parent_decoder_cosine", "parent decoder cosine"),
                   ("child_f1", "child F1"), ("fvu", "FVU"), ("l0", "L0")],
}
RECOVERY_COLUMNS["hierarchical_unit_norm"] = RECOVERY_COLUMNS["hierarchical"]


def _recovery_study(study: str) -> Callable[[dict], tuple[str, str]]:
    def render(data: dict) -> tuple[str, str]:
        if study not in data:
            raise ResultsError(f"no study '{study}' in the file; run benchmarks/recovery.py --studies {study}")
        entry = data[study]
        columns = RECOVERY_COLUMNS[study]
        n_seeds = len({row["seed"] for row in entry["rows"]})
        rows = [[arch, *(_mean_spread(summary[key], n=n_seeds) for key, _ in columns)]
                for arch, summary in entry["summary"].items()]
        header = [f"architecture (mean ± std over {n_seeds} seeds)" if n_seeds > 1 else "architecture",
                  *(label for _, label in columns)]
        return _table(header, rows), provenance_line(entry.get("provenance"))
    return render


def _recovery_sweep(data: dict) -> tuple[str, str]:
    if "sweep" not in data:
        raise ResultsError("no study 'sweep' in the file; run benchmarks/recovery.py --studies sweep")
    entry = data["sweep"]
    summary, ratios = entry["summary"], entry["ratios"]
    archs = list(dict.fromkeys(row["architecture"] for row in entry["rows"]))
    n_seeds = len({row["seed"] for row in entry["rows"]})
    rows = []
    for law in entry["laws"]:
        for arch in archs:
            cells = [summary.get(f"{law} {r}x {arch}") for r in ratios]
            if not any(cells):
                continue
            label = arch
            if arch not in ("topk", "batchtopk", "matryoshka"):  # calibrated, so its L0 is only near the target
                l0s = [c["l0"]["mean"] for c in cells if c]
                label += f" (L0 {min(l0s):.1f}–{max(l0s):.1f})"
            rows.append([law, label, *(_mean_spread(c["mcc"], n=n_seeds) if c else "–" for c in cells)])
    spread = f"MCC mean ± std over {n_seeds} seeds" if n_seeds > 1 else "MCC"
    header = [f"firing law ({spread}; d {entry['d']}, L0 ≈ {entry['l0']})", "architecture",
              *(f"{r}× superposition" for r in ratios)]
    return _table(header, rows), provenance_line(entry.get("provenance"))


CONCEPT_LABELS = {"topic_word": "topic of the word", "sentiment": "sentiment", "formality": "formality",
                  "tense": "tense", "entity": "entity type", "category": "word category"}


def _concept_recovery(data: dict) -> tuple[str, str]:
    rows_in = data["rows"]
    archs = list(dict.fromkeys(row["architecture"] for row in rows_in))
    concepts = list(rows_in[0]["concepts"])
    rows = []
    for arch in archs:
        mine = [r for r in rows_in if r["architecture"] == arch]
        cells = []
        for c in concepts:
            sae = statistics.fmean(r["concepts"][c]["sae_best_f1"] for r in mine)
            probe = statistics.fmean(r["concepts"][c]["probe_f1"] for r in mine)
            cells.append(f"{sae:.3f} / {probe:.3f} ({sae / probe:.2f})")
        sae = statistics.fmean(r["topic_posterior"]["sae_matched_correlation"] for r in mine)
        probe = statistics.fmean(r["topic_posterior"]["probe_correlation"] for r in mine)
        cells.append(f"{sae:.3f} / {probe:.3f} ({sae / probe:.2f})")
        rows.append([arch, *cells])
    n_seeds = len({r["seed"] for r in rows_in})
    header = [f"SAE ({data['n_latents']} latents on `{data['hook']}`; SAE / probe (ratio), mean of {n_seeds} seeds)",
              *(CONCEPT_LABELS.get(c, c) for c in concepts), "log p(topic | x)"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _cache_throughput(data: dict) -> tuple[str, str]:
    plain = data["plain_forward_tokens_per_s"]
    rows = [["plain forward pass (tokenise + forward to the logits)", f"{plain:,.0f} tokens/s", "1.00"]]
    for key, where in (("cache_last_block", "last block"), ("cache_middle_block", "middle block")):
        c = data[key]
        rows.append([f"`aekit cache` at the {where} (`{c['hook']}`)", f"{c['tokens_per_s']:,.0f} tokens/s",
                     f"{c['ratio_to_plain_forward']:.2f}"])
    rows.append(["SAE training from memory", f"{data['train_rows_per_s_from_memory']:,.0f} rows/s", "1.00"])
    rows.append(["SAE training from the activation store", f"{data['train_rows_per_s_from_store']:,.0f} rows/s",
                 f"{data['train_store_to_memory_ratio']:.2f}"])
    header = [f"measurement (random GPT-2, {data['n_layer']} layers × width {data['width']}, {data['documents']} "
              f"documents, batch {data['batch_size']}, best of {data.get('repeats', '?')})", "throughput",
              "ratio to the reference above"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _store_memory(data: dict) -> tuple[str, str]:
    runs = data["runs"]
    base = runs[0]["peak_rss_mib"]
    rows = [[r["source"], f"{r['multiple']}×", f"{r['rows']:,}", _num(r["store_mib"], 0), _num(r["peak_rss_mib"], 0),
             _num(r["peak_rss_mib"] / base, 2), f"{r['max_resident_rows']:,}"] for r in runs]
    s = data["settings"]
    header = [f"source (d {s['d']}, shuffle buffer {s['buffer_rows']:,} rows, {s['steps']} steps)",
              "data (× buffer)", "rows", "data MiB", "peak RSS MiB", "÷ first row", "most rows held"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _screen_survivors(data: dict) -> tuple[str, str]:
    sv = data["survivors"]
    rows = [
        ["SAE", f"d_in {data['d_in']}, {data['n_latents']} latents, k {data['k']}"],
        ["rows of real activations", f"{data['rows']:,}"],
        ["survivors per row: mean / median / p99 / max",
         f"{sv['mean']:.1f} / {sv['median']:.0f} / {sv['p99']:.0f} / {sv['max']:.0f}"],
        ["rows sent to the float32 path", f"{data['float32_path_fraction']:.1%}"],
        ["error bound held on every entry", "yes" if data["bound_holds"] else "**no**"],
        ["median bound / pre-activation std", f"{data['median_bound']:.3g} / {data['preactivation_std']:.3g}"],
        ["largest gap of the chosen values to the float64 top-k", f"{data['max_selected_value_gap']:.3g}"],
    ]
    return _table(["bfloat16 screen on a trained SAE", "value"], rows), provenance_line(data.get("provenance"))


DISENTANGLE_MODELS = {"ae": "AE", "betavae": "β-VAE", "betatcvae": "β-TCVAE", "qlae": "QLAE", "xfactors": "XFactors",
                      "vqvae": "VQ-VAE"}
DISENTANGLE_METRICS = [("infom", "InfoM", 3), ("infoc", "InfoC", 3), ("infoe", "InfoE", 3), ("mig", "MIG", 3),
                       ("dci_d", "D", 3), ("dci_c", "C", 3), ("dci_i", "I", 3), ("sap", "SAP", 3),
                       ("psnr", "PSNR (dB)", 1)]


def _disentangle(file: str) -> Callable[[dict], tuple[str, str]]:
    def render(data: dict) -> tuple[str, str]:
        s, summary = data["settings"], data["summary"]
        rows = [[DISENTANGLE_MODELS.get(m, m), *(_mean_spread(summary[m][key], digits, "ci95")
                                                 for key, _, digits in DISENTANGLE_METRICS)]
                for m in s["models"] if m in summary]
        n = len(s["seeds"])
        header = [f"model ({s['world']}, {s['steps']} steps × batch {s['batch_size']}"
                  + (f"; mean ± 95% t-interval over {n} seeds)" if n > 1 else ", 1 seed)"),
                  *(label for _, label, _ in DISENTANGLE_METRICS)]
        legacy = (f"Written by `benchmarks/disentangle.py` ({s['world']}, {', '.join(s['models'])}; {n} seed"
                  f"{'s' * (n != 1)}, {s['steps']} steps, batch {s['batch_size']}, {s['n_train']:,} training and "
                  f"{s['n_eval']:,} held-out images); command and machine not recorded in the file; "
                  f"{LEGACY_ORIGIN.get(file, 'date not recorded')}.")
        return _table(header, rows), provenance_line(data.get("provenance"), legacy)
    return render


def _toy_lm_eval(data: dict) -> tuple[str, str]:
    ioi, gt, doc, ind = data["ioi"], data["greater_than"], data["docstring"], data["induction"]
    rows = [
        ["IOI", _num(ioi["accuracy"]),
         f"logit diff IO − S {ioi['logit_diff']:.2f}, answer prob {ioi['answer_prob']:.3f}",
         f"top-1 {ioi['corrupted_accuracy']:.3f}"],
        ["greater-than", f"{_num(gt['accuracy'])} (top token a year > YY)",
         f"prob mass on years > YY {gt['prob_greater']:.3f}",
         f"mass on later years {gt['corrupted_prob_greater']:.3f}"],
        ["docstring", _num(doc["accuracy"]), f"answer prob {doc['answer_prob']:.3f}",
         f"top-1 {doc['corrupted_accuracy']:.3f}"],
        ["induction", _num(ind["accuracy"]), f"answer prob {ind['answer_prob']:.3f}",
         f"top-1 {ind['corrupted_accuracy']:.3f}"],
        ["prose", "", f"held-out loss {data['prose_loss']:.3f} nats/token (uniform: {data['prose_loss_uniform']:.3f})",
         ""],
    ]
    header = [f"family ({data['split']} split, {data['n']} prompts each)", "top-1 accuracy", "more",
              "corrupted prompts"]
    training = data.get("_training") or {}
    trained = ""
    if training:
        trained = (f"; the checkpoint was trained by `aekit world train-lm` ({training.get('steps')} steps, "
                   f"{training.get('threads')} torch thread{'s' * (training.get('threads') != 1)}, torch "
                   f"{training.get('torch')}, {training.get('train_seconds')} s)")
    legacy = (f"Held-out evaluation written by `aekit world train-lm` into the bundled checkpoint's eval.json (seed "
              f"{data.get('seed')}; `aekit world eval-lm` recomputes it){trained}; machine not recorded in the file; "
              f"{LEGACY_ORIGIN['eval.json']}.")
    return _table(header, rows), legacy


def _demo(data: dict) -> tuple[str, str]:
    rec, sp = data["reconstruction"], data["spliced"]
    rows = [
        ["FVU / L0 / dead latents", f"{rec['fvu']:.3f} / {rec['l0']:.1f} / {100 * rec['dead_fraction']:.1f} %"],
        ["CE loss clean → with SAE", f"{sp['ce_clean']:.3f} → {sp['ce_sae']:.3f}"],
        ["CE loss zero-ablated / mean-ablated", f"{sp['ce_zero']:.3f} / {sp['ce_mean']:.3f}"],
        ["**CE loss recovered** (vs zero / vs mean ablation)",
         f"**{sp['ce_recovered_zero']:.3f}** / {sp['ce_recovered_mean']:.3f}"],
        ["KL to the clean model, Δ LM loss", f"{sp['kl_sae']:.3f} nats, {sp['delta_loss']:+.3f}"],
        ["wall time of the whole demo", f"{data['wall_seconds']:.0f} s"],
    ]
    st = data["settings"]
    header = [f"SAE on `{st['hook']}` ({st['sae']}, {st['steps']} steps; {sp['n_tokens']:,} held-out tokens)",
              "value"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _demo_concepts(data: dict) -> tuple[str, str]:
    rows = [[CONCEPT_LABELS.get(name, name), _num(c["sae_best_f1"]), _num(c["probe_f1"]), _num(c["ratio"], 2)]
            for name, c in data["concepts"].items()]
    t = data["topic_posterior"]
    rows.append(["log p(topic | x): matched correlation / probe correlation", _num(t["sae_matched_correlation"]),
                 _num(t["probe_correlation"]), _num(t["ratio"], 2)])
    header = [f"concept ({data['scored_tokens']:,} prose tokens)", "SAE best F1", "probe F1", "SAE / probe"]
    return _table(header, rows), provenance_line(data.get("provenance"))


class Entry(NamedTuple):
    path: Path
    render: Callable[[dict], tuple[str, str]]
    how: str  # the command that writes the file


CIRCUIT_METHODS = {"discrete_codes": "discrete SAE codes", "acdc": "ACDC-style greedy pruning",
                   "attribution_patching": "attribution patching", "hisp": "HISP (mask gradient)",
                   "exhaustive_ablation": "exhaustive head ablation, same prompts",
                   "separation": "diagnostic: positive/negative separation of head outputs"}


def _circuits_auc(data: dict) -> tuple[str, str]:
    tasks = data["tasks"]
    rows = [[label, *(_mean_spread(tasks[t]["auc"][m]) for t in tasks)] for m, label in CIRCUIT_METHODS.items()]
    rows.append(["discrete SAE codes, edges vs path patching",
                 *(_mean_spread(tasks[t]["edge_auc"]) if tasks[t]["edge_auc"]["n"] else "– (no true edge)"
                   for t in tasks)])
    rows.append(["true circuit: heads / edges",
                 *(f"{tasks[t]['truth']['n_heads']} / {tasks[t]['truth']['n_edges']}" for t in tasks)])
    s = data["settings"]
    header = [f"head ROC AUC vs exhaustive patching (mean ± sd, {s['seeds']} seeds × {s['n_prompts']} prompt pairs)",
              *tasks]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _circuits_sensitivity(data: dict) -> tuple[str, str]:
    tasks = data["tasks"]
    rows = []
    for key, label in (("prompts", "prompt pairs"), ("latents", "latents")):
        for n in next(iter(tasks.values()))["sensitivity"][key]:
            rows.append([f"{n} {label}", *(_mean_spread(tasks[t]["sensitivity"][key][n]) for t in tasks)])
    header = [f"discrete-code node AUC (mean ± sd, {data['settings']['sens_seeds']} seeds)", *tasks]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _circuits_time(data: dict) -> tuple[str, str]:
    tasks = data["tasks"]
    methods = [*(m for m in CIRCUIT_METHODS if m != "separation"), "exhaustive_path_patching"]
    labels = {**CIRCUIT_METHODS, "exhaustive_path_patching": "exhaustive path patching, same prompts"}

    def cell(task: dict, method: str) -> str:
        seconds = task["seconds"][method]["mean"]
        return f"{seconds:.3f} s ({seconds / task['seconds']['discrete_codes']['mean']:.2g}×)"

    rows = [[labels[m], *(cell(tasks[t], m) for t in tasks)] for m in methods]
    header = ["method (toy GPT-2, 16 heads; seconds and × the discrete-code time)", *tasks]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _circuits_time_scale(data: dict) -> tuple[str, str]:
    """Seconds per method on the GPT-2-small-shaped model."""
    labels = {**CIRCUIT_METHODS, "exhaustive_path_patching": "exhaustive path patching, same prompts"}
    scale = data["scale"]
    sec = scale["seconds"]
    base = sec["discrete_codes"]
    rows = [[labels.get(m.removesuffix("_estimate"), m) + (f" (estimate from {scale['paths_timed']} of "
             f"{scale['paths']:,} paths)" if m.endswith("_estimate") else ""), f"{v:.1f} s", f"{v / base:.2g}×"]
            for m, v in sec.items()]
    header = [f"method ({scale['model']}, {scale['n_prompts']} prompt pairs)", "seconds", "× discrete codes"]
    return _table(header, rows), provenance_line(data.get("provenance"))



def _embeddings_analysis(data: dict) -> tuple[str, str]:
    """Diffing, correlations, clustering and retrieval against the toy world's planted truths."""
    seeds, docs = data["seeds"], data["documents"]
    diff = data["diffing"]
    rows = [[f"dataset diffing, top 10 by {by} difference", "planted differences named (recall)",
             _mean_spread(diff[by]["recall"], 2), "–"] for by in ("absolute", "relative")]
    rows += [[f"dataset diffing, top 10 by {by} difference", "top-10 latents naming a planted value (precision@10)",
              _mean_spread(diff[by]["precision"], 2), "–"] for by in ("absolute", "relative")]
    bound = data["correlations"]["runs"][0]["ranked_pairs_upper_bound"]
    for pair, ranks in data["correlations"]["ranks"].items():
        rows.append([f"concept correlations: planted pair {pair}",
                     f"NPMI rank among the cross-concept pairs of labelled latents (< {bound:,}), per seed",
                     ", ".join("–" if r is None else str(r) for r in ranks), "–"])
    for axis, entry in data["clustering"].items():
        for against, what in (("ari_axis", f"ARI with {axis}"), ("ari_other", f"ARI with {entry['other_axis']}")):
            rows.append([f"clustering along {axis} (10 examples per value)", what,
                         _mean_spread(entry["sae"][against], 2), _mean_spread(entry["dense"][against], 2)])
    retrieval = data["retrieval"]
    groups: dict[str, list[str]] = {}
    for query in retrieval["per_query"]:
        groups.setdefault(query.split("=")[0], []).append(query)
    for metric, label in (("precision_at_100", "precision@100"), ("ndcg_at_100", "nDCG@100")):
        rows.append([f"property retrieval, all {len(retrieval['per_query'])} properties ({retrieval['examples']} "
                     "examples)", label, _mean_spread(retrieval["mean"]["sae"][metric], 2),
                     _mean_spread(retrieval["mean"]["dense"][metric], 2)])
    for concept, queries in groups.items():
        cells = [_num(statistics.fmean(retrieval["per_query"][q][m]["precision_at_100"]["mean"] for q in queries), 2)
                 for m in ("sae", "dense")]
        rows.append([f"property retrieval, {concept} values", "precision@100", *cells])
    header = [f"study ({docs} documents per corpus, mean ± sd over {seeds} seeds)", "measure", "SAE codes",
              "dense hidden states"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _embeddings_selection(data: dict) -> tuple[str, str]:
    """Selection precision per task family and number of examples; the fine-tuning study."""
    precision = data["selection"]["precision"]
    methods = list(next(iter(precision.values())))
    rows = [[case.replace("/", ", ") + " example(s)", *(_mean_spread(precision[case][m], 2) for m in methods)]
            for case in precision]
    pool = data["selection"]["pool"]
    table = _table([f"target family, examples (pool of {pool['documents']}, {pool['fraction']:.0%} targets; "
                    "budget = the number of targets)", *(m.replace("_", " ") for m in methods)], rows)
    return table, provenance_line(data.get("provenance"))


def _embeddings_finetune(data: dict) -> tuple[str, str]:
    """The fine-tuning study: target-family accuracy after fine-tuning on each method's selection."""
    study = data["selection"]["finetune"]
    settings = study["settings"]
    rows = [["base model (no fine-tuning)", "–", _num(study["base_target_accuracy"], 3)]]
    rows += [[method, _num(entry["precision"], 2), _num(entry["target_accuracy"], 3)]
             for method, entry in study["methods"].items()]
    header = [f"fine-tuning on each selection ({settings['target']}: {settings['n_targets']} of "
              f"{settings['n_candidates']} candidates, {settings['n_examples']} examples, {settings['finetune_steps']} "
              f"steps, seed {settings['seed']})", "selection precision", f"held-out {settings['target']} accuracy"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _embeddings_throughput(data: dict) -> tuple[str, str]:
    t, sae = data["throughput"], data["sae"]
    rows = [["SAE document embeddings (max pooling)", f"{t['sae_docs_per_second']:,.0f}",
             f"{t['active_latents_per_document']:.0f} of {sae['n_latents']}", f"{t['stored_bytes_per_document']:,.0f}"],
            ["dense mean-pooled hidden states", f"{t['dense_docs_per_second']:,.0f}", "–", "–"]]
    header = [f"embedding {t['documents']} toy documents (SAE: TopK, {sae['n_latents']} latents, k {sae['k']}, "
              f"R² {sae['r2']:.3f})", "documents/s", "active latents per document", "stored bytes per document"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _axial_attention(data: dict) -> tuple[str, str]:
    """Full vs axial attention: forward+backward time, RSS growth and attention-weight bytes per image side."""
    by = {(r["side"], r["backend"], r["method"]): r for r in data["rows"]}
    keys = sorted({(side, backend) for side, backend, _ in by})
    rows = []
    for side, backend in keys:
        full, axial = by[(side, backend, "full")], by[(side, backend, "axial")]
        rows.append([f"{side}×{side} ({full['positions']:,} positions), {backend} kernel",
                     f"{full['seconds_min'] * 1e3:.1f}", f"{axial['seconds_min'] * 1e3:.1f}",
                     f"{full['seconds_min'] / axial['seconds_min']:.1f}×",
                     f"{full['peak_rss_growth_mib']:.1f}", f"{axial['peak_rss_growth_mib']:.1f}",
                     f"{full['attention_matrix_mib']:g} / {axial['attention_matrix_mib']:g}"])
    header = [f"image (dim {data['dim']}, {data['heads']} heads, batch {data['batch']}, {data['dtype']}, forward + "
              "backward)", "full ms", "axial ms", "speed-up", "full RSS growth MiB", "axial RSS growth MiB",
              "attention weights MiB, full / axial"]
    return _table(header, rows), provenance_line(data.get("provenance"))

def _low_rank_denoiser(data: dict) -> tuple[str, str]:
    """Trained low-rank denoiser: test error and largest matched principal angle per N/d, data vs random init."""
    random = {s["ratio"]: s for s in data["random_init"]["summary"]}
    rows = [[f"{s['ratio']:g} ({s['n_train']})", _mean_spread({"mean": s["error_mean"], "std": s["error_std"]}, 4),
             f"{s['max_angle_mean']:.1f} (worst {s['max_angle_max']:.1f})",
             _mean_spread({"mean": random[s["ratio"]]["error_mean"], "std": random[s["ratio"]]["error_std"]}, 4),
             f"{random[s['ratio']]['max_angle_mean']:.1f} (worst {random[s['ratio']]['max_angle_max']:.1f})"]
            for s in data["summary"]]
    w = data["world"]
    header = [f"N/d (N), d {w['d']}, K {w['n_components']}, r {w['rank']}, σ {data['sigma']}; optimal error "
              f"{data['optimal_error']:.4f}", f"test error, data init ({data['seeds']} seeds)",
              "largest angle °, data init", "test error, random init", "largest angle °, random init"]
    return _table(header, rows), provenance_line(data.get("provenance"))



def _raster_mapping(data: dict) -> tuple[str, str]:
    """Stacked AE + k-means against PCA + k-means and raw k-means: matched accuracy and kappa over scene seeds."""
    s, n = data["settings"], data["seeds"]
    rows = [[name, f"{m['accuracy']:.3f}", f"{m['accuracy_min']:.3f}", f"{m['kappa']:.3f}",
             "–" if name in ("PCA + k-means", "raw k-means") else f"{m['wins_over_both_baselines']} of {n}"]
            for name, m in data["summary"].items()]
    header = [f"method ({s['size']}×{s['size']} px, {s['n_units']} units, {s['n_bands']} bands; AE "
              f"{s['sizes'].replace(',', ' → ')}; {n} seeds)", "accuracy (mean)", "accuracy (worst seed)",
              "Cohen's kappa (mean)", "seeds above both baselines"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _criticality(data: dict) -> tuple[str, str]:
    """E[z²] of the last layer over the first, at criticality and with C_W scaled off it, per activation."""
    study = data["study"]
    rows = []
    for entry in data["summary"]:
        rows.append([f"{entry['activation']}, C_W × {entry['c_w_scale']:g}", f"{entry['c_b']:.4f}",
                     f"{entry['c_w']:.4f}", f"{entry['ratio_last_first']:.3g} ± {entry['ratio_standard_error']:.2g}",
                     f"{entry['max_relative_deviation']:.1%}", f"{entry['grad_sq_ratio_first_last']:.3g}",
                     f"{entry['max_deviation_from_theory']:.1%}"])
    header = [f"MLP ({study['depth']} layers × {study['width']}, {study['seeds']} seeds, {study['n_examples']} digits)",
              "C_b", "C_W", "E[z²] last / first (± s.e.)", "largest deviation from layer 1",
              "backward signal first / last", "largest deviation from the infinite-width recursion"]
    return _table(header, rows), provenance_line(data.get("provenance"))

def _stochastic_cca(data: dict) -> tuple[str, str]:
    """Stochastic CCA / ridge / PLS / deep CCA with the EY loss after one epoch: PCC and its ratio to the exact GEP."""
    rows = []
    for s in data["summary"]:
        rows.append([s["data"], f"{s['label']}, batch {s['batch_size']} ({s['steps']} steps, lr {s['lr']:g})",
                     f"{s['pcc_mean']:.3f} ± {s['pcc_std']:.3f}", f"{s['ratio_mean']:.3f} (min {s['ratio_min']:.3f})",
                     f"{s['exact_pcc']:.3f}", f"{s['sklearn_pcc']:.3f}"])
    st = data["settings"]
    header = ["data", f"model, one epoch (k {st['k']}, {st['seeds']} seeds)", "PCC (train rows)",
              "PCC / exact", "exact GEP PCC (same c)", "scikit-learn CCA PCC"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _anomaly(data: dict) -> tuple[str, str]:
    """StackVAE-G against window baselines on the time-series world: F1, point-adjusted F1, AUROC, graph AUROC."""
    rows = []
    for s in data["summary"]:
        graph = f"{s['graph_auroc_mean']:.3f} ± {s['graph_auroc_std']:.3f}" if "graph_auroc_mean" in s else "–"
        rows.append([s["method"], f"{s['f1_mean']:.3f} ± {s['f1_std']:.3f}",
                     f"{s['pa_f1_mean']:.3f} ± {s['pa_f1_std']:.3f}", f"{s['auroc_mean']:.3f} ± {s['auroc_std']:.3f}",
                     graph])
    st = data["settings"]
    header = [f"method ({len(st['seeds'])} seeds, {st['channels']} channels, window {st['window']})",
              "F1 (best threshold)", "point-adjusted F1 (inflated)", "AUROC", "graph AUROC"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _vlsae(data: dict) -> tuple[str, str]:
    """VL-SAE against per-modality SAEs on CLIP embeddings: shared latents, pair overlap, purity, retrieval, FVU."""
    def cell(s: dict, key: str) -> str:
        return f"{s[key + '_mean']:.3f} ± {s[key + '_std']:.3f}" if key + "_mean" in s else "–"

    rows = [[s["method"], cell(s, "shared_fraction"), cell(s, "one_modality_fraction"), cell(s, "pair_jaccard"),
             cell(s, "purity_image"), cell(s, "purity_text"), cell(s, "purity_shuffled"), cell(s, "recall_at_1"),
             cell(s, "fvu_image"), cell(s, "fvu_text")] for s in data["summary"]]
    st = data["settings"]
    header = [f"method ({len(st['seeds'])} seeds, {st['latents']} latents, k {st['k']}, {st['steps']} steps)",
              "shared / active latents", "one-modality / active", "pair Jaccard", "purity (images)",
              "purity (captions)", "purity, rows shuffled", "image→caption recall@1", "FVU (images)", "FVU (captions)"]
    return _table(header, rows), provenance_line(data.get("provenance"))


_VISION_NAMES = {"vit": "toy ViT", "clip": "toy CLIP"}


def _toy_vision(data: dict) -> tuple[str, str]:
    """The bundled toy ViT's factor accuracy and toy CLIP's zero-shot accuracy on held-out scenes."""
    rows = []
    for name, measure in (("vit", "factor accuracy"), ("clip", "zero-shot attribute accuracy")):
        result = data["models"][name]
        detail = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in result["test"].items() if k != "mean")
        rows.append([_VISION_NAMES[name], measure, _num(result["test"]["mean"]), _num(result["ood"]["mean"]),
                     detail])
    n = data["models"]["vit"]["n"]
    header = ["model", "measure (mean over factors)", f"held-out test scenes ({n})",
              f"held-out shape-hue pairs ({n})", "per factor, test scenes"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _vision_sae(data: dict) -> tuple[str, str]:
    """SAEs on the toy ViT's and CLIP's residual streams: splicing, factor alignment, OOD detection."""
    st = data["settings"]
    n = len(st["seeds"])
    rows = []
    for name, study in data["studies"].items():
        s = study["summary"]
        spliced = (f"{s['spliced_clean']['mean']:.3f} → {s['spliced_sae']['mean']:.3f} (ablated "
                   f"{s['spliced_mean_ablated']['mean']:.3f}; recovered {_mean_spread(s['spliced_recovered'], n=n)})")
        alignment = f"{_mean_spread(s['latent_f1'], n=n)} / {_mean_spread(s['probe_f1'], n=n)}"
        rows.append([_VISION_NAMES[name], _mean_spread(s["fvu"], n=n), spliced, alignment,
                     _mean_spread(s["auroc_sae_error"], n=n), _mean_spread(s["auroc_sae_rarity"], n=n),
                     _mean_spread(s["auroc_max_softmax"], n=n) if "auroc_max_softmax" in s else "–",
                     _mean_spread(s["auroc_mahalanobis"], n=n) if "auroc_mahalanobis" in s else "–"])
    header = [f"model ({st['hook']}, {st['tokens']} tokens; {st['n_latents']} latents, k {st['k']}; "
              f"{'mean ± sd over ' + str(n) + ' seeds' if n > 1 else '1 seed'})", "FVU", "accuracy clean → SAE spliced",
              "factor F1: best latent / probe", "OOD AUROC: SAE error", "SAE latent rarity", "max softmax",
              "Mahalanobis"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _crate_mae(data: dict) -> tuple[str, str]:
    """CRATE-MAE against an MAE of the same shape: parameters, masked-patch PSNR, per-layer token statistics."""
    st, s = data["settings"], data["summary"]
    mae_parameters = s["MAE"]["parameters"]

    def per_layer(name: str, key: str, digits: int) -> str:
        return " → ".join(f"{entry[key]:.{digits}f}" for entry in s[name]["layers"]["encoder"])

    rows = [[name, f"{s[name]['parameters']:,}", f"{s[name]['parameters'] / mae_parameters:.3f}",
             _mean_spread(s[name]["psnr_held_out"], 2, n=len(st["seeds"])),
             _mean_spread(s[name]["psnr_ood"], 2, n=len(st["seeds"])), per_layer(name, "coding_rate", 1),
             per_layer(name, "zero_fraction", 2), f"{s[name]['train_seconds']:.0f}"]
            for name in ("CRATE-MAE", "MAE")]
    rows.append(["floor: visible-mean fill", "–", "–", _mean_spread(s["floor"]["psnr_held_out"], 2,
                                                                     n=len(st["seeds"])),
                 _mean_spread(s["floor"]["psnr_ood"], 2, n=len(st["seeds"])), "–", "–", "–"])
    header = [f"model (width {st['width']}, depth {st['depth']} + {st['depth']}, {st['heads']} heads, patch "
              f"{st['patch']}, {st['mask_ratio']:.0%} masked; {st['steps']} steps; {len(st['seeds'])} seed(s))",
              "parameters", "× MAE", f"masked-patch PSNR, unseen scenes ({st['n_test']}), dB",
              f"masked-patch PSNR, held-out pairs ({st['n_test']}), dB",
              f"coding rate R(Z) per encoder layer (ε = {st['epsilon']})", "zero fraction per encoder layer",
              "training s"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _psvae(data: dict) -> tuple[str, str]:
    """PS-VAE, the pixel-only VAE and the teacher: held-out linear-probe accuracy per factor, PSNR, feature cosine."""
    st = data["settings"]
    factors = list(data["summary"][0]["per_factor"])
    rows = []
    for s in data["summary"]:
        rows.append([s["method"], _mean_spread(s["probe_mean"]), *(_num(s["per_factor"][f]["mean"]) for f in factors),
                     _mean_spread(s["psnr"], 2) if "psnr" in s else "–",
                     _mean_spread(s["feature_cosine"]) if "feature_cosine" in s else "–"])
    header = [f"representation ({len(st['seeds'])} seeds, {st['steps']} steps, {st['n_latents']} latents, "
              f"w_sem {st['semantic_weight']:g})", "probe accuracy (mean of factors)", *factors,
              "PSNR (dB, held out)", "cosine to the teacher's features"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _lvrae(data: dict) -> tuple[str, str]:
    """Plain vs noise-trained decoder: held-out PSNR per relative latent-noise level, the drop at the stated σ."""
    st = data["settings"]
    plain_drop = data["summary"][0]["drop_mean"]
    rows = []
    for s in data["summary"]:
        cells = [f"{m:.2f} ± {d:.2f}" for m, d in zip(s["psnr_mean"], s["psnr_std"], strict=True)]
        rows.append([s["model"], *cells, f"{s['drop_mean']:.2f} ± {s['drop_std']:.2f}",
                     f"{s['drop_mean'] / plain_drop:.2f}"])
    header = [f"decoder ({len(st['seeds'])} seeds, {st['steps']} steps, {st['n_latents']} latents)",
              *(f"PSNR at σ {sigma:g}" for sigma in st["sigmas"]), f"drop at σ {st['stated_sigma']:g} (dB)",
              "drop / plain drop"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _video_vae(data: dict) -> tuple[str, str]:
    """The causal video VAE against codecs that need no training: values per clip, PSNR overall and per frame
    position, causality."""
    st, c = data["settings"], data["compression"]
    rows = []
    for s in data["summary"]:
        causal = "–" if "causal" not in s else ("yes (eval and train)" if s["causal"] else "NO")
        psnr = _mean_spread({"mean": s["psnr_mean"], "std": s["psnr_std"]}, 2, n=s["seeds"])
        rows.append([s["method"], f"{s['values_per_clip']:,}", psnr,
                     *(_num(v, 2) for v in s["positions"].values()), causal])
    positions = list(data["summary"][0]["positions"])
    header = [f"method ({c['frames']} frames → {c['latent_frames']} latent frames, {c['spatial']}× fewer sites per "
              f"frame; {len(st['seeds'])} seed(s), {st['steps']} steps)", "values per clip (clip: "
              f"{c['pixel_values']:,})", "PSNR, all frames (dB)",
              *(f"PSNR {p}{' (alone)' if p == 'frame 0' else ''}" for p in positions),
              "past latents bit-identical under a changed future"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _cktgen(data: dict) -> tuple[str, str]:
    """CktGen against baselines on the analogue-circuit world: validity, novelty, uniqueness, Spec-Acc."""
    def cell(s: dict, key: str) -> str:
        return f"{s[key + '_mean']:.3f} ± {s[key + '_std']:.3f}" if key + "_mean" in s else "–"

    rows = [[s["method"], cell(s, "validity"), cell(s, "novelty"), cell(s, "uniqueness"), cell(s, "spec_acc"),
             cell(s, "novel_spec_acc")] for s in data["summary"]]
    st = data["settings"]
    header = [f"method ({len(st['seeds'])} seeds, {st['targets']} targets × {st['samples']} designs, {st['steps']} "
              "steps)", "validity", "novelty (of valid)", "uniqueness (of valid)",
              f"Spec-Acc (±{st['tolerance']:.0%})", "valid, novel and within tolerance"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _ddmi(data: dict) -> tuple[str, str]:
    """DDMI sample quality on the scene world under the toy ViT: each generator, the autoencoder ceiling and the
    real-vs-real floor."""
    st, sc = data["settings"], data["scenes"]
    rows = [[name, _num(s["coverage"]), _num(s["entropy"], 2), _num(s["held_out_share"]), _num(s["confidence"]),
             _num(s["frechet"], 1)] for name, s in sc["samples"].items()]
    header = [f"images ({st['n_eval']} each; D2C-VAE {st['steps']} steps, diffusion {st['diffusion_steps']} steps, "
              f"seed {st['seed']})", "coverage of the 40 (shape, hue) classes", "entropy of predicted classes (nats)",
              "share in held-out pairs", "ViT confidence", "Fréchet distance to real test scenes (ViT CLS)"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _epg(data: dict) -> tuple[str, str]:
    """EPG: FD of samples along stage 2 for the from-scratch and the pre-trained encoder, steps to the threshold,
    and the real-scene references."""
    st, pre = data["settings"], data["pretraining"]
    steps = [p["step"] for p in next(iter(data["runs"].values()))["curve"]]
    rows = []
    for name, run in data["runs"].items():
        stage1 = f"{pre['steps']} ({pre['seconds']:.0f} s)" if name.startswith("EPG") else "0"  # the pre-trained run
        reached = "not reached" if run["steps_to_threshold"] is None else \
            f"{run['steps_to_threshold']} (total {run['total_steps_to_threshold']})"
        rows.append([name, stage1, *(_num(p["frechet"], 1) for p in run["curve"]), reached,
                     f"{run['train_seconds']:.0f}"])
    blank = ["–"] * (len(steps) + 2)
    rows.append([f"real test scenes, second draw (floor, {st['n_samples']} images)", "–",
                 _num(data["floor_frechet"], 1), *blank[1:]])
    rows.append(["real test scenes at quarter resolution", "–", _num(data["quarter_resolution_frechet"], 1),
                 *blank[1:]])
    header = [f"stage-2 start ({st['n_samples']} DDIM samples vs {st['n_eval']} test scenes, toy-ViT CLS FD; seed "
              f"{st['seed']})", "stage-1 steps", *(f"FD at step {s}" for s in steps),
              f"stage-2 steps to FD ≤ {data['threshold']:g}", "stage-2 seconds"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _ddmi_reconstruction(data: dict) -> tuple[str, str]:
    """D2C-VAE reconstruction PSNR at the training resolution and at 2×, against a pixel grid's references."""
    st, rows = data["settings"], []
    for world, steps, target in (("scenes", st["steps"], "64×64 render"), ("sdf", st["sdf_steps"], "exact field")):
        r = data[world]["reconstruction"]
        sign = (f"{r['sign_accuracy_2x']:.3f} / {r['bilinear_sign_accuracy_2x']:.3f}"
                if "sign_accuracy_2x" in r else "–")
        rows.append([f"{world} ({steps} steps; 2× vs the {target})", _num(r["psnr_1x"], 2), _num(r["psnr_2x"], 2),
                     _num(r["psnr_1x"] - r["psnr_2x"], 2), _num(r["mean_image_psnr_1x"], 2),
                     _num(r["bilinear_psnr_2x"], 2), sign])
    header = [f"world ({st['n_train']} training, {st['n_eval']} held-out signals, seed {st['seed']})",
              "D2C-VAE PSNR 1× (dB)", "D2C-VAE PSNR 2× (dB)", "drop 1× → 2× (dB)", "mean image 1× (dB)",
              "bilinear upsampling of the true input, 2× (dB)", "sign accuracy 2× (D2C-VAE / bilinear)"]
    return _table(header, rows), provenance_line(data.get("provenance"))


def _r(file: str) -> Path:
    return RESULTS / file


NAMES: dict[str, Entry] = {
    "sae_step": Entry(_r("sae_step.json"), _sae_step, "python benchmarks/sae_step.py"),
    "sae_step_dead_latents": Entry(_r("sae_step_dead.json"), _sae_step,
                                   "python benchmarks/sae_step.py --arch topk --arch batchtopk --arch matryoshka "
                                   "--no-anchors --dead-fraction 0.1 --repeats 5 --name sae_step_dead"),
    **{f"recovery_{study}": Entry(_r("recovery.json"), _recovery_study(study),
                                  "python benchmarks/recovery.py --studies " + study)
       for study in ("uncorrelated", "absorption", "hierarchical", "hierarchical_unit_norm")},
    "recovery_sweep": Entry(_r("recovery.json"), _recovery_sweep, "python benchmarks/recovery.py --studies sweep"),
    "concept_recovery": Entry(_r("concept_recovery.json"), _concept_recovery,
                              "python benchmarks/concept_recovery.py --seeds 0 1 --steps 1500"),
    "cache_throughput": Entry(_r("cache_throughput.json"), _cache_throughput, "python benchmarks/cache_throughput.py"),
    "store_memory": Entry(_r("store_memory.json"), _store_memory, "python benchmarks/store_memory.py"),
    "screen_survivors": Entry(_r("screen_survivors.json"), _screen_survivors,
                              "python benchmarks/screen_survivors.py --model runs/speed/demo-out/run/model "
                              "--store runs/speed/demo-out/store"),
    "disentangle": Entry(_r("disentangle.json"), _disentangle("disentangle.json"),
                         "python benchmarks/disentangle.py --models ae,betavae,qlae,xfactors,betatcvae,vqvae "
                         "--steps 2000"),
    "disentangle_long": Entry(_r("disentangle_6000steps_1seed.json"), _disentangle("disentangle_6000steps_1seed.json"),
                              "python benchmarks/disentangle.py --models xfactors,qlae,ae,betavae --seeds 1 "
                              "--steps 6000 --n-eval 5000 --name disentangle_6000steps_1seed"),
    "toy_lm_eval": Entry(BUNDLED_TOY_LM / "eval.json", _toy_lm_eval, "aekit world train-lm / aekit world eval-lm"),
    "demo": Entry(_r("demo.json"), _demo, "python benchmarks/demo.py"),
    "demo_concepts": Entry(_r("demo.json"), _demo_concepts, "python benchmarks/demo.py"),
    **{name: Entry(_r("circuits.json"), render, "python benchmarks/circuits.py")
       for name, render in (("circuits_auc", _circuits_auc), ("circuits_sensitivity", _circuits_sensitivity),
                            ("circuits_time", _circuits_time), ("circuits_time_scale", _circuits_time_scale))},
    **{name: Entry(_r("embeddings.json"), render, "python benchmarks/embeddings.py")
       for name, render in (("embeddings_analysis", _embeddings_analysis),
                            ("embeddings_selection", _embeddings_selection),
                            ("embeddings_finetune", _embeddings_finetune),
                            ("embeddings_throughput", _embeddings_throughput))},
    "criticality": Entry(_r("criticality.json"), _criticality, "python benchmarks/criticality.py"),
    "axial_attention": Entry(_r("axial_attention.json"), _axial_attention,
                             "OMP_NUM_THREADS=1 python benchmarks/axial_attention.py --repeats 10"),
    "low_rank_denoiser": Entry(_r("low_rank_denoiser.json"), _low_rank_denoiser,
                               "python benchmarks/low_rank_denoiser.py"),
    "stochastic_cca": Entry(_r("stochastic_cca.json"), _stochastic_cca, "python benchmarks/stochastic_cca.py"),
    "raster_mapping": Entry(_r("raster_mapping.json"), _raster_mapping, "python benchmarks/raster_mapping.py"),
    "anomaly": Entry(_r("anomaly.json"), _anomaly, "python benchmarks/anomaly.py"),
    "psvae": Entry(_r("psvae.json"), _psvae, "python benchmarks/psvae.py"),
    "lvrae": Entry(_r("lvrae.json"), _lvrae, "python benchmarks/lvrae.py"),
    "cktgen": Entry(_r("cktgen.json"), _cktgen, "python benchmarks/cktgen.py"),
    "video_vae": Entry(_r("video_vae.json"), _video_vae, "python benchmarks/video_vae.py"),
    "ddmi": Entry(_r("ddmi.json"), _ddmi, "python benchmarks/ddmi.py"),
    "ddmi_reconstruction": Entry(_r("ddmi.json"), _ddmi_reconstruction, "python benchmarks/ddmi.py"),
    "epg": Entry(_r("epg.json"), _epg, "python benchmarks/epg.py"),
    "crate_mae": Entry(_r("crate_mae.json"), _crate_mae, "python benchmarks/crate_mae.py"),
    "vlsae": Entry(_r("vlsae.json"), _vlsae, "python benchmarks/vlsae.py"),
    "toy_vision": Entry(_r("vision_sae.json"), _toy_vision, "python benchmarks/vision_sae.py"),
    "vision_sae": Entry(_r("vision_sae.json"), _vision_sae, "python benchmarks/vision_sae.py"),
}


def load(name: str, results_dir: Path | None = None) -> dict:
    """The parsed results file behind `name` (from `results_dir` instead of benchmarks/results/ when given)."""
    if name not in NAMES:
        raise ResultsError(f"unknown results table '{name}'; known: {', '.join(sorted(NAMES))}")
    entry = NAMES[name]
    path = entry.path if results_dir is None or entry.path.parent != RESULTS else Path(results_dir) / entry.path.name
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{_shown(path)}: missing; write it with `{entry.how}` and commit it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{_shown(path)}: not a readable JSON results file ({e})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{_shown(path)}: expected a JSON object")
    if name == "toy_lm_eval":  # its training record sits next to it
        training = path.parent / "training.json"
        if training.is_file():
            data["_training"] = json.loads(training.read_text())
    return data


def render(name: str, results_dir: Path | None = None) -> str:
    """The Markdown table `name` and its 'Measured with ...' line."""
    data = load(name, results_dir)
    try:
        table, line = NAMES[name].render(data)
    except ResultsError as e:
        raise ResultsError(f"results table '{name}' ({_shown(NAMES[name].path)}): {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, AttributeError) as e:
        raise ResultsError(f"results table '{name}': {_shown(NAMES[name].path)} lacks or mangles a field "
                           f"({type(e).__name__}: {e}); re-run `{NAMES[name].how}`") from None
    return f"{table}\n\n{line}"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":  # print every table whose file exists: python benchmarks/render_results.py
    for table_name in NAMES:
        try:
            print(f"## {table_name}\n\n{render(table_name)}\n")
        except ResultsError as error:
            print(f"## {table_name}\n\n({error})\n")
