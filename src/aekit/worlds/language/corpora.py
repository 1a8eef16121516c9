"""Corpora of the toy language with planted, known differences: the ground truth of the data-analysis tools.

Every corpus here is drawn from a `LanguageWorld` and reshaped by rejection sampling on the documents' recorded
concepts, so the language itself (its words and emission tables) never changes and a model trained on the
world reads every corpus. What is planted is known exactly:

- `diff_corpora`: corpus B over-samples some concept values (e.g. one topic, formal register, past tense); the
  planted differences are the concept values whose document frequency differs by at least `min_change`
  between the two corpora as generated (measured on the corpora, not assumed).
- `coupled_documents`: two concept values made to co-occur (e.g. past tense with formal register) far more
  than chance; those pairs are the planted correlations.
- `two_axis_documents`: topic and sentiment drawn independently (the world's topic→sentiment dependence
  switched off), so clustering along one axis can be scored against both.
- `selection_pool`: a candidate pool in which a known fraction of documents belongs to one task family.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ...errors import ConfigError
from ...seeding import derive_seed
from .grammar import Document, LanguageWorld
from .tasks import TASK_FAMILIES, task_document

__all__ = [
    "DOC_CONCEPTS",
    "CorpusPair",
    "concept_values",
    "coupled_documents",
    "diff_corpora",
    "document_concepts",
    "reweighted_documents",
    "selection_pool",
    "two_axis_documents",
    "value_name",
]

# Document-level concepts of prose: one value per document (task documents have none: -1).
DOC_CONCEPTS = ("topic", "formality", "sentiment", "tense")
VALUE_NAMES = {"formality": ("informal", "formal"), "sentiment": ("negative", "positive"),
               "tense": ("present", "past")}


def concept_values(world: LanguageWorld) -> list[tuple[str, int]]:
    """Every (concept, value) a prose document of `world` can have."""
    sizes = {"topic": world.config.n_topics, "formality": 2, "sentiment": 2, "tense": 2}
    return [(c, v) for c in DOC_CONCEPTS for v in range(sizes[c])]


def value_name(world: LanguageWorld, concept: str, value: int) -> str:
    """Readable name of a concept value: 'topic=sports', 'tense=past'."""
    name = world.topics[value].name if concept == "topic" else VALUE_NAMES[concept][value]
    return f"{concept}={name}"


def document_concepts(documents: Sequence[Document]) -> dict[str, np.ndarray]:
    """Per document concept: (n_documents,) int array of its value, -1 for documents without it (task documents)."""
    return {c: np.array([d.labels.get(c, -1) for d in documents], dtype=np.int64) for c in DOC_CONCEPTS}


def _check_weights(world: LanguageWorld, weights: Mapping[str, Mapping[int, float]]) -> None:
    allowed = dict.fromkeys(DOC_CONCEPTS)
    valid = set(concept_values(world))
    for concept, table in weights.items():
        if concept not in allowed:
            raise ConfigError(f"weights: unknown concept {concept!r}; choose from {', '.join(DOC_CONCEPTS)}")
        for value, weight in table.items():
            if (concept, value) not in valid:
                raise ConfigError(f"weights.{concept}: value {value} does not exist in this world")
            if not weight > 0:
                raise ConfigError(f"weights.{concept}.{value}: must be > 0 (got {weight})")


def reweighted_documents(world: LanguageWorld, n: int, seed: int,
                         weights: Mapping[str, Mapping[int, float]]) -> list[Document]:
    """`n` prose documents whose concept distribution is the world's reweighted by `weights` (rejection sampling).

    A document is accepted with probability Π weights[concept][value] / max, so the result is distributed as
    p(doc) · Π w exactly; unlisted values have weight 1.
    """
    _check_weights(world, weights)
    ceiling = float(np.prod([max([1.0, *table.values()]) for table in weights.values()])) if weights else 1.0
    rng = random.Random(derive_seed("language.reweighted", world.config.seed, seed))
    out: list[Document] = []
    while len(out) < n:
        doc = world.sample_document(rng)
        weight = float(np.prod([weights[c].get(doc.labels[c], 1.0) for c in weights]))
        if rng.random() * ceiling < weight:
            out.append(doc)
    return out


@dataclass
class CorpusPair:
    """Two corpora and the concept values whose document frequency differs between them by ≥ `min_change`."""

    a: list[Document]
    b: list[Document]
    planted: list[tuple[str, int]]
    frequency_a: dict[tuple[str, int], float]
    frequency_b: dict[tuple[str, int], float]
    min_change: float


def _frequencies(world: LanguageWorld, documents: Sequence[Document]) -> dict[tuple[str, int], float]:
    labels = document_concepts(documents)
    return {(c, v): float(np.mean(labels[c] == v)) for c, v in concept_values(world)}


DEFAULT_SHIFT = {"topic": {1: 4.0}, "formality": {1: 3.0}, "tense": {1: 3.0}}


def diff_corpora(world: LanguageWorld, n: int, seed: int = 0,
                 shift: Mapping[str, Mapping[int, float]] | None = None, min_change: float = 0.1) -> CorpusPair:
    """Corpus A from the world as it is, corpus B with `shift` applied; the planted differences are measured."""
    shift = DEFAULT_SHIFT if shift is None else shift
    a = world.documents(n, seed=derive_seed("corpora.diff.a", seed))
    b = reweighted_documents(world, n, derive_seed("corpora.diff.b", seed), shift)
    fa, fb = _frequencies(world, a), _frequencies(world, b)
    planted = [cv for cv in concept_values(world) if abs(fb[cv] - fa[cv]) >= min_change]
    return CorpusPair(a, b, planted, fa, fb, min_change)


def coupled_documents(world: LanguageWorld, n: int, seed: int = 0,
                      couplings: Sequence[tuple[str, int, str, int]] = (("tense", 1, "formality", 1),),
                      strength: float = 0.9) -> tuple[list[Document], list[tuple[tuple[str, int], tuple[str, int]]]]:
    """Prose where each coupling (concept a, value a, concept b, value b) makes `a = va` ⇔ `b = vb` hold.

    A document that breaks a coupling is kept with probability 1 − `strength`. The planted pairs are (a=va,
    b=vb) and, for binary concepts, the complementary pair (a≠va, b≠vb) which the coupling correlates equally.
    """
    if not 0 <= strength < 1:
        raise ConfigError(f"strength: must be in [0, 1) (got {strength})")
    valid = set(concept_values(world))
    planted = []
    for ca, va, cb, vb in couplings:
        if (ca, va) not in valid or (cb, vb) not in valid or ca == cb:
            raise ConfigError(f"couplings: ({ca}, {va}, {cb}, {vb}) must pair values of two different concepts")
        planted.append(((ca, va), (cb, vb)))
        if ca != "topic" and cb != "topic":
            planted.append(((ca, 1 - va), (cb, 1 - vb)))
    rng = random.Random(derive_seed("language.coupled", world.config.seed, seed))
    out: list[Document] = []
    while len(out) < n:
        doc = world.sample_document(rng)
        broken = sum((doc.labels[ca] == va) != (doc.labels[cb] == vb) for ca, va, cb, vb in couplings)
        if rng.random() < (1 - strength) ** broken:
            out.append(doc)
    return out, planted


def two_axis_documents(world: LanguageWorld, n: int, seed: int = 0) -> list[Document]:
    """Prose in which topic, sentiment, formality and tense are mutually independent (same words as `world`)."""
    independent = LanguageWorld(replace(world.config, dependency_strength=0.0))
    return independent.documents(n, seed=derive_seed("corpora.two_axis", seed))


def selection_pool(world: LanguageWorld, n: int, seed: int = 0, target: str = "greater_than",
                   fraction: float = 0.05) -> tuple[list[Document], np.ndarray]:
    """`n` candidates: a `fraction` of `target` task documents, the rest prose and the other task families evenly.

    Returns the documents (shuffled) and the boolean mask of target documents.
    """
    if target not in TASK_FAMILIES:
        raise ConfigError(f"target: must be one of {', '.join(TASK_FAMILIES)} (got {target!r})")
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction: must be in (0, 1) (got {fraction})")
    rng = random.Random(derive_seed("corpora.selection", world.config.seed, seed))
    n_target = max(1, round(n * fraction))
    others = ["prose", *[f for f in TASK_FAMILIES if f != target]]
    kinds = [target] * n_target + [others[i % len(others)] for i in range(n - n_target)]
    rng.shuffle(kinds)
    docs = [world.sample_document(rng) if kind == "prose" else task_document(kind, rng) for kind in kinds]
    return docs, np.array([kind == target for kind in kinds])
