"""Straight-through estimators for thresholds (JumpReLU SAEs, Rajamanoharan et al. 2024b).

The Heaviside step has zero gradient almost everywhere; these functions keep the exact forward pass and give
the threshold θ the kernel-density pseudo-derivative with a rectangle kernel K(u) = 1[|u| < 1/2] of
bandwidth ε:
    ∂/∂θ [z·H(z − θ)] := −(θ/ε)·K((z − θ)/ε),     ∂/∂θ H(z − θ) := −(1/ε)·K((z − θ)/ε).
The pre-activation z gets its ordinary gradient through z·H(z − θ) and none through the step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _in_window(z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """K((z − θ)/ε) ≠ 0, i.e. |z − θ| < ε/2, as a boolean mask."""
    return (z - threshold).abs_() < 0.5 * bandwidth


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, threshold = ctx.saved_tensors
        grad_z = torch.where(z > threshold, grad, 0.0)
        grad_threshold = torch.where(_in_window(z, threshold, ctx.bandwidth), grad * threshold, 0.0)
        return grad_z, grad_threshold.mul_(-1.0 / ctx.bandwidth), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, threshold = ctx.saved_tensors
        grad_threshold = torch.where(_in_window(z, threshold, ctx.bandwidth), grad, 0.0).mul_(-1.0 / ctx.bandwidth)
        return None, grad_threshold, None  # no gradient for z through the step (None: autograd skips the zeros)


def jump_relu(z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """z·H(z − θ), elementwise (threshold broadcast to z), with the STE gradient for θ."""
    return _JumpReLU.apply(z, threshold.expand_as(z), bandwidth)


def step(z: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
    """H(z − θ), elementwise, with the STE gradient for θ (for the L0 penalty)."""
    return _Step.apply(z, threshold.expand_as(z), bandwidth)
