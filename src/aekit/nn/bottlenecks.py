"""Sparse bottlenecks: the part of a sparse autoencoder that turns pre-activations into codes.

Every bottleneck answers two questions. `select(pre)` (no gradient): which latents may be active, as a
(batch, k) index tensor, or None when the code is dense. `activate(pre)`: the code values given the
pre-activations at those latents (or all of them). Splitting them lets the autoencoder compute the values,
and their gradient, only at the selected latents.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .codes import Codes


class Bottleneck(nn.Module):
    """Interface shared by all bottlenecks."""

    architecture: ClassVar[str]
    sparse: ClassVar[bool]  # True: codes travel as (values, indices)

    def __init__(self, n_latents: int):
        super().__init__()
        self.n_latents = n_latents

    def select(self, pre: Tensor) -> Tensor | None:
        return None

    def activate(self, pre: Tensor) -> Tensor:
        return torch.relu(pre)

    def penalties(self, codes: Codes, decoder_row_norms: Tensor) -> dict[str, Tensor]:
        """Sparsity loss terms the training objective adds for this bottleneck."""
        return {}

    def fold_scale(self, scale: float) -> None:
        """Codes are about to be divided by `scale`; rescale any threshold that lives in code units."""


class ReLUL1(Bottleneck):
    """ReLU codes with an L1 penalty (Bricken et al. 2023); dense codes."""

    architecture = "relu"
    sparse = False

    def __init__(self, n_latents: int, l1_coefficient: float):
        super().__init__(n_latents)
        self.l1_coefficient = l1_coefficient

    def penalties(self, codes: Codes, decoder_row_norms: Tensor) -> dict[str, Tensor]:
        return {"l1": self.l1_coefficient * codes.dense.abs().sum(-1).mean()}


class TopK(Bottleneck):
    """Keep the k largest pre-activations of each row, then ReLU (Gao et al. 2024); sparse codes."""

    architecture = "topk"
    sparse = True

    def __init__(self, n_latents: int, k: int):
        super().__init__(n_latents)
        self.k = k

    def select(self, pre: Tensor) -> Tensor:
        return pre.topk(self.k, dim=-1, sorted=False).indices


BOTTLENECKS: dict[str, type[Bottleneck]] = {cls.architecture: cls for cls in (ReLUL1, TopK)}


def make_bottleneck(architecture: str, n_latents: int, k: int, l1_coefficient: float) -> Bottleneck:
    if architecture == "topk":
        return TopK(n_latents, k)
    if architecture == "relu":
        return ReLUL1(n_latents, l1_coefficient)
    raise ConfigError(f"architecture: unknown {architecture!r}; choose one of {sorted(BOTTLENECKS)}")
