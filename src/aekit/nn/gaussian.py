"""The diagonal-Gaussian bottleneck of variational autoencoders, its KL term and a total-correlation estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ShapeError

_LOG_2PI = math.log(2 * math.pi)


@dataclass
class GaussianCode:
    """q(z|x) = N(mean, exp(logvar)) per latent, and the z the decoder reads."""

    mean: Tensor
    logvar: Tensor
    z: Tensor  # a reparametrised sample while training, the mean at evaluation


class GaussianBottleneck(nn.Module):
    """(batch, 2·n) encoder outputs → n means and n log-variances; samples z = μ + σ·ε while training.

    At evaluation z is the mean, so encoding is deterministic (the representation every metric reads).
    """

    def __init__(self, n_latents: int):
        super().__init__()
        self.n_latents = n_latents

    def forward(self, h: Tensor) -> GaussianCode:
        if h.ndim != 2 or h.shape[1] != 2 * self.n_latents:
            raise ShapeError(f"Gaussian bottleneck input has shape {tuple(h.shape)}; "
                             f"expected (batch, {2 * self.n_latents})")
        mean, logvar = h.chunk(2, dim=1)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if self.training else mean
        return GaussianCode(mean=mean, logvar=logvar, z=z)


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """(batch,) KL(N(mean, exp(logvar)) ‖ N(0, I)) in closed form, summed over latents."""
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(-1)


def gaussian_log_density(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(z; mean, exp(logvar)); broadcasts, so (B, 1, n) against (1, B, n) gives all pairs."""
    return -0.5 * (_LOG_2PI + logvar + (z - mean).pow(2) * (-logvar).exp())


def total_correlation_mws(z: Tensor, mean: Tensor, logvar: Tensor, dataset_size: int) -> Tensor:
    """Minibatch-weighted-sampling estimate of TC = KL(q(z) ‖ ∏_j q(z_j)) (Chen et al. 2018, eq. for MWS).

    q(z_i) is estimated as (1 / (N·M)) Σ_k q(z_i | x_k) over the M rows of the batch (N = dataset size), and
    each marginal q(z_ij) the same way one latent at a time; TC is the batch mean of log q(z) − Σ_j log q(z_j).
    """
    batch = z.shape[0]
    if batch < 2:
        raise ShapeError("total correlation needs a batch of at least 2 rows to estimate q(z)")
    pair = gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))  # (M, M, n): z_i vs x_k
    log_norm = math.log(dataset_size * batch)
    log_qz = torch.logsumexp(pair.sum(-1), dim=1) - log_norm
    log_marginals = (torch.logsumexp(pair, dim=1) - log_norm).sum(-1)
    return (log_qz - log_marginals).mean()
