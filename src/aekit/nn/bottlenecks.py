"""Sparse bottlenecks: the part of a sparse autoencoder that turns pre-activations into codes.

Every bottleneck answers three questions:
- `select(pre)` (no gradient): which latents may be active, as a padded `Selection` of (batch, m) indices
  with a validity mask, or None when the code is dense (ReLU-L1, Gated). Sparse bottlenecks are asked through
  `select_from`, which receives the pre-activations as an `EncoderPreactivations` and requests only what the
  selection needs (TopK: each row's k best, never the dense matrix where a cheaper exact route exists);
- `activate(pre, indices)`: the code values, given the pre-activations at the selected latents (or all);
- `losses(ctx)`: the loss terms it adds (sparsity penalties, auxiliary losses).
Splitting selection from activation lets the autoencoder compute values and gradients only where a latent
can be active, so sparse codes never build a dense batch × n_latents gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
from torch import Tensor, nn

from . import native
from .codes import Codes, at_least_float32
from .dense_ops import gated_magnitude
from .sparse_ops import sparse_decode_squared_error, sparse_nested_squared_errors
from .ste import jump_relu, step
from .topk import batch_topk_pairs, topk_indices

if TYPE_CHECKING:
    from .preactivations import EncoderPreactivations


class BottleneckSettings(Protocol):
    """The hyper-parameters a bottleneck reads; `aekit.models.SAEConfig` provides them (nn/ does not import models/)."""

    architecture: str
    n_latents: int
    k: int
    l1_coefficient: float
    l1_decoder_weighted: bool
    l0_coefficient: float
    jumprelu_bandwidth: float
    jumprelu_init_threshold: float
    threshold_momentum: float

    def prefix_sizes(self) -> list[int]: ...


@dataclass
class Selection:
    """Selected latents per row: `indices` (batch, m); `valid` (batch, m) marks real entries (None: all);
    `values` (batch, m), when the selection found them, the pre-activations at `indices` (0 in padding)."""

    indices: Tensor
    valid: Tensor | None = None
    values: Tensor | None = None


def selection_from_pairs(rows: Tensor, cols: Tensor, batch: int, values: Tensor | None = None,
                         rows_sorted: bool = False) -> Selection:
    """Padded Selection from (row, latent) pairs with a varying count per row, and their `values` if given.
    `rows_sorted`: the pairs already come grouped by row in order (no sort needed).

    Padding slots point at latent 0 and are marked invalid; callers zero their values.
    """
    if not rows_sorted:
        order = torch.argsort(rows, stable=True)
        rows, cols = rows[order], cols[order]
        values = None if values is None else values[order]
    counts = torch.bincount(rows, minlength=batch)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    slots = torch.arange(len(rows), device=rows.device) - (torch.cumsum(counts, 0) - counts)[rows]
    indices = torch.zeros(batch, width, dtype=torch.long, device=rows.device)
    valid = torch.zeros(batch, width, dtype=torch.bool, device=rows.device)
    indices[rows, slots] = cols
    valid[rows, slots] = True
    padded = None
    if values is not None:
        padded = torch.zeros(batch, width, dtype=values.dtype, device=values.device)
        padded[rows, slots] = values
    return Selection(indices, valid, padded)


def selection_above(pre: Tensor, threshold: Tensor) -> Selection:
    """Padded Selection, with values, of the entries of the dense (batch, n) `pre` above `threshold` (a scalar or a
    per-latent (n,) tensor). CPU float32 goes through one native pass per row; PyTorch's mask, nonzero and
    scatter into the padded layout cost ~0.5 s for a 2048 × 8192 batch with half its entries selected."""
    thr = threshold.detach().to(pre.dtype).expand(pre.shape[-1]).contiguous()
    if pre.ndim == 2 and native.usable(None, pre, thr):
        indices, values, valid = native.select_above(pre, thr)
        return Selection(indices, valid, values)
    return selection_from_mask(pre > thr)


def selection_from_mask(mask: Tensor) -> Selection:
    """Padded Selection of the True entries of a boolean (batch, n) mask."""
    rows, cols = mask.nonzero(as_tuple=True)  # row-major order: sorted by row already
    return selection_from_pairs(rows, cols, mask.shape[0], rows_sorted=True)


@dataclass
class LossContext:
    """What a bottleneck may need to compute its losses."""

    pre: Tensor  # pre-activations with gradient: (batch, n) for dense codes, (batch, m) at the selection
    codes: Codes
    valid: Tensor | None  # (batch, m): real selection slots (None: all slots are real)
    target: Tensor  # the normalised reconstruction target
    W_dec: Tensor
    b_dec: Tensor

    def decode_frozen(self, dense_codes: Tensor) -> Tensor:
        """Reconstruct through a stop-gradient copy of the decoder (Gated SAE's auxiliary path)."""
        return dense_codes @ self.W_dec.detach() + self.b_dec.detach()


class Bottleneck(nn.Module):
    """Interface shared by all bottlenecks."""

    architecture: ClassVar[str]
    sparse: ClassVar[bool]  # True: codes travel as (values, indices)
    uses_aux_k: ClassVar[bool] = False  # dead latents are revived with the AuxK loss
    unit_norm_decoder: bool = True

    def __init__(self, config: BottleneckSettings):
        super().__init__()
        self.n_latents = config.n_latents

    def select(self, pre: Tensor) -> Selection | None:
        return None

    def select_from(self, pre: EncoderPreactivations) -> tuple[Selection, Tensor]:
        """The selection and the pre-activations at it (no gradient). By default from the dense matrix;
        bottlenecks that need less of it ask `pre` for only that."""
        dense = pre.dense()
        selection = self.select(dense)
        values = selection.values if selection.values is not None else dense.gather(1, selection.indices)
        return selection, values

    def activate(self, pre: Tensor, indices: Tensor | None) -> Tensor:
        return torch.relu(pre)

    def reconstruction_losses(self, codes: Codes, W_dec: Tensor, b_dec: Tensor,
                              target: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The reconstruction loss terms of sparse codes and the reconstruction (without a gradient): by default
        {"mse": mean over rows of ||ŷ − target||²}, decoder and error fused (one gather of the decoder rows)."""
        mse, y_hat = sparse_decode_squared_error(codes.values, codes.indices, W_dec, b_dec, target)
        return {"mse": mse}, y_hat

    def losses(self, ctx: LossContext) -> dict[str, Tensor]:
        return {}

    def after_optimizer_step(self) -> None:
        """Re-impose constraints on the bottleneck's own parameters."""

    def fold_scale(self, scale: float) -> None:
        """Codes are about to be divided by `scale`; rescale any parameter that lives in code units."""


class ReLUL1(Bottleneck):
    """ReLU codes with an L1 penalty (Bricken et al. 2023).

    With `l1_decoder_weighted` the penalty is Σ|f_i|·||d_i|| and decoder rows are left free (Anthropic's
    April 2024 update); otherwise decoder rows have unit norm and the penalty is plain L1.
    """

    architecture = "relu"
    sparse = False

    def __init__(self, config: BottleneckSettings):
        super().__init__(config)
        self.l1_coefficient = config.l1_coefficient
        self.decoder_weighted = config.l1_decoder_weighted
        self.unit_norm_decoder = not config.l1_decoder_weighted

    def losses(self, ctx: LossContext) -> dict[str, Tensor]:
        # ReLU codes are ≥ 0, so |f| = f, and Σ_i f_i·||d_i|| is one mat-vec: no (batch, n) |f| or f·||d|| tensor,
        # forward or backward (each such pass over a 2048 × 8192 batch cost ~17 ms)
        codes = ctx.codes.dense
        batch = codes.shape[0]
        if self.decoder_weighted:
            return {"l1": self.l1_coefficient * (codes @ ctx.W_dec.norm(dim=1).to(codes.dtype)).sum() / batch}
        return {"l1": self.l1_coefficient * codes.sum() / batch}


class TopK(Bottleneck):
    """Keep the k largest pre-activations of each row, then ReLU (Gao et al. 2024)."""

    architecture = "topk"
    sparse = True
    uses_aux_k = True

    def __init__(self, config: BottleneckSettings):
        super().__init__(config)
        self.k = config.k

    def select(self, pre: Tensor) -> Selection:
        return Selection(topk_indices(pre, self.k))

    def select_from(self, pre: EncoderPreactivations) -> tuple[Selection, Tensor]:
        indices, values = pre.row_topk(self.k)  # exact, screened where that pays
        return Selection(indices), values


class BatchTopK(Bottleneck):
    """Keep the k·batch largest activations of the whole batch (Bussmann et al. 2024).

    Rows get a varying number of latents. Training tracks an inference threshold θ (running mean of the
    smallest activation kept in each batch); evaluation keeps every activation above θ, so a row's code does
    not depend on the other rows of its batch.
    """

    architecture = "batchtopk"
    sparse = True
    uses_aux_k = True

    def __init__(self, config: BottleneckSettings):
        super().__init__(config)
        self.k = config.k
        self.per_row = 4 * config.k  # candidates per row for the batch-wide top-k (see batch_topk_pairs)
        self.threshold_momentum = config.threshold_momentum
        self.register_buffer("threshold", torch.full((), -1.0))  # < 0: not estimated yet

    def select(self, pre: Tensor) -> Selection:
        if not self.training and self.threshold >= 0:
            return selection_above(pre, self.threshold)
        return self._keep_positive(*batch_topk_pairs(pre, self._total(pre.shape), self.per_row), pre.shape[0])

    def select_from(self, pre: EncoderPreactivations) -> tuple[Selection, Tensor]:
        if not self.training and self.threshold >= 0:
            return super().select_from(pre)  # a row's code depends on its own pre-activations only
        found = pre.batch_topk(self._total((pre.rows, pre.n_columns)), self.per_row)  # exact on every route
        selection = self._keep_positive(*found, pre.rows)
        return selection, selection.values

    def _total(self, shape: tuple[int, int]) -> int:
        return min(self.k * shape[0], shape[0] * shape[1])

    def _keep_positive(self, rows: Tensor, cols: Tensor, kept: Tensor, batch: int) -> Selection:
        """The selection of the batch's kept entries that are positive; updates θ in training. (Ranking
        pre-activations ranks ReLU(pre) the same way among positives, so no (batch, n) copy is needed.)"""
        positive = kept > 0  # a batch with fewer positive activations than k·batch keeps only those
        rows, cols, kept = rows[positive], cols[positive], kept[positive]
        if self.training and kept.numel():
            self._update_threshold(kept.min())
        return selection_from_pairs(rows, cols, batch, kept)

    @torch.no_grad()
    def _update_threshold(self, smallest_kept: Tensor) -> None:
        if self.threshold < 0:
            self.threshold.copy_(smallest_kept)
        else:
            self.threshold.lerp_(smallest_kept.to(self.threshold.dtype), 1 - self.threshold_momentum)

    def fold_scale(self, scale: float) -> None:
        if self.threshold >= 0:
            self.threshold /= scale


class Matryoshka(BatchTopK):
    """BatchTopK whose nested prefixes of latents must each reconstruct the input (Bussmann et al. 2025).

    The loss is the mean reconstruction error of the first m₁ < m₂ < ... < n latents, every prefix weighted
    equally as in the reference implementation, so early latents learn general features and later ones refine
    them instead of absorbing them. The full reconstruction's error is reported as "mse", like every other
    architecture's, and the "matryoshka" term is mean − mse = (Σ partial errors − (P − 1)·mse) / P: the two
    together are the mean, at the loss scale of every other architecture (gradient clipping and AuxK's weight
    mean the same). The term is usually positive (a prefix reconstructs worse than all latents); only the sum is
    meaningful as a loss.
    """

    architecture = "matryoshka"

    def __init__(self, config: BottleneckSettings):
        super().__init__(config)
        self.prefixes = config.prefix_sizes()

    def reconstruction_losses(self, codes: Codes, W_dec: Tensor, b_dec: Tensor,
                              target: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        n_prefixes = len(self.prefixes)
        if n_prefixes == 1:
            return super().reconstruction_losses(codes, W_dec, b_dec, target)
        # every prefix's error from one gather of the decoder rows (sparse_nested_squared_errors)
        errors, y_hat = sparse_nested_squared_errors(codes.values, codes.indices, W_dec, b_dec, target, self.prefixes)
        mse = errors[-1]
        # Every prefix, the full one included, weighs 1/P. Adding the prefixes' mean on top of a weight-1 "mse"
        # would let the full reconstruction outweigh each prefix P-fold (absorption 7% instead of 3% in the study).
        return {"mse": mse, "matryoshka": (errors[:-1].sum() - (n_prefixes - 1) * mse) / n_prefixes}, y_hat


class JumpReLU(Bottleneck):
    """f = z·H(z − θ) with a learnable per-latent threshold θ and an L0 penalty (Rajamanoharan et al. 2024b).

    θ learns through straight-through estimators with a rectangle kernel of width ε; only latents within ε/2
    of their threshold receive that gradient, so training selects z > θ − ε/2 and stays sparse. θ is a
    float32 parameter (autocast never lowers it), parametrised directly as in the paper so Adam moves it in
    code units; it is kept ≥ `MIN_THRESHOLD` after every step.
    """

    architecture = "jumprelu"
    sparse = True
    MIN_THRESHOLD = 1e-6

    def __init__(self, config: BottleneckSettings):
        super().__init__(config)
        self.bandwidth = config.jumprelu_bandwidth
        self.l0_coefficient = config.l0_coefficient
        self.threshold = nn.Parameter(torch.full((config.n_latents,), config.jumprelu_init_threshold))

    def select(self, pre: Tensor) -> Selection:
        margin = self.bandwidth / 2 if self.training else 0.0
        return selection_above(at_least_float32(pre), self.threshold.detach() - margin)

    def activate(self, pre: Tensor, indices: Tensor | None) -> Tensor:
        return jump_relu(at_least_float32(pre), self._threshold_at(indices), self.bandwidth)

    def losses(self, ctx: LossContext) -> dict[str, Tensor]:
        fired = step(at_least_float32(ctx.pre.detach()), self._threshold_at(ctx.codes.indices), self.bandwidth)
        if ctx.valid is not None:
            fired = fired * ctx.valid  # padding slots are not latents of this row
        return {"l0": self.l0_coefficient * fired.sum(-1).mean()}

    def _threshold_at(self, indices: Tensor) -> Tensor:
        # index_select, not threshold[indices]: its backward is an index_add, ~3× faster than advanced indexing's
        return self.threshold.index_select(0, indices.reshape(-1)).view(indices.shape)

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            self.threshold.clamp_(min=self.MIN_THRESHOLD)

    def fold_scale(self, scale: float) -> None:
        with torch.no_grad():
            self.threshold /= scale


class Gated(Bottleneck):
    """Gated SAE (Rajamanoharan et al. 2024a): a gate decides which latents fire, a magnitude path how much.

    gate = W x̃ + b_enc; magnitude = exp(r) ⊙ (W x̃ + b_enc) + b_mag (weights shared with the gate);
    f = 1[gate > 0] · ReLU(magnitude). The gate is trained by an L1 penalty on ReLU(gate) and an auxiliary
    reconstruction of x from ReLU(gate) through a frozen copy of the decoder.
    """

    architecture = "gated"
    sparse = False

    def __init__(self, config: BottleneckSettings):
        super().__init__(config)
        self.l1_coefficient = config.l1_coefficient
        self.r_mag = nn.Parameter(torch.zeros(config.n_latents))
        self.b_mag = nn.Parameter(torch.zeros(config.n_latents))

    def activate(self, pre: Tensor, indices: Tensor | None) -> Tensor:
        return gated_magnitude(pre, self.r_mag, self.b_mag)

    def losses(self, ctx: LossContext) -> dict[str, Tensor]:
        gate = torch.relu(ctx.pre)
        auxiliary = (ctx.decode_frozen(gate) - ctx.target).pow(2).sum(-1).mean()
        return {"l1": self.l1_coefficient * gate.sum(-1).mean(), "gate_aux": auxiliary}

    def fold_scale(self, scale: float) -> None:
        with torch.no_grad():
            self.b_mag /= scale


BOTTLENECKS: dict[str, type[Bottleneck]] = {
    cls.architecture: cls for cls in (ReLUL1, TopK, BatchTopK, JumpReLU, Gated, Matryoshka)
}


def make_bottleneck(config: BottleneckSettings) -> Bottleneck:
    return BOTTLENECKS[config.architecture](config)
