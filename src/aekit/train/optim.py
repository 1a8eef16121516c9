"""The optimizer every aekit run uses: Adam, with PyTorch's fused single-pass kernel where it exists."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ..nn import native

_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

ParamGroups = Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]]


def make_optimizer(params: ParamGroups, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam over `params`: parameters, or parameter groups (dicts) that may set their own `weight_decay`.

    Groups with weight decay make it AdamW: the decay is decoupled (p ← p − lr·wd·p, Loshchilov & Hutter),
    not an L2 term that Adam's per-coordinate scaling would distort; groups without it behave exactly as Adam.
    The fused kernel reads and writes each parameter, gradient and moment once per step instead of once per
    arithmetic operation (about 4× faster on CPU for an SAE's two n_latents × d matrices). It is
    elementwise, so it stays deterministic and a resumed CPU run remains bit-identical. Parameters on other
    devices or of other dtypes use the default implementation.
    """
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    tensors = [p for group in groups for p in group["params"]]
    fused = bool(tensors) and all(p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES for p in tensors)
    if any(group.get("weight_decay", 0.0) for group in groups):
        return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=0.0, fused=fused or None)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def gradient_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients together, as `torch.nn.utils.get_total_norm` computes it. CPU float32
    gradients go through one native pass each (float64 sums, the same for any thread count) instead of
    PyTorch's per-tensor norms and their stacking; others use PyTorch."""
    if grads and all(native.usable(None, g) for g in grads):
        return torch.tensor(math.sqrt(sum(native.sum_squares(g) for g in grads)), dtype=torch.float32)
    return torch.nn.utils.get_total_norm(grads)
