"""Spliced evaluation: run a Hugging Face causal LM with one hook's activation replaced, and score the logits.

The activation at `hook` is replaced at every position (padding included; padded positions are never scored) by
  * 'sae'  - the SAE's reconstruction decode(encode(x)),
  * 'zero' - zeros,
  * 'mean' - the mean activation over the evaluated non-pad tokens (a first pass), or a mean passed in.
For `attn.hook_z` the SAE sees the flattened (heads·d_head) input of the attention output projection; for
`attn.hook_result` it sees the flattened (heads·d_model) per-head results z_h W_O^h, and the output projection's
output becomes Σ_h x̂_h + bias (so zero ablation leaves only the bias, as zeroing z would).
Metric conventions (which positions count, KL direction) are documented in `aekit.metrics.lm_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from ..data.hooks import ActivationCapture, ModelLayout, check_inputs, token_rows
from ..errors import ConfigError, ShapeError
from ..metrics.lm_loss import METRIC_MODES, metrics_from_sums, spliced_sums

__all__ = ["hook_width", "mean_activation", "replace_hook", "spliced_eval"]

Replace = Callable[[Tensor], Tensor]


def hook_width(layout: ModelLayout, point: str) -> int:
    """The SAE input width (d_in) a hook point needs."""
    if point == "attn.hook_z":
        return layout.n_heads * layout.d_head
    if point == "attn.hook_result":
        return layout.n_heads * layout.d_model
    return layout.d_model


def _resolve(model: nn.Module, hook: str) -> tuple[ModelLayout, int, str]:
    cap = ActivationCapture(model, [hook])  # validates the name and the layer range
    return cap.layout, *cap.points[hook]


def _replace_first(output, value: Tensor):
    if isinstance(output, tuple):
        return (value, *output[1:])
    if isinstance(output, list):
        return [value, *output[1:]]
    return value


@contextmanager
def replace_hook(model: nn.Module, hook: str, replace: Replace):
    """Within the block, the activation x at `hook` is replaced by `replace(x)` (x of shape (batch, seq, d_in),
    in the flattened layout `hook_width` describes). The hook is removed on exit, also on error."""
    layout, layer, point = _resolve(model, hook)
    handles = []

    def swap(x: Tensor) -> Tensor:
        new = replace(x)
        if new.shape != x.shape:
            raise ShapeError(f"spliced: the replacement for {hook} has shape {tuple(new.shape)}, not {tuple(x.shape)}.")
        return new.to(x.dtype)

    def pre_hook(key: str):
        def fn(module, args, kwargs):
            if args:
                return (swap(args[0]), *args[1:]), kwargs
            return args, {**kwargs, key: swap(kwargs[key])}

        return fn

    def out_hook(module, args, output):
        first = output[0] if isinstance(output, tuple | list) else output
        return _replace_first(output, swap(first))

    def result_hook(module, args, kwargs, output):
        z = args[0] if args else kwargs["input"]
        heads = z.reshape(*z.shape[:-1], layout.n_heads, layout.d_head)
        result = torch.einsum("...hd,hdm->...hm", heads, layout.w_o(layer).to(z.dtype))
        new = swap(result.reshape(*z.shape[:-1], layout.n_heads * layout.d_model))
        total = new.reshape(*z.shape[:-1], layout.n_heads, layout.d_model).sum(-2)
        bias = getattr(module, "bias", None)
        if bias is not None:
            total = total + bias.to(total.dtype)
        return _replace_first(output, total.to(output.dtype if isinstance(output, Tensor) else total.dtype))

    try:
        if point == "hook_resid_pre":
            handles.append(layout.blocks[layer].register_forward_pre_hook(pre_hook("hidden_states"), with_kwargs=True))
        elif point == "hook_resid_post":
            handles.append(layout.blocks[layer].register_forward_hook(out_hook))
        elif point == "hook_mlp_out":
            handles.append(layout.mlp(layer).register_forward_hook(out_hook))
        elif point == "hook_attn_out":
            handles.append(layout.out_proj(layer).register_forward_hook(out_hook))
        elif point == "attn.hook_z":
            handles.append(layout.out_proj(layer).register_forward_pre_hook(pre_hook("input"), with_kwargs=True))
        elif point == "attn.hook_result":
            handles.append(layout.out_proj(layer).register_forward_hook(result_hook, with_kwargs=True))
        else:  # pragma: no cover - parse_hook_name only yields the points above
            raise ConfigError(f"spliced: hook point {point!r} is not supported.")
        yield layout
    finally:
        for handle in handles:
            handle.remove()


def _flat(activation: Tensor, point: str) -> Tensor:
    """Captured activations of hook_z/hook_result are (batch, seq, heads, d); flatten the heads."""
    return activation.flatten(-2) if point in ("attn.hook_z", "attn.hook_result") else activation


def _batches(input_ids: Tensor, attention_mask: Tensor | None, batch_size: int):
    for start in range(0, input_ids.shape[0], batch_size):
        stop = start + batch_size
        yield input_ids[start:stop], None if attention_mask is None else attention_mask[start:stop]


@torch.no_grad()
def mean_activation(
    model: nn.Module, hook: str, input_ids: Tensor, attention_mask: Tensor | None = None, *, batch_size: int = 8
) -> Tensor:
    """Mean of the (flattened) activation at `hook` over the non-pad tokens, shape (d_in,), float32."""
    input_ids, attention_mask = check_inputs(input_ids, attention_mask)
    _, _, point = _resolve(model, hook)
    total, count = None, 0
    for ids, mask in _batches(input_ids, attention_mask, batch_size):
        act = _flat(ActivationCapture(model, [hook]).run(ids, mask)[hook], point)
        rows = token_rows(act, attention_mask=mask, exclude_bos=False).double()
        total = rows.sum(0) if total is None else total + rows.sum(0)
        count += rows.shape[0]
    if not count:
        raise ShapeError("spliced: the inputs contain no non-pad tokens to average.")
    return (total / count).float()


def _sae_replace(sae: nn.Module) -> Replace:
    param = next(sae.parameters())

    def replace(x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.shape[-1]).to(device=param.device, dtype=param.dtype)
        return sae.decode(sae.encode(rows)).reshape(x.shape).to(device=x.device, dtype=x.dtype)

    return replace


def _check_sae(sae: nn.Module, hook: str, d: int) -> None:
    config = sae.config
    d_in, d_out = int(config.d_in), int(getattr(config, "target_dim", config.d_in))
    if d_in != d or d_out != d:
        raise ShapeError(
            f"spliced: {hook} has width {d} on this model, but the SAE maps d_in={d_in} to d_out={d_out}; "
            f"an SAE for this hook must have d_in = d_out = {d}."
        )


@torch.no_grad()
def spliced_eval(
    model: nn.Module,
    sae: nn.Module,
    hook: str,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    batch_size: int = 8,
    mean: Tensor | None = None,
    modes: tuple[str, ...] = METRIC_MODES,
) -> dict[str, float]:
    """Splice `sae` into `model` at `hook` and score next-token prediction on (batch, seq) tokens.

    Returns ce_clean, ce_<mode> and kl_<mode> for each mode in `modes` (default 'sae', 'zero', 'mean'), plus
    delta_loss = ce_sae - ce_clean, ce_recovered_zero / ce_recovered_mean and n_tokens (scored positions).
    `mean` (d_in,) replaces the first pass that computes the mean activation over these tokens.
    """
    input_ids, attention_mask = check_inputs(input_ids, attention_mask)
    if input_ids.shape[1] < 2:
        raise ShapeError("spliced: sequences need at least 2 tokens to score next-token prediction.")
    if batch_size < 1:
        raise ConfigError(f"spliced: batch_size must be a positive integer, got {batch_size}.")
    unknown = [m for m in modes if m not in METRIC_MODES]
    if unknown:
        raise ConfigError(f"spliced: unknown modes {unknown}; choose from {list(METRIC_MODES)}.")
    layout, _, point = _resolve(model, hook)
    d = hook_width(layout, point)
    _check_sae(sae, hook, d)
    if "mean" in modes:
        if mean is None:
            mean = mean_activation(model, hook, input_ids, attention_mask, batch_size=batch_size)
        mean = torch.as_tensor(mean)
        if mean.shape != (d,):
            raise ShapeError(f"spliced: mean has shape {tuple(mean.shape)}, but {hook} needs ({d},).")
    was_training = sae.training
    sae.eval()
    replacements: dict[str, Replace] = {
        "sae": _sae_replace(sae),
        "zero": torch.zeros_like,
        "mean": lambda x: mean.to(device=x.device, dtype=x.dtype).expand_as(x),
    }
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    try:
        for ids, mask in _batches(input_ids, attention_mask, batch_size):
            ids = ids.to(device)
            mask = None if mask is None else mask.to(device)

            def run(ids=ids, mask=mask):
                return model(input_ids=ids, attention_mask=mask, use_cache=False).logits

            clean = run()
            spliced = {}
            for mode in modes:
                with replace_hook(model, hook, replacements[mode]):
                    spliced[mode] = run()
            for key, value in spliced_sums(clean, spliced, ids, mask).items():
                sums[key] = sums.get(key, 0.0) + value
    finally:
        sae.train(was_training)
    return metrics_from_sums(sums)
