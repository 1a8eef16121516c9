"""What `aekit train` reads: an array file, an activation store, or a language model + corpus on the fly.

A data spec is a path (array file or store directory) or a mapping {"lm", "hook", "text"[, "max_length",
"max_documents"]}; run.json records it as given so `--resume` reopens exactly the same data.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import torch

from ..data import open_source
from ..data.sources import Source
from ..errors import ConfigError
from ..train import TrainConfig

DataSpec = str | Path | dict[str, Any]
LM_KEYS = ("lm", "hook", "text")
LM_OPTIONS = {"max_length": 128, "max_documents": None}
# what an SAE inherits from the activation store it was trained on, so eval/report know the model and hook
INHERITED_PROVENANCE = ("model", "model_type", "hook", "hook_shape", "corpus")

__all__ = ["DataSpec", "data_provenance", "open_training_source", "record", "sample_rows"]


def _lm_spec(data: dict[str, Any]) -> dict[str, Any]:
    missing = [key for key in LM_KEYS if not data.get(key)]
    unknown = sorted(set(data) - set(LM_KEYS) - set(LM_OPTIONS))
    if missing or unknown:
        raise ConfigError(f"data: training on the fly needs lm, hook and text (missing {missing}, unknown {unknown})")
    return {**LM_OPTIONS, **data}


def _absolute_if_local(value: Any) -> Any:
    """A path that exists here, made absolute (a hub name such as 'gpt2' is kept as given)."""
    return str(Path(value).resolve()) if isinstance(value, str | Path) and Path(value).exists() else value


def record(data: DataSpec) -> str | dict[str, Any]:
    """The data spec as stored in run.json, with local paths absolute so `--resume` works from any directory."""
    if not isinstance(data, dict):
        return str(Path(data).resolve())
    spec = _lm_spec(data)
    return {**spec, "lm": _absolute_if_local(spec["lm"]), "text": _absolute_if_local(spec["text"])}


def _lm_source(spec: dict[str, Any], batch_size: int, seed: int, buffer_rows: int):
    from ..data.corpus import check_corpus, iter_documents
    from ..data.lm import load_lm
    from ..data.lm_source import LMActivationSource

    corpus = check_corpus(spec["text"])
    documents = list(islice(iter_documents(corpus), spec["max_documents"]))
    model, tokenizer = load_lm(spec["lm"], progress=False)
    docs_per_chunk = max(1, buffer_rows // spec["max_length"])  # a chunk's rows stay within the buffer
    return LMActivationSource(model, tokenizer, spec["hook"], documents, batch_size, seed=seed,
                              docs_per_chunk=docs_per_chunk, max_length=spec["max_length"])


def open_training_source(data: DataSpec, config: TrainConfig) -> Source:
    if isinstance(data, dict):
        return _lm_source(_lm_spec(data), config.batch_size, config.seed, config.buffer_rows)
    return open_source(data, config.batch_size, seed=config.seed, buffer_rows=config.buffer_rows)


def sample_rows(data: DataSpec, n: int, seed: int = 0) -> torch.Tensor:
    """Up to n shuffled rows of a store, array file or on-the-fly LM source, read with bounded memory."""
    if isinstance(data, dict):
        source = _lm_source(_lm_spec(data), n, seed, buffer_rows=n)
        rows, total = [], 0
        for chunk in range(source.n_chunks):  # one pass at most: never repeat documents to fill n rows
            rows.append(source._load_chunk(0, chunk))
            total += len(rows[-1])
            if total >= n:
                break
        return torch.cat(rows)[:n]
    source = open_source(data, batch_size=n, seed=seed)
    source.stream.batch_size = min(n, len(source))
    return source.stream.next_batch()


def data_provenance(data: DataSpec, source: Source) -> dict[str, Any]:
    """Where the training rows came from: the store's recorded model/hook, or the on-the-fly spec."""
    if isinstance(data, dict):
        spec = _lm_spec(data)
        return {"model": str(spec["lm"]), "hook": spec["hook"], "corpus": str(Path(spec["text"]).resolve()),
                "dataset": "on the fly", "model_type": source.model.config.model_type}
    store = getattr(source, "store", None)
    recorded = getattr(store, "provenance", None) or {}
    inherited = {key: recorded[key] for key in INHERITED_PROVENANCE if key in recorded}
    return {**inherited, "dataset": str(Path(data).resolve())}
