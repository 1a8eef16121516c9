"""What SAE features do on a corpus: codes of every token, top-activating contexts, densities, output effects.

`collect_token_codes` runs a language model over documents, encodes the activations at the SAE's hook and keeps
the sparse codes of every real token (padding and BOS are skipped, as in training) together with the character
span of each token in its document, so contexts can be shown as the original text with per-token highlighting.
The rest are cheap functions over those codes. `output_effects` projects decoder rows through the unembedding
(the "logit lens" view of a feature's direct effect on the next-token prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.hooks import ActivationCapture, model_layout, parse_hook_name, token_rows
from ..errors import ConfigError, DataError, ShapeError

__all__ = [
    "Context",
    "TokenCodes",
    "choose_features",
    "collect_token_codes",
    "feature_contexts",
    "output_effects",
]


@dataclass
class TokenCodes:
    """Sparse codes (n_tokens, n_latents) of every kept token, and where each token sits in its document."""

    codes: sp.csc_matrix
    token_doc: np.ndarray  # document index of each code row
    token_pos: np.ndarray  # token position within its document
    texts: list[str]
    offsets: list[np.ndarray]  # per document: (n_tokens, 2) character spans of its tokens (0, 0 for specials)

    @property
    def n_tokens(self) -> int:
        return self.codes.shape[0]

    @property
    def n_latents(self) -> int:
        return self.codes.shape[1]

    def density(self) -> np.ndarray:
        """Fraction of tokens on which each feature fires."""
        return np.diff(self.codes.indptr) / max(self.n_tokens, 1)

    def max_activation(self) -> np.ndarray:
        return np.asarray(self.codes.max(axis=0).todense()).ravel()

    def activations(self, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """(token rows, values) where `feature` fires."""
        start, end = self.codes.indptr[feature], self.codes.indptr[feature + 1]
        return self.codes.indices[start:end], self.codes.data[start:end]


@torch.no_grad()
def collect_token_codes(sae: nn.Module, model: nn.Module, tokenizer, hook: str, documents: Sequence[str], *,
                        max_tokens: int = 50_000, max_length: int = 128, batch_size: int = 8,
                        progress: bool = True) -> TokenCodes:
    """Encode the activations at `hook` of every real token of `documents` (up to `max_tokens`) with `sae`."""
    parse_hook_name(hook)
    width = sae.config.d_in
    capture = ActivationCapture(model, [hook])
    rows, cols, vals = [], [], []
    token_doc, token_pos, texts, offsets = [], [], [], []
    n_tokens = 0
    bar = tqdm(total=max_tokens, unit="tok", desc="encoding", disable=not progress, dynamic_ncols=True)
    sae_device = next(sae.parameters()).device
    for start in range(0, len(documents), batch_size):
        batch = list(documents[start:start + batch_size])
        try:  # character spans let contexts show the original text, whatever the tokenizer's word pieces look like
            encoded = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                                return_offsets_mapping=True)
        except NotImplementedError:
            raise ConfigError("tokenizer: a fast tokenizer is needed to show contexts") from None
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        acts = capture.run(ids, mask)[hook]
        flat = token_rows(acts, ids.to(acts.device), mask.to(acts.device), tokenizer.bos_token_id)
        flat = flat.reshape(len(flat), -1).float()
        if flat.shape[1] != width:
            raise ShapeError(f"sae: d_in {width} does not match {hook} of this model (width {flat.shape[1]})")
        # (row in batch, position) of each kept token, selected by the very rule that selected the activations
        grid = torch.stack(torch.meshgrid(torch.arange(ids.shape[0]), torch.arange(ids.shape[1]), indexing="ij"), -1)
        where = token_rows(grid, ids, mask, tokenizer.bos_token_id)
        codes = sae.encode(flat.to(sae_device)).to_dense().float().cpu()
        taken = min(len(flat), max_tokens - n_tokens)
        codes, where = codes[:taken], where[:taken]
        r, c = codes.nonzero(as_tuple=True)
        rows.append((r + n_tokens).numpy())
        cols.append(c.numpy())
        vals.append(codes[r, c].numpy())
        token_doc.append((where[:, 0] + len(texts)).numpy())
        token_pos.append(where[:, 1].numpy())
        texts.extend(batch)
        offsets.extend(np.asarray(o, dtype=np.int64) for o in encoded["offset_mapping"])
        n_tokens += taken
        bar.update(taken)
        if n_tokens >= max_tokens:
            break
    bar.close()
    if n_tokens == 0:
        raise DataError("documents: no tokens left once padding and BOS tokens are dropped")
    matrix = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(n_tokens, sae.config.n_latents), dtype=np.float32).tocsc()
    matrix.sort_indices()
    return TokenCodes(matrix, np.concatenate(token_doc), np.concatenate(token_pos), texts, offsets)


def choose_features(codes: TokenCodes, n: int) -> list[int]:
    """`n` live features spread evenly over the density ranking (dense, middling and rare ones alike)."""
    density = codes.density()
    alive = np.flatnonzero(density > 0)
    if len(alive) == 0:
        return []
    ranked = alive[np.argsort(-density[alive], kind="stable")]
    if n >= len(ranked):
        return ranked.tolist()
    return ranked[np.unique(np.linspace(0, len(ranked) - 1, n).round().astype(int))].tolist()


@dataclass
class Context:
    """One top-activating context: text pieces with the feature's activation on each (0 for gaps)."""

    pieces: list[tuple[str, float]] = field(default_factory=list)
    peak: float = 0.0
    document: int = 0


