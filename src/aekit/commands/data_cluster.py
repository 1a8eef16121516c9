"""`aekit cluster` and `aekit retrieve`: clustering a corpus along an axis chosen by example documents, and
retrieving the documents that share a property with a few examples, both on SAE document embeddings written by
`aekit embed` (Jiang et al., 2025).

Documents are named by the ids stored in the embeddings (for `aekit embed`, the 0-based position of a document
among the corpus's non-empty documents, as a string). Every runner checks its input and computes everything before
it writes; each file is written atomically, and an output directory the call created is removed if a write fails.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..analysis.embeddings import (
    DEFAULT_AXIS_LATENTS,
    DEFAULT_MIN_COVERAGE,
    DEFAULT_QUERY_LATENTS,
    MIN_EXAMPLES,
    MIN_QUERY_EXAMPLES,
    DocumentEmbeddings,
    axis_features,
    axis_scores,
    cluster_along_axis,
    query_latents,
    query_scores,
    rank_documents,
    value_axis_latents,
)
from ..analysis.embeddings.clustering import N_INIT
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_bytes, atomic_write_json, refuse_existing_file
from .data_analysis import documents_by_id, read_embeddings
from .outputs import csv_bytes, write_all

__all__ = ["CLUSTER_FILES", "RETRIEVE_FILES", "read_examples", "run_cluster", "run_retrieve"]

CLUSTER_FILES = ("clusters.csv", "clusters.json", "clusters.png")
RETRIEVE_FILES = ("retrieved.csv", "retrieved.json", "retrieved.html")
POSITIVE, NEGATIVE = "positive", "negative"
JITTER = 0.02  # of each plot axis's range: documents with identical firing patterns would otherwise hide each other


def read_examples(path: str | Path) -> dict[str, str]:
    """Example documents of an axis from a file: doc id → value (side), in file order.

    A .json file holds one object {"doc id": "value", ...}; a .csv file has a header row with the columns doc_id
    and value. Values are compared as text, so 1 and "1" are the same value.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: examples file not found")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: is not UTF-8 text") from None
    if suffix == ".json":
        try:
            content = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(content, dict) or not all(isinstance(v, str | int) and not isinstance(v, bool)
                                                    for v in content.values()):
            raise DataError(f"{path}: must hold one JSON object mapping document ids to values, e.g. "
                            '{"12": "formal", "40": "informal"}')
        return {str(k): str(v) for k, v in content.items()}
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or not {"doc_id", "value"} <= set(reader.fieldnames):
            raise DataError(f"{path}: needs a header row with the columns doc_id and value")
        examples: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            doc_id, value = (row.get("doc_id") or "").strip(), (row.get("value") or "").strip()
            if not doc_id or not value:
                raise DataError(f"{path}: line {line} lacks a doc_id or a value")
            if doc_id in examples and examples[doc_id] != value:
                raise DataError(f"{path}: document {doc_id!r} is given two values ({examples[doc_id]!r} and "
                                f"{value!r})")
            examples[doc_id] = value
        return examples
    raise DataError(f"{path}: unsupported examples format {suffix or '(no suffix)'!r}; use .json (an object doc id "
                    "→ value) or .csv (columns doc_id, value)")


def _axis_examples(positive: Sequence[str] | None, negative: Sequence[str] | None,
                   examples: str | Path | None) -> dict[str, list[str]]:
    """value → example doc ids, from --positive/--negative or from an examples file (exactly one of the two)."""
    sides = positive is not None or negative is not None
    if sides and examples is not None:
        raise ConfigError("cluster: give either --positive/--negative or --examples-file, not both")
    if examples is not None:
        groups: dict[str, list[str]] = {}
        for doc_id, value in read_examples(examples).items():
            groups.setdefault(value, []).append(doc_id)
        if len(groups) < 2:
            raise DataError(f"{examples}: gives examples of {len(groups)} value(s); an axis needs at least 2")
        return groups
    if positive is None or negative is None:
        raise ConfigError("cluster: give example documents of both sides (--positive and --negative), or an "
                          "--examples-file")
    both = set(positive) & set(negative)
    if both:
        raise DataError(f"cluster: document {sorted(both)[0]!r} is given as both a positive and a negative example")
    return {POSITIVE: list(positive), NEGATIVE: list(negative)}


def _check_counts(groups: Mapping[str, Sequence[str]], minimum: int, what: str) -> None:
    for value, ids in groups.items():
        if len(set(ids)) != len(ids):
            raise DataError(f"{what}: a document is given twice among the {value!r} examples")
        if len(ids) < minimum:
            raise DataError(f"{what}: {len(ids)} {value!r} example(s); give at least {minimum}")


