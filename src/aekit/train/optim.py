"""The optimizer every aekit run uses: Adam, with PyTorch's fused single-pass kernel where it exists."""

from __future__ import annotations

from collections.abc import Iterable

import torch

_FUSED_DEVICES = ("cpu", "cuda")
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam over `params`.

    The fused kernel reads and writes each parameter, gradient and moment once per step instead of once per
    arithmetic operation (about 4× faster on CPU for an SAE's two n_latents × d matrices). It is
    elementwise, so it stays deterministic and a resumed CPU run remains bit-identical. Parameters on other
    devices or of other dtypes use the default implementation.
    """
    params = list(params)
    fused = bool(params) and all(p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)
