"""Autograd functions for codes that travel as (values, indices).

A TopK code touches k of n latents per row, so both matrix products around it (the encoder rows it reads and
the decoder rows it writes) are gathers, and their gradients are scatters of the same size: O(batch·k·d).
No dense batch × n_latents tensor is built unless the codes are wide (see below).

Three primitives do all the work:
- `gather_dot(idx, W, y)[b, j] = W[idx[b, j]] · y[b]`
- `weighted_row_sum(idx, w, W)[b] = Σ_j w[b, j] · W[idx[b, j]]`
- `scatter_outer(idx, w, y, n)[r] = Σ_{(b, j): idx[b, j] = r} w[b, j] · y[b]`

All three are products with one sparse (batch × n) matrix S that has k entries per row (S[b, idx[b, j]] =
w[b, j]): `weighted_row_sum` is S @ W, `scatter_outer` is Sᵀ @ y and `gather_dot` samples y @ Wᵀ at S's
pattern (an SDDMM). On CPU (float32/float64), S is a CSR matrix built without copying (row pointers
0, k, 2k, ...); Sᵀ is a CSR matrix after one stable sort of idx, shared by the gather and both weight
gradients of a step. The products run in PyTorch's sparse CSR kernels (MKL's sparse BLAS for the two
matrix products), so no (batch, k, d) gather is materialised. Elsewhere (CUDA, low precision) the portable
formulas are used, and codes wider than about n/10 per row go through dense matrix products. All paths
agree up to float rounding and are deterministic from run to run.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from . import native

_CSR_DTYPES = (torch.float32, torch.float64)

# PyTorch labels its CSR layout "beta" with a once-per-process UserWarning; these kernels are tested here
# (tests/test_speed_paths.py) against dense float64 formulas, so spend that one warning at import, silently.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.sparse_csr_tensor(torch.zeros(2, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0), (1, 1))


def _use_csr(*tensors: Tensor) -> bool:
    """The CSR kernels: CPU tensors of one float32/float64 dtype, in a build with MKL's sparse BLAS."""
    dtype = tensors[0].dtype
    return (
        dtype in _CSR_DTYPES
        and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
        and torch.backends.mkl.is_available()
    )


# Wide codes (k a sizeable fraction of n: JumpReLU or BatchTopK early in training) are cheaper as one dense
# GEMM than as B·k gathers: a GEMM runs ~15× more multiply-adds per second than the sparse kernels here, so
# each primitive switches to its dense formula once n/k falls below these measured crossovers (2 CPU cores).
_DENSE_BELOW = {"weighted_row_sum": 16, "gather_dot": 10, "scatter_outer": 8}


def _wide(idx: Tensor, n: int, ratio: int) -> bool:
    return idx.shape[1] * ratio >= n


def _dense_codes(idx: Tensor, w: Tensor, n: int) -> Tensor:
    return torch.zeros(idx.shape[0], n, dtype=w.dtype, device=w.device).scatter_add_(1, idx, w)


def _dense_matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b in the operands' own (promoted) dtype, as the sparse kernels compute, even under autocast."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    with torch.autocast(a.device.type, enabled=False):
        return a.to(dtype) @ b.to(dtype)


def _index_dtype(idx: Tensor, n: int) -> torch.dtype:
    """int32 CSR indices (and sort keys) when they fit: less memory traffic for every kernel that reads them."""
    return torch.int32 if max(idx.numel(), n, idx.shape[0]) < 2**31 - 1 else torch.int64


def _row_csr(idx: Tensor, w: Tensor, n_cols: int) -> Tensor:
    """The (batch × n_cols) CSR matrix with w[b, j] at column idx[b, j] of row b (repeats add up)."""
    batch, k = idx.shape
    dtype = _index_dtype(idx, n_cols)
    crow = torch.arange(0, batch * k + 1, k, device=idx.device, dtype=dtype)
    # Columns within a row are neither sorted nor unique (TopK returns them unsorted); every product used
    # here accumulates entry by entry, so the layout's sortedness invariant is not needed.
    return torch.sparse_csr_tensor(
        crow, idx.reshape(-1).to(dtype), w.reshape(-1), (batch, n_cols), check_invariants=False
    )


