"""Exact per-row top-k of encoder pre-activations, screened through a bfloat16 product.

A TopK SAE step is dominated by the dense encoder product x·W_encᵀ (batch × n_latents × d multiply-adds),
computed only to decide which k latents of each row fire. On CPUs with bfloat16 matrix units (Intel AMX,
AVX-512 BF16) that product runs about 7× faster in bfloat16 than in float32, but its values are too coarse to
choose the latents from directly. Here it only screens: every entry gets a rigorous bound on its distance from
the exact value, every latent that could still be among a row's top k is recomputed exactly in float32, and the
top k of those exact values is returned. The result is the float32 top-k: the same latents and values as the
dense float32 path, up to rounding in the last bit of the values and the choice among exactly tied entries.

The bound. Write x̃ = bf16(x), w̃ = bf16(w), δx = x̃ − x, δw = w̃ − w. Then x̃·w̃ − x·w = x̃·δw + δx·w, so by
Cauchy–Schwarz |x̃·w̃ − x·w| ≤ ||x̃||·||δw|| + ||δx||·||w||. The product accumulates in float32 (error at most
γ_d·||x̃||·||w̃||, γ_d ≈ d·2⁻²⁴) and rounds its output to bfloat16 (at most u/(1 − u) of the output, u = 2⁻⁸). So
    e[b, i] = ||x̃_b||·(||δw_i|| + γ_d||w̃_i||) + ||δx_b||·||w_i|| + u/(1 − u)·|approx[b, i]|
bounds the error of entry (b, i); the native kernel adds the float rounding of its own arithmetic. With L the
k-th largest lower bound (approx + bias − e) of a row, k latents are certainly ≥ L, so any latent whose upper
bound is below L cannot be in the top k. For random data about 55 of 8192 latents per row survive
(k = 32, d = 512). A row with too many survivors, or a non-finite entry, is computed by the dense float32 path.

`MODE` (from $AEKIT_BF16_SCREEN: "auto", "1"/"always", "0"/"never") decides where it is used: "auto" on CPUs
with AMX or AVX-512 BF16 for shapes where it pays (d ≥ MIN_D, n ≥ MIN_LATENTS, k ≤ n / MIN_SPARSITY), "always"
wherever the native kernels run (correct on any CPU; slow without bfloat16 hardware; tests use it), "never" off.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from . import native
from .topk import batch_topk_dense

UNIT_ROUNDOFF = 2.0**-8  # bfloat16 keeps 8 significant bits
MIN_D, MIN_LATENTS, MIN_SPARSITY = 64, 2048, 32  # measured: below these the float32 path is as fast
_MODES = {"": "auto", "auto": "auto", "1": "always", "always": "always", "0": "never", "never": "never"}
MODE = _MODES.get(os.environ.get("AEKIT_BF16_SCREEN", "").strip().lower(), "auto")


@cache
def bfloat16_hardware() -> bool:
    """True on CPUs whose bfloat16 matrix products run several times faster than float32 ones (AMX or AVX-512
    BF16 through oneDNN)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return torch.backends.mkldnn.is_available() and any(f in flags.split() for f in ("amx_bf16", "avx512_bf16"))


def applies(x: Tensor, W: Tensor, k: int) -> bool:
    """Whether `screened_topk(x, W, bias, k)` should replace the dense float32 product here."""
    if MODE == "never" or not native.usable(None, x, W) or torch.is_autocast_enabled("cpu"):
        return False
    n, d = W.shape
    if not 1 <= k <= n or x.ndim != 2 or x.shape[0] == 0:
        return False
    if MODE == "always":
        return True
    return bfloat16_hardware() and d >= MIN_D and n >= MIN_LATENTS and k * MIN_SPARSITY <= n


def _candidate_cap(k: int, n: int) -> int:
    """Survivors allowed per row before it goes to the dense path: far above the usual k + 25, far below n."""
    return min(n, max(4 * k, k + 256))


@dataclass
class _Screen:
    """The bfloat16 product of one batch and the norms its error bound needs (see the module docstring)."""

    approx: Tensor  # (rows, n) bfloat16
    bias: Tensor | None
    x_norm_rounded: Tensor  # ||x̃_b||
    x_norm_error: Tensor  # ||x̃_b − x_b||
    w_term: Tensor  # ||w̃_i − w_i|| + γ_d·||w̃_i||
    w_norm: Tensor  # ||w_i||
    rel: float = UNIT_ROUNDOFF / (1 - UNIT_ROUNDOFF)  # the output's own bfloat16 rounding

    @property
    def bound(self) -> tuple:
        """(a, c, p, q, rel) as the native screen kernels take them."""
        return (self.x_norm_rounded, self.x_norm_error, self.w_term, self.w_norm, self.rel)


