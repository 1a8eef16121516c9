"""Head-level interventions on Hugging Face causal LMs: read, replace or scale each head's output z_h.

Every method here works on z (the per-head attention outputs before the output projection, TransformerLens'
`attn.hook_z`). A head's write into the residual stream is z_h W_O^h, linear in z_h, so replacing z_h by its
value on another prompt or by a mean replaces the head's write exactly, and scaling z_h scales the write.

Path patching (Wang et al. 2023) needs one more thing: a receiver head r in layer j whose *input* sees a sender's
changed write while every other head sees the clean residual. `path_patched_logits` re-runs layer j's attention
on the changed residual inside the clean forward pass and swaps in head r's output from that run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ...data.hooks import ModelLayout, model_layout

__all__ = ["HeadEdit", "editing_heads", "head_outputs_z", "last_logits", "path_patched_logits"]

HeadEdit = Callable[[int, Tensor], Tensor]  # (layer, z of shape (batch, seq, heads, d_head)) -> new z

# The module that normalises a block's input for attention, per architecture family (see data.hooks.ADAPTERS).
ATTENTION_NORMS = {"gpt2": "ln_1", "gpt_neox": "input_layernorm", "llama": "input_layernorm",
                   "mistral": "input_layernorm", "qwen2": "input_layernorm"}


def _split_heads(flat: Tensor, layout: ModelLayout) -> Tensor:
    return flat.reshape(*flat.shape[:-1], layout.n_heads, layout.d_head)


@contextmanager
def editing_heads(model: nn.Module, edit: HeadEdit) -> Iterator[ModelLayout]:
    """Within the block, every layer's z passes through `edit(layer, z)` before the output projection."""
    layout = model_layout(model)
    handles = []
    for layer in range(layout.n_layers):
        def hook(module, args, kwargs, layer=layer):
            flat = args[0] if args else kwargs["input"]
            new = edit(layer, _split_heads(flat, layout)).reshape(flat.shape).to(flat.dtype)
            return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "input": new})

        handles.append(layout.out_proj(layer).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield layout
    finally:
        for handle in handles:
            handle.remove()


def last_logits(model: nn.Module, input_ids: Tensor, mask: Tensor) -> Tensor:
    """(n, vocab) logits at each row's last real token (rows right-padded)."""
    device = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
    last = (mask.sum(1) - 1).to(device)
    return logits[torch.arange(len(last), device=device), last]


@torch.no_grad()
def head_outputs_z(model: nn.Module, input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(last-token logits (n, vocab), z of every layer stacked as (layers, n, seq, heads, d_head))."""
    recorded: dict[int, Tensor] = {}

    def record(layer: int, z: Tensor) -> Tensor:
        recorded[layer] = z.detach()
        return z

    with editing_heads(model, record) as layout:
        logits = last_logits(model, input_ids, mask)
    return logits, torch.stack([recorded[layer] for layer in range(layout.n_layers)])


def _with_first(args: tuple, kwargs: dict, key: str, value: Tensor) -> tuple[tuple, dict]:
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, key: value}


@torch.no_grad()
def path_patched_logits(model: nn.Module, input_ids: Tensor, mask: Tensor, receiver: tuple[int, int],
                        resid_delta: Tensor) -> Tensor:
    """Last-token logits of the clean run in which only head `receiver` = (layer, head) reads its layer's input
    residual plus `resid_delta` (batch, seq, d_model); everything downstream of it is recomputed normally."""
    layout = model_layout(model)
    layer, head = receiver
    block = layout.blocks[layer]
    norm = block.get_submodule(ATTENTION_NORMS[layout.family])
    attention = layout.attn(layer)
    state: dict[str, object] = {"inner": False}

    def block_pre(module, args, kwargs):
        state["resid"] = args[0] if args else kwargs["hidden_states"]

    def attention_pre(module, args, kwargs):
        if not state["inner"]:
            state["call"] = (args, kwargs)

    def out_proj_pre(module, args, kwargs):
        flat = args[0] if args else kwargs["input"]
        if state["inner"]:
            state["z_receiver"] = _split_heads(flat, layout)[..., head, :]
            return None
        call_args, call_kwargs = state["call"]
        changed = norm(state["resid"] + resid_delta.to(flat.dtype))
        state["inner"] = True
        try:
            inner_args, inner_kwargs = _with_first(call_args, call_kwargs, "hidden_states", changed)
            attention(*inner_args, **inner_kwargs)
        finally:
            state["inner"] = False
        z = _split_heads(flat, layout).clone()
        z[..., head, :] = state["z_receiver"]
        return _with_first(args, kwargs, "input", z.reshape(flat.shape))

    handles = [block.register_forward_pre_hook(block_pre, with_kwargs=True),
               attention.register_forward_pre_hook(attention_pre, with_kwargs=True),
               layout.out_proj(layer).register_forward_pre_hook(out_proj_pre, with_kwargs=True)]
    try:
        return last_logits(model, input_ids, mask)
    finally:
        for handle in handles:
            handle.remove()