def _projection(features: np.ndarray, seed: int) -> tuple[np.ndarray, list[float]]:
    """(n, 2) PCA of the axis features (a zero second column when there is one feature), lightly jittered."""
    from sklearn.decomposition import PCA

    n_components = min(2, features.shape[1], features.shape[0])
    pca = PCA(n_components=n_components, random_state=seed)
    points = np.zeros((features.shape[0], 2))
    points[:, :n_components] = pca.fit_transform(features)
    spread = np.ptp(points, axis=0)
    rng = np.random.default_rng(seed)
    points += rng.normal(size=points.shape) * JITTER * np.where(spread > 0, spread, 1.0)
    return points, [float(x) for x in pca.explained_variance_ratio_]


def run_cluster(embeddings: str | Path, out: str | Path = "cluster-out", *, positive: Sequence[str] | None = None,
                negative: Sequence[str] | None = None, examples: str | Path | None = None,
                n_latents: int = DEFAULT_AXIS_LATENTS, n_clusters: int | None = None,
                min_coverage: float = DEFAULT_MIN_COVERAGE, seed: int = 0) -> dict[str, Any]:
    """Cluster the embedded documents along the axis shown by example documents; write clusters.csv,
    clusters.json and clusters.png into `out` and return the clusters.json record with the three paths added.

    The examples are `positive` and `negative` doc ids, or an `examples` file (doc id → value, any number of
    values). `n_clusters` defaults to the number of values. The axis latents and the clustering follow
    `aekit.analysis.embeddings.clustering`.
    """
    from ..report.cluster_retrieve import plot_clusters

    out = Path(out)
    if n_clusters is not None and n_clusters < 2:
        raise ConfigError(f"cluster: --n-clusters must be ≥ 2 (got {n_clusters})")
    if n_latents < 1:
        raise ConfigError(f"cluster: --n-latents must be ≥ 1 (got {n_latents})")
    if not 0 <= min_coverage < 1:
        raise ConfigError(f"cluster: --min-coverage must be in [0, 1) (got {min_coverage})")
    groups = _axis_examples(positive, negative, examples)
    _check_counts(groups, MIN_EXAMPLES, "cluster")
    refuse_existing_file(out)
    emb = read_embeddings(embeddings)
    k = n_clusters if n_clusters is not None else len(groups)
    if k > emb.n_documents:
        raise ConfigError(f"cluster: --n-clusters {k} is more than the {emb.n_documents} embedded documents")
    values = list(groups)
    rows = [emb.rows(groups[v]) for v in values]
    latents = value_axis_latents(emb, rows, n_latents, min_coverage=min_coverage)
    clusters = cluster_along_axis(emb, latents, k, seed)
    record = _cluster_record(emb, embeddings, values, groups, rows, latents, clusters, k,
                             {"n_latents": n_latents, "n_clusters": k, "min_coverage": min_coverage, "seed": seed})
    features = axis_features(emb, latents)
    points, explained = _projection(features, seed)
    record["projection"] = {"method": "PCA of the axis features (binarised, each document centred), jittered",
                            "explained_variance_ratio": explained}
    example_of = {doc_id: value for value in values for doc_id in groups[value]}
    example_masks = {v: np.array([example_of.get(doc) == v for doc in emb.doc_ids]) for v in values}
    table = [[doc, int(c), example_of.get(doc, "")] for doc, c in zip(emb.doc_ids, clusters, strict=True)]
    title = (f"{emb.n_documents} documents, k-means (k={k}) on {latents.size} latents of the axis "
             f"{' / '.join(values)}")
    write_all(out, [
        (CLUSTER_FILES[0], lambda p: atomic_write_bytes(p, csv_bytes(["doc_id", "cluster", "example"], table))),
        (CLUSTER_FILES[2], lambda p: plot_clusters(points, clusters, p, examples=example_masks, title=title,
                                                   axis_labels=("axis-latent PC 1", "axis-latent PC 2"))),
        (CLUSTER_FILES[1], lambda p: atomic_write_json(p, record)),
    ])
    return {**record, "csv": str(out / CLUSTER_FILES[0]), "json": str(out / CLUSTER_FILES[1]),
            "png": str(out / CLUSTER_FILES[2])}