def _screen(x: Tensor, W: Tensor, bias: Tensor | None, approx_out: Tensor | None) -> _Screen | None:
    """The product and the norms, or None when an input is not finite (the bound then means nothing)."""
    d = W.shape[1]
    x_rounded, x_norm_rounded, x_norm_error, _ = native.bf16_rows(x)
    W_rounded, w_norm_rounded, w_norm_error, w_norm = native.bf16_rows(W)
    bias = None if bias is None else bias.detach().contiguous()
    if not all(torch.isfinite(t).all() for t in (x_norm_rounded, w_norm_rounded, w_norm)
               + (() if bias is None else (bias,))):
        return None
    w_term = w_norm_error + (d + 2) * 2.0**-24 * w_norm_rounded
    approx = torch.mm(x_rounded, W_rounded.t(), out=approx_out)
    return _Screen(approx, bias, x_norm_rounded, x_norm_error, w_term, w_norm)


def _report(stats: dict[str, float] | None, redone: int, rows: int) -> None:
    if stats is not None:
        stats["redo_fraction"] = redone / max(rows, 1)


def screened_topk(x: Tensor, W: Tensor, bias: Tensor | None, k: int, approx_out: Tensor | None = None,
                  stats: dict[str, float] | None = None) -> tuple[Tensor, Tensor]:
    """(indices, values), each (rows, k): the k largest entries of each row of x·Wᵀ + bias, in no particular
    order, computed as the module docstring describes. x (rows, d), W (n, d), bias (n,): contiguous float32 CPU
    tensors. `approx_out`, a (rows, n) bfloat16 buffer for the screening product, may be reused across calls.
    `stats`, if given, receives "redo_fraction": the share of rows the float32 path had to compute."""
    screen = _screen(x, W, bias, approx_out)
    if screen is None:
        _report(stats, len(x), len(x))
        return _dense_topk(x, W, bias, k)
    idx, val, redo = native.screened_topk(screen.approx, screen.bias, x, W, screen.bound, k,
                                          _candidate_cap(k, W.shape[0]))
    rows = redo.nonzero().squeeze(1)
    if len(rows):
        idx[rows], val[rows] = _dense_topk(x[rows].contiguous(), W, bias, k)
    _report(stats, len(rows), len(x))
    return idx, val


def screened_batch_topk(x: Tensor, W: Tensor, bias: Tensor | None, total: int, approx_out: Tensor | None = None,
                        stats: dict[str, float] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(rows, cols, values) of the `total` largest entries of the whole matrix x·Wᵀ + bias (BatchTopK), exact;
    in row order unless some row needed the float32 path.

    The cut is the total-th largest of every row's G group maxima of lower bounds: `total` groups hold a lower
    bound at least that large, so the batch's total-th largest entry is ≥ cut. Every entry whose exact value is
    ≥ cut has its upper bound ≥ cut, so it survives and is recomputed exactly; the answer is the top `total` of
    those. Rows with too many survivors are computed by the float32 path."""
    rows, n = x.shape[0], W.shape[0]
    per_row = -(-total // rows)
    groups = -(-max(64, 4 * per_row) // 16) * 16
    screen = _screen(x, W, bias, approx_out)
    if screen is not None:
        group_max, bad = native.screen_group_maxima(screen.approx, screen.bias, screen.bound, groups)
        cut = native.kth_largest(group_max, total) if not bool(bad.any()) else math.nan
    if screen is None or not math.isfinite(cut):
        _report(stats, rows, rows)
        return batch_topk_dense(_dense(x, W, bias), total)
    cap = _candidate_cap(4 * per_row, n)  # rows of a batch-wide top-k vary: room for four times the average
    cols, vals, count = native.screened_above(screen.approx, screen.bias, x, W, screen.bound, cut, cap)
    if not bool((count < 0).any()):
        _report(stats, 0, rows)
        found = native.batch_select(cols, vals, count, total)  # at least `total` entries are ≥ cut (see above)
        if found is not None:
            return found
    kept = torch.arange(cap) < count.unsqueeze(1)
    found_rows = kept.nonzero()[:, 0]
    found_cols, found_vals = cols[kept].long(), vals[kept]
    redo = (count < 0).nonzero().squeeze(1)
    if len(redo):  # those rows' entries ≥ cut, from their exact float32 rows
        exact = _dense(x[redo].contiguous(), W, bias)
        r, c = (exact >= cut).nonzero(as_tuple=True)
        found_rows, found_cols = torch.cat([found_rows, redo[r]]), torch.cat([found_cols, c])
        found_vals = torch.cat([found_vals, exact[r, c]])
    _report(stats, len(redo), rows)
    keep = found_vals.topk(total, sorted=False).indices  # at least `total` entries are ≥ cut (see above)
    return found_rows[keep], found_cols[keep], found_vals[keep]


def _dense(x: Tensor, W: Tensor, bias: Tensor | None) -> Tensor:
    return torch.mm(x, W.t()) if bias is None else torch.addmm(bias, x, W.t())


def _dense_topk(x: Tensor, W: Tensor, bias: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
    """The float32 path: the full product, then the native top-k that adds the bias on the way."""
    return native.bias_topk_(torch.mm(x, W.t()), bias, k)
