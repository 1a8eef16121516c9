"""An SAE encoder's no-grad pre-activations x_c·W_encᵀ + b_enc for one batch, computed as a bottleneck needs them.

A sparse bottleneck rarely needs the whole (batch × n_latents) matrix: TopK needs each row's k largest entries,
BatchTopK each row's best candidates, AuxK the dead latents' columns. Asking this object for exactly that lets
each request take its cheapest exact route:
- `row_topk(m)`: each row's m largest entries and their values. Screened through a bfloat16 product where that
  pays (`aekit.nn.screening`, exact), else the float32 product and a top-k that adds the bias on the way;
- `batch_topk(total, per_row)`: the whole batch's `total` largest entries (BatchTopK), screened the same way;
- `dense()`: the whole float32 matrix (computed once, then shared by later requests);
- `columns(cols)`: the entries of some latents only, from the dense matrix if it exists, else a product with
  just those rows of W_enc.
In training the model passes a workspace dict whose (batch × n_latents) buffers are reused from step to step
(a fresh 64 MB output per step costs about a quarter of the product in page faults), and which remembers when
the screen stopped paying: if more than half of a batch's rows needed the float32 path (activations whose
error bound is wide next to the spread of their pre-activations), the next SCREEN_PAUSE batches skip the screen.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from . import native, screening
from .codes import at_least_float32
from .topk import batch_topk_dense, batch_topk_from_candidates, topk_with_values

SCREEN_PAUSE = 100  # batches that skip the screen after one where it did not pay


class EncoderPreactivations:
    def __init__(self, x: Tensor, W: Tensor, bias: Tensor, workspace: dict[str, Any] | None = None):
        self.x, self.W, self.bias = x, W, bias
        self.rows, self.n_columns = x.shape[0], W.shape[0]
        self._workspace = workspace
        self._product: Tensor | None = None  # x·Wᵀ, without the bias until `_biased`
        self._biased = False
        self._paused: bool | None = None  # whether this batch skips the screen (decided once, on first ask)

    # --- requests --------------------------------------------------------------------------------------------
    def row_topk(self, m: int) -> tuple[Tensor, Tensor]:
        """(indices, values), each (rows, m): every row's m largest pre-activations, in no particular order."""
        if self._product is None and screening.applies(self.x, self.W, m) and not self._screen_paused():
            stats: dict[str, float] = {}
            found = screening.screened_topk(self.x, self.W, self.bias, m, self._buffer("screen", torch.bfloat16),
                                            stats)
            self._note_screen(stats)
            return found
        if not self._biased and m <= self.n_columns:
            product = self._unbiased_product()
            if native.usable(None, product, self.bias):
                self._biased = True  # the native top-k adds the bias in place while it reads each row
                return native.bias_topk_(product, self.bias, m)
        return topk_with_values(self.dense(), m)

    def batch_topk(self, total: int, per_row: int) -> tuple[Tensor, Tensor, Tensor]:
        """(rows, cols, values) of the `total` largest pre-activations of the whole batch (BatchTopK): screened
        where that pays, else from each row's `per_row` best where those decide it, else from the dense matrix."""
        per_row_mean = -(-total // self.rows)
        if self._product is None and screening.applies(self.x, self.W, per_row_mean) and not self._screen_paused():
            stats: dict[str, float] = {}
            found = screening.screened_batch_topk(self.x, self.W, self.bias, total,
                                                  self._buffer("screen", torch.bfloat16), stats)
            self._note_screen(stats)
            return found
        if per_row < self.n_columns:
            found = batch_topk_from_candidates(*self.row_topk(per_row), total)
            if found is not None:
                return found
        return batch_topk_dense(self.dense(), total)

    def dense(self) -> Tensor:
        """The (rows, n_columns) pre-activations, float32 or wider."""
        product = self._unbiased_product()
        if not self._biased:
            product.add_(self.bias)
            self._biased = True
        return product

    def columns(self, cols: Tensor) -> Tensor:
        """The (rows, len(cols)) pre-activations of the latents `cols`."""
        if self._product is not None:
            dense = self.dense()
            return dense if len(cols) == self.n_columns else dense.index_select(1, cols)
        return at_least_float32(F.linear(self.x, self.W[cols], self.bias[cols]))

    def _note_screen(self, stats: dict[str, float]) -> None:
        if self._workspace is not None and stats["redo_fraction"] > 0.5:
            self._workspace["screen_pause"] = SCREEN_PAUSE

    def _screen_paused(self) -> bool:
        """True while the workspace says the screen did not pay lately; counts this batch once, however many
        requests it makes."""
        if self._paused is None:
            left = self._workspace.get("screen_pause", 0) if self._workspace is not None else 0
            if left:
                self._workspace["screen_pause"] = left - 1
            self._paused = left > 0
        return self._paused

    # --- the float32 product ---------------------------------------------------------------------------------
    def _unbiased_product(self) -> Tensor:
        if self._product is None:
            x, W = self.x, self.W
            if self._workspace is None or torch.is_autocast_enabled(x.device.type) or x.dtype != W.dtype:
                self._product = at_least_float32(F.linear(x, W))
            else:
                self._product = torch.mm(x, W.t(), out=self._buffer("dense", x.dtype))
        return self._product

    def _buffer(self, name: str, dtype: torch.dtype) -> Tensor | None:
        """A (rows, n_columns) buffer kept in the workspace across calls (None without a workspace: allocate)."""
        if self._workspace is None:
            return None
        shape = (self.rows, self.n_columns)
        buffer = self._workspace.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype or buffer.device != self.x.device:
            buffer = self._workspace[name] = torch.empty(shape, dtype=dtype, device=self.x.device)
        return buffer
