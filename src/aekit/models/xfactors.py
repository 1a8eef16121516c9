"""XFactors: a VAE whose latent space is a residual subspace S plus one small subspace T_k per factor.

Each T_k (2 dimensions by default) is tied to factor k by a supervised-contrastive InfoNCE loss (Khosla et
al. 2020) on its L2-normalised codes: rows of the batch with the same value of factor k are positives, all
others negatives, temperature 0.03. Weak KL terms keep S and the T's Gaussian, so S is left with only what
the supervised factors do not explain. Training batches must carry the factor labels:
{"x": images, "labels": (batch, n_factors) int64}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import DataError, ShapeError
from ..nn.gaussian import GaussianCode, gaussian_kl
from .base import Output
from .image_ae import Batch, BetaVAE, BetaVAEConfig, split_batch


def supervised_contrastive_loss(codes: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """InfoNCE with label-defined positives, averaged over the anchors that have at least one positive.

    For anchor i: −mean over positives p of log softmax_{j≠i}(cos(u_i, u_j) / τ)[p], with u the normalised codes.
    """
    u = F.normalize(codes, dim=1)
    eye = torch.eye(len(u), dtype=torch.bool, device=u.device)
    logits = (u @ u.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~eye
    n_pos = positives.sum(1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return codes.sum() * 0.0  # no pair shares a value: nothing to pull together, but keep the graph
    per_anchor = log_prob.masked_fill(~positives, 0.0).sum(1)[anchors] / n_pos[anchors]
    return -per_anchor.mean()


@dataclass
class XFactorsConfig(BetaVAEConfig):
    n_latents: int = 16  # all of it: |S| = n_latents − n_factors · factor_dim
    n_factors: int = 6  # supervised factors, one T_k each, in the order of the label columns
    factor_dim: int = 2
    temperature: float = 0.03
    contrastive_weight: float = 0.1  # per factor, against the per-pixel mean reconstruction loss
    beta: float = 1.0  # KL weight on S (in β-VAE units)
    beta_factors: float = 0.1  # KL weight on the T subspaces: weak, it only keeps their scale in check

    def validate(self) -> None:
        super().validate()
        self._require(self.n_factors >= 1, "n_factors", "must be a positive integer")
        self._require(self.factor_dim >= 1, "factor_dim", "must be a positive integer")
        self._require(self.n_latents >= self.n_factors * self.factor_dim, "n_latents",
                      f"must be at least n_factors·factor_dim = {self.n_factors * self.factor_dim}")
        self._require(math.isfinite(self.temperature) and self.temperature > 0, "temperature", "must be > 0")
        for name in ("contrastive_weight", "beta_factors"):
            self._require(math.isfinite(getattr(self, name)) and getattr(self, name) >= 0, name, "must be ≥ 0")

    @property
    def residual_dim(self) -> int:
        return self.n_latents - self.n_factors * self.factor_dim


class XFactors(BetaVAE):
    """Latents are laid out [S | T_1 | … | T_K]; metrics read the means of all of them."""

    kind = "xfactors"
    config_class = XFactorsConfig

    def factor_slice(self, k: int) -> slice:
        start = self.config.residual_dim + k * self.config.factor_dim
        return slice(start, start + self.config.factor_dim)

    def bottleneck(self, h: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        g = self.gaussian(h)
        losses = self.gaussian_losses(g)
        if labels is not None:
            # on the samples: a factor's direction must then stand out of the encoder noise, which makes the
            # T means large and the decoder read them (on the means, S took over the hues in a 2000-step run)
            losses["contrastive"] = self.contrastive_loss(g.z, labels)
        return g.z, g.mean, losses

    def forward(self, batch: Batch, dead_mask: Tensor | None = None) -> Output:
        if split_batch(batch)[1] is None:
            raise DataError("xfactors trains on labelled batches: give {'x': images, 'labels': factor indices}")
        return super().forward(batch, dead_mask)

    def gaussian_losses(self, g: GaussianCode) -> dict[str, Tensor]:
        cfg = self.config
        s = slice(0, cfg.residual_dim)
        t = slice(cfg.residual_dim, cfg.n_latents)
        return {
            "kl": cfg.beta * gaussian_kl(g.mean[:, s], g.logvar[:, s]).mean() / cfg.n_pixels,
            "kl_factors": cfg.beta_factors * gaussian_kl(g.mean[:, t], g.logvar[:, t]).mean() / cfg.n_pixels,
        }

    def contrastive_loss(self, z: Tensor, labels: Tensor) -> Tensor:
        cfg = self.config
        if labels.ndim != 2 or labels.shape[1] != cfg.n_factors or labels.shape[0] != z.shape[0]:
            raise ShapeError(f"labels have shape {tuple(labels.shape)} but xfactors expects "
                             f"({z.shape[0]}, n_factors={cfg.n_factors})")
        terms = [supervised_contrastive_loss(z[:, self.factor_slice(k)], labels[:, k], cfg.temperature)
                 for k in range(cfg.n_factors)]
        return cfg.contrastive_weight * torch.stack(terms).sum()
