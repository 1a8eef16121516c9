"""Data analysis with SAE document embeddings on the toy language, scored against planted truths.

One TopK SAE is trained on the bundled toy GPT-2's residual stream (prose tokens), every corpus is embedded by
max-pooled codes, and each tool is scored against what the toy world planted (seeds × studies):

- dataset diffing (`diff_corpora`): of the concept values whose document frequency really differs between the two
  corpora, the fraction named by a latent in the top 10 (recall) and the fraction of the top 10 latents that name a
  planted value (precision@10), by absolute and by relative difference;
- concept correlations (`coupled_documents` in a world whose concepts are otherwise independent): the NPMI rank of
  the planted pairs among cross-concept latent pairs;
- clustering along an axis (`two_axis_documents`): ARI with the chosen axis and with the other one, SAE latents
  chosen from 10 example documents per side vs k-means on dense mean-pooled hidden states;
- property retrieval: precision@100 and nDCG@100 from 5 example documents per property, SAE vs dense cosine;
- data selection (`selection_pool`): selection precision of SAE generalised Jaccard, cosine on hidden states, BM25
  and random for each task family with 1 and 5 examples; and the fine-tuning study (a base model without the
  target family fine-tuned on each selection), unless --no-finetune.

Latent labels come from a separate labelling corpus in which the concepts are independent. Writes
benchmarks/results/embeddings.json and embeddings.png (embeddings_quick.* with --quick).

    python benchmarks/embeddings.py [--seeds 5] [--quick] [--no-finetune]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit import SparseCoder
from aekit.analysis.concept_recovery import concept_activations
from aekit.analysis.embeddings import (
    cluster_along_axis,
    cluster_dense,
    concept_labels,
    cosine_scores,
    dense_embeddings,
    dense_rank,
    diff_latents,
    jaccard_scores,
    npmi_matrix,
    pair_rank,
    query_latents,
    rank_documents,
    sae_embeddings,
    same_concept_mask,
    select,
    selection_study,
    top_pairs,
    value_axis_latents,
)
from aekit.analysis.embeddings.selection import bm25_scores, random_scores
from aekit.data.lm import load_lm
from aekit.metrics.retrieval import ndcg_at_k, precision_at_k
from aekit.metrics.selection import selection_precision
from aekit.seeding import derive_seed
from aekit.worlds.language import TASK_FAMILIES, LanguageConfig, LanguageWorld, task_document
from aekit.worlds.language.corpora import (
    concept_values,
    coupled_documents,
    diff_corpora,
    document_concepts,
    selection_pool,
    two_axis_documents,
    value_name,
)
from aekit.worlds.toy_lm import ToyLMConfig, bundled_toy_lm_path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks' shared modules
from results_io import write_results  # noqa: E402

HOOK = "blocks.1.hook_resid_post"
TOP = 10


def _summary(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(finite)), "std": float(np.std(finite)), "n": len(finite)}


class Setup:
    """The model, the SAE and the latent labels shared by every study."""

    def __init__(self, args):
        self.model, self.tokenizer = load_lm(bundled_toy_lm_path(), progress=False)
        self.world = LanguageWorld(LanguageConfig(seed=ToyLMConfig().world_seed))
        start = time.perf_counter()
        data = concept_activations(self.model, self.tokenizer, HOOK, self.world, args.sae_documents, seed=9001)
        coder = SparseCoder(n_latents=args.n_latents, architecture="topk", k=args.k, steps=args.sae_steps,
                            random_state=0).fit(data.activations)
        self.sae = coder.model_.eval()
        self.sae_record = {"n_latents": args.n_latents, "k": args.k, "steps": args.sae_steps, "hook": HOOK,
                           "training_documents": args.sae_documents, "training_tokens": len(data.activations),
                           "r2": float(coder.score(data.activations)), "seconds": time.perf_counter() - start}
        labelling = two_axis_documents(self.world, args.label_documents, seed=123)
        fires = self.embed(labelling).fires()
        self.labels = [lab.label for lab in concept_labels(fires, document_concepts(labelling),
                                                           lambda c, v: value_name(self.world, c, v))]
        self.sae_record["labelled_latents"] = sum(lab is not None for lab in self.labels)
        print(f"SAE: {self.sae_record}", flush=True)

    def embed(self, docs, **kw):
        return sae_embeddings(self.sae, self.model, self.tokenizer, HOOK, [d.text for d in docs], progress=False, **kw)

    def dense(self, docs):
        return dense_embeddings(self.model, self.tokenizer, HOOK, [d.text for d in docs], progress=False)


def throughput(setup: Setup, n: int) -> dict[str, Any]:
    docs = setup.world.documents(n, seed=77)
    emb = setup.embed(docs)
    start = time.perf_counter()
    setup.dense(docs)
    dense_seconds = time.perf_counter() - start
    return {"documents": n, "sae_docs_per_second": emb.docs_per_second, "dense_docs_per_second": n / dense_seconds,
            "active_latents_per_document": emb.matrix.nnz / n, "stored_bytes_per_document":
                (emb.matrix.data.nbytes + emb.matrix.indices.nbytes) / n}


def diffing_study(setup: Setup, n: int, seed: int) -> dict[str, Any]:
    pair = diff_corpora(setup.world, n, seed=seed)
    a, b = setup.embed(pair.a), setup.embed(pair.b)
    planted = {value_name(setup.world, c, v) for c, v in pair.planted}
    out: dict[str, Any] = {"planted": sorted(planted)}
    for by in ("absolute", "relative"):
        top = diff_latents(a, b, by=by, top=TOP, labels=setup.labels)
        named = [d.label for d in top]
        out[by] = {"recall": len(planted & set(named)) / len(planted),
                   "precision": float(np.mean([lab in planted for lab in named])),
                   "top": [{"latent": d.latent, "label": d.label, "absolute": d.absolute} for d in top]}
    return out


def correlation_study(setup: Setup, n: int, seed: int) -> dict[str, Any]:
    # Couplings are planted in a world whose concepts are otherwise independent: there the planted pairs are the
    # only true cross-concept correlations (the toy world's own topic → formality/sentiment rates would be others).
    independent = LanguageWorld(replace(setup.world.config, dependency_strength=0.0))
    docs, planted = coupled_documents(independent, n, seed=seed)
    fires = setup.embed(docs).fires()
    npmi = npmi_matrix(fires, min_count=5)
    names = [(value_name(setup.world, *a), value_name(setup.world, *b)) for a, b in planted]
    ranks = {f"{x} & {y}": pair_rank(npmi, setup.labels, x, y) for x, y in names}
    labelled = np.array([lab is not None for lab in setup.labels])
    skip = same_concept_mask(setup.labels) | ~labelled[:, None] | ~labelled[None, :]
    strongest = [{"latents": [i, j], "labels": [setup.labels[i], setup.labels[j]], "npmi": v}
                 for i, j, v in top_pairs(npmi, 5, exclude=skip)]
    return {"ranks": ranks, "ranked_pairs_upper_bound": int(labelled.sum()) * (int(labelled.sum()) - 1) // 2,
            "strongest_cross_concept_pairs": strongest}


def selection_precision_study(setup: Setup, n: int, seed: int) -> dict[str, Any]:
    """Selection precision per task family and number of examples, on the bundled model and the benchmark SAE."""
    import random

    out: dict[str, Any] = {}
    for family in TASK_FAMILIES:
        pool, is_target = selection_pool(setup.world, n, seed=seed, target=family, fraction=0.05)
        texts = [d.text for d in pool]
        emb, dense = setup.embed(pool), setup.dense(pool)
        rng = random.Random(derive_seed(f"benchmark.selection.examples.{family}", seed))
        for n_examples in (1, 5):
            examples = [task_document(family, rng) for _ in range(n_examples)]
            budget = int(is_target.sum())
            random_seed = derive_seed(f"benchmark.selection.random.{family}", seed, n_examples)
            scores = {"sae_jaccard": jaccard_scores(emb, setup.embed(examples)),
                      "cosine": cosine_scores(dense, setup.dense(examples)),
                      "bm25": bm25_scores(texts, [d.text for d in examples]),
                      "random": random_scores(len(pool), random_seed)}
            out[f"{family}/{n_examples}"] = {m: selection_precision(select(s, budget), is_target)
                                             for m, s in scores.items()}
    return out



AXES = {"sentiment": ("sentiment", "topic"), "formality": ("formality", "topic"), "topic": ("topic", "sentiment")}
AXIS_EXAMPLES = 10  # example documents per value of the axis
QUERY_EXAMPLES = 5
RETRIEVAL_K = 100


def _examples(labels: np.ndarray, value: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.flatnonzero(labels == value), size=n, replace=False)


def clustering_study(setup: Setup, n: int, seed: int) -> dict[str, Any]:
    """Per axis: ARI of SAE-axis clusters and of dense clusters with the axis and with another independent one."""
    from sklearn.metrics import adjusted_rand_score

    docs = two_axis_documents(setup.world, n, seed=seed)
    concepts = document_concepts(docs)
    emb, dense = setup.embed(docs), setup.dense(docs)
    rng = np.random.default_rng(derive_seed("benchmark.clustering", seed))
    out: dict[str, Any] = {}
    for name, (axis, other) in AXES.items():
        values = np.unique(concepts[axis])
        groups = [_examples(concepts[axis], v, AXIS_EXAMPLES, rng) for v in values]
        latents = value_axis_latents(emb, groups)
        found = {"sae": cluster_along_axis(emb, latents, len(values), seed=seed),
                 "dense": cluster_dense(dense, len(values), seed=seed)}
        out[name] = {method: {"ari_axis": adjusted_rand_score(concepts[axis], c),
                              "ari_other": adjusted_rand_score(concepts[other], c)} for method, c in found.items()}
        out[name]["latents"] = [setup.labels[j] for j in latents]
    return out


def clustering_benchmark(setup: Setup, args) -> dict[str, Any]:
    rows = [clustering_study(setup, args.documents, seed) for seed in range(args.seeds)]
    out = {axis: {m: {k: _collect(rows, lambda r, a=axis, m=m, k=k: r[a][m][k]) for k in ("ari_axis", "ari_other")}
                  for m in ("sae", "dense")} for axis in AXES}
    for axis in AXES:
        out[axis]["other_axis"] = AXES[axis][1]
        out[axis]["latents_seed0"] = rows[0][axis]["latents"]
        print(f"clustering along {axis}: " + ", ".join(
            f"{m} ARI {out[axis][m]['ari_axis']['mean']:.2f} (other axis {out[axis][m]['ari_other']['mean']:.2f})"
            for m in ("sae", "dense")), flush=True)
    return out


def retrieval_study(setup: Setup, n: int, seed: int) -> dict[str, Any]:
    """Per property (every concept value): precision@100 and nDCG@100 from 5 examples, SAE latents vs dense cosine."""
    docs = two_axis_documents(setup.world, n, seed=derive_seed("benchmark.retrieval", seed))
    concepts = document_concepts(docs)
    emb, dense = setup.embed(docs), setup.dense(docs)
    rng = np.random.default_rng(derive_seed("benchmark.retrieval.examples", seed))
    out: dict[str, Any] = {}
    for concept, value in concept_values(setup.world):
        relevant = concepts[concept] == value
        examples = _examples(concepts[concept], value, QUERY_EXAMPLES, rng)
        rankings = {"sae": rank_documents(emb, query_latents(emb, examples), exclude=examples)[0],
                    "dense": dense_rank(dense, examples)[0]}
        out[value_name(setup.world, concept, value)] = {
            m: {"precision_at_100": precision_at_k(r, relevant, RETRIEVAL_K),
                "ndcg_at_100": ndcg_at_k(r, relevant, RETRIEVAL_K)} for m, r in rankings.items()}
    return out


def retrieval_benchmark(setup: Setup, args) -> dict[str, Any]:
    rows = [retrieval_study(setup, args.documents, seed) for seed in range(args.seeds)]
    queries = list(rows[0])
    metrics = ("precision_at_100", "ndcg_at_100")
    per_query = {q: {m: {k: _collect(rows, lambda r, q=q, m=m, k=k: r[q][m][k]) for k in metrics}
                     for m in ("sae", "dense")} for q in queries}
    mean = {m: {k: _summary([float(np.mean([r[q][m][k] for q in queries])) for r in rows]) for k in metrics}
            for m in ("sae", "dense")}
    print("retrieval: " + ", ".join(f"{m} precision@100 {mean[m]['precision_at_100']['mean']:.2f} nDCG@100 "
                                    f"{mean[m]['ndcg_at_100']['mean']:.2f}" for m in mean), flush=True)
    return {"per_query": per_query, "mean": mean, "examples": QUERY_EXAMPLES, "k": RETRIEVAL_K}


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    diff = payload["diffing"]
    axes[0].bar([0, 1], [diff["absolute"]["recall"]["mean"], diff["relative"]["recall"]["mean"]], 0.4,
                yerr=[diff["absolute"]["recall"]["std"], diff["relative"]["recall"]["std"]], label="recall")
    axes[0].bar([0.4, 1.4], [diff["absolute"]["precision"]["mean"], diff["relative"]["precision"]["mean"]], 0.4,
                yerr=[diff["absolute"]["precision"]["std"], diff["relative"]["precision"]["std"]],
                label="precision@10")
    axes[0].axhline(0.8, color="k", ls="--", lw=0.8)
    axes[0].set_xticks([0.2, 1.2], ["absolute", "relative"])
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title("dataset diffing: planted differences in the top 10")
    axes[0].legend(fontsize=8)
    axis_rows = payload["clustering"]
    names = list(axis_rows)
    for i, method in enumerate(("sae", "dense")):
        for j, against in enumerate(("axis", "other")):
            values = [axis_rows[a][method][f"ari_{against}"]["mean"] for a in names]
            axes[1].bar(np.arange(len(names)) + (2 * i + j) * 0.2, values, 0.2,
                        label=f"{method}: ARI with {'the chosen' if against == 'axis' else 'the other'} axis")
    axes[1].set_xticks(np.arange(len(names)) + 0.3, names)
    axes[1].set_title("clustering along an axis")
    axes[1].legend(fontsize=7)
    retrieval = payload["retrieval"]["mean"]
    for i, method in enumerate(("sae", "dense")):
        axes[2].bar(np.arange(2) + i * 0.4, [retrieval[method]["precision_at_100"]["mean"],
                                             retrieval[method]["ndcg_at_100"]["mean"]], 0.4, label=method)
    axes[2].set_xticks([0.2, 1.2], ["precision@100", "nDCG@100"])
    axes[2].set_ylim(0, 1.05)
    axes[2].set_title("property retrieval (5 examples)")
    axes[2].legend(fontsize=8)
    selection = payload["selection"]["precision"]
    cases = list(selection)
    methods = list(selection[cases[0]])
    for i, method in enumerate(methods):
        axes[3].bar(np.arange(len(cases)) + i * 0.2, [selection[c][method]["mean"] for c in cases], 0.2, label=method)
    axes[3].set_xticks(np.arange(len(cases)) + 0.3, [c.replace("/", "\n") + " ex." for c in cases], fontsize=7)
    axes[3].set_ylim(0, 1.05)
    axes[3].set_title("data selection precision (family / examples)")
    axes[3].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _collect(rows: list[dict[str, Any]], key) -> dict[str, Any]:
    return _summary([key(r) for r in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--documents", type=int, default=2000, help="documents per corpus")
    parser.add_argument("--n-latents", type=int, default=1024)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--sae-steps", type=int, default=3000)
    parser.add_argument("--sae-documents", type=int, default=3000)
    parser.add_argument("--label-documents", type=int, default=2000)
    parser.add_argument("--finetune", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 seeds, small corpora and SAE: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.documents, args.sae_steps, args.sae_documents, args.label_documents = 2, 400, 600, 400, 600
        args.n_latents = 256
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    setup = Setup(args)
    payload: dict[str, Any] = {"benchmark": "embeddings", "quick": args.quick, "seeds": args.seeds,
                               "documents": args.documents, "sae": setup.sae_record, "pooling": "max",
                               "throughput": throughput(setup, args.documents)}
    print(f"throughput: {payload['throughput']}", flush=True)

    rows = [diffing_study(setup, args.documents, seed) for seed in range(args.seeds)]
    payload["diffing"] = {by: {"recall": _collect(rows, lambda r, by=by: r[by]["recall"]),
                               "precision": _collect(rows, lambda r, by=by: r[by]["precision"])}
                          for by in ("absolute", "relative")}
    payload["diffing"]["runs"] = rows
    diffing = payload["diffing"]
    print("diffing: " + ", ".join(f"{by} recall {diffing[by]['recall']['mean']:.2f} precision@10 "
                                  f"{diffing[by]['precision']['mean']:.2f}" for by in ("absolute", "relative")),
          flush=True)

    rows = [correlation_study(setup, args.documents, seed) for seed in range(args.seeds)]
    pairs = list(rows[0]["ranks"])
    payload["correlations"] = {"ranks": {p: [r["ranks"][p] for r in rows] for p in pairs}, "runs": rows,
                               "median_rank": {p: float(np.median([r["ranks"][p] or np.inf for r in rows]))
                                               for p in pairs}}
    print(f"correlations: planted pair ranks {payload['correlations']['ranks']}", flush=True)

    payload["clustering"] = clustering_benchmark(setup, args)
    payload["retrieval"] = retrieval_benchmark(setup, args)

    rows = [selection_precision_study(setup, args.documents, seed) for seed in range(args.seeds)]
    payload["selection"] = {"precision": {case: {m: _collect(rows, lambda r, c=case, m=m: r[c][m])
                                                 for m in rows[0][case]} for case in rows[0]},
                            "pool": {"documents": args.documents, "fraction": 0.05}}
    print("selection precision: " + "; ".join(
        f"{case} " + ", ".join(f"{m} {v['mean']:.2f}" for m, v in d.items())
        for case, d in payload["selection"]["precision"].items()), flush=True)
    if args.finetune:
        study = selection_study(seed=0, **({"n_candidates": 600, "base_steps": 300, "eval_n": 50}
                                           if args.quick else {}))
        payload["selection"]["finetune"] = study
        print("fine-tuning: base " + f"{study['base_target_accuracy']:.2f}; " + ", ".join(
            f"{m} precision {v['precision']:.2f} accuracy {v['target_accuracy']:.2f}"
            for m, v in study["methods"].items()), flush=True)
    payload["seconds"] = time.perf_counter() - start
    name = "embeddings_quick" if args.quick else "embeddings"
    out = write_results(name, payload, argv)
    plot(payload, out.with_suffix(".png"))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
