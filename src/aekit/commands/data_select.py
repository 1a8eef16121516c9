"""`aekit select`: choose the `budget` documents of an embedded corpus most like a few target examples.

The examples are documents of the same embeddings (given by id); every other document is a candidate. Methods:
`jaccard` (the generalised Jaccard similarity of the documents' pooled SAE codes to the mean of the examples'),
`bm25` (Okapi BM25 of the corpus text with the examples' text as the query; needs the corpus, --text) and `random`
(seeded). The dense cosine baseline needs the language model's hidden states, which an embeddings file does not
hold, so it is offered by the library (`cosine_scores` with `dense_embeddings`), not here.

Outputs in `out`: selected.csv (rank, doc_id, score, and the text when the corpus is given), selected.json
(settings, the selected ids, a summary of the scores) and selected.png (the score distribution with the cut).
Everything is computed before anything is written, so a bad input leaves no output behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..analysis.embeddings.selection import BM25_B, BM25_K1, bm25_scores, jaccard_scores, random_scores, select
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_bytes, atomic_write_json, refuse_existing_file
from .data_analysis import read_embeddings
from .outputs import csv_bytes, write_all

__all__ = ["CLI_METHODS", "CSV_NAME", "JSON_NAME", "PNG_NAME", "read_example_ids", "run_select"]

CLI_METHODS = ("jaccard", "bm25", "random")
CSV_NAME, JSON_NAME, PNG_NAME = "selected.csv", "selected.json", "selected.png"
SCORE_NAMES = {"jaccard": "generalised Jaccard similarity to the examples' prototype",
               "bm25": "BM25 score for the examples' text", "random": "random score"}


def read_example_ids(path: str | Path) -> list[str]:
    """Document ids from a text file, one per line (blank lines and lines starting with # are skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: examples file not found; give a text file with one document id per line") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; give a text file with one document id per line") from None
    ids = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not ids:
        raise DataError(f"{path}: holds no document ids; give one id per line")
    return ids


def _texts_of(doc_ids: Sequence[str], corpus: str | Path) -> list[str]:
    """The text of every embedded document, read again from the corpus (an id is a position in it)."""
    from ..data.corpus import check_corpus, iter_documents

    corpus = check_corpus(corpus)
    try:
        positions = [int(doc_id) for doc_id in doc_ids]
    except ValueError:
        raise DataError(f"{corpus}: the embeddings' document ids are not corpus positions, so the corpus cannot be "
                        "matched to them; embed the corpus with `aekit embed`") from None
    last = max(positions)
    texts = list(islice(iter_documents(corpus), last + 1))
    if len(texts) <= last:
        raise DataError(f"{corpus}: holds only {len(texts)} documents but the embeddings refer to document {last}; "
                        "give --text the corpus the embeddings were made from")
    return [texts[p] for p in positions]


def _check_arguments(method: str, budget: int, text: str | Path | None, out: Path) -> None:
    """Refuse a bad combination before anything is read."""
    if method == "cosine":
        raise ConfigError("select: --method cosine needs dense hidden states, which an embeddings file does not hold; "
                          "use jaccard, bm25 or random (the library's cosine_scores takes dense_embeddings)")
    if method not in CLI_METHODS:
        raise ConfigError(f"select: unknown method {method!r}; choose one of {', '.join(CLI_METHODS)}")
    if method == "bm25" and text is None:
        raise ConfigError("select: --method bm25 scores the documents' text; give the embedded corpus with --text")
    if budget < 1:
        raise ConfigError(f"select: --budget must be ≥ 1 (got {budget})")
    refuse_existing_file(out)


def _summary(scores: np.ndarray, chosen: np.ndarray) -> dict[str, float]:
    return {"min": float(scores.min()), "max": float(scores.max()), "mean": float(scores.mean()),
            "median": float(np.median(scores)), "cut": float(scores[chosen].min()),
            "selected_mean": float(scores[chosen].mean())}


def run_select(embeddings: str | Path, examples: Sequence[str] | str | Path, budget: int, *,
               method: str = "jaccard", text: str | Path | None = None, seed: int = 0,
               out: str | Path = "select-out") -> dict[str, Any]:
    """Select `budget` documents of `embeddings` (an `aekit embed` output or its file) like the `examples` (a list
    of document ids, or the path of a file with one id per line); write selected.csv, selected.json and
    selected.png into `out` and return the JSON record with the three paths added."""
    from ..report.selection_plot import plot_selection_scores

    out = Path(out)
    _check_arguments(method, budget, text, out)
    example_ids = read_example_ids(examples) if isinstance(examples, str | Path) else [str(e) for e in examples]
    if not example_ids:
        raise ConfigError("select: no examples given; name the target examples' document ids")
    if len(set(example_ids)) != len(example_ids):
        raise DataError("examples: a document id is given twice")
    embedded = read_embeddings(embeddings)
    known = set(embedded.doc_ids)
    unknown = [e for e in example_ids if e not in known]
    if unknown:
        raise DataError(f"examples: {', '.join(map(repr, unknown[:3]))} {'is' if len(unknown) == 1 else 'are'} not "
                        f"a document id of {embeddings} (ids run {embedded.doc_ids[0]!r} … {embedded.doc_ids[-1]!r})")
    example_rows = embedded.rows(example_ids)
    n_candidates = embedded.n_documents - len(example_rows)
    if budget > n_candidates:
        raise ConfigError(f"select: --budget {budget} is more than the {n_candidates} candidates (documents other "
                          "than the examples)")
    texts = _texts_of(embedded.doc_ids, text) if text is not None else None

    start = time.perf_counter()
    if method == "jaccard":
        scores = jaccard_scores(embedded, embedded.subset(example_rows))
    elif method == "bm25":
        scores = bm25_scores(texts, [texts[i] for i in example_rows])
    else:
        scores = random_scores(embedded.n_documents, seed)
    chosen = select(scores, budget, exclude=example_rows)
    seconds = time.perf_counter() - start

    candidates = np.setdiff1d(np.arange(embedded.n_documents), example_rows)
    record: dict[str, Any] = {
        "aekit_version": __version__, "embeddings": str(Path(embeddings).resolve()),
        "corpus": str(Path(text).resolve()) if text is not None else None,
        "method": method, "score": SCORE_NAMES[method], "budget": budget, "seed": seed,
        "examples": example_ids, "n_documents": embedded.n_documents, "n_candidates": n_candidates,
        "embedding": {"pooling": embedded.pooling, "binary": embedded.binary, "hook": embedded.hook,
                      "n_latents": embedded.n_latents},
        "selected": [embedded.doc_ids[i] for i in chosen],
        "scores": {"candidates": _summary(scores[candidates], np.searchsorted(candidates, chosen))},
        "seconds": seconds,
    }
    if method == "jaccard":
        record["prototype"] = "mean of the examples' pooled SAE codes"
    if method == "bm25":
        record["bm25"] = {"k1": BM25_K1, "b": BM25_B, "query": "distinct whitespace tokens of the examples",
                          "idf": "log((N - n + 0.5) / (n + 0.5) + 1)"}
    rows = [[rank, embedded.doc_ids[i], f"{scores[i]:.6g}", *([texts[i]] if texts is not None else [])]
            for rank, i in enumerate(chosen, 1)]
    title = f"{method}: {budget} of {n_candidates} candidates selected"
    header = ["rank", "doc_id", "score", *(["text"] if texts is not None else [])]
    write_all(out, [
        (PNG_NAME, lambda p: plot_selection_scores(scores[candidates], np.searchsorted(candidates, chosen), p, title,
                                                   SCORE_NAMES[method])),
        (CSV_NAME, lambda p: atomic_write_bytes(p, csv_bytes(header, rows))),
        (JSON_NAME, lambda p: atomic_write_json(p, record)),
    ])
    return {**record, "csv": str(out / CSV_NAME), "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