# The encoder's and the decoder's weight gradients scatter along the same indices in one backward pass, so
# the grouping of idx by latent is kept for the most recent idx (held, so its memory cannot be reused; checked
# by identity and version counter, so an in-place change invalidates it).
_last_grouping: tuple[Tensor, int, int, Tensor, Tensor, Tensor] | None = None


def _grouped_by_row(idx: Tensor, n_rows: int) -> tuple[Tensor, Tensor, Tensor]:
    """For Sᵀ (n_rows × batch): row pointers, the batch row of each entry, and the entry order (a stable sort)."""
    global _last_grouping
    cached = _last_grouping
    if cached is not None and cached[0] is idx and cached[1] == idx._version and cached[2] == n_rows:
        return cached[3], cached[4], cached[5]
    dtype = _index_dtype(idx, n_rows)
    flat = idx.reshape(-1).to(dtype)
    order = torch.sort(flat, stable=True).indices
    crow = torch.zeros(n_rows + 1, dtype=dtype, device=idx.device)
    torch.cumsum(torch.bincount(flat, minlength=n_rows), 0, out=crow[1:])
    batch_rows = torch.div(order, idx.shape[1], rounding_mode="floor").to(dtype)
    _last_grouping = (idx, idx._version, n_rows, crow, batch_rows, order)
    return crow, batch_rows, order


_last_native_grouping: tuple[Tensor, int, int, Tensor, Tensor] | None = None


def _native_grouping(idx: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    """The native kernels' form of the same grouping: int64 (start, entry) from a counting sort (cached alike)."""
    global _last_native_grouping
    cached = _last_native_grouping
    if cached is not None and cached[0] is idx and cached[1] == idx._version and cached[2] == n_rows:
        return cached[3], cached[4]
    start, entry = native.group_by_value(idx, n_rows)
    _last_native_grouping = (idx, idx._version, n_rows, start, entry)
    return start, entry


def _csr_matmul(S: Tensor, dense: Tensor) -> Tensor:
    """S @ dense into a fresh row-major result (addmm with beta=0 writes it once, with no zero-fill pass)."""
    out = torch.empty(S.shape[0], dense.shape[1], dtype=dense.dtype, device=dense.device)
    return torch.addmm(out, S, dense, beta=0.0, out=out)


def gather_dot(idx: Tensor, W: Tensor, y: Tensor) -> Tensor:
    """Row-wise dot products between gathered rows of W (B, k, d) and y (B, d) -> (B, k)."""
    if _wide(idx, W.shape[0], _DENSE_BELOW["gather_dot"]):
        return _dense_matmul(y, W.t()).gather(1, idx)
    if native.usable(idx, W, y):
        return native.gather_dot(idx, W, y)
    if _use_csr(W, y):
        # Sampled in Sᵀ's (latent-major) order, each row of W is read once and the rows of y, the smaller
        # operand, are the ones revisited; then the entries go back to (batch, k) order.
        crow, batch_rows, order = _grouped_by_row(idx, W.shape[0])
        pattern = torch.sparse_csr_tensor(
            crow, batch_rows, torch.zeros(idx.numel(), dtype=W.dtype), (W.shape[0], idx.shape[0]),
            check_invariants=False,
        )
        dots = torch.sparse.sampled_addmm(pattern, W, y.t(), beta=0.0).values()
        return torch.empty_like(dots).index_copy_(0, order, dots).view(idx.shape)
    return torch.bmm(W[idx], y.unsqueeze(-1)).squeeze(-1)


def weighted_row_sum(idx: Tensor, w: Tensor, W: Tensor) -> Tensor:
    """Σ_j w[b, j] W[idx[b, j]] without materialising the gathered rows."""
    if _wide(idx, W.shape[0], _DENSE_BELOW["weighted_row_sum"]):
        return _dense_matmul(_dense_codes(idx, w, W.shape[0]), W)
    if native.usable(idx, w, W):
        return native.weighted_row_sum(idx, w, W)
    if _use_csr(w, W):
        return _csr_matmul(_row_csr(idx, w, W.shape[0]), W)
    return F.embedding_bag(idx, W, per_sample_weights=w, mode="sum")


def scatter_outer(idx: Tensor, w: Tensor, y: Tensor, n_rows: int, alpha: float = 1.0) -> Tensor:
    """Accumulate alpha · w[b, j] · y[b] into row idx[b, j] of an (n_rows, d) matrix."""
    if not _wide(idx, n_rows, _DENSE_BELOW["scatter_outer"]) and native.usable(idx, w, y):
        start, entry = _native_grouping(idx, n_rows)
        return native.scatter_outer(start, entry, w, y, idx.shape[1], alpha)  # alpha folded into the weights
    out = _scatter_outer_unscaled(idx, w, y, n_rows)
    return out if alpha == 1.0 else out.mul_(alpha)


def _scatter_outer_unscaled(idx: Tensor, w: Tensor, y: Tensor, n_rows: int) -> Tensor:
    batch, k = idx.shape
    if _wide(idx, n_rows, _DENSE_BELOW["scatter_outer"]):
        return _dense_matmul(_dense_codes(idx, w, n_rows).t(), y)
    if _use_csr(w, y):
        crow, batch_rows, order = _grouped_by_row(idx, n_rows)
        St = torch.sparse_csr_tensor(
            crow, batch_rows, w.reshape(-1)[order], (n_rows, batch), check_invariants=False
        )
        return _csr_matmul(St, y)
    rows = idx.reshape(-1)
    cols = torch.arange(batch, device=idx.device).repeat_interleave(k)
    # A sparse (n_rows × batch) matrix times y costs O(batch·k·d) and keeps the work inside one kernel.
    S = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), w.reshape(-1), (n_rows, batch), check_invariants=False
    )
    return torch.sparse.mm(S, y)


