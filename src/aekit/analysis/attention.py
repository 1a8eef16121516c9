"""Attention-output SAEs: which heads a feature lives in, and which heads and source tokens drive it.

An SAE trained on `blocks.{L}.attn.hook_z` reads the concatenation of every head's output z_h (before the output
projection), so each decoder row splits into one block per head, and the encoder pre-activation of a feature is
a sum of per-head terms. Within one head, z_h at query position q is Σ_s A_h[q, s] v_h[s], so the head's term
splits further over the source positions s the head attends to. Both decompositions are exact:

    pre_f(q) = c_f + Σ_h Σ_s A_h[q, s] · (w_f^h · v_h[s]),   c_f = b_enc[f] − w_f · b_dec

where w_f is the feature's encoder row with the input scale folded in (Kissane et al., "Interpreting attention
layer outputs with sparse autoencoders", 2024, use this attribution to study attention SAE features).

The attention pattern and values are recorded through a custom attention implementation registered with
`transformers` (the public `AttentionInterface`), so the same code serves every family in `data.hooks.ADAPTERS`,
including grouped-query attention.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.hooks import ActivationCapture, model_layout
from ..errors import ConfigError, ShapeError

__all__ = [
    "FeatureAttribution",
    "attribute_features",
    "encoder_affine",
    "head_attribution",
    "recording_attention",
]

_IMPLEMENTATION = "aekit_record"
_slots: dict[int, dict[str, Tensor]] = {}  # id(attention module) -> what the last forward pass recorded


def _recording_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                         scaling: float | None = None, dropout: float = 0.0, **kwargs) -> tuple[Tensor, Tensor]:
    """Eager attention that also keeps the pattern and per-head values of the modules being recorded."""
    groups = query.shape[1] // key.shape[1]  # grouped-query attention shares one key/value head per group
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    weights = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    slot = _slots.get(id(module))
    if slot is not None:
        slot["pattern"] = weights.detach()  # (batch, heads, query, source)
        slot["values"] = value.detach()  # (batch, heads, source, d_head)
    return output, weights


def _register_implementation() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(_IMPLEMENTATION, _recording_attention)
    AttentionMaskInterface.register(_IMPLEMENTATION, eager_mask)  # an additive float mask, causal + padding


@contextmanager
def recording_attention(model: nn.Module, layer: int) -> Iterator[dict[str, Tensor]]:
    """Within the block, forward passes record layer `layer`'s attention pattern and values into the yielded dict."""
    layout = model_layout(model)
    if not 0 <= layer < layout.n_layers:
        raise ConfigError(f"layer: {layer} is out of range for a model with {layout.n_layers} layers")
    _register_implementation()
    previous = model.config._attn_implementation
    attention = layout.attn(layer)
    slot: dict[str, Tensor] = {}
    _slots[id(attention)] = slot
    model.set_attn_implementation(_IMPLEMENTATION)
    try:
        yield slot
    finally:
        _slots.pop(id(attention), None)
        model.set_attn_implementation(previous)


def encoder_affine(sae: nn.Module) -> tuple[Tensor, Tensor]:
    """(weight (n_latents, d_in), bias (n_latents,)) with pre-activation = x @ weight.T + bias in input units."""
    for name in ("W_enc", "b_enc", "b_dec", "input_scale"):
        if not hasattr(sae, name):
            raise ConfigError(f"sae: attribution needs an aekit SparseAutoencoder (missing {name})")
    weight = sae.W_enc.detach().float() * float(sae.input_scale)
    bias = sae.b_enc.detach().float()
    if not sae.config.is_transcoder:  # the pre-encoder bias is subtracted in normalised units
        bias = bias - sae.W_enc.detach().float() @ sae.b_dec.detach().float()
    return weight, bias


def head_attribution(sae: nn.Module, n_heads: int) -> Tensor:
    """(n_latents, n_heads): each head's share of a feature's squared decoder-row norm (rows sum to 1).

    Squared norms are used because they add up over the disjoint head blocks, so the shares are a partition.
    """
    w_dec = sae.W_dec.detach().float()
    n_latents, width = w_dec.shape
    if n_heads < 1 or width % n_heads:
        raise ShapeError(f"n_heads: the SAE's decoder width {width} does not split into {n_heads} equal head blocks")
    energy = w_dec.reshape(n_latents, n_heads, width // n_heads).pow(2).sum(-1)
    return energy / energy.sum(-1, keepdim=True).clamp_min(torch.finfo(energy.dtype).tiny)


@dataclass
class FeatureAttribution:
    """Exact decomposition of chosen features' pre-activations on a token batch.

    pre_activation (batch, query, F) = constant (F) + by_head.sum(-1); by_head (batch, query, F, heads) =
    by_source.sum(-1); by_source (batch, query, F, heads, source) is zero for masked or future sources.
    """

    features: list[int]
    pre_activation: Tensor
    constant: Tensor
    by_head: Tensor
    by_source: Tensor


def attribute_features(sae: nn.Module, model: nn.Module, layer: int, features: Sequence[int], input_ids: Tensor,
                       attention_mask: Tensor | None = None) -> FeatureAttribution:
    """Attribute the pre-activations of `features` of an `attn.hook_z` SAE at `layer` to heads and source tokens."""
    layout = model_layout(model)
    d_in = layout.n_heads * layout.d_head
    if sae.config.d_in != d_in:
        raise ShapeError(f"sae: d_in {sae.config.d_in} does not match blocks.{layer}.attn.hook_z of this model "
                         f"({layout.n_heads} heads × {layout.d_head} = {d_in}); was the SAE trained on hook_z?")
    features = [int(f) for f in features]
    bad = [f for f in features if not 0 <= f < sae.config.n_latents]
    if not features or bad:
        raise ConfigError(f"features: give feature indices in [0, {sae.config.n_latents}), got {bad or 'none'}")
    weight, bias = encoder_affine(sae)
    rows = weight[features].reshape(len(features), layout.n_heads, layout.d_head)
    hook = f"blocks.{layer}.attn.hook_z"
    with torch.no_grad(), recording_attention(model, layer) as slot:
        z = ActivationCapture(model, [hook]).run(input_ids, attention_mask)[hook].float()
    pattern, values = slot["pattern"].float(), slot["values"].float()
    # the value of source s seen through feature f's encoder block for head h
    value_terms = torch.einsum("bhsd,fhd->bfhs", values, rows)
    by_source = torch.einsum("bhqs,bfhs->bqfhs", pattern, value_terms)
    by_head = by_source.sum(-1)
    constant = bias[features]
    pre_activation = z.flatten(2) @ weight[features].T + constant
    return FeatureAttribution(features, pre_activation, constant, by_head, by_source)
