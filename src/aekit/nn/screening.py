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
bound is below L cannot be in the top k. For random data about k + 20 of 8192 latents per row survive
(k = 32, d = 512). A row with too many survivors, or a non-finite entry, is computed by the dense float32 path.

`MODE` (from $AEKIT_BF16_SCREEN: "auto", "1"/"always", "0"/"never") decides where it is used: "auto" on CPUs
with AMX or AVX-512 BF16 for shapes where it pays (d ≥ MIN_D, n ≥ MIN_LATENTS, k ≤ n / MIN_SPARSITY), "always"
wherever the native kernels run (correct on any CPU; slow without bfloat16 hardware; tests use it), "never" off.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from . import native

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
    """Survivors allowed per row before it goes to the dense path: far above the usual k + 20, far below n."""
    return min(n, max(4 * k, k + 256))


def screened_topk(x: Tensor, W: Tensor, bias: Tensor | None, k: int, approx_out: Tensor | None = None,
                  stats: dict[str, float] | None = None) -> tuple[Tensor, Tensor]:
    """(indices, values), each (rows, k): the k largest entries of each row of x·Wᵀ + bias, in no particular
    order, computed as the module docstring describes. x (rows, d), W (n, d), bias (n,): contiguous float32 CPU
    tensors. `approx_out`, a (rows, n) bfloat16 buffer for the screening product, may be reused across calls.
    `stats`, if given, receives "redo_fraction": the share of rows the float32 path had to compute."""
    n, d = W.shape
    x_rounded, x_norm_rounded, x_norm_error, _ = native.bf16_rows(x)
    W_rounded, w_norm_rounded, w_norm_error, w_norm = native.bf16_rows(W)
    bias = None if bias is None else bias.detach().contiguous()
    if not all(torch.isfinite(t).all() for t in (x_norm_rounded, w_norm_rounded, w_norm)
               + (() if bias is None else (bias,))):
        if stats is not None:
            stats["redo_fraction"] = 1.0
        return _dense_topk(x, W, bias, k)  # inf/NaN inputs: the bound means nothing, take the exact path
    gamma = (d + 2) * 2.0**-24
    p = w_norm_error + gamma * w_norm_rounded
    approx = torch.mm(x_rounded, W_rounded.t(), out=approx_out)
    rel = UNIT_ROUNDOFF / (1 - UNIT_ROUNDOFF)
    idx, val, redo = native.screened_topk(approx, bias, x, W, x_norm_rounded, x_norm_error, p, w_norm, rel, k,
                                          _candidate_cap(k, n))
    rows = redo.nonzero().squeeze(1)
    if len(rows):
        idx[rows], val[rows] = _dense_topk(x[rows].contiguous(), W, bias, k)
    if stats is not None:
        stats["redo_fraction"] = len(rows) / max(len(x), 1)
    return idx, val


def _dense_topk(x: Tensor, W: Tensor, bias: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
    """The float32 path: the full product, then the native top-k that adds the bias on the way."""
    return native.bias_topk_(torch.mm(x, W.t()), bias, k)
