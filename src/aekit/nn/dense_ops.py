"""Dense-code SAE ops with cheaper backward passes: the encoder of ReLU-L1 and Gated SAEs, and Gated's
magnitude path.

The encoder, pre = (x − center)·Wᵀ + b.
Through `F.linear(x − center, W, b)`, autograd computes ∂L/∂(x − center), a full (batch × n_latents) ×
(n_latents × d) product, only to sum it over the batch for the pre-encoder bias `center`. That sum is
−(Σ_b ∂L/∂pre[b])·W = −(∂L/∂b)·W: one mat-vec (the identity the sparse path's `_SparseEncode` uses). It saves one
of the step's five large products. The bias is added in place after the product: a product into a bias-filled
output first copies the bias into every row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import native


class _DenseEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, W: Tensor, b: Tensor, center: Tensor | None) -> Tensor:
        x_c = x if center is None else x - center
        ctx.save_for_backward(x_c, W)
        return torch.mm(x_c, W.t()).add_(b)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x_c, W = ctx.saved_tensors
        need_x, need_W, need_b, need_center = ctx.needs_input_grad
        grad_x = grad @ W if need_x else None
        grad_W = grad.t() @ x_c if need_W else None
        grad_b = grad.sum(0) if need_b or need_center else None
        grad_center = -(grad_b @ W) if need_center else None
        return grad_x, grad_W, grad_b if need_b else None, grad_center


def dense_encode(x: Tensor, W: Tensor, b: Tensor, center: Tensor | None = None) -> Tensor:
    """(x − center)·Wᵀ + b with the backward above. Under autocast PyTorch's own autograd runs (it casts the
    operands and saves the casts), with the bias still added in place."""
    if torch.is_autocast_enabled(x.device.type):
        return F.linear(x if center is None else x - center, W).add_(b)
    return _DenseEncode.apply(x, W, b, center)


class _GatedMagnitude(torch.autograd.Function):
    """f = 1[pre > 0] · ReLU(exp(r_mag)·pre + b_mag), forward and backward one native pass each (gated.c)."""

    @staticmethod
    def forward(ctx, pre: Tensor, r_mag: Tensor, b_mag: Tensor) -> Tensor:
        s = r_mag.exp()
        ctx.save_for_backward(pre, s, b_mag)
        return native.gated_forward(pre, s, b_mag)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pre, s, b_mag = ctx.saved_tensors
        grad_pre, col_pre, col_one = native.gated_backward(grad.contiguous(), pre, s, b_mag)
        return grad_pre, s * col_pre, col_one  # d exp(r)/dr = exp(r)


def gated_magnitude(pre: Tensor, r_mag: Tensor, b_mag: Tensor) -> Tensor:
    """The Gated SAE's codes from its pre-activations: 1[pre > 0] · ReLU(exp(r_mag)·pre + b_mag)."""
    if pre.ndim == 2 and native.usable(None, pre.contiguous(), r_mag, b_mag):
        return _GatedMagnitude.apply(pre.contiguous(), r_mag, b_mag)
    magnitude = torch.relu(r_mag.exp() * pre + b_mag)
    return (pre > 0).to(magnitude.dtype) * magnitude
