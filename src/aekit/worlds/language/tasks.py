"""Task families with known answers and known corruptions: IOI, greater-than, docstring, induction.

Each family is one sampler that draws a clean token sequence, its single-token answer, a corrupted sequence from
which the answer cannot be inferred, and metadata. `task_set(family, n, seed)` returns prompts for evaluation and
circuit discovery; `task_document(family, rng)` returns the full sequence (prompt + answer + the rest) that is
mixed into the training corpus. Text is the words joined by single spaces, as everywhere in the language.

Held-out split: every example has a key (IOI: its two names; greater-than: century and start year; docstring:
the last two parameter names; induction: the sequence), and a fixed hash sends 20% of keys to "test". Training
documents use only "train" keys, so no test prompt shares its key with a training document: e.g. a test IOI
prompt's two names never meet in a training IOI sentence, a test (century, start year) never starts a training
greater-than sentence.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError
from ...seeding import derive_seed
from .grammar import Document, LanguageWorld, unlabelled_document
from .vocab import (
    DOC_DESCRIPTIONS,
    DOC_FUNCTIONS,
    DOC_PARAMS,
    ENTITIES,
    ENTITY_TYPES,
    GT_NOUNS,
    INDUCTION_WORDS,
    IOI_OBJECTS,
    IOI_PLACES,
    YEARS,
)

__all__ = ["TASK_FAMILIES", "TaskExample", "TaskSet", "mixed_documents", "task_document", "task_set"]

NAMES = ENTITIES["person"]
_PERSON = {name: ENTITY_TYPES.index("person") for name in NAMES}

# IOI templates: A and B are the first two names, S2 the repeated subject; the answer is the indirect object.
IOI_TEMPLATES: tuple[tuple[str, ...], ...] = tuple(t.split() for t in (
    "When {A} and {B} went to the {PLACE} , {S2} gave a {OBJ} to",
    "After {A} and {B} came to the {PLACE} , {S2} handed the {OBJ} to",
    "While {A} and {B} were working at the {PLACE} , {S2} passed the {OBJ} to",
    "Then , {A} and {B} had a long day at the {PLACE} . {S2} brought a {OBJ} to",
))
GT_CENTURIES = tuple(range(11, 18))
GT_MIN_YY, GT_MAX_YY = 2, 97  # prompts: room above and below the start year, as in Hanna et al.
GT_MAX_DURATION = 20  # training end years lie 1..20 years after the start (within the century), mode ~10
GT_CORRUPT_YY = 1
SPLITS = ("all", "train", "test")
TEST_PERCENT = 20


@dataclass
class TaskExample:
    """One task instance: clean and corrupted prompts as word lists, the answer word and what generated them.

    `completion` is what follows the answer in a training document (e.g. the closing period).
    """

    prompt: list[str]
    answer: str
    corrupted: list[str]
    metadata: dict[str, Any]
    completion: list[str] = field(default_factory=list)


@dataclass
class TaskSet:
    """n prompts of one family with their single-token answers, corrupted prompts and per-prompt metadata."""

    family: str
    prompts: list[str]
    answers: list[str]
    corrupted_prompts: list[str]
    metadata: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.prompts)


def _ioi(rng: random.Random) -> TaskExample:
    template = rng.randrange(len(IOI_TEMPLATES))
    io, s, *fresh = rng.sample(NAMES, 5)  # three fresh names fill the corrupted prompt
    order = rng.choice(("ABBA", "BABA"))
    first, second = (io, s) if order == "ABBA" else (s, io)
    place, obj = rng.choice(IOI_PLACES), rng.choice(IOI_OBJECTS)

    def fill(a: str, b: str, s2: str) -> list[str]:
        values = {"{A}": a, "{B}": b, "{S2}": s2, "{PLACE}": place, "{OBJ}": obj}
        return [values.get(w, w) for w in IOI_TEMPLATES[template]]

    meta = {"template": template, "order": order, "io": io, "s": s, "corrupted_names": fresh,
            "key": " ".join(sorted((io, s)))}
    return TaskExample(fill(first, second, s), io, fill(*fresh), meta, completion=["."])


def _greater_than(rng: random.Random, min_yy: int = GT_MIN_YY) -> TaskExample:
    """Prompts start after 01; training documents (min_yy=1) also start in 01, the corrupted start year, so a
    corrupted prompt is in-distribution and its answers are the early years a model predicts after 01."""
    noun, century = rng.choice(GT_NOUNS), rng.choice(GT_CENTURIES)
    yy = rng.randint(min_yy, GT_MAX_YY)
    # the training answer: a later year of the same century, most likely ~10 years on (a triangular law), so a
    # model must read YY to put its top guess after it, and "always 99" scores nothing by itself
    while (end := yy + rng.randint(1, GT_MAX_DURATION // 2) + rng.randint(0, GT_MAX_DURATION // 2)) > 99:
        pass

    def prompt(start: int) -> list[str]:
        return ["The", noun, "lasted", "from", "the", "year", f"{century}", YEARS[start], "to", "the", "year",
                f"{century}"]

    meta = {"yy": yy, "century": century, "noun": noun, "valid_answers": list(YEARS[yy + 1:]),
            "key": f"{century}{YEARS[yy]}"}
    return TaskExample(prompt(yy), YEARS[end], prompt(GT_CORRUPT_YY), meta, completion=["."])


def _param_line(name: str, rng: random.Random) -> list[str]:
    return [":", "param", name, ":", "the", rng.choice(DOC_DESCRIPTIONS)]


def _docstring(rng: random.Random, n_params: int | None = None) -> TaskExample:
    """def f(p1, ..., pn): \"\"\" :param p1: ... :param p_k: ... :param -> p_{k+1} (k = n - 1 in prompts)."""
    n = n_params or rng.randint(2, 4)
    names = rng.sample(DOC_PARAMS, 2 * n)
    params, decoys = names[:n], names[n:]
    fn = rng.choice(DOC_FUNCTIONS)

    def header(args: list[str]) -> list[str]:
        out = ["def", fn, "("]
        for i, arg in enumerate(args):
            out += [arg, ","] if i < len(args) - 1 else [arg]
        return [*out, ")", ":", '"""']

    body = [w for p in params[:-1] for w in _param_line(p, rng)]
    prompt = [*header(params), *body, ":", "param"]
    # corruption: the signature names are replaced by others, so the undocumented parameter is nowhere to be seen
    corrupted = [*header(decoys), *body, ":", "param"]
    completion = [":", "the", rng.choice(DOC_DESCRIPTIONS), '"""']
    meta = {"params": params, "function": fn, "corrupted_params": decoys, "key": " ".join(params[-2:])}
    return TaskExample(prompt, params[-1], corrupted, meta, completion=completion)


