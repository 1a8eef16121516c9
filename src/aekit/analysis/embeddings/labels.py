"""Names for SAE latents of document embeddings: a known concept value when there is ground truth, the latent's
top-activating tokens when there is not.

`concept_labels` gives each latent the document-level concept value (e.g. `tense=past`) that best matches where
it fires, by the F1 score of "the latent fires in the document" against "the document has the value". Every
document counts, so documents where the concept does not apply (value -1) are negatives for each of its values.
F1 alone flatters frequent values: a latent firing at random in 70% of documents scores F1 ≈ 0.67 against a
value held by 63% of them. So a value is only a candidate for a latent whose firing is correlated with it: the
phi coefficient (Matthews correlation) of the two binary variables must reach `min_phi` (`MIN_PHI` = 0.2, a weak
but real correlation). A latent whose best F1 is below `min_f1` (`MIN_F1` = 0.5) stays unlabelled (None). All
latents × values are scored with one sparse product.

`top_tokens` / `token_labels` name a latent by the tokens it fires on most strongly, for corpora without labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from torch import nn

from ...errors import ConfigError, ShapeError
from ..features import TokenCodes, collect_token_codes

__all__ = ["MIN_F1", "MIN_PHI", "LatentLabel", "concept_labels", "label_concept", "token_labels", "top_tokens"]

MIN_F1 = 0.5  # below this a latent matches no value well enough to carry its name
MIN_PHI = 0.2  # below this the latent's firing is (nearly) independent of the value, whatever its F1


class LatentLabel(NamedTuple):
    """A latent's best-matching concept value (None when none reaches the floor) and that match's F1."""

    label: str | None
    f1: float


def label_concept(label: str | None) -> str | None:
    """The concept part of a label: 'tense' of 'tense=past'; a label without '=' is its own concept."""
    return None if label is None else label.split("=", 1)[0]


def _value_name(names: Callable[[str, int], str] | Mapping[tuple[str, int], str] | None, concept: str,
                value: int) -> str:
    if names is None:
        return f"{concept}={value}"
    if callable(names):
        return names(concept, value)
    return names.get((concept, value), f"{concept}={value}")


def concept_labels(fires: sp.spmatrix | np.ndarray, concepts: Mapping[str, np.ndarray],
                   names: Callable[[str, int], str] | Mapping[tuple[str, int], str] | None = None,
                   min_f1: float = MIN_F1, min_phi: float = MIN_PHI) -> list[LatentLabel]:
    """Per latent, the concept value whose documents best match the documents it fires in (by F1).

    `fires` is (n_documents, n_latents), true (or > 0) where the latent fires; `concepts` maps a concept to its
    (n_documents,) integer values, -1 where it does not apply. `names(concept, value)` (or a dict) spells a value;
    the default is 'concept=value'. Ties go to the first concept (in `concepts` order) and the lowest value.
    """
    x = sp.csr_matrix(fires).astype(bool).astype(np.float32)
    n_docs, n_latents = x.shape
    columns, names_of = [], []
    for concept, values in concepts.items():
        values = np.asarray(values)
        if values.shape != (n_docs,):
            raise ShapeError(f"concepts.{concept}: has shape {values.shape}, expected ({n_docs},) (one value per "
                             "document)")
        for value in np.unique(values[values >= 0]):
            columns.append(np.flatnonzero(values == value))
            names_of.append(_value_name(names, concept, int(value)))
    if not columns:
        return [LatentLabel(None, 0.0)] * n_latents
    rows = np.concatenate(columns)
    cols = np.repeat(np.arange(len(columns)), [len(c) for c in columns])
    y = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_docs, len(columns)))
    tp = np.asarray((x.T @ y).todense(), dtype=np.float64)  # (n_latents, n_values) documents in both
    fired = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()[:, None]
    having = np.asarray(y.sum(axis=0), dtype=np.float64).ravel()[None, :]
    f1 = 2 * tp / np.maximum(fired + having, 1)
    spread = np.sqrt(fired * (n_docs - fired) * having * (n_docs - having))
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(spread > 0, (n_docs * tp - fired * having) / spread, 0.0)
    f1 = np.where(phi >= min_phi, f1, 0.0)
    best = f1.argmax(axis=1)
    score = f1[np.arange(n_latents), best]
    return [LatentLabel(names_of[b] if s >= min_f1 and s > 0 else None, float(s)) for b, s in zip(best, score,
                                                                                                    strict=True)]


def top_tokens(codes: TokenCodes, latents: Sequence[int] | None = None, n_activations: int = 20,
               n_tokens: int = 3) -> dict[int, list[tuple[str, int]]]:
    """Per latent, its most frequent tokens (with counts) among its `n_activations` strongest activations.

    Tokens are the text spans of the documents (stripped of surrounding spaces); a latent that never fires in
    `codes` gets an empty list.
    """
    if n_activations < 1 or n_tokens < 1:
        raise ConfigError("n_activations and n_tokens: must be ≥ 1")
    latents = range(codes.n_latents) if latents is None else latents
    result: dict[int, list[tuple[str, int]]] = {}
    for latent in latents:
        rows, values = codes.activations(int(latent))
        strongest = rows[np.lexsort((rows, -values))[:n_activations]]
        words = Counter()
        for row in strongest:
            doc, pos = codes.token_doc[row], codes.token_pos[row]
            start, end = codes.offsets[doc][pos]
            words[codes.texts[doc][start:end].strip() or repr(codes.texts[doc][start:end])] += 1
        # most frequent first; equal counts alphabetically, so the label does not depend on document order
        result[int(latent)] = sorted(words.items(), key=lambda item: (-item[1], item[0]))[:n_tokens]
    return result


def token_labels(sae: nn.Module, model: nn.Module, tokenizer, hook: str, documents: Sequence[str],
                 latents: Sequence[int] | None = None, *, n_activations: int = 20, n_tokens: int = 3,
                 max_tokens: int = 50_000, max_length: int = 128, progress: bool = False) -> dict[int, str | None]:
    """Label latents by their top-activating tokens on `documents`: 'past / was / had' (None if it never fires)."""
    codes = collect_token_codes(sae, model, tokenizer, hook, documents, max_tokens=max_tokens, max_length=max_length,
                                progress=progress)
    tokens = top_tokens(codes, latents, n_activations, n_tokens)
    return {latent: " / ".join(word for word, _ in words) or None for latent, words in tokens.items()}
