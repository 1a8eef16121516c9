"""Typed wrappers over the native kernels. Callers check `usable(...)` first; each wrapper allocates its outputs
and passes raw pointers, so the C side never owns a tensor."""

from __future__ import annotations

import torch

from . import build

__all__ = [
    "bias_topk_",
    "weighted_row_sum",
    "gather_dot",
    "scatter_outer",
    "decode_residual",
    "nested_decode_residual",
    "sum_squares",
    "project_rows_",
    "normalize_rows_",
    "bf16_rows",
    "screened_topk",
    "screened_above",
    "screen_group_maxima",
    "group_by_value",
    "kth_largest",
    "batch_select",
    "count_positive",
    "gated_forward",
    "gated_backward",
    "select_above",
    "count_fired",
]


def _lib():
    """The loaded kernels (looked up on every call, so tests can swap the build)."""
    return build.library()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def bias_topk_(pre: torch.Tensor, bias: torch.Tensor | None, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Add `bias` to `pre` (rows, n) in place and return the (indices, values) of each row's k largest entries."""
    rows, n = pre.shape
    idx = torch.empty(rows, k, dtype=torch.int64)
    val = torch.empty(rows, k, dtype=pre.dtype)
    if _lib().aekit_bias_topk(_ptr(pre), _ptr(bias), rows, n, k, _ptr(idx), _ptr(val)):
        raise MemoryError("aekit native top-k could not allocate its candidate buffers")
    return idx, val


def weighted_row_sum(idx: torch.Tensor, w: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    rows, k = idx.shape
    out = torch.empty(rows, W.shape[1], dtype=W.dtype)
    _lib().aekit_weighted_row_sum(_ptr(idx), _ptr(w), _ptr(W), rows, k, W.shape[1], _ptr(out))
    return out


def gather_dot(idx: torch.Tensor, W: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    rows, k = idx.shape
    out = torch.empty(rows, k, dtype=W.dtype)
    _lib().aekit_gather_dot(_ptr(idx), _ptr(W), _ptr(y), rows, k, W.shape[1], _ptr(out))
    return out


def scatter_outer(start: torch.Tensor, entry: torch.Tensor, w: torch.Tensor, y: torch.Tensor, k: int,
                  alpha: float = 1.0, source: torch.Tensor | None = None) -> torch.Tensor:
    """α Sᵀ @ y from S's column grouping (start, entry). `y` is (rows, d), or (S, rows, d) stacked matrices with
    `source` (n_out,) naming the one each output row reads."""
    n_out, d = len(start) - 1, y.shape[-1]
    stride = y.shape[-2] * d if source is not None else 0
    out = torch.empty(n_out, d, dtype=y.dtype)
    _lib().aekit_scatter_outer(_ptr(start), _ptr(entry), _ptr(w), _ptr(y), n_out, k, d, alpha, _ptr(source),
                                  stride, _ptr(out))
    return out


def decode_residual(idx: torch.Tensor, w: torch.Tensor, W: torch.Tensor, bias: torch.Tensor, target: torch.Tensor,
                    with_dots: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(ŷ, r = ŷ − target, ||r||² per row, W[idx]·r or None): see aekit_decode_residual in kernels.c."""
    rows, k = idx.shape
    d = W.shape[1]
    y_hat, r = torch.empty(rows, d), torch.empty(rows, d)
    sq = torch.empty(rows)
    dots = torch.empty(rows, k) if with_dots else None
    _lib().aekit_decode_residual(_ptr(idx), _ptr(w), _ptr(W), _ptr(bias), _ptr(target), rows, k, d, _ptr(y_hat),
                                    _ptr(r), _ptr(sq), _ptr(dots))
    return y_hat, r, sq, dots


def nested_decode_residual(idx: torch.Tensor, w: torch.Tensor, group: torch.Tensor, W: torch.Tensor,
                           bias: torch.Tensor, target: torch.Tensor, n_groups: int, with_dots: bool):
    """(ŷ, r (P, rows, d), ||r_p||² (rows, P), dots (rows, k, P) or None): see aekit_nested_decode_residual."""
    rows, k = idx.shape
    d = W.shape[1]
    y_hat, r = torch.empty(rows, d), torch.empty(n_groups, rows, d)
    sq = torch.empty(rows, n_groups)
    dots = torch.empty(rows, k, n_groups) if with_dots else None
    if _lib().aekit_nested_decode_residual(_ptr(idx), _ptr(w), _ptr(group), _ptr(W), _ptr(bias), _ptr(target),
                                              rows, k, d, n_groups, _ptr(y_hat), _ptr(r), _ptr(sq), _ptr(dots)):
        raise MemoryError("aekit native nested decode could not allocate its scratch rows")
    return y_hat, r, sq, dots


def sum_squares(x: torch.Tensor) -> float:
    """Σ x² (float32 tensor, any shape) accumulated in float64 over fixed chunks: thread-count independent."""
    total = _lib().aekit_sum_squares(_ptr(x), x.numel())
    if total < 0:
        raise MemoryError("aekit native sum of squares could not allocate its partial sums")
    return total


def project_rows_(g: torch.Tensor, W: torch.Tensor) -> None:
    _lib().aekit_project_rows(_ptr(g), _ptr(W), *g.shape)


def normalize_rows_(W: torch.Tensor, eps: float = 1e-12) -> None:
    _lib().aekit_normalize_rows(_ptr(W), *W.shape, eps)


def bf16_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bfloat16(x) rounded to nearest even, and per row upper bounds of ||bf16(x)||, ||bf16(x) − x||, ||x||)."""
    rows, d = x.shape
    rounded = torch.empty(rows, d, dtype=torch.bfloat16)
    norms = torch.empty(3, rows)
    _lib().aekit_bf16_rows(_ptr(x), rows, d, _ptr(rounded), _ptr(norms[0]), _ptr(norms[1]), _ptr(norms[2]))
    return rounded, norms[0], norms[1], norms[2]


def _run_screen(kernel: str, approx: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, W: torch.Tensor,
                bound: tuple, *args) -> None:
    """Call a screen kernel of screen.c: its leading arguments are the bfloat16 product, the exact operands, the
    bound's norms and relative rounding `bound` = (a, c, p, q, rel), and the sizes; `args` are the rest."""
    a, c, p, q, rel = bound
    rows, n = approx.shape
    if getattr(_lib(), kernel)(_ptr(approx), _ptr(bias), _ptr(x), _ptr(W), _ptr(a), _ptr(c), _ptr(p), _ptr(q), rel,
                                  rows, n, x.shape[1], *args):
        raise MemoryError(f"aekit native {kernel} could not allocate its buffers")


def screened_topk(approx: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, W: torch.Tensor, bound: tuple,
                  k: int, cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(indices, values, redo): see aekit_screened_topk in screen.c."""
    rows = approx.shape[0]
    idx, val, redo = torch.empty(rows, k, dtype=torch.int64), torch.empty(rows, k), torch.empty(rows, dtype=torch.bool)
    _run_screen("aekit_screened_topk", approx, bias, x, W, bound, k, cap, _ptr(idx), _ptr(val), _ptr(redo))
    return idx, val, redo


def screened_above(approx: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, W: torch.Tensor, bound: tuple,
                   cut: float, cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cols (rows, cap) int32, values (rows, cap), count (rows,)): see aekit_screened_above."""
    rows = approx.shape[0]
    cols, vals = torch.empty(rows, cap, dtype=torch.int32), torch.empty(rows, cap)
    count = torch.empty(rows, dtype=torch.int64)
    _run_screen("aekit_screened_above", approx, bias, x, W, bound, cut, cap, _ptr(cols), _ptr(vals), _ptr(count))
    return cols, vals, count


def screen_group_maxima(approx: torch.Tensor, bias: torch.Tensor | None, bound: tuple,
                        groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(group maxima (rows, groups) of each row's lower bounds, bad rows): see aekit_screen_group_maxima."""
    rows, n = approx.shape
    group_max, bad = torch.empty(rows, groups), torch.empty(rows, dtype=torch.bool)
    a, c, p, q, rel = bound
    if _lib().aekit_screen_group_maxima(_ptr(approx), _ptr(bias), _ptr(a), _ptr(c), _ptr(p), _ptr(q), rel, rows,
                                           n, groups, _ptr(group_max), _ptr(bad)):
        raise MemoryError("aekit native screen could not allocate its buffers")
    return group_max, bad


def group_by_value(idx: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start (n + 1,), entry (idx.numel(),)), int64: the flat positions of idx grouped by value, stably (a counting
    sort); the positions holding value r are entry[start[r]:start[r + 1]]."""
    start = torch.empty(n + 1, dtype=torch.int64)
    entry = torch.empty(idx.numel(), dtype=torch.int64)
    status = _lib().aekit_group_by_value(_ptr(idx), idx.numel(), n, _ptr(start), _ptr(entry))
    if status == 1:
        raise IndexError(f"latent index out of range [0, {n})")
    if status:
        raise MemoryError("aekit native grouping could not allocate its counters")
    return start, entry


def kth_largest(v: torch.Tensor, k: int) -> float:
    """The k-th largest entry of a float32 tensor without NaN (1 ≤ k ≤ numel)."""
    value = _lib().aekit_kth_largest(_ptr(v), v.numel(), k)
    if value != value:
        raise MemoryError("aekit native k-th largest could not allocate its buffer")
    return value


def batch_select(cols: torch.Tensor, vals: torch.Tensor, count: torch.Tensor,
                 total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(rows, cols, values) of the `total` largest kept entries, in row order (see aekit_batch_select in
    screen.c); None when fewer than `total` are kept."""
    rows, cap = vals.shape
    out = torch.empty(total, dtype=torch.int64), torch.empty(total, dtype=torch.int64), torch.empty(total)
    status = _lib().aekit_batch_select(_ptr(cols), _ptr(vals), _ptr(count), rows, cap, total, *map(_ptr, out))
    if status == 2:
        raise MemoryError("aekit native batch selection could not allocate its buffer")
    return None if status else out


def count_positive(x: torch.Tensor) -> torch.Tensor:
    """(n,) int64: how many rows of the (rows, n) float32 matrix x are > 0 in each column."""
    rows, n = x.shape
    counts = torch.empty(n, dtype=torch.int64)
    if _lib().aekit_count_positive(_ptr(x), rows, n, _ptr(counts)):
        raise MemoryError("aekit native count could not allocate its counters")
    return counts


def gated_forward(pre: torch.Tensor, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1[pre > 0] · max(s·pre + b, 0): see gated.c."""
    f = torch.empty_like(pre)
    _lib().aekit_gated_forward(_ptr(pre), _ptr(s), _ptr(b), *pre.shape, _ptr(f))
    return f


def gated_backward(grad: torch.Tensor, pre: torch.Tensor, s: torch.Tensor,
                   b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(∂L/∂pre, Σ_rows ∂L/∂m·pre, Σ_rows ∂L/∂m) for f = gated_forward(pre, s, b): see gated.c."""
    n = pre.shape[1]
    grad_pre, col_pre, col_one = torch.empty_like(pre), torch.empty(n), torch.empty(n)
    if _lib().aekit_gated_backward(_ptr(grad), _ptr(pre), _ptr(s), _ptr(b), *pre.shape, _ptr(grad_pre),
                                      _ptr(col_pre), _ptr(col_one)):
        raise MemoryError("aekit native Gated backward could not allocate its partial sums")
    return grad_pre, col_pre, col_one


def select_above(x: torch.Tensor, thr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's columns with x[r, j] > thr[j], padded: (indices int64, values, valid bool), each (rows, width)
    with width the largest count (at least 1); see aekit_select_above."""
    rows, n = x.shape
    counts = torch.empty(rows, dtype=torch.int64)
    _lib().aekit_count_above(_ptr(x), _ptr(thr), rows, n, _ptr(counts))
    width = max(int(counts.max()) if rows else 0, 1)
    indices, values = torch.empty(rows, width, dtype=torch.int64), torch.empty(rows, width)
    valid = torch.empty(rows, width, dtype=torch.bool)
    _lib().aekit_select_above(_ptr(x), _ptr(thr), rows, n, width, _ptr(indices), _ptr(values), _ptr(valid))
    return indices, values, valid


def count_fired(idx: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """(n,) int64: for each latent, how many entries of the sparse codes (idx, values) name it with a value > 0."""
    counts = torch.empty(n, dtype=torch.int64)
    status = _lib().aekit_count_fired(_ptr(idx), _ptr(values), idx.numel(), n, _ptr(counts))
    if status == 1:
        raise IndexError(f"latent index out of range [0, {n})")
    if status:
        raise MemoryError("aekit native count could not allocate its counters")
    return counts