def _induction(rng: random.Random, length: int | None = None) -> TaskExample:
    """A random sequence of distinct reserved words, then its repeat cut after k words; answer: word k."""
    n = length or rng.randint(6, 12)
    words = rng.sample(INDUCTION_WORDS, 2 * n)
    seq, other = words[:n], words[n:]
    k = rng.randint(1, n - 1)
    meta = {"length": n, "k": k, "sequence": seq, "key": " ".join(seq)}
    return TaskExample(seq + seq[:k], seq[k], other + seq[:k], meta, completion=seq[k + 1:])


SAMPLERS: dict[str, Callable[[random.Random], TaskExample]] = {
    "ioi": _ioi,
    "greater_than": _greater_than,
    "docstring": lambda rng: _docstring(rng, 3),
    "induction": _induction,
}
TASK_FAMILIES = tuple(SAMPLERS)


def _check(family: str, split: str) -> None:
    if family not in SAMPLERS:
        raise ConfigError(f"task: unknown family {family!r}; choose one of {', '.join(TASK_FAMILIES)}")
    if split not in SPLITS:
        raise ConfigError(f"task: unknown split {split!r}; choose one of {', '.join(SPLITS)}")


def split_of(key: str) -> str:
    """"test" for a fixed 20% of example keys, "train" for the rest (a hash, so the same on every machine)."""
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") % 100
    return "test" if bucket < TEST_PERCENT else "train"


def _sample(sampler: Callable[[random.Random], TaskExample], rng: random.Random, split: str) -> TaskExample:
    """Draw until the example's key belongs to `split` (about 1.25 draws for train, 5 for test)."""
    while True:
        example = sampler(rng)
        if split == "all" or split_of(example.metadata["key"]) == split:
            return example


def task_set(family: str, n: int, seed: int = 0, split: str = "all") -> TaskSet:
    """`n` prompts of `family` from `split` ("all", "train" or "test"), deterministic in `seed`.

    Every answer is exactly one token of the bundled tokenizer.
    """
    _check(family, split)
    rng = random.Random(derive_seed(f"language.task.{family}.{split}", seed))
    examples = [_sample(SAMPLERS[family], rng, split) for _ in range(n)]
    return TaskSet(family, [" ".join(e.prompt) for e in examples], [e.answer for e in examples],
                   [" ".join(e.corrupted) for e in examples], [e.metadata for e in examples])


def task_document(family: str, rng: random.Random, split: str = "train") -> Document:
    """A training document of `family`: prompt, answer and completion (docstrings have 2–4 parameters)."""
    _check(family, split)
    if family == "docstring":
        example = _sample(_docstring, rng, split)
    elif family == "greater_than":
        example = _sample(lambda r: _greater_than(r, min_yy=GT_CORRUPT_YY), rng, split)
    elif family == "induction":  # the full repeat, so every position of the second copy teaches induction
        example = _sample(_induction, rng, split)
        example = TaskExample(example.prompt[: example.metadata["length"]] * 2, "", [], example.metadata)
    else:
        example = _sample(SAMPLERS[family], rng, split)
    words = example.prompt + ([example.answer] if example.answer else []) + example.completion
    return unlabelled_document(family, words, _PERSON)


def mixed_documents(world: LanguageWorld, n: int, seed: int, weights: dict[str, float]) -> list[Document]:
    """`n` documents whose kinds ("prose" or a task family) are drawn with the given relative `weights`.

    Task documents come from the "train" split only, so "test" task prompts stay held out.
    """
    kinds = list(weights)
    for kind in kinds:
        if kind != "prose":
            _check(kind, "train")
        if weights[kind] < 0:
            raise ConfigError(f"mixture.{kind}: weight must be ≥ 0 (got {weights[kind]})")
    if sum(weights.values()) <= 0:
        raise ConfigError("mixture: at least one weight must be > 0")
    rng = random.Random(derive_seed("language.mixed", world.config.seed, seed))
    chosen = rng.choices(kinds, weights=[weights[k] for k in kinds], k=n)
    return [world.sample_document(rng) if kind == "prose" else task_document(kind, rng) for kind in chosen]
