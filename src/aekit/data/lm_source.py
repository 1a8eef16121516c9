"""Train on a language model's activations computed on the fly, without writing a store first.

`LMActivationSource` splits the corpus into chunks of consecutive documents, runs each chunk through the model up
to the hook when the stream asks for it, and shuffles the resulting token rows inside the chunk; chunk order is a
fresh permutation every epoch. Because the chunks and permutations are functions of (seed, epoch, chunk) and a CPU
forward pass is deterministic, the cursor resumes exactly, like the store's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import DataError
from .hooks import ActivationCapture, model_layout, parse_hook_name, token_rows
from .stream import ShuffledChunkStream, StreamBackedSource, chunk_permutation

__all__ = ["LMActivationSource", "document_rows", "hook_shape"]


def hook_shape(model: nn.Module, hook: str) -> tuple[int, ...]:
    """The per-token shape of a hook's activation: (d_model,), or (heads, d_head) / (heads, d_model) per head."""
    layout = model_layout(model)
    _, point = parse_hook_name(hook)
    if point == "attn.hook_z":
        return (layout.n_heads, layout.d_head)
    if point == "attn.hook_result":
        return (layout.n_heads, layout.d_model)
    return (layout.d_model,)


@torch.no_grad()
def document_rows(capture: ActivationCapture, tokenizer, hook: str, documents: Sequence[str],
                  max_length: int) -> Tensor:
    """One flattened activation row per real token of `documents` (padding and BOS dropped), in document order."""
    encoded = tokenizer(list(documents), return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    acts = capture.run(ids, mask)[hook]
    rows = token_rows(acts, ids.to(acts.device), mask.to(acts.device), tokenizer.bos_token_id)
    return rows.reshape(len(rows), -1)


class LMActivationSource(StreamBackedSource):
    """Shuffled batches of `hook` activations of `model` on `documents`, computed chunk by chunk."""

    def __init__(self, model: nn.Module, tokenizer, hook: str, documents: Sequence[str], batch_size: int, *,
                 seed: int = 0, docs_per_chunk: int = 256, max_length: int = 128, lm_batch_size: int = 8):
        if not documents:
            raise DataError("text: the corpus holds no documents")
        self.model, self.tokenizer, self.hook = model, tokenizer, hook
        self.documents = list(documents)
        self.capture = ActivationCapture(model, [hook])
        self.d = math.prod(hook_shape(model, hook))
        self.docs_per_chunk, self.max_length, self.lm_batch_size = docs_per_chunk, max_length, lm_batch_size
        self.n_chunks = math.ceil(len(self.documents) / docs_per_chunk)
        layout = f"{len(self.documents)} documents, {docs_per_chunk} per chunk, max_length {max_length}"
        self.stream = ShuffledChunkStream(self.n_chunks, self._load_chunk, batch_size, seed, layout=layout)

    def _load_chunk(self, epoch: int, chunk: int) -> Tensor:
        block = chunk_permutation(self.n_chunks, self.stream.seed, epoch)[chunk]
        docs = self.documents[block * self.docs_per_chunk:(block + 1) * self.docs_per_chunk]
        rows = [document_rows(self.capture, self.tokenizer, self.hook, docs[i:i + self.lm_batch_size],
                              self.max_length) for i in range(0, len(docs), self.lm_batch_size)]
        rows = torch.cat(rows).float().cpu()
        if len(rows) == 0:
            raise DataError(f"text: documents {block * self.docs_per_chunk}.. yield no tokens once padding and BOS "
                            "are dropped")
        return rows
