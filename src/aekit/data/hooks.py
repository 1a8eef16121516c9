"""Capture activations of Hugging Face causal LMs and vision transformers at TransformerLens-style hook names.

Hook names (`blocks.{L}.hook_resid_pre`, `blocks.{L}.attn.hook_z`, ...) are mapped onto the modules of each
supported architecture family by one small adapter table (`ADAPTERS`); everything else is family-agnostic and
works through PyTorch forward hooks and forward pre-hooks on the Hugging Face modules. The forward pass stops
as soon as the last requested activation has been recorded, so capturing layer 0 of a deep model costs one block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, DataError

__all__ = [
    "ADAPTERS",
    "HOOK_POINTS",
    "ActivationCapture",
    "FamilyAdapter",
    "capture",
    "parse_hook_name",
    "token_rows",
]

# Hook point (the part after `blocks.{L}.`) -> what it records.
HOOK_POINTS: dict[str, str] = {
    "hook_resid_pre": "input of block L, shape (batch, seq, d_model)",
    "hook_resid_post": "output of block L, shape (batch, seq, d_model)",
    "hook_attn_out": "output of the attention output projection incl. bias, shape (batch, seq, d_model)",
    "hook_mlp_out": "output of the MLP, shape (batch, seq, d_model)",
    "attn.hook_z": "per-head attention outputs before the output projection, shape (batch, seq, heads, d_head)",
    "attn.hook_result": "each head's write into the residual stream z_h W_O^h, shape (batch, seq, heads, d_model)",
}
_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(" + "|".join(re.escape(p) for p in HOOK_POINTS) + r")$")


@dataclass(frozen=True)
class FamilyAdapter:
    """Where one architecture family keeps its blocks and how their attention output projection is stored.

    Module paths are relative to `model.base_model` (paths for the layer list) or to one block (the rest).
    `out_proj_conv1d` marks GPT-2's Conv1D, whose weight is (d_in, d_out) instead of nn.Linear's (d_out, d_in).
    `parallel_attr` names the config flag that makes attention and MLP read the same residual (NeoX).
    """

    layers: str
    attn: str
    out_proj: str
    mlp: str
    final_norm: str
    n_heads_attr: str
    out_proj_conv1d: bool = False
    parallel_attr: str | None = None
    sub_config: str | None = None  # the config attribute holding the tower's settings (CLIP: vision_config)
    vision: bool = False  # runs on pixel_values (ActivationCapture.run_images) instead of token ids


_LLAMA = FamilyAdapter(
    layers="layers", attn="self_attn", out_proj="o_proj", mlp="mlp", final_norm="norm",
    n_heads_attr="num_attention_heads",
)
ADAPTERS: dict[str, FamilyAdapter] = {
    "gpt2": FamilyAdapter(
        layers="h", attn="attn", out_proj="c_proj", mlp="mlp", final_norm="ln_f", n_heads_attr="n_head",
        out_proj_conv1d=True,
    ),
    "gpt_neox": FamilyAdapter(
        layers="layers", attn="attention", out_proj="dense", mlp="mlp", final_norm="final_layer_norm",
        n_heads_attr="num_attention_heads", parallel_attr="use_parallel_residual",
    ),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    # Vision towers (transformers ≥ 5 module layout). Token 0 is CLS, then the patches in raster order.
    "vit": FamilyAdapter(
        layers="layers", attn="attention", out_proj="o_proj", mlp="mlp", final_norm="layernorm",
        n_heads_attr="num_attention_heads", vision=True,
    ),
    "clip": FamilyAdapter(
        layers="vision_model.encoder.layers", attn="self_attn", out_proj="out_proj", mlp="mlp",
        final_norm="vision_model.post_layernorm", n_heads_attr="num_attention_heads", sub_config="vision_config",
        vision=True,
    ),
}


class _StopForward(Exception):
    """Raised from a hook once every requested activation is recorded; caught by ActivationCapture.run."""


def parse_hook_name(name: str) -> tuple[int, str]:
    """Split `blocks.{L}.<point>` into (L, point), or raise ConfigError listing the valid hook names."""
    match = _HOOK_RE.match(name) if isinstance(name, str) else None
    if match is None:
        valid = ", ".join(f"blocks.{{L}}.{p}" for p in HOOK_POINTS)
        raise ConfigError(f"hooks: unknown hook name {name!r}; valid names are {valid}.")
    return int(match.group(1)), match.group(2)


@dataclass(frozen=True)
class ModelLayout:
    """The resolved modules and shapes of one model, found through its family adapter."""

    family: str
    blocks: nn.ModuleList
    n_heads: int
    d_head: int
    d_model: int
    parallel: bool
    adapter: FamilyAdapter

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def attn(self, layer: int) -> nn.Module:
        return self.blocks[layer].get_submodule(self.adapter.attn)

    def out_proj(self, layer: int) -> nn.Module:
        return self.attn(layer).get_submodule(self.adapter.out_proj)

    def mlp(self, layer: int) -> nn.Module:
        return self.blocks[layer].get_submodule(self.adapter.mlp)

    def w_o(self, layer: int) -> torch.Tensor:
        """The output projection as (heads, d_head, d_model), whichever way the family stores its weight."""
        weight = self.out_proj(layer).weight
        if not self.adapter.out_proj_conv1d:
            weight = weight.T
        return weight.reshape(self.n_heads, self.d_head, self.d_model)


def model_layout(model: nn.Module) -> ModelLayout:
    """Resolve the block list, heads and widths of a Hugging Face causal LM, or raise ConfigError."""
    config = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    if family not in ADAPTERS:
        raise ConfigError(
            f"model: architecture {family!r} is not supported for activation hooks; "
            f"supported model_type values are {', '.join(sorted(ADAPTERS))}."
        )
    adapter = ADAPTERS[family]
    base = getattr(model, "base_model", model)
    try:
        blocks = base.get_submodule(adapter.layers)
    except AttributeError:
        import transformers

        raise ConfigError(f"model: this {family} model has no {adapter.layers!r} block list; activation hooks "
                          f"expect the module layout of transformers ≥ 5 (installed: {transformers.__version__})"
                          ) from None
    if adapter.sub_config:
        config = getattr(config, adapter.sub_config)
    n_heads = int(getattr(config, adapter.n_heads_attr))
    proj = blocks[0].get_submodule(adapter.attn).get_submodule(adapter.out_proj)
    d_in, d_model = proj.weight.shape if adapter.out_proj_conv1d else proj.weight.shape[::-1]
    if d_in % n_heads:
        raise ConfigError(f"model: output projection width {d_in} is not divisible by {n_heads} heads.")
    parallel = bool(getattr(config, adapter.parallel_attr, False)) if adapter.parallel_attr else False
    return ModelLayout(family, blocks, n_heads, d_in // n_heads, int(d_model), parallel, adapter)


def _first(args: tuple, kwargs: dict, key: str) -> torch.Tensor:
    """The main tensor a module was called with, whether passed positionally or by keyword."""
    return args[0] if args else kwargs[key]


def _main_output(output) -> torch.Tensor:
    """Blocks and attention modules return a tensor or a tuple whose first entry is the hidden state."""
    return output[0] if isinstance(output, tuple | list) else output


class ActivationCapture:
    """Context manager that records the named activations of a Hugging Face causal LM.

    >>> with ActivationCapture(model, ["blocks.0.hook_resid_post"]) as cap:
    ...     acts = cap.run(input_ids, attention_mask)

    With `stop_early=True` (the default) the forward pass is cut short after the last requested activation;
    call `run` (which catches the stop) rather than the model itself. With `stop_early=False` you may call the
    model directly and read `cap.activations` afterwards.
    """

    def __init__(self, model: nn.Module, hooks: Iterable[str], *, stop_early: bool = True):
        self.model = model
        self.layout = model_layout(model)
        names = list(dict.fromkeys([hooks] if isinstance(hooks, str) else hooks))
        if not names:
            raise ConfigError("hooks: give at least one hook name, e.g. 'blocks.0.hook_resid_post'.")
        self.points: dict[str, tuple[int, str]] = {}
        for name in names:
            layer, point = parse_hook_name(name)
            if layer >= self.layout.n_layers:
                raise ConfigError(
                    f"hooks: {name!r} asks for layer {layer}, but this {self.layout.family} model has "
                    f"{self.layout.n_layers} layers (valid layers are 0 to {self.layout.n_layers - 1})."
                )
            self.points[name] = (layer, point)
        self.stop_early = stop_early
        self.activations: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> ActivationCapture:
        self._register()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this capture registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _record(self, name: str, value: torch.Tensor) -> None:
        self.activations[name] = value.detach()
        if self.stop_early and len(self.activations) == len(self.points):
            raise _StopForward

    def _register(self) -> None:
        if self._handles:
            return
        layout = self.layout
        wanted: dict[int, dict[str, str]] = {}
        for name, (layer, point) in self.points.items():
            wanted.setdefault(layer, {})[point] = name
        for layer, points in wanted.items():
            add = self._handles.append
            if "hook_resid_pre" in points:
                add(layout.blocks[layer].register_forward_pre_hook(
                    self._pre_hook(points["hook_resid_pre"], "hidden_states"), with_kwargs=True))
            if "attn.hook_z" in points or "attn.hook_result" in points:
                add(layout.out_proj(layer).register_forward_pre_hook(self._z_hook(layer, points), with_kwargs=True))
            if "hook_attn_out" in points:
                add(layout.out_proj(layer).register_forward_hook(self._out_hook(points["hook_attn_out"])))
            if "hook_mlp_out" in points:
                add(layout.mlp(layer).register_forward_hook(self._out_hook(points["hook_mlp_out"])))
            if "hook_resid_post" in points:
                add(layout.blocks[layer].register_forward_hook(self._out_hook(points["hook_resid_post"])))

    def _pre_hook(self, name: str, key: str):
        def hook(module, args, kwargs):
            self._record(name, _first(args, kwargs, key))

        return hook

    def _z_hook(self, layer: int, points: dict[str, str]):
        layout = self.layout

        def hook(module, args, kwargs):
            flat = _first(args, kwargs, "input")
            z = flat.reshape(*flat.shape[:-1], layout.n_heads, layout.d_head)
            if "attn.hook_result" in points:
                # Store z without the stop check so that an early stop fires only once both are recorded.
                if "attn.hook_z" in points:
                    self.activations[points["attn.hook_z"]] = z.detach()
                result = torch.einsum("...hd,hdm->...hm", z, layout.w_o(layer).to(z.dtype))
                self._record(points["attn.hook_result"], result)
            else:
                self._record(points["attn.hook_z"], z)

        return hook

    def _out_hook(self, name: str):
        def hook(module, args, output):
            self._record(name, _main_output(output))

        return hook

    @torch.no_grad()
    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Run the model on a (batch, seq) token batch and return {hook name: activation}."""
        if self.layout.adapter.vision:
            raise ConfigError(f"model: a {self.layout.family} model reads images; call run_images(pixel_values)")
        input_ids, attention_mask = check_inputs(input_ids, attention_mask)
        device = next(self.model.parameters()).device
        return self._forward(lambda: self.model(
            input_ids=input_ids.to(device),
            attention_mask=None if attention_mask is None else attention_mask.to(device),
            use_cache=False,
        ))

    @torch.no_grad()
    def run_images(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run a vision model's image tower on normalised (batch, 3, H, W) pixels; {hook name: (batch, tokens, d)}."""
        if not self.layout.adapter.vision:
            raise ConfigError(f"model: a {self.layout.family} model reads token ids; call run(input_ids)")
        if pixel_values.ndim != 4:
            raise DataError(f"pixel_values: expected (batch, channels, height, width), got {tuple(pixel_values.shape)}")
        x = pixel_values.to(next(self.model.parameters()).device)
        tower = self.model.vision_model if self.layout.family == "clip" else self.model.base_model
        return self._forward(lambda: tower(pixel_values=x))

    def _forward(self, call) -> dict[str, torch.Tensor]:
        self.activations = {}
        registered_here = not self._handles
        self._register()
        try:
            call()
        except _StopForward:
            pass
        finally:
            if registered_here:
                self.remove()
        missing = [name for name in self.points if name not in self.activations]
        if missing:
            raise DataError(f"hooks: the forward pass never reached {', '.join(missing)}; no activation recorded.")
        return {name: self.activations[name] for name in self.points}


def check_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    input_ids = torch.as_tensor(input_ids)
    if input_ids.ndim != 2 or input_ids.dtype.is_floating_point or input_ids.numel() == 0:
        raise DataError(
            f"input_ids: expected a non-empty integer tensor of shape (batch, seq), got shape "
            f"{tuple(input_ids.shape)} and dtype {input_ids.dtype}."
        )
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask)
        if attention_mask.shape != input_ids.shape:
            raise DataError(
                f"attention_mask: shape {tuple(attention_mask.shape)} does not match input_ids shape "
                f"{tuple(input_ids.shape)}."
            )
    return input_ids, attention_mask


