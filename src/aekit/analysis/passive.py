"""Passive variables of VAEs: run the encoder over inputs and classify its latents as active, passive or mixed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..metrics.passive import passive_report


@dataclass
class Posteriors:
    """q(z|x) over a set of inputs, as (n, n_latents) float64 arrays."""

    means: np.ndarray
    samples: np.ndarray  # one draw z ~ N(μ(x), σ²(x)) per input
    variances: np.ndarray  # σ²(x)


@torch.no_grad()
def encode_posteriors(model: torch.nn.Module, x: Tensor, batch_size: int = 500, seed: int = 0) -> Posteriors:
    """Means, one seeded sample and the variances of a Gaussian encoder's q(z|x) for every row of x.

    `model` must offer `encode_distribution(x) -> GaussianCode` (β-VAE, β-TCVAE, XFactors). The model's mode
    is left as it was; the sample uses its own generator, so the caller's random stream is untouched.
    """
    if not hasattr(model, "encode_distribution"):
        raise ConfigError(f"model: a {type(model).__name__} has no Gaussian encoder; passive variables need a VAE")
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    means, samples, variances = [], [], []
    try:
        for start in range(0, len(x), batch_size):
            g = model.encode_distribution(x[start : start + batch_size])
            variance = g.logvar.exp()
            noise = torch.randn(g.mean.shape, generator=generator, dtype=g.mean.dtype)
            means.append(g.mean)
            variances.append(variance)
            samples.append(g.mean + noise * variance.sqrt())
    finally:
        model.train(was_training)
    return Posteriors(*(torch.cat(part).double().numpy() for part in (means, samples, variances)))


def passive_variables(model: torch.nn.Module, x: Tensor, batch_size: int = 500, seed: int = 0) -> dict:
    """`metrics.passive.passive_report` for a VAE over inputs x (10k inputs is the usual sample)."""
    p = encode_posteriors(model, x, batch_size, seed)
    return passive_report(p.means, p.samples, p.variances)
