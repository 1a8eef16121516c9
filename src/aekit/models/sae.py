"""The sparse autoencoder: pre-encoder bias, unit-norm decoder rows, a pluggable bottleneck, AuxK.

Inputs are scaled by `input_scale` so that E||x·s||² = 1 during training (hyper-parameters then transfer
between models and layers); `prepare_for_save` folds the scale into the biases and thresholds, so a saved
model maps raw activations to raw reconstructions and its codes are in raw units.

Transcoder mode (`d_out` set): the model encodes x (d_in) and reconstructs a different target y (d_out);
training rows are then [x | y] concatenated, and y has its own scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ShapeError
from ..nn import native
from ..nn.bottlenecks import BOTTLENECKS, LossContext, make_bottleneck
from ..nn.codes import Codes
from ..nn.dense_ops import dense_encode
from ..nn.global_reductions import global_total_variance
from ..nn.preactivations import EncoderPreactivations
from ..nn.sparse_ops import sparse_decode, sparse_decode_squared_error, sparse_encode
from ..nn.topk import topk_with_values
from .base import Autoencoder, Output


@dataclass
class SAEConfig(ConfigBase):
    """Everything that defines a sparse autoencoder's shape and objective."""

    section = "model"

    d_in: int = setting(0, "input width: features per data row (a transcoder's x part)",
                        "0 = inferred from the data")
    n_latents: int = setting(0, "number of latents (dictionary size)", "0 = 8 × d_in")
    architecture: str = setting("topk", f"bottleneck: one of {', '.join(sorted(BOTTLENECKS))}")
    k: int = setting(32, "topk: active latents per row; batchtopk, matryoshka: mean active latents per row; "
                         "ignored by the other architectures")
    l1_coefficient: float = setting(1e-3, "weight of the L1 sparsity penalty (relu, gated)")
    l1_decoder_weighted: bool = setting(False, "relu: penalise |f_i|·‖d_i‖ and leave decoder row norms free "
                                               "(true/false)")
    l0_coefficient: float = setting(1e-3, "weight of the L0 sparsity penalty (jumprelu)")
    jumprelu_bandwidth: float = setting(1e-3, "jumprelu: width ε of the straight-through kernel (normalised units)")
    jumprelu_init_threshold: float = setting(1e-3, "jumprelu: initial threshold of every latent (normalised units)")
    threshold_momentum: float = setting(0.99, "batchtopk, matryoshka: momentum of the running mean that sets the "
                                              "inference threshold, in [0, 1)")
    matryoshka_prefixes: str = setting("", "matryoshka: comma-separated nested prefix sizes, e.g. 64,256 "
                                           "(n_latents is always the last)", "blank = n/16, n/8, n/4, n/2, n")
    aux_k: int | None = setting(None, "latents the AuxK loss may use to revive dead latents",
                                "none = d_in // 2 (at most n_latents)")
    aux_coefficient: float = setting(1 / 32, "weight of the AuxK dead-latent loss; 0 turns it off")
    normalize_input: bool = setting(True, "scale inputs to unit mean squared norm while training; the scale is "
                                          "folded into the saved weights (true/false)")
    d_out: int | None = setting(None, "transcoder: width of the target y; data rows are then [x | y]",
                                "none = an autoencoder (reconstructs its input)")

    def validate(self) -> None:
        self._require(self.architecture in BOTTLENECKS, "architecture", f"choose one of {sorted(BOTTLENECKS)}")
        self._require(self.d_in >= 1, "d_in", "must be a positive integer")
        self._require(self.n_latents >= 1, "n_latents", "must be a positive integer")
        if self.architecture in ("topk", "batchtopk", "matryoshka"):
            self._require(1 <= self.k <= self.n_latents, "k", f"must be between 1 and n_latents={self.n_latents}")
        for name in ("l1_coefficient", "l0_coefficient", "aux_coefficient"):
            value = getattr(self, name)
            self._require(math.isfinite(value) and value >= 0, name, "must be a finite number ≥ 0")
        for name in ("jumprelu_bandwidth", "jumprelu_init_threshold"):
            value = getattr(self, name)
            self._require(math.isfinite(value) and value > 0, name, "must be a positive number")
        self._require(0 <= self.threshold_momentum < 1, "threshold_momentum", "must be in [0, 1)")
        self._require(self.aux_k is None or self.aux_k >= 1, "aux_k", "must be ≥ 1 or null")
        self._require(self.d_out is None or self.d_out >= 1, "d_out", "must be ≥ 1 or null")
        if self.architecture == "matryoshka":
            self.prefix_sizes()

    def prefix_sizes(self) -> list[int]:
        """Matryoshka prefix sizes, increasing and ending at n_latents."""
        n = self.n_latents
        if not self.matryoshka_prefixes.strip():
            return sorted({max(1, n // 16), max(1, n // 8), max(1, n // 4), max(1, n // 2), n})
        try:
            sizes = [int(part) for part in self.matryoshka_prefixes.split(",") if part.strip()]
        except ValueError:
            sizes = []
        ok = bool(sizes) and all(a < b for a, b in zip([0, *sizes], sizes, strict=False)) and sizes[-1] <= n
        self._require(ok, "matryoshka_prefixes", f"must be increasing positive integers ≤ n_latents={n}, e.g. '64,256'")
        return sizes if sizes[-1] == n else [*sizes, n]

    @property
    def effective_aux_k(self) -> int:
        return min(self.aux_k or max(1, self.d_in // 2), self.n_latents)

    @property
    def target_dim(self) -> int:
        return self.d_out or self.d_in

    @property
    def is_transcoder(self) -> bool:
        return self.d_out is not None


class SparseAutoencoder(Autoencoder):
    kind = "sae"
    config_class = SAEConfig

    def __init__(self, config: SAEConfig, seed: int | None = None):
        super().__init__(config)
        n, d, d_out = config.n_latents, config.d_in, config.target_dim
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        W_dec = torch.randn(n, d_out, generator=generator)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        if config.is_transcoder:
            W_enc = torch.randn(n, d, generator=generator)
            self.W_enc = nn.Parameter(W_enc / W_enc.norm(dim=1, keepdim=True))
        else:
            self.W_enc = nn.Parameter(W_dec.clone())  # tied initialisation (Gao et al.; Conerly et al.)
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        self.register_buffer("input_scale", torch.ones(()))
        self.register_buffer("target_scale", torch.ones(()))  # equals input_scale unless a transcoder
        self.bottleneck = make_bottleneck(config)
        self._workspace: dict[str, Any] = {}  # training: reused (batch, n_latents) buffers, screen state

    # --- encode / decode in normalised units --------------------------------------------------------
    def _center(self) -> Tensor | None:
        """The pre-encoder bias: b_dec lives in the reconstruction space, so only an autoencoder subtracts it."""
        return None if self.config.is_transcoder else self.b_dec

    def _encoder_input(self, x_n: Tensor) -> Tensor:
        center = self._center()
        return x_n if center is None else x_n - center

    def _encode_normalized(self, x_n: Tensor) -> tuple[Codes, Tensor, EncoderPreactivations | None, Tensor | None]:
        """(codes, pre-activations with gradient where codes live, the no-grad pre-activations of a sparse
        bottleneck (None for dense ones), valid slots)."""
        if self.bottleneck.sparse:
            with torch.no_grad():
                x_c = self._encoder_input(x_n)
                # in training the (batch, n_latents) buffers are reused across steps (see EncoderPreactivations)
                workspace = self._workspace if self.training else None
                pre_all = EncoderPreactivations(x_c, self.W_enc, self.b_enc, workspace)
                selection, pre_at_idx = self.bottleneck.select_from(pre_all)
            pre = self._sparse_pre(x_n, selection.indices, pre_at_idx, x_c)
            values = self.bottleneck.activate(pre, selection.indices)
            if selection.valid is not None:
                values = values * selection.valid
            codes = Codes(self.config.n_latents, values=values, indices=selection.indices)
            return codes, pre, pre_all, selection.valid
        pre = dense_encode(x_n, self.W_enc, self.b_enc, self._center())
        return Codes(self.config.n_latents, dense=self.bottleneck.activate(pre, None)), pre, None, None

    def training_state(self) -> dict[str, Any]:
        # the screen's pause decides whether a batch's top-k comes from the screen or the float32 product, which
        # may differ in the last bit of a value: a resumed run must pause for the same batches
        return {"screen_pause": int(self._workspace.get("screen_pause", 0))}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self._workspace["screen_pause"] = int(state.get("screen_pause", 0))

    def train(self, mode: bool = True) -> SparseAutoencoder:
        if not mode:
            self._workspace = {}  # evaluation and saved/pickled models do not carry the training buffers
        return super().train(mode)

    def _sparse_pre(self, x_n: Tensor, idx: Tensor, pre_at_idx: Tensor, x_c: Tensor | None = None) -> Tensor:
        """Pre-activations at `idx` (their values already known) with a sparse gradient; the pre-encoder bias's
        gradient is one mat-vec. `x_c`: the encoder input x_n − b_dec, when the caller already has it."""
        return sparse_encode(x_n, self.W_enc, self.b_enc, idx, pre_at_idx, center=self._center(), x_centered=x_c)

    def _decode_normalized(self, codes: Codes) -> Tensor:
        if codes.is_sparse:
            return sparse_decode(codes.values.to(self.W_dec.dtype), codes.indices, self.W_dec) + self.b_dec
        return codes.dense @ self.W_dec + self.b_dec

    def encode(self, x: Tensor) -> Codes:
        self._check_dim(x, self.config.d_in, "input")
        return self._encode_normalized(x * self.input_scale)[0]

    def decode(self, codes: Codes) -> Tensor:
        return self._decode_normalized(codes) / self.target_scale

    def split_batch(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        """(input, target): a transcoder's training rows are [x | y]; an autoencoder's target is its input."""
        if not self.config.is_transcoder:
            return batch, batch
        self._check_dim(batch, self.config.d_in + self.config.d_out, "transcoder batch [x | y]")
        return batch[:, : self.config.d_in], batch[:, self.config.d_in :]

    def forward(self, batch: Tensor, dead_mask: Tensor | None = None) -> Output:
        """Reconstruct the target; `dead_mask` (n_latents,) marks latents the AuxK loss may revive."""
        x, y = self.split_batch(batch)
        self._check_dim(x, self.config.d_in, "input")
        x_n = x * self.input_scale
        y_n = y * self.target_scale if self.config.is_transcoder else x_n  # an autoencoder's scales are equal
        codes, pre, pre_all, valid = self._encode_normalized(x_n)
        if codes.is_sparse:  # decoder and squared error fused: one gather of the decoder rows per step
            losses, y_hat_n = self.bottleneck.reconstruction_losses(codes, self.W_dec, self.b_dec, y_n)
        else:
            y_hat_n = self._decode_normalized(codes)
            losses = {"mse": F.mse_loss(y_hat_n, y_n, reduction="sum") / y_n.shape[0]}
        ctx = LossContext(pre=pre, codes=codes, valid=valid, target=y_n, W_dec=self.W_dec, b_dec=self.b_dec)
        losses.update(self.bottleneck.losses(ctx))
        if dead_mask is not None and self.bottleneck.uses_aux_k and self.config.aux_coefficient > 0:
            aux = self._aux_k_loss(x_n, y_n, y_hat_n, pre_all, dead_mask)
            if aux is not None:
                losses["aux_k"] = aux
        return Output(x_hat=y_hat_n / self.target_scale, codes=codes, losses=losses)

    def _aux_k_loss(self, x_n: Tensor, y_n: Tensor, y_hat_n: Tensor, pre: EncoderPreactivations,
                    dead_mask: Tensor) -> Tensor | None:
        """AuxK (Gao et al. 2024): dead latents learn to predict the main reconstruction's residual.

        The residual y - ŷ already excludes b_dec (ŷ contains it), so the auxiliary reconstruction uses
        the decoder rows alone; adding b_dec again would double-count it.
        """
        n_dead = int(dead_mask.sum())
        if n_dead == 0:
            return None
        k_aux = min(self.config.effective_aux_k, n_dead)
        dead = dead_mask.nonzero().squeeze(1)
        with torch.no_grad():
            dead_pre = pre.columns(dead)  # only the dead latents' pre-activations are read (or computed)
            local, aux_pre = topk_with_values(dead_pre, k_aux)  # positions among the dead latents, and values
        # Worked in the dead latents' own index space: there the auxiliary codes usually fill a large fraction of
        # each row (k_aux of n_dead), so the sparse ops take their dense formulas, a few (batch × n_dead × d)
        # products, instead of gathering k_aux rows of the full matrices per example (~100 ms per step at
        # 8192 latents, 10% dead, k_aux 256).
        W_enc, b_enc, W_dec = (p.index_select(0, dead) for p in (self.W_enc, self.b_enc, self.W_dec))
        aux_values = torch.relu(sparse_encode(x_n, W_enc, b_enc, local, aux_pre, center=self._center()))
        residual = (y_n - y_hat_n).detach()
        no_bias = torch.zeros(W_dec.shape[1], dtype=W_dec.dtype, device=W_dec.device)
        error, _ = sparse_decode_squared_error(aux_values, local, W_dec, no_bias, residual)
        scale = global_total_variance(residual).clamp_min(1e-12)
        return self.config.aux_coefficient * error / scale

    @staticmethod
    def _check_dim(x: Tensor, d: int, what: str) -> None:
        if x.ndim != 2 or x.shape[1] != d:
            raise ShapeError(f"{what} has shape {tuple(x.shape)} but this SAE expects (batch, {d})")

    # --- Trainer hooks ------------------------------------------------------------------------------
    @torch.no_grad()
    def initialize_from_data(self, batch: Tensor) -> None:
        x, y = self.split_batch(batch)
        if self.config.normalize_input:
            self.input_scale.fill_(_unit_mean_square_scale(x))
            self.target_scale.fill_(_unit_mean_square_scale(y) if self.config.is_transcoder else self.input_scale)
        self.b_dec.copy_((y * self.target_scale).mean(0))

    @torch.no_grad()
    def before_optimizer_step(self) -> None:
        """Remove the gradient component parallel to each decoder row (it could only change its norm)."""
        if self.bottleneck.unit_norm_decoder and self.W_dec.grad is not None:
            g, W = self.W_dec.grad, self.W_dec
            if native.usable(None, g, W):
                native.project_rows_(g, W)  # one pass over both matrices
            else:
                g.addcmul_(torch.linalg.vecdot(g, W).unsqueeze(-1), W, value=-1)  # in place, no (n, d) temporaries

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        self.bottleneck.after_optimizer_step()
        if self.bottleneck.unit_norm_decoder:
            if native.usable(None, self.W_dec):
                native.normalize_rows_(self.W_dec, 1e-12)
            else:
                self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def prepare_for_save(self) -> None:
        """Fold the scales into the weights: raw x maps to raw ŷ exactly, codes come out in raw target units.

        With x_n = s·x and y = ŷ_n / t: pre/t = W_enc·(s/t)·x + b_enc/t (minus b_dec/t for an autoencoder,
        where s = t), and ŷ = W_dec·(f/t) + b_dec/t. So W_enc scales by s/t, biases and thresholds by 1/t.
        """
        s, t = float(self.input_scale), float(self.target_scale)
        if s == 1.0 and t == 1.0:
            return
        self.W_enc *= s / t
        self.b_enc /= t
        self.b_dec /= t
        self.bottleneck.fold_scale(t)
        self.input_scale.fill_(1.0)
        self.target_scale.fill_(1.0)
        self.provenance["input_scale_folded"] = s
        self.provenance["target_scale_folded"] = t


def _unit_mean_square_scale(x: Tensor) -> float:
    return 1.0 / x.pow(2).sum(-1).mean().sqrt().clamp_min(1e-12).item()