def feature_contexts(codes: TokenCodes, feature: int, n: int = 10, left: int = 12, right: int = 4) -> list[Context]:
    """The `n` highest activations of `feature`, each shown with `left`/`right` tokens of its document around it."""
    token_rows_, values = codes.activations(feature)
    if len(values) == 0:
        return []
    order = np.argsort(-values, kind="stable")[:n]
    contexts = []
    for row in token_rows_[order]:
        doc, pos = int(codes.token_doc[row]), int(codes.token_pos[row])
        # activations of this feature on the other tokens of the same document
        same_doc = codes.token_doc[token_rows_] == doc
        by_pos = dict(zip(codes.token_pos[token_rows_[same_doc]].tolist(), values[same_doc].tolist(), strict=True))
        spans, text = codes.offsets[doc], codes.texts[doc]
        first, last = max(0, pos - left), min(len(spans) - 1, pos + right)
        pieces: list[tuple[str, float]] = []
        cursor = None
        for p in range(first, last + 1):
            s, e = int(spans[p][0]), int(spans[p][1])
            if e <= s:  # special or padding token: nothing to show
                continue
            if cursor is not None and s > cursor:
                pieces.append((text[cursor:s], 0.0))
            pieces.append((text[s:e], float(by_pos.get(p, 0.0))))
            cursor = e
        contexts.append(Context(pieces, float(by_pos[pos]), doc))
    return contexts


def _decoder_in_residual(sae: nn.Module, model: nn.Module, hook: str) -> Tensor:
    """Decoder rows expressed as residual-stream directions (n_latents, d_model)."""
    layout = model_layout(model)
    layer, point = parse_hook_name(hook)
    w_dec = sae.W_dec.detach().float()
    if point == "attn.hook_z":
        w_o = layout.w_o(layer).detach().float()  # (heads, d_head, d_model)
        if w_dec.shape[1] != w_o.shape[0] * w_o.shape[1]:
            raise ShapeError(f"sae: decoder width {w_dec.shape[1]} does not match {hook}")
        return torch.einsum("nhd,hdm->nm", w_dec.reshape(len(w_dec), *w_o.shape[:2]), w_o)
    if point == "attn.hook_result":
        return w_dec.reshape(len(w_dec), layout.n_heads, layout.d_model).sum(1)
    if w_dec.shape[1] != layout.d_model:
        raise ShapeError(f"sae: decoder width {w_dec.shape[1]} is not the model width {layout.d_model}")
    return w_dec


def output_effects(sae: nn.Module, model: nn.Module, hook: str, features: Sequence[int]) -> Tensor:
    """(F, vocab): each feature's decoder direction through the final norm's gain and the unembedding."""
    directions = _decoder_in_residual(sae, model, hook)[list(features)]
    layout = model_layout(model)
    norm = getattr(model.base_model, layout.adapter.final_norm, None)
    gain = getattr(norm, "weight", None)
    if gain is not None:  # the norm's per-dimension gain scales each residual direction before unembedding
        directions = directions * gain.detach().float()
    unembed = model.get_output_embeddings().weight.detach().float()  # (vocab, d_model)
    return directions @ unembed.T
