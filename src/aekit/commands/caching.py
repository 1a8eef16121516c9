"""`aekit cache`: stream a text corpus through a Hugging Face causal LM into an activation store.

Each document is tokenized (truncated to max_length), documents are batched with right padding, the model runs
only as far as the requested hook (ActivationCapture stops the forward pass there), and every real token except
padding and BOS becomes one row of the store. Head-wise hooks (attn.hook_z, attn.hook_result) are flattened to
one feature vector per token; their (heads, width) shape is recorded in the store's provenance as `hook_shape`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..data.corpus import batched, check_corpus, iter_documents
from ..data.hooks import ActivationCapture, parse_hook_name
from ..data.lm_source import document_rows, hook_shape
from ..data.store import DTYPES, ActivationStore, ActivationStoreWriter
from ..errors import ConfigError, DataError
from ..fileio import discard_partial_output, require_fresh_directory

__all__ = ["DEFAULT_MAX_LENGTH", "cache_activations", "hook_shape"]

DEFAULT_MAX_LENGTH = 512


def _max_positions(model: torch.nn.Module) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def cache_activations(
    model: str | Path,
    hook: str,
    text: str | Path,
    out: str | Path,
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    max_tokens: int | None = None,
    dtype: str = "float32",
    device: str | None = None,
    rows_per_shard: int = 65536,
    progress: bool = True,
) -> ActivationStore:
    """Write the activations at `hook` of every non-pad, non-BOS token of the corpus `text` to a new store."""
    from ..data.lm import load_lm, resolve_device

    out = Path(out)
    require_fresh_directory(out, "output store")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    for name, value in (("batch_size", batch_size), ("max_length", max_length), ("max_tokens", max_tokens)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name}: must be a positive integer, got {value!r}")
    parse_hook_name(hook)
    corpus = check_corpus(text)
    torch_device = resolve_device(device)

    lm, tokenizer = load_lm(model, dtype=DTYPES[dtype], device=torch_device, progress=progress)
    limit = _max_positions(lm)
    if max_length is None:
        max_length = min(DEFAULT_MAX_LENGTH, limit) if limit else DEFAULT_MAX_LENGTH
    elif limit is not None and max_length > limit:
        raise ConfigError(f"max_length: {max_length} exceeds the model's {limit} positions; use --max-length "
                          f"{limit} or less")
    capture = ActivationCapture(lm, [hook])  # checks the layer exists before anything is written
    shape = hook_shape(lm, hook)
    provenance: dict[str, Any] = {
        "source": "aekit cache",
        "model": str(model),
        "model_type": lm.config.model_type,
        "hook": hook,
        "hook_shape": list(shape),
        "corpus": str(corpus.resolve()),
        "max_length": max_length,
        "dtype": dtype,
        "aekit_version": __version__,
        "excluded": "padding and BOS tokens",
    }

    created = not out.exists()
    try:
        writer = ActivationStoreWriter(out, math.prod(shape), dtype=dtype, rows_per_shard=rows_per_shard,
                                       provenance=provenance)
        rows = documents = 0
        from tqdm.auto import tqdm

        bar = tqdm(total=max_tokens, unit="tok", unit_scale=True, desc="caching", disable=not progress,
                   dynamic_ncols=True)
        try:
            with capture:
                for batch in batched(iter_documents(corpus), batch_size):
                    flat = document_rows(capture, tokenizer, hook, batch, max_length)
                    if max_tokens is not None:
                        flat = flat[: max_tokens - rows]
                    documents += len(batch)
                    if len(flat):
                        writer.append(flat)
                        rows += len(flat)
                        bar.update(len(flat))
                    if max_tokens is not None and rows >= max_tokens:
                        break
        finally:
            bar.close()
        if documents == 0:
            raise DataError(f"{corpus}: the corpus holds no documents (only blank lines or empty texts)")
        if rows == 0:
            raise DataError(f"{corpus}: the corpus yields no tokens once padding and BOS tokens are dropped")
        writer.provenance.update({"documents": documents, "tokens": rows})
        return writer.close()
    except BaseException:  # nothing partial is left behind, whatever stopped the run
        discard_partial_output(out, created)
        raise