class _SparseEncode(torch.autograd.Function):
    """pre[b, j] = W_enc[idx[b, j]] · (x[b] − center) + b_enc[idx[b, j]], given the values already computed.

    `center` (a (d,) tensor or None for 0) is the pre-encoder bias. Its gradient, −Σ_b ∂L/∂x[b], equals
    −(∂L/∂b_enc) @ W_enc: one (n,) × (n, d) product instead of the (batch, d) gather-sum that ∂L/∂x needs.
    """

    @staticmethod
    def forward(ctx, x: Tensor, W_enc: Tensor, b_enc: Tensor, idx: Tensor, pre_at_idx: Tensor,
                center: Tensor | None, x_c: Tensor | None) -> Tensor:
        if x_c is None:
            x_c = x if center is None else x - center
        ctx.save_for_backward(x_c, W_enc, idx)
        ctx.n_latents = W_enc.shape[0]
        return pre_at_idx.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        x_c, W_enc, idx = ctx.saved_tensors
        need_x, need_W, need_b, _, _, need_center, _ = ctx.needs_input_grad
        grad = grad.contiguous()
        grad_x = weighted_row_sum(idx, grad, W_enc) if need_x else None
        grad_W = scatter_outer(idx, grad, x_c, ctx.n_latents) if need_W else None
        grad_b = grad_center = None
        if need_b or need_center:
            grad_b = torch.zeros(ctx.n_latents, dtype=grad.dtype, device=grad.device)
            grad_b.index_add_(0, idx.reshape(-1), grad.reshape(-1))
            if need_center:
                grad_center = -(grad_b.to(W_enc.dtype) @ W_enc)
        return grad_x, grad_W, grad_b if need_b else None, None, None, grad_center, None


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


