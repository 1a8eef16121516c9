"""Circuit tasks: positive and negative prompts, tokenised in pairs, and the task's differentiable metric.

A positive prompt is one the model can complete (the answer is inferable); its negative has the same token shape
but the answer cannot be inferred (O'Neill & Bui 2024): IOI with three distinct names, greater-than with start
year 01, docstring with the signature's names replaced, induction with a sequence that does not repeat. The
toy language's corrupted prompts are exactly these negatives, so one pair serves the discrete-code method (which
contrasts positives with negatives) and the patching methods (which patch a positive run with its negative).

The metric is computed from the logits at each prompt's last real token, one value per prompt:
  * ioi            logit(indirect object) − logit(subject)
  * greater_than   p(years after YY) − p(years up to YY)       (the probability difference of Hanna et al. 2023)
  * docstring      logit(answer) − max logit over the other parameter names of the clean and corrupted signatures
  * induction      log p(answer)                                (there is no single wrong answer to contrast)
  * prompts file   logit(answer) − logit(wrong) when a wrong answer is given, else log p(answer)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ...errors import ConfigError, DataError

__all__ = ["CircuitTask", "PromptPairs", "task_from_file", "toy_task"]

Metric = Callable[[Tensor], Tensor]  # (n, vocab) last-token logits -> (n,) per-prompt metric


@dataclass
class PromptPairs:
    """Positive and negative prompts tokenised to one padded shape; pair i has the same length on both sides."""

    positive_ids: Tensor  # (n, seq) right-padded
    negative_ids: Tensor  # (n, seq)
    mask: Tensor  # (n, seq), 1 on real tokens; shared because pairs have equal lengths

    @property
    def last(self) -> Tensor:
        """Index of each prompt's last real token."""
        return self.mask.sum(1) - 1

    def __len__(self) -> int:
        return self.positive_ids.shape[0]

    def subset(self, index: Tensor | slice) -> PromptPairs:
        return PromptPairs(self.positive_ids[index], self.negative_ids[index], self.mask[index])


@dataclass
class CircuitTask:
    """A named task: prompt pairs and a metric over last-token logits (higher = the model does the task)."""

    name: str
    positives: list[str]
    negatives: list[str]
    pairs: PromptPairs
    metric: Metric

    def __len__(self) -> int:
        return len(self.positives)


def tokenize_pairs(tokenizer, positives: Sequence[str], negatives: Sequence[str]) -> PromptPairs:
    """Tokenise both sides with one padding length; raise DataError naming the first pair of unequal length."""
    if len(positives) != len(negatives) or not positives:
        raise DataError(f"prompts: need the same non-zero number of positive and negative prompts "
                        f"(got {len(positives)} and {len(negatives)})")
    enc = tokenizer(list(positives) + list(negatives), return_tensors="pt", padding=True)
    ids, mask = enc.input_ids, enc.attention_mask
    n = len(positives)
    lengths_pos, lengths_neg = mask[:n].sum(1), mask[n:].sum(1)
    bad = (lengths_pos != lengths_neg).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise DataError(f"prompts: pair {i} has {int(lengths_pos[i])} tokens in the positive prompt but "
                        f"{int(lengths_neg[i])} in the negative; patching needs pairs of equal token length")
    return PromptPairs(ids[:n], ids[n:], mask[:n])


def _token_ids(tokenizer, words: Sequence[str], what: str) -> list[int]:
    """The single token id of each word (with a leading space where the tokenizer distinguishes it)."""
    ids = []
    for word in words:
        pieces = tokenizer(" " + word, add_special_tokens=False).input_ids
        if len(pieces) != 1:
            pieces = tokenizer(word, add_special_tokens=False).input_ids
        if len(pieces) != 1:
            raise DataError(f"{what}: {word!r} is not a single token of this tokenizer ({len(pieces)} tokens); "
                            "answers must be one token")
        ids.append(pieces[0])
    return ids


def _logit_difference(answer: Tensor, wrong: Tensor | None) -> Metric:
    rows = torch.arange(len(answer))

    def metric(logits: Tensor) -> Tensor:
        if wrong is None:
            return torch.log_softmax(logits.float(), -1)[rows, answer]
        return logits[rows, answer].float() - logits[rows, wrong].float()

    return metric