def capture(
    model: nn.Module,
    input_ids: torch.Tensor,
    hooks: Sequence[str],
    attention_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Return {hook name: activation} for one token batch, running the model only as far as needed."""
    return ActivationCapture(model, hooks).run(input_ids, attention_mask)


def token_rows(
    activation: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    bos_token_id: int | None = None,
    *,
    exclude_bos: bool = True,
) -> torch.Tensor:
    """Flatten (batch, seq, ...) activations to (tokens, ...) rows, dropping padding and BOS tokens.

    Padding is where `attention_mask` is 0; BOS tokens are positions whose id equals `bos_token_id` (skipped
    when `exclude_bos` is False or no id is given), because their activations are outliers that swamp training.
    """
    if activation.ndim < 2:
        raise DataError(f"activation: expected shape (batch, seq, ...), got {tuple(activation.shape)}.")
    keep = torch.ones(activation.shape[:2], dtype=torch.bool, device=activation.device)
    if attention_mask is not None:
        if tuple(attention_mask.shape) != tuple(activation.shape[:2]):
            raise DataError(
                f"attention_mask: shape {tuple(attention_mask.shape)} does not match the activation's "
                f"(batch, seq) {tuple(activation.shape[:2])}."
            )
        keep &= attention_mask.to(activation.device).bool()
    if exclude_bos and bos_token_id is not None:
        if input_ids is None or tuple(input_ids.shape) != tuple(activation.shape[:2]):
            raise DataError("input_ids: give the (batch, seq) token ids to exclude BOS tokens by bos_token_id.")
        keep &= input_ids.to(activation.device) != bos_token_id
    return activation[keep]