class _SparseDecodeSquaredError(torch.autograd.Function):
    """(Σ_b ||ŷ[b] − target[b]||² / batch, ŷ) with ŷ[b] = Σ_j values[b, j] W_dec[idx[b, j]] + b_dec.

    The loss's gradient with respect to the values, (2/batch) W_dec[idx]·r with r = ŷ − target, is computed in
    the forward pass while each row's gathered decoder rows are still in cache (the native kernel), so the
    backward pass only scales it: one gather of the decoder rows per step instead of two. ŷ is returned without
    a gradient (losses that need ŷ with a gradient use `sparse_decode`).
    """

    @staticmethod
    def forward(ctx, values: Tensor, idx: Tensor, W_dec: Tensor, b_dec: Tensor, target: Tensor):
        need_values = ctx.needs_input_grad[0]
        narrow = not _wide(idx, W_dec.shape[0], _DENSE_BELOW["weighted_row_sum"])  # wide codes: dense GEMMs win
        if narrow and native.usable(idx, values, W_dec, b_dec, target):
            y_hat, r, sq, dots = native.decode_residual(idx, values, W_dec, b_dec, target, need_values)
            loss = sq.sum()
        else:
            y_hat = weighted_row_sum(idx, values, W_dec) + b_dec
            r = y_hat - target
            loss = r.pow(2).sum()
            dots = gather_dot(idx, W_dec, r.contiguous()) if need_values else None
        ctx.save_for_backward(values, idx, W_dec, r, dots)
        ctx.mark_non_differentiable(y_hat)
        ctx.set_materialize_grads(False)  # ŷ never receives a gradient: no zero-filled (batch, d) tensor for it
        return loss / idx.shape[0], y_hat

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_y_hat: Tensor):
        values, idx, W_dec, r, dots = ctx.saved_tensors
        need_values, _, need_W, need_b, need_target = ctx.needs_input_grad
        if grad_loss is None:
            return None, None, None, None, None
        scale = grad_loss * (2.0 / idx.shape[0])
        grad_values = dots * scale if need_values else None
        grad_W = scatter_outer(idx, values, r, W_dec.shape[0], alpha=float(scale)) if need_W else None
        grad_b = r.sum(0) * scale if need_b else None
        grad_target = -r * scale if need_target else None
        return grad_values, None, grad_W, grad_b, grad_target


