"""A low-rank denoiser: the MoLRG optimal denoiser's form with learned bases (Wang et al. 2024).

D(x_t) = Σ_k w_k(x_t) U_kU_kᵀ x_t / (1 + σ²), w = softmax_k(‖U_kᵀ x_t‖² / (2σ²(1 + σ²))), with K learned d×r bases
kept orthonormal. For orthonormal bases of equal rank that softmax is exactly the Gaussian posterior over
components (every other term of the log-density is the same for all k), so at the true bases this network *is*
the optimal denoiser, and minimising the denoising loss is a soft subspace clustering of the training samples.

It is an `Autoencoder` so the one `Trainer` trains it: a batch is clean samples x, the forward pass draws the
noise itself (a fresh ε every step, from a stream seeded by the config and the number of draws so far, which the
checkpoint carries for an exact resume), the codes are the posterior weights w and the loss is the denoising MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..nn.codes import Codes
from ..seeding import derive_seed
from .base import Autoencoder, Output, SeededNoise

__all__ = ["INITS", "LowRankDenoiser", "LowRankDenoiserConfig"]

INITS = ("data", "random")


@dataclass
class LowRankDenoiserConfig(ConfigBase):
    section = "model"

    d: int = setting(64, "input dimension")
    n_components: int = setting(2, "learned subspaces K")
    rank: int = setting(4, "dimension r of every learned subspace")
    sigma: float = setting(0.1, "noise level σ of x_t = x + σε the denoiser is trained and used at")
    seed: int = setting(0, "seeds the initial bases and the training noise")
    init: str = setting("data", "initial bases: data (k-subspaces++ seeding from the training samples) or random")

    @property
    def n_latents(self) -> int:
        """The codes are the K posterior weights (the Trainer's dead-latent tracking counts them)."""
        return self.n_components

    def validate(self) -> None:
        self._require(self.d >= 1, "d", "must be ≥ 1")
        self._require(self.n_components >= 1, "n_components", "must be ≥ 1")
        self._require(1 <= self.rank <= self.d, "rank", f"must be between 1 and d = {self.d}")
        self._require(math.isfinite(self.sigma) and self.sigma > 0, "sigma", "must be a positive number")
        self._require(self.init in INITS, "init", f"choose one of {list(INITS)}")


def _orthonormalise(bases: Tensor) -> Tensor:
    """Q of the QR of each basis, column signs matched to R's diagonal so a nearly orthonormal basis barely moves."""
    q, r = torch.linalg.qr(bases)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    # contiguous: QR returns column-major Q, and a parameter whose strides differ from its Adam moments' (which a
    # resumed checkpoint stores contiguous) makes the fused Adam step pair the wrong elements
    return (q * torch.where(signs == 0, torch.ones_like(signs), signs).unsqueeze(-2)).contiguous()


class LowRankDenoiser(SeededNoise, Autoencoder):
    """K learned orthonormal d×r bases; `denoise(x_t)` is the softmax-gated mixture of their projections."""

    kind = "low_rank_denoiser"
    config_class = LowRankDenoiserConfig

    def __init__(self, config: LowRankDenoiserConfig):
        super().__init__(config)
        g = torch.Generator().manual_seed(derive_seed("low_rank_denoiser.init", config.seed))
        start = torch.randn(config.n_components, config.d, config.rank, generator=g)
        self.bases = nn.Parameter(_orthonormalise(start))

    def initialize_from_data(self, x: Tensor) -> None:
        """k-subspaces++ seeding: basis k spans the r samples most aligned with an anchor, each anchor the sample the
        bases so far explain worst. With random bases and a sharp softmax (small σ) one basis can win every sample
        and the other never gets a gradient, a local minimum the denoising loss does not leave."""
        if self.config.init != "data":
            return
        x = torch.unique(x.detach().to(self.bases.dtype).cpu(), dim=0)  # the Trainer's sample repeats a small set
        x = x[x.norm(dim=1) > 0]
        if len(x) == 0:
            return
        cfg = self.config
        g = torch.Generator().manual_seed(derive_seed("low_rank_denoiser.seeding", cfg.seed))
        unit = x / x.norm(dim=1, keepdim=True)
        bases = self.bases.detach().cpu().clone()
        explained = torch.zeros(len(x))
        for k in range(cfg.n_components):
            anchor = int(torch.randint(len(x), (1,), generator=g)) if k == 0 else int(torch.argmin(explained))
            nearest = torch.argsort((unit @ unit[anchor]).abs(), descending=True)[: cfg.rank]
            columns = torch.cat([unit[nearest].T, torch.randn(cfg.d, cfg.rank, generator=g)], dim=1)
            bases[k] = torch.linalg.qr(columns).Q[:, : cfg.rank]  # random columns complete a short span
            explained = torch.maximum(explained, (unit @ bases[k]).square().sum(1))
        with torch.no_grad():
            self.bases.copy_(bases.to(self.bases.device))

    def weights(self, x_t: Tensor) -> Tensor:
        """(n, K) posterior weights softmax_k(‖U_kᵀ x_t‖² / (2σ²(1 + σ²)))."""
        s2 = self.config.sigma**2
        energy = torch.einsum("kdr,nd->nkr", self.bases, x_t).square().sum(-1)
        return torch.softmax(energy / (2 * s2 * (1 + s2)), dim=-1)

    def denoise(self, x_t: Tensor) -> Tensor:
        """Σ_k w_k U_kU_kᵀ x_t / (1 + σ²)."""
        return self._denoise(x_t)[0]

    def _denoise(self, x_t: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weights(x_t)
        proj = torch.einsum("kdr,nd->nkr", self.bases, x_t)
        out = torch.einsum("kdr,nkr,nk->nd", self.bases, proj, w) / (1 + self.config.sigma**2)
        return out, w

    def encode(self, x: Tensor) -> Codes:
        return Codes(self.config.n_components, dense=self.weights(x))

    def decode(self, codes: Codes) -> Tensor:
        raise NotImplementedError("a denoiser's output depends on x_t, not on its weights alone; call denoise(x_t)")

    def forward(self, batch: Tensor, dead_mask: Tensor | None = None) -> Output:
        """Noise the clean batch, denoise it and score the result; `dead_mask` is the Trainer's and unused."""
        x = batch["x"] if isinstance(batch, dict) else batch
        g = self.noise_generator()
        eps = torch.randn(x.shape, generator=g).to(device=x.device, dtype=x.dtype)
        x_hat, w = self._denoise(x + self.config.sigma * eps)
        # summed over coordinates, averaged over rows: the loss is E‖D(x_t) − x‖², the paper's objective
        loss = F.mse_loss(x_hat, x, reduction="sum") / len(x)
        return Output(x_hat=x_hat, codes=Codes(self.config.n_components, dense=w), losses={"denoise": loss})

    def after_optimizer_step(self) -> None:
        # the softmax equals the Gaussian posterior only for orthonormal bases: retract onto them after each step
        with torch.no_grad():
            self.bases.copy_(_orthonormalise(self.bases))