def _greater_than_metric(tokenizer, start_years: Sequence[int]) -> Metric:
    year_ids = torch.tensor(_token_ids(tokenizer, [f"{y:02d}" for y in range(100)], "greater_than"))
    later = torch.arange(100)[None, :] > torch.tensor(list(start_years))[:, None]
    sign = later.float() * 2 - 1  # +1 on later years, -1 on the start year and earlier ones

    def metric(logits: Tensor) -> Tensor:
        probs = torch.softmax(logits.float(), -1)[:, year_ids]
        return (probs * sign.to(probs.device)).sum(-1)

    return metric


def _docstring_metric(tokenizer, answers: Sequence[str], distractors: Sequence[Sequence[str]]) -> Metric:
    answer = torch.tensor(_token_ids(tokenizer, answers, "docstring"))
    width = max(len(d) for d in distractors)
    wrong = torch.tensor([_token_ids(tokenizer, list(d) + [d[0]] * (width - len(d)), "docstring")
                          for d in distractors])  # padded by repeating, which leaves the max unchanged
    rows = torch.arange(len(answer))

    def metric(logits: Tensor) -> Tensor:
        logits = logits.float()
        return logits[rows, answer] - logits.gather(1, wrong.to(logits.device)).max(-1).values

    return metric


def toy_task(family: str, tokenizer, n: int, seed: int = 0, split: str = "test") -> CircuitTask:
    """`n` prompt pairs of a toy-language task family ("ioi", "greater_than", "docstring", "induction")."""
    from ...worlds.language import task_set

    tasks = task_set(family, n, seed=seed, split=split)
    meta = tasks.metadata
    if family == "ioi":
        metric = _logit_difference(torch.tensor(_token_ids(tokenizer, tasks.answers, family)),
                                   torch.tensor(_token_ids(tokenizer, [m["s"] for m in meta], family)))
    elif family == "greater_than":
        metric = _greater_than_metric(tokenizer, [m["yy"] for m in meta])
    elif family == "docstring":
        others = [[p for p in m["params"][:-1] + m["corrupted_params"]] for m in meta]
        metric = _docstring_metric(tokenizer, tasks.answers, others)
    else:
        metric = _logit_difference(torch.tensor(_token_ids(tokenizer, tasks.answers, family)), None)
    pairs = tokenize_pairs(tokenizer, tasks.prompts, tasks.corrupted_prompts)
    return CircuitTask(family, tasks.prompts, tasks.corrupted_prompts, pairs, metric)


def task_from_file(path: str | Path, tokenizer, name: str | None = None) -> CircuitTask:
    """A task from a JSONL file: one object per line with "prompt", "corrupted", "answer" and optionally "wrong".

    "prompt" is a positive prompt, "corrupted" its negative of equal token length; "answer" (and "wrong") are
    single tokens. The metric is logit(answer) − logit(wrong), or log p(answer) when no line gives "wrong".
    """
    path = Path(path)
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as error:
        raise DataError(f"{path}: cannot read the prompts file ({error.strerror or error})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            raise DataError(f"{path}:{number}: not a JSON object") from None
        missing = [k for k in ("prompt", "corrupted", "answer") if not isinstance(row, dict) or
                   not isinstance(row.get(k), str)]
        if missing:
            raise DataError(f"{path}:{number}: missing text field(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no prompts (expected JSON lines with prompt, corrupted, answer)")
    with_wrong = sum("wrong" in r for r in rows)
    if with_wrong not in (0, len(rows)):
        raise ConfigError(f"{path}: give \"wrong\" on every line or on none ({with_wrong} of {len(rows)} have it)")
    answer = torch.tensor(_token_ids(tokenizer, [r["answer"] for r in rows], f"{path}: answer"))
    wrong = torch.tensor(_token_ids(tokenizer, [r["wrong"] for r in rows], f"{path}: wrong")) if with_wrong else None
    positives, negatives = [r["prompt"] for r in rows], [r["corrupted"] for r in rows]
    pairs = tokenize_pairs(tokenizer, positives, negatives)
    return CircuitTask(name or path.stem, positives, negatives, pairs, _logit_difference(answer, wrong))