def sparse_decode_squared_error(values: Tensor, idx: Tensor, W_dec: Tensor, b_dec: Tensor,
                                target: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over rows of ||ŷ − target||², and ŷ (no gradient), for (values, indices) codes: see the class above."""
    dtype = W_dec.dtype
    return _SparseDecodeSquaredError.apply(values.to(dtype).contiguous(), idx.contiguous(), W_dec, b_dec.to(dtype),
                                           target.to(dtype).contiguous())


class _NestedSquaredErrors(torch.autograd.Function):
    """Mean over rows of ||ŷ_p − target||² for every prefix group p of the latents (Matryoshka), and ŷ (the full
    reconstruction, no gradient). ŷ_p sums b_dec and the codes of groups 0..p; `group` (batch, k) names each
    entry's group, `latent_group` (n,) each latent's.

    Forward gathers each decoder row once and keeps every prefix's residual r_p and the dot products of each
    gathered row with the residuals of the prefixes containing it. Backward weighs them by the incoming gradient
    of each prefix loss: the codes' gradient is a weighted sum of those dots, and W_dec's row r collects its
    codes times R_g = Σ_{p ≥ g} (∂L/∂L_p)·(2/batch)·r_p for its group g, in one scatter.
    """

    @staticmethod
    def forward(ctx, values: Tensor, idx: Tensor, group: Tensor, latent_group: Tensor, W_dec: Tensor, b_dec: Tensor,
                target: Tensor, n_groups: int):
        need_values = ctx.needs_input_grad[0]
        narrow = not _wide(idx, W_dec.shape[0], _DENSE_BELOW["weighted_row_sum"])  # wide codes: dense GEMMs win
        if narrow and native.usable(idx, values, W_dec, b_dec, target) and native.usable(group):
            y_hat, r, sq, dots = native.nested_decode_residual(idx, values, group, W_dec, b_dec, target, n_groups,
                                                               need_values)
        else:
            y_hat, residuals, sq_cols, dot_cols = b_dec.expand_as(target), [], [], []
            for p in range(n_groups):
                y_hat = y_hat + weighted_row_sum(idx, values * (group == p), W_dec)
                residuals.append(y_hat - target)
                sq_cols.append(residuals[-1].pow(2).sum(-1))
                if need_values:
                    dot_cols.append(gather_dot(idx, W_dec, residuals[-1].contiguous()) * (group <= p))
            r, sq = torch.stack(residuals), torch.stack(sq_cols, dim=1)
            dots = torch.stack(dot_cols, dim=-1) if need_values else None
        ctx.save_for_backward(values, idx, latent_group, W_dec, r, dots)
        ctx.mark_non_differentiable(y_hat)
        ctx.set_materialize_grads(False)
        return sq.sum(0) / idx.shape[0], y_hat

    @staticmethod
    def backward(ctx, grad_losses: Tensor, _grad_y_hat: Tensor):
        if grad_losses is None:
            return (None,) * 8
        values, idx, latent_group, W_dec, r, dots = ctx.saved_tensors
        need_values, _, _, _, need_W, need_b, need_target, _ = ctx.needs_input_grad
        weights = grad_losses.to(r.dtype) * (2.0 / idx.shape[0])
        grad_values = dots @ weights if need_values else None
        # R_g = Σ_{p ≥ g} w_p r_p: a suffix sum over the stacked residuals, one pass per prefix
        R = torch.empty_like(r)
        factors = weights.tolist()
        torch.mul(r[-1], factors[-1], out=R[-1])
        for p in range(len(factors) - 2, -1, -1):
            torch.add(R[p + 1], r[p], alpha=factors[p], out=R[p])
        grad_W = _scatter_from_groups(idx, values, R, latent_group, W_dec.shape[0]) if need_W else None
        grad_b = R[0].sum(0) if need_b else None
        grad_target = -R[0] if need_target else None
        return grad_values, None, None, None, grad_W, grad_b, grad_target, None


def _scatter_from_groups(idx: Tensor, w: Tensor, R: Tensor, latent_group: Tensor, n_rows: int) -> Tensor:
    """Row r of the result: Σ_{(b, j): idx[b, j] = r} w[b, j] · R[latent_group[r], b]."""
    if (not _wide(idx, n_rows, _DENSE_BELOW["scatter_outer"]) and native.usable(idx, w, R)
            and native.usable(latent_group)):
        start, entry = _native_grouping(idx, n_rows)
        return native.scatter_outer(start, entry, w, R.contiguous(), idx.shape[1], source=latent_group)
    entry_group = latent_group[idx]
    return sum(_scatter_outer_unscaled(idx, w * (entry_group == g), R[g].contiguous(), n_rows)
               for g in range(R.shape[0]))


def sparse_nested_squared_errors(values: Tensor, idx: Tensor, W_dec: Tensor, b_dec: Tensor, target: Tensor,
                                 prefixes: list[int]) -> tuple[Tensor, Tensor]:
    """(losses (P,), ŷ): the mean squared error of the reconstruction from the first prefixes[p] latents, for each
    p (prefixes increasing, the last = n_latents), and the full reconstruction without a gradient."""
    dtype = W_dec.dtype
    bounds = torch.tensor(prefixes[:-1], dtype=idx.dtype, device=idx.device)
    latent_group = torch.bucketize(torch.arange(W_dec.shape[0], device=idx.device), bounds, right=True)
    idx = idx.contiguous()
    return _NestedSquaredErrors.apply(values.to(dtype).contiguous(), idx, latent_group[idx], latent_group, W_dec,
                                      b_dec.to(dtype), target.to(dtype).contiguous(), len(prefixes))


def sparse_encode(x: Tensor, W_enc: Tensor, b_enc: Tensor, idx: Tensor, pre_at_idx: Tensor | None = None,
                  center: Tensor | None = None, x_centered: Tensor | None = None) -> Tensor:
    """Encoder pre-activations at the selected latents, with a gradient that touches only those rows.

    Computes W_enc[idx]·(x − center) + b_enc[idx]. `pre_at_idx` lets a caller that already ran the dense
    (no-grad) encoder reuse those numbers. Passing the pre-encoder bias as `center` (rather than x − b_dec
    as x) gives the same values and gradients, and the bias's gradient costs one matrix-vector product.
    `x_centered`, when given, must equal x − center (computed once by a caller that also needed it, with no
    gradient of its own).
    """
    if pre_at_idx is None:
        with torch.no_grad():
            x_c = x if center is None else x - center
            pre_at_idx = gather_dot(idx, W_enc, x_c) + b_enc[idx]
    if x_centered is not None:
        x_centered = x_centered.detach()
    return _SparseEncode.apply(x, W_enc, b_enc, idx, pre_at_idx, center, x_centered)


def sparse_decode(values: Tensor, idx: Tensor, W_dec: Tensor) -> Tensor:
    """Decode (values, indices) codes through W_dec (n_latents, d) without a dense code matrix."""
    return _SparseDecode.apply(values, idx, W_dec)
