"""`aekit embed`, `aekit diff` and `aekit correlations`: SAE document embeddings of a corpus and the two analyses
that read them directly — which latents differ between two corpora, and which latents fire together (Jiang et
al., 2025).

A document's id is its 0-based index among the corpus's non-empty documents (the order `aekit.data.corpus`
reads them: lines of a .txt, records of a .jsonl, rows of a .parquet), so `diff` and `correlations` can show a
document's text again from the same corpus file. Every runner computes everything before it writes, writes each
file atomically and removes an output directory it created when a write fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..analysis.embeddings import (
    DIFF_BY,
    EPSILON,
    POOLINGS,
    DocumentEmbeddings,
    diff_latents,
    document_frequency,
    firing,
    npmi_matrix,
    sae_embeddings,
    top_documents,
    top_pairs,
)
from ..analysis.embeddings.labels import top_tokens
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_bytes, atomic_write_json, refuse_existing_file
from .outputs import csv_bytes, write_all

__all__ = ["EMBEDDINGS_NAME", "documents_by_id", "read_embeddings", "run_correlations", "run_diff", "run_embed"]

EMBEDDINGS_NAME = "embeddings.safetensors"
MAX_HEATMAP_LATENTS = 40  # beyond this the heatmap's tick labels overlap


def _sae_lm_hook(sae_dir: str | Path, lm: str | None, hook: str | None, fallback_hook: str = ""):
    """The SAE, and the LM and hook it reads (arguments first, then the SAE's provenance)."""
    from .workflows import load_saved_model

    sae = load_saved_model(sae_dir)
    if not hasattr(sae.config, "n_latents") or not hasattr(sae, "encode"):
        raise ConfigError(f"{sae_dir}: is a {getattr(sae, 'kind', 'model')} model, not a sparse autoencoder")
    lm = lm or sae.provenance.get("model")
    hook = hook or sae.provenance.get("hook") or fallback_hook
    if not lm or not hook:
        raise ConfigError(f"{sae_dir}: the SAE does not record which language model and hook it was trained on; "
                          "pass --lm and --hook")
    return sae.eval(), str(lm), str(hook)


def _finite(value: float) -> float | None:
    """A number for strict JSON: NaN and ±inf become None."""
    return float(value) if np.isfinite(value) else None


def _nonempty(documents: Iterator[str], corpus: str | Path) -> Iterator[str]:
    """`documents` again, or a DataError naming the corpus when it holds none."""
    first = next(documents, None)
    if first is None:
        raise DataError(f"{corpus}: the corpus holds no documents")
    return chain([first], documents)


def run_embed(sae_dir: str | Path, text: str | Path, out: str | Path = "embed-out", *, lm: str | None = None,
              hook: str | None = None, pooling: str = "max", binary: bool = False, max_documents: int | None = None,
              batch_size: int = 32, max_length: int = 128, device: str | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Embed every document of `text` with the SAE's pooled latents; write embeddings.safetensors, embed.json and
    frequency.png into `out` and return the embed.json record with the three paths added."""
    from ..data.corpus import check_corpus, iter_documents
    from ..data.lm import load_lm
    from ..report.data_analysis import plot_document_frequency

    out = Path(out)
    if pooling not in POOLINGS:
        raise ConfigError(f"embed: --pooling must be one of {', '.join(POOLINGS)} (got {pooling!r})")
    if batch_size < 1 or max_length < 1 or (max_documents is not None and max_documents < 1):
        raise ConfigError("embed: --batch-size, --max-length and --max-documents must be ≥ 1")
    refuse_existing_file(out)
    corpus = check_corpus(text)
    sae, lm, hook = _sae_lm_hook(sae_dir, lm, hook)
    documents = _nonempty(islice(iter_documents(corpus), max_documents), corpus)
    model, tokenizer = load_lm(lm, device=device, progress=progress)
    sae.to(next(model.parameters()).device)
    start = time.perf_counter()
    embeddings = sae_embeddings(sae, model, tokenizer, hook, documents, pooling=pooling, binary=binary,
                                batch_size=batch_size, max_length=max_length, total=max_documents,
                                progress=progress)
    seconds = time.perf_counter() - start
    frequency = embeddings.firing_frequency()
    active = np.diff(embeddings.matrix.indptr)
    record = {
        "aekit_version": __version__, "sae": str(Path(sae_dir).resolve()), "lm": lm, "hook": hook,
        "corpus": str(corpus.resolve()), "n_documents": embeddings.n_documents, "n_latents": embeddings.n_latents,
        "doc_ids": "0-based index of the document among the corpus's non-empty documents",
        "docs_per_second": _finite(embeddings.docs_per_second), "seconds": seconds,
        "mean_active_latents": float(active.mean()), "median_active_latents": float(np.median(active)),
        "alive_latents": int((frequency > 0).sum()),
        "settings": {"pooling": pooling, "binary": binary, "max_documents": max_documents, "batch_size": batch_size,
                     "max_length": max_length, "device": str(next(model.parameters()).device)},
    }
    title = (f"{embeddings.n_latents - record['alive_latents']} of {embeddings.n_latents} latents never fire in "
             f"{embeddings.n_documents} documents (not shown)")
    write_all(out, [(EMBEDDINGS_NAME, embeddings.save),
                     ("frequency.png", lambda path: plot_document_frequency(frequency, path, title)),
                     ("embed.json", lambda path: atomic_write_json(path, record))])
    return {**record, "embeddings": str(out / EMBEDDINGS_NAME), "json": str(out / "embed.json"),
            "png": str(out / "frequency.png")}


def read_embeddings(path: str | Path) -> DocumentEmbeddings:
    """Embeddings from a file written by `aekit embed`, or from the output directory holding one."""
    path = Path(path)
    hint = f"give an `aekit embed` output directory or its {EMBEDDINGS_NAME}"
    if not path.exists():
        raise DataError(f"{path}: not found; {hint}")
    if path.is_dir():
        if not (path / EMBEDDINGS_NAME).is_file():
            raise DataError(f"{path}: holds no {EMBEDDINGS_NAME}; {hint}")
        path = path / EMBEDDINGS_NAME
    return DocumentEmbeddings.load(path)


def documents_by_id(corpus: str | Path, wanted: set[str], flag: str = "--text") -> dict[str, str]:
    """Texts of the `wanted` document ids (corpus positions), read again from the corpus they were embedded from;
    `flag` names the option that gave the corpus in error messages."""
    from ..data.corpus import iter_documents

    try:
        indices = {int(doc_id) for doc_id in wanted}
    except ValueError:
        raise DataError(f"{flag}: the embeddings' document ids are not corpus positions, so {corpus} cannot be "
                        f"matched to them; leave out {flag}") from None
    last = max(indices, default=-1)
    texts, read = {}, 0
    for position, doc in enumerate(islice(iter_documents(corpus), last + 1)):
        read = position + 1
        if position in indices:
            texts[str(position)] = doc
    if read <= last:
        raise DataError(f"{corpus}: holds only {read} documents but the embeddings refer to document {last}; give "
                        f"{flag} the corpus the embeddings were made from")
    return texts


def _token_label_map(latents: Sequence[int], examples: Sequence[str], sae, lm: str, hook: str, *,
                     max_length: int, device: str | None, progress: bool) -> dict[int, str | None]:
    """Label `latents` by their most frequent top-activating tokens in the `examples` documents."""
    from ..analysis.features import collect_token_codes
    from ..data.lm import load_lm

    model, tokenizer = load_lm(lm, device=device, progress=progress)
    sae.to(next(model.parameters()).device)
    codes = collect_token_codes(sae, model, tokenizer, hook, list(examples), max_tokens=10**9,
                                max_length=max_length, progress=progress)
    tokens = top_tokens(codes, latents)
    return {latent: " / ".join(word for word, _ in words) or None for latent, words in tokens.items()}


def run_diff(a_embeddings: str | Path, b_embeddings: str | Path, out: str | Path = "diff-out", *,
             text_a: str | Path | None = None, text_b: str | Path | None = None, sae_dir: str | Path | None = None,
             lm: str | None = None, hook: str | None = None, by: str = "absolute", min_coverage: float = 0.02,
             top: int = 20, threshold: float = 0.0, n_examples: int = 3, max_length: int = 128,
             device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Rank the latents whose document frequency differs most between corpora A and B; write diff.csv, diff.json
    and diff.html into `out` and return the record with the paths added.

    With the corpora (`text_a`, `text_b`) the strongest documents are shown as text; with an SAE as well, each
    latent is labelled by its most frequent top-activating tokens in those documents.
    """
    from ..data.corpus import check_corpus
    from ..report.data_analysis import render_diff_html

    out = Path(out)
    if by not in DIFF_BY:
        raise ConfigError(f"diff: --by must be one of {', '.join(DIFF_BY)} (got {by!r})")
    if not 0 <= min_coverage <= 1:
        raise ConfigError(f"diff: --min-coverage must be in [0, 1] (got {min_coverage})")
    if top < 1 or n_examples < 1:
        raise ConfigError("diff: --top and --examples must be ≥ 1")
    if not np.isfinite(threshold):
        raise ConfigError(f"diff: --threshold must be a finite number (got {threshold})")
    if sae_dir is not None and text_a is None and text_b is None:
        raise ConfigError("diff: --sae labels latents by their tokens in the top documents, so it needs --text-a "
                          "and/or --text-b")
    refuse_existing_file(out)
    a, b = read_embeddings(a_embeddings), read_embeddings(b_embeddings)
    if a.hook and b.hook and a.hook != b.hook:
        raise ConfigError(f"diff: A was embedded at {a.hook} but B at {b.hook}; embed both at the same hook")
    if a.pooling != b.pooling:
        raise ConfigError(f"diff: A was pooled with {a.pooling} but B with {b.pooling}; embed both the same way")
    for corpus in (text_a, text_b):
        if corpus is not None:
            check_corpus(corpus)
    differences = diff_latents(a, b, by=by, min_coverage=min_coverage, top=top, threshold=threshold,
                               n_examples=n_examples)
    fa, fb = document_frequency(a, threshold), document_frequency(b, threshold)
    covered = int((np.maximum(fa, fb) >= max(min_coverage, np.finfo(float).tiny)).sum())

    texts_a = texts_b = None
    if text_a is not None:
        texts_a = documents_by_id(text_a, {d for x in differences for d in x.top_documents_a}, "--text-a")
    if text_b is not None:
        texts_b = documents_by_id(text_b, {d for x in differences for d in x.top_documents_b}, "--text-b")
    labels: dict[int, str | None] = {}
    label_source = None
    if sae_dir is not None:
        sae, lm_name, hook_name = _sae_lm_hook(sae_dir, lm, hook, a.hook)
        examples = [*(texts_a or {}).values(), *(texts_b or {}).values()]
        labels = _token_label_map([x.latent for x in differences], examples, sae, lm_name, hook_name,
                                  max_length=max_length, device=device, progress=progress)
        label_source = "most frequent tokens among each latent's 20 strongest activations in the documents shown"

    rows = []
    for rank, x in enumerate(differences, 1):
        row = {"rank": rank, "latent": x.latent, "frequency_a": x.frequency_a, "frequency_b": x.frequency_b,
               "absolute": x.absolute, "relative": x.relative, "label": labels.get(x.latent),
               "top_documents_a": x.top_documents_a, "top_documents_b": x.top_documents_b}
        if texts_a is not None:
            row["examples_a"] = [texts_a[d] for d in x.top_documents_a]
        if texts_b is not None:
            row["examples_b"] = [texts_b[d] for d in x.top_documents_b]
        rows.append(row)
    record = {
        "aekit_version": __version__,
        "a": {"source": str(Path(a_embeddings).resolve()), "corpus": str(text_a) if text_a else None,
              "n_documents": a.n_documents},
        "b": {"source": str(Path(b_embeddings).resolve()), "corpus": str(text_b) if text_b else None,
              "n_documents": b.n_documents},
        "n_latents": a.n_latents, "covered_latents": covered, "labels": label_source,
        "settings": {"by": by, "min_coverage": min_coverage, "top": top, "threshold": threshold,
                     "epsilon": EPSILON, "n_examples": n_examples, "pooling": a.pooling, "hook": a.hook},
        "latents": rows,
    }
    header = ["rank", "latent", "frequency_a", "frequency_b", "absolute", "relative", "label", "top_documents_a",
              "top_documents_b"]
    table = [[r["rank"], r["latent"], f"{r['frequency_a']:.6g}", f"{r['frequency_b']:.6g}", f"{r['absolute']:.6g}",
              f"{r['relative']:.6g}", r["label"] or "", " ".join(r["top_documents_a"]),
              " ".join(r["top_documents_b"])] for r in rows]
    page = render_diff_html(record)
    write_all(out, [("diff.csv", lambda path: atomic_write_bytes(path, csv_bytes(header, table))),
                     ("diff.html", lambda path: atomic_write_bytes(path, page.encode("utf-8"))),
                     ("diff.json", lambda path: atomic_write_json(path, record))])
    return {**record, "csv": str(out / "diff.csv"), "json": str(out / "diff.json"), "html": str(out / "diff.html")}


def run_correlations(embeddings: str | Path, out: str | Path = "correlations-out", *, top: int = 20,
                     min_count: int = 5, threshold: float = 0.0, text: str | Path | None = None,
                     sae_dir: str | Path | None = None, lm: str | None = None, hook: str | None = None,
                     max_length: int = 128, device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """The `top` latent pairs of highest NPMI (latents binarised at pooled value > `threshold`, each firing in at
    least `min_count` documents); write correlations.csv, correlations.json and npmi.png into `out`.

    With the corpus and an SAE, each latent of those pairs is labelled by its top-activating tokens in its five
    strongest documents.
    """
    from ..data.corpus import check_corpus
    from ..report.data_analysis import plot_npmi_heatmap

    out = Path(out)
    if top < 1 or min_count < 1:
        raise ConfigError("correlations: --top and --min-count must be ≥ 1")
    if not np.isfinite(threshold):
        raise ConfigError(f"correlations: --threshold must be a finite number (got {threshold})")
    if sae_dir is not None and text is None:
        raise ConfigError("correlations: --sae labels latents by their tokens in their top documents, so it needs "
                          "--text")
    refuse_existing_file(out)
    emb = read_embeddings(embeddings)
    if text is not None:
        check_corpus(text)
    fires = firing(emb, threshold)
    npmi = npmi_matrix(fires, min_count=min_count)
    counts = np.bincount(fires.indices, minlength=emb.n_latents)
    pairs = top_pairs(npmi, top)
    latents = list(dict.fromkeys(j for i, k, _ in pairs for j in (i, k)))
    labels: dict[int, str | None] = {}
    if sae_dir is not None:
        sae, lm_name, hook_name = _sae_lm_hook(sae_dir, lm, hook, emb.hook)
        wanted = {latent: top_documents(emb, latent, 5, threshold) for latent in latents}
        texts = documents_by_id(text, {d for ids in wanted.values() for d in ids}, "--text")
        labels = _token_label_map(latents, list(texts.values()), sae, lm_name, hook_name, max_length=max_length,
                                  device=device, progress=progress)
    columns = fires.tocsc()
    rows = []
    for rank, (i, j, value) in enumerate(pairs, 1):
        together = int(columns[:, i].multiply(columns[:, j]).sum())
        rows.append({"rank": rank, "latent_i": i, "latent_j": j, "npmi": value, "documents_i": int(counts[i]),
                     "documents_j": int(counts[j]), "documents_both": together, "label_i": labels.get(i),
                     "label_j": labels.get(j)})
    record = {
        "aekit_version": __version__, "source": str(Path(embeddings).resolve()), "n_documents": emb.n_documents,
        "n_latents": emb.n_latents, "latents_considered": int((counts >= min_count).sum()),
        "settings": {"top": top, "min_count": min_count, "threshold": threshold, "pooling": emb.pooling,
                     "hook": emb.hook},
        "pairs": rows,
    }
    header = ["rank", "latent_i", "latent_j", "npmi", "documents_i", "documents_j", "documents_both", "label_i",
              "label_j"]
    table = [[r["rank"], r["latent_i"], r["latent_j"], f"{r['npmi']:.6g}", r["documents_i"], r["documents_j"],
              r["documents_both"], r["label_i"] or "", r["label_j"] or ""] for r in rows]
    shown = latents[:MAX_HEATMAP_LATENTS]
    title = f"NPMI of the latents in the {len(pairs)} most correlated pairs ({emb.n_documents} documents)"
    write_all(out, [
        ("correlations.csv", lambda path: atomic_write_bytes(path, csv_bytes(header, table))),
        ("npmi.png", lambda path: plot_npmi_heatmap(npmi, shown, path, [labels.get(j) for j in shown], title)),
        ("correlations.json", lambda path: atomic_write_json(path, record)),
    ])
    return {**record, "csv": str(out / "correlations.csv"), "json": str(out / "correlations.json"),
            "png": str(out / "npmi.png")}