def _cluster_record(emb: DocumentEmbeddings, source: str | Path, values: list[str],
                    groups: Mapping[str, Sequence[str]], rows: list[np.ndarray], latents: np.ndarray,
                    clusters: np.ndarray, k: int, settings: dict[str, Any]) -> dict[str, Any]:
    """clusters.json: the axis latents (why each was chosen, how often it fires per cluster) and the clusters."""
    scores, rates = axis_scores(emb, rows)
    frequency = emb.firing_frequency()
    fires = emb.fires()[:, latents].toarray()
    sizes = np.bincount(clusters, minlength=k)
    latent_rows = []
    for j, latent in enumerate(latents.tolist()):
        best = int(np.argmax(scores[:, latent]))
        latent_rows.append({
            "latent": latent, "value": values[best], "score": float(scores[best, latent]),
            "example_rates": {v: float(rates[i, latent]) for i, v in enumerate(values)},
            "corpus_frequency": float(frequency[latent]),
            "cluster_rates": [float(fires[clusters == c, j].mean()) if sizes[c] else None for c in range(k)],
        })
    cluster_rows = []
    for c in range(k):
        in_cluster = clusters == c
        cluster_rows.append({"cluster": c, "size": int(sizes[c]),
                             "examples": {v: int(in_cluster[r].sum()) for v, r in zip(values, rows, strict=True)}})
    return {
        "aekit_version": __version__, "source": str(Path(source).resolve()), "n_documents": emb.n_documents,
        "n_latents": emb.n_latents, "pooling": emb.pooling, "hook": emb.hook,
        "axis": {"values": values, "examples": {v: list(groups[v]) for v in values}},
        "settings": {**settings, "features": "whether each axis latent fires, each document centred on its mean",
                     "kmeans_n_init": N_INIT},
        "latents": latent_rows, "clusters": cluster_rows,
    }


def run_retrieve(embeddings: str | Path, out: str | Path = "retrieve-out", *, query: Sequence[str],
                 n_latents: int = DEFAULT_QUERY_LATENTS, top: int = 20,
                 text: str | Path | None = None) -> dict[str, Any]:
    """Rank the embedded documents by how strongly they show the latents of the `query` example documents; write
    retrieved.csv (the whole ranking), retrieved.json and retrieved.html (the `top` documents, with their text when
    the corpus `text` is given) into `out` and return the record with the three paths added."""
    from ..data.corpus import check_corpus
    from ..report.cluster_retrieve import render_retrieval_html

    out = Path(out)
    if n_latents < 1 or top < 1:
        raise ConfigError("retrieve: --n-latents and --top must be ≥ 1")
    query = list(query)
    _check_counts({"query": query}, MIN_QUERY_EXAMPLES, "retrieve")
    refuse_existing_file(out)
    if text is not None:
        check_corpus(text)
    emb = read_embeddings(embeddings)
    example_rows = emb.rows(query)
    latents = query_latents(emb, example_rows, n_latents)
    scores = query_scores(emb, example_rows)
    frequency = emb.firing_frequency()
    example_rate = scores + frequency  # query_scores is the examples' firing rate minus the corpus frequency
    ranked, doc_scores = rank_documents(emb, latents, exclude=example_rows)
    shown = ranked[:top]
    texts = documents_by_id(text, set(query) | {emb.doc_ids[r] for r in shown}) if text is not None else None
    ranking = []
    for rank, (row, score) in enumerate(zip(shown.tolist(), doc_scores[:top].tolist(), strict=True), 1):
        entry = {"rank": rank, "doc_id": emb.doc_ids[row], "score": float(score)}
        if texts is not None:
            entry["text"] = texts[emb.doc_ids[row]]
        ranking.append(entry)
    record = {
        "aekit_version": __version__, "source": str(Path(embeddings).resolve()),
        "corpus": str(Path(text).resolve()) if text is not None else None, "n_documents": emb.n_documents,
        "n_latents": emb.n_latents, "pooling": emb.pooling, "hook": emb.hook,
        "settings": {"n_latents": n_latents, "top": top},
        "query": [{"doc_id": d, **({"text": texts[d]} if texts is not None else {})} for d in query],
        "latents": [{"latent": int(j), "score": float(scores[j]), "example_rate": float(example_rate[j]),
                     "corpus_frequency": float(frequency[j])} for j in latents],
        "ranking": ranking,
    }
    table = [[rank, emb.doc_ids[row], f"{score:.6g}"]
             for rank, (row, score) in enumerate(zip(ranked.tolist(), doc_scores.tolist(), strict=True), 1)]
    page = render_retrieval_html(record)
    write_all(out, [
        (RETRIEVE_FILES[0], lambda p: atomic_write_bytes(p, csv_bytes(["rank", "doc_id", "score"], table))),
        (RETRIEVE_FILES[2], lambda p: atomic_write_bytes(p, page.encode("utf-8"))),
        (RETRIEVE_FILES[1], lambda p: atomic_write_json(p, record)),
    ])
    return {**record, "csv": str(out / RETRIEVE_FILES[0]), "json": str(out / RETRIEVE_FILES[1]),
            "html": str(out / RETRIEVE_FILES[2])}
