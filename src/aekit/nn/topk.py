"""Row-wise top-k selection that is faster than `torch.topk` on CPU for k ≪ n.

`torch.topk` on CPU partially sorts every row entry by entry. Here each row of n is cut into G = n/g
strided groups {j, j + G, j + 2G, ...}; one vectorised pass takes every group's max, `torch.topk` keeps the k
groups with the largest maxima, and a second `torch.topk` picks the k largest of those groups' k·g entries.
With g ≈ √(n/k) the two selections see about 2√(n·k) entries per row instead of n (1024 instead of 8192 for
n = 8192, k = 32).

Exact, not approximate: let t be the smallest maximum among the kept groups. Each kept group holds an
entry ≥ t (its max), so the k-th largest candidate is ≥ t; every entry outside the kept groups is ≤ its
group's max ≤ t. So the k chosen candidates are k largest entries of the row — the set `torch.topk`
returns, up to the choice among tied values (NaN ranks largest in both, as `amax` propagates it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import native


def group_size(n: int, k: int) -> int | None:
    """The group size for rows of n keeping k, or None when plain `torch.topk` is as fast (small n/k)."""
    target = math.sqrt(n / k)
    best = None
    g = 2
    while g <= n // k:
        if n % g == 0 and (best is None or abs(math.log(g / target)) < abs(math.log(best / target))):
            best = g
        g *= 2
    if best is None or n // best + k * best > n // 2:
        return None
    return best


def topk_indices(x: Tensor, k: int) -> Tensor:
    """Column indices (int64, batch × k, in no particular order) of the k largest entries of each row of x."""
    g = group_size(x.shape[-1], k) if x.ndim == 2 else None
    if g is None or x.device.type != "cpu" or not x.is_contiguous() or x.shape[0] == 0:
        return x.topk(k, dim=-1, sorted=False).indices
    batch, n = x.shape
    n_groups = n // g
    group_max = x.view(batch, g, n_groups).amax(dim=1)  # column j: max of entries j, j + G, j + 2G, ...
    groups = group_max.topk(k, dim=1, sorted=False).indices
    candidates = (groups.unsqueeze(-1) + torch.arange(0, n, n_groups, device=x.device)).view(batch, k * g)
    best = x.gather(1, candidates).topk(k, dim=1, sorted=False).indices
    return candidates.gather(1, best)


def topk_with_values(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(indices, values) of the k largest entries of each row of x, in no particular order: the native top-k for
    contiguous float32 CPU rows (it reads x without changing it), else `topk_indices` and a gather."""
    if x.ndim == 2 and 1 <= k <= x.shape[1] and native.usable(None, x):
        return native.bias_topk_(x, None, k)
    indices = topk_indices(x, k)
    return indices, x.gather(-1, indices)


def batch_topk_from_candidates(indices: Tensor, values: Tensor, total: int) -> tuple[Tensor, Tensor, Tensor] | None:
    """(rows, cols, values) of the `total` largest entries of a whole (batch, n) matrix, found from each row's m
    best entries (`indices`, `values`, each (batch, m)); None when they cannot decide it.

    The same set as `x.flatten().topk(total)` (up to ties): when every row's smallest candidate lies below the
    overall cut, no entry outside the candidates can reach the cut. Otherwise a row may hold more entries above
    the cut than it offered, and the caller must search the full matrix (`batch_topk_dense`). Searching batch·m
    candidates instead of batch·n entries is the saving.
    """
    batch, m = indices.shape
    if total > batch * m:
        return None
    keep = values.flatten().topk(total, sorted=False)
    if not bool((values.amin(dim=1) < keep.values.min()).all()):
        return None
    return keep.indices // m, indices.flatten()[keep.indices], keep.values


def batch_topk_dense(x: Tensor, total: int) -> tuple[Tensor, Tensor, Tensor]:
    """(rows, cols, values) of the `total` largest entries of the whole (batch, n) matrix x."""
    keep = x.flatten().topk(total, sorted=False)
    return keep.indices // x.shape[1], keep.indices % x.shape[1], keep.values


def batch_topk_pairs(x: Tensor, total: int, per_row: int) -> tuple[Tensor, Tensor, Tensor]:
    """(rows, cols, values) of the `total` largest entries of x, from each row's `per_row` best where that
    decides it (see `batch_topk_from_candidates`), else from the full matrix."""
    if per_row < x.shape[1]:
        candidates = topk_indices(x, per_row)
        found = batch_topk_from_candidates(candidates, x.gather(1, candidates), total)
        if found is not None:
            return found
    return batch_topk_dense(x, total)
