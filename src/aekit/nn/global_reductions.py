"""Reductions that see the whole global batch when running under torch.distributed, and the local one otherwise."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum a (detached) tensor over all ranks; identity in a single process."""
    if is_distributed():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def global_total_variance(x: Tensor) -> Tensor:
    """Σ_b ||x_b - mean||² / count over the global batch, as a detached scalar.

    Used as a loss normaliser: computing it over the global batch keeps a DDP run equal to a single-process
    run with the same global batch.
    """
    with torch.no_grad():
        d = x.shape[1]
        sums = all_reduce_sum(torch.cat([x.new_tensor([float(x.shape[0])]), x.sum(0), (x * x).sum(0)]))
        n = sums[0]
        mean, mean_sq = sums[1 : 1 + d] / n, sums[1 + d :] / n
        return (mean_sq - mean * mean).sum()
