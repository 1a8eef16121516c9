"""Autograd functions for codes that travel as (values, indices).

A TopK code touches k of n latents per row, so both matrix products around it (the encoder rows it reads and
the decoder rows it writes) are gathers, and their gradients are scatters of the same size: O(batch·k·d).
Nothing here builds a dense batch × n_latents tensor.

Three primitives do all the work:
- `gather_dot(idx, W, y)[b, j] = W[idx[b, j]] · y[b]`
- `weighted_row_sum(idx, w, W)[b] = Σ_j w[b, j] · W[idx[b, j]]`  (an embedding_bag)
- `scatter_outer(idx, w, y, n)[r] = Σ_{(b, j): idx[b, j] = r} w[b, j] · y[b]`
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gather_dot(idx: Tensor, W: Tensor, y: Tensor) -> Tensor:
    """Row-wise dot products between gathered rows of W (B, k, d) and y (B, d) -> (B, k)."""
    return torch.bmm(W[idx], y.unsqueeze(-1)).squeeze(-1)


def weighted_row_sum(idx: Tensor, w: Tensor, W: Tensor) -> Tensor:
    """Σ_j w[b, j] W[idx[b, j]] without materialising the gathered rows."""
    return F.embedding_bag(idx, W, per_sample_weights=w, mode="sum")


def scatter_outer(idx: Tensor, w: Tensor, y: Tensor, n_rows: int) -> Tensor:
    """Accumulate w[b, j] · y[b] into row idx[b, j] of an (n_rows, d) matrix."""
    batch, k = idx.shape
    rows = idx.reshape(-1)
    cols = torch.arange(batch, device=idx.device).repeat_interleave(k)
    # A sparse (n_rows × batch) matrix times y costs O(batch·k·d) and keeps the work inside one kernel.
    S = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), w.reshape(-1), (n_rows, batch), check_invariants=False
    )
    return torch.sparse.mm(S, y)


class _SparseEncode(torch.autograd.Function):
    """pre[b, j] = W_enc[idx[b, j]] · x[b] + b_enc[idx[b, j]], given the values already computed densely."""

    @staticmethod
    def forward(ctx, x: Tensor, W_enc: Tensor, b_enc: Tensor, idx: Tensor, pre_at_idx: Tensor) -> Tensor:
        ctx.save_for_backward(x, W_enc, idx)
        ctx.n_latents = W_enc.shape[0]
        return pre_at_idx.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, W_enc, idx = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = weighted_row_sum(idx, grad, W_enc) if ctx.needs_input_grad[0] else None
        grad_W = scatter_outer(idx, grad, x, ctx.n_latents) if ctx.needs_input_grad[1] else None
        grad_b = None
        if ctx.needs_input_grad[2]:
            grad_b = torch.zeros(ctx.n_latents, dtype=grad.dtype, device=grad.device)
            grad_b.index_add_(0, idx.reshape(-1), grad.reshape(-1))
        return grad_x, grad_W, grad_b, None, None


class _SparseDecode(torch.autograd.Function):
    """out[b] = Σ_j values[b, j] W_dec[idx[b, j]]."""

    @staticmethod
    def forward(ctx, values: Tensor, idx: Tensor, W_dec: Tensor) -> Tensor:
        ctx.save_for_backward(values, idx, W_dec)
        return weighted_row_sum(idx, values, W_dec)

    @staticmethod
    def backward(ctx, grad: Tensor):
        values, idx, W_dec = ctx.saved_tensors
        grad = grad.contiguous()
        grad_values = gather_dot(idx, W_dec, grad) if ctx.needs_input_grad[0] else None
        grad_W = scatter_outer(idx, values, grad, W_dec.shape[0]) if ctx.needs_input_grad[2] else None
        return grad_values, None, grad_W


def sparse_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, idx: Tensor, pre_at_idx: Tensor | None = None) -> Tensor:
    """Encoder pre-activations at the selected latents, with a gradient that touches only those rows.

    `pre_at_idx` lets a caller that already ran the dense (no-grad) encoder reuse those numbers.
    """
    if pre_at_idx is None:
        with torch.no_grad():
            pre_at_idx = gather_dot(idx, W_enc, x) + b_enc[idx]
    return _SparseEncode.apply(x, W_enc, b_enc, idx, pre_at_idx)


def sparse_decode(values: Tensor, idx: Tensor, W_dec: Tensor) -> Tensor:
    """Decode (values, indices) codes through W_dec (n_latents, d) without a dense code matrix."""
    return _SparseDecode.apply(values, idx, W_dec)
