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


def masked_topk_indices(x: Tensor, mask: Tensor, k: int) -> Tensor:
    """Column indices of the k largest entries of each row of x among the columns where `mask` (n,) is True.

    The same set as `x.masked_fill(~mask, -inf).topk(k)` (k must not exceed mask.sum()), but it reads only
    the masked columns instead of copying and partially sorting the whole (batch, n) matrix: AuxK's search
    among dead latents costs in proportion to the number of dead latents.
    """
    columns = mask.nonzero().squeeze(1)
    if len(columns) == x.shape[-1]:
        return topk_indices(x, k)
    return columns[topk_indices(x.index_select(1, columns), k)]


def batch_topk_pairs(x: Tensor, total: int, per_row: int,
                     candidates: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """(rows, cols) of the `total` largest entries of the whole (batch, n) matrix x.

    The same set as `x.flatten().topk(total)` (up to ties), found from each row's `per_row` best entries:
    when every row's smallest candidate lies below the overall cut, no entry outside the candidates can
    reach the cut, so the answer is exact; otherwise (a row wanted more than `per_row`) it falls back to the
    full flat top-k. Searching batch·per_row candidates instead of batch·n entries is the saving.
    `candidates`, when a caller already has them, are each row's per_row best (indices, values).
    """
    batch, n = x.shape
    per_row = min(per_row, n)
    if per_row < n and total <= batch * per_row:
        if candidates is None:
            candidates = topk_indices(x, per_row)
            values = x.gather(1, candidates)
        else:
            candidates, values = candidates
        keep = values.flatten().topk(total, sorted=False)
        if bool((values.amin(dim=1) < keep.values.min()).all()):
            return keep.indices // per_row, candidates.flatten()[keep.indices]
    keep = x.flatten().topk(total, sorted=False).indices
    return keep // n, keep % n
