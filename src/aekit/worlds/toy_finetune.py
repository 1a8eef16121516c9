"""Continue training a saved toy LM on given documents only: the last step of the data-selection study.

The documents are tokenised with the toy language's tokenizer and end with BOS as their EOS, as in pre-training;
they are cycled in seeded, shuffled epochs and packed with toy_lm's packing, and the optimisation is toy_lm's own
training loop (`fit_toy_lm`: AdamW, linear warm-up then cosine decay) with the base run's settings except
steps, learning rate, warm-up and seed. The output is a toy LM directory like `train_toy_lm`'s (training.json
records what it was fine-tuned from), so `evaluate_toy_lm` scores it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..fileio import require_fresh_directory
from ..seeding import derive_seed
from .language import BOS, UNK, VOCAB, build_tokenizer
from .toy_lm import PackedBatch, ToyLMConfig, _pack_rows, fit_toy_lm, packed_batch

__all__ = ["finetune_batches", "finetune_toy_lm"]


def _base_config(model_dir: Path) -> ToyLMConfig:
    """The settings the base model was trained with (training.json), else defaults sized by its config.json."""
    training = model_dir / "training.json"
    if training.is_file():
        try:
            return ToyLMConfig.from_dict(json.loads(training.read_text())["config"], where=f"{training}: config")
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{training}: not a toy LM training record; retrain the model with "
                            "`aekit world train-lm`") from None
    try:
        hf = json.loads((model_dir / "config.json").read_text())
        return ToyLMConfig(n_layer=hf["n_layer"], n_head=hf["n_head"], d_model=hf["n_embd"], n_ctx=hf["n_positions"])
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise DataError(f"{model_dir}: not a toy LM directory (config.json unreadable: {e}); give a directory "
                        "written by train_toy_lm or `aekit world train-lm`") from None


def _encode(documents: Sequence[str], n_ctx: int) -> list[list[int]]:
    """BOS + words + BOS (as EOS) per document, cut to n_ctx; a word outside the toy vocabulary is an error, not
    a silent UNK."""
    if not documents:
        raise DataError("documents: none given; fine-tuning needs at least one document")
    unk, bos = VOCAB.index(UNK), VOCAB.index(BOS)
    encoded = []
    documents = list(documents)
    for i, encoding in enumerate(build_tokenizer().encode_batch(documents)):
        ids = encoding.ids
        if len(ids) < 2:
            raise DataError(f"documents[{i}]: is empty")
        if unk in ids:
            begin, end = encoding.offsets[ids.index(unk)]
            word = documents[i][begin:end]
            raise DataError(f"documents[{i}]: {word!r} is not a word of the toy language; toy LMs are fine-tuned "
                            "on toy-language text only")
        encoded.append([*ids, bos][:n_ctx])
    return encoded


def finetune_batches(documents: list[list[int]], n_ctx: int, rows_per_batch: int, seed: int) -> Iterator[PackedBatch]:
    """Endless packed batches of `documents` (token ids): each epoch a fresh seeded order, rows carried over
    between epochs so a selection smaller than one batch still fills whole batches."""
    rng = np.random.default_rng(derive_seed("toy_lm.finetune", seed))
    pending: list[list[list[int]]] = []
    while True:
        pending += _pack_rows([documents[i] for i in rng.permutation(len(documents))], n_ctx)
        while len(pending) >= rows_per_batch:
            yield packed_batch(pending[:rows_per_batch], n_ctx)
            del pending[:rows_per_batch]


def finetune_toy_lm(model_dir: str | Path, documents: Sequence[str], out_dir: str | Path, steps: int = 200,
                    lr: float = 1e-3, seed: int = 0, *, warmup_steps: int = 20, batch_tokens: int | None = None,
                    eval_n: int = 0, progress: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Continue training the toy LM in `model_dir` on `documents` (toy-language texts) and write it to `out_dir`.

    Every other optimisation setting is the base run's (batch_tokens too, unless given). `eval_n` > 0 also
    scores the result into eval.json. Returns train_toy_lm's summary plus `finetuned_from` and `documents`.
    The same seed gives bit-identical weights on CPU.
    """
    from ..data.lm import load_lm

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    base = _base_config(model_dir)
    config = dataclasses.replace(base, steps=steps, lr=lr, seed=seed, warmup_steps=warmup_steps,
                                 batch_tokens=batch_tokens or base.batch_tokens, eval_n=eval_n, eval_every=0,
                                 log_every=min(base.log_every, max(steps, 1)))
    config.validate()
    if warmup_steps > steps:
        raise ConfigError(f"warmup_steps: must be ≤ steps={steps} (got {warmup_steps})")
    if not overwrite:
        require_fresh_directory(out_dir, "the fine-tuned toy LM output directory")
    encoded = _encode(documents, config.n_ctx)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        start = time.perf_counter()
        torch.manual_seed(seed)
        model, _ = load_lm(model_dir, device="cpu", progress=progress)  # fit_toy_lm checks its packed attention
        model = model.float()
        batches = finetune_batches(encoded, config.n_ctx, config.batch_tokens // config.n_ctx, seed)
        provenance = {"finetuned_from": str(model_dir.resolve()), "documents": len(encoded),
                      "document_tokens": sum(map(len, encoded))}
        return fit_toy_lm(model, batches, config, out_dir, progress, start, provenance)
    finally:
        torch.set_num_threads(threads_before)
