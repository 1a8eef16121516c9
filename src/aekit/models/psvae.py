"""PS-VAE: a VAE whose latent reconstructs both the pixels and a frozen teacher's semantic features.

After Zhang et al. 2025, "Both Semantics and Reconstruction Matter: Making Representation Encoders Ready for
Text-to-Image Generation and Editing": a compact KL-regularised latent is asked to reproduce a representation
encoder's features through a semantic decoder (their L_s) and the image through a pixel decoder, so it stays
semantically rich while keeping fine detail. Here the encoder and pixel decoder are the conv stack of
`ImageAutoencoder` (a β-VAE with a small β), and the semantic decoder is an MLP from the latent to the teacher's
feature vector (e.g. a ViT's final CLS state, computed once per image because the teacher is frozen):

    L = L_pix(D(z), x) + w_sem · L_sem(S(z), f(x)) + β · KL(q(z|x) ‖ N(0, I)) / n_pixels,
    L_sem(f̂, f) = mean_j (f̂_j − f_j)² + (1 − cos(f̂, f)),

the MSE matching the features' values and the cosine their direction. With w_sem = 0 it is the pixel-only VAE
of the same architecture, which is the baseline the semantic term is judged against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import setting
from ..errors import DataError, ShapeError
from ..nn.codes import Codes
from .base import Output
from .image_ae import Batch, BetaVAE, BetaVAEConfig, seeded, split_batch

__all__ = ["PSVAE", "PSVAEConfig", "feature_loss"]


def feature_loss(predicted: Tensor, target: Tensor) -> Tensor:
    """Batch mean of the per-feature squared error plus (1 − cosine similarity) between two (n, d) arrays."""
    if predicted.shape != target.shape or predicted.ndim != 2:
        raise ShapeError(f"feature loss: predicted {tuple(predicted.shape)} and teacher features "
                         f"{tuple(target.shape)} must both be (n, d)")
    mse = (predicted - target).pow(2).mean(1)
    cosine = F.cosine_similarity(predicted, target, dim=1, eps=1e-8)
    return (mse + 1 - cosine).mean()


@dataclass
class PSVAEConfig(BetaVAEConfig):
    beta: float = setting(0.1, "weight of KL(q(z|x) ‖ N(0, I)), per pixel like the reconstruction (small: the "
                               "latent must keep detail)")
    feature_dim: int = setting(64, "width of the teacher's feature vector the semantic decoder reconstructs")
    semantic_weight: float = setting(4.0, "w_sem: weight of the feature loss; 0 = the pixel-only VAE")
    semantic_hidden: int = setting(0, "hidden width of the semantic decoder; 0 = a linear map from the latent, so "
                                      "whatever the teacher's features say linearly the latent says linearly too",
                                   "0 (linear)")

    def validate(self) -> None:
        super().validate()
        self._require(self.feature_dim >= 1, "feature_dim", "must be a positive integer")
        self._require(self.semantic_hidden >= 0, "semantic_hidden", "must be ≥ 0 (0: a linear decoder)")
        self._require(math.isfinite(self.semantic_weight) and self.semantic_weight >= 0, "semantic_weight",
                      "must be a number ≥ 0")


class PSVAE(BetaVAE):
    """Conv β-VAE plus a semantic decoder; batches are {"x": images, "features": teacher features}."""

    kind = "psvae"
    config_class = PSVAEConfig

    def __init__(self, config: PSVAEConfig, seed: int | None = None):
        super().__init__(config, seed)
        with seeded(None if seed is None else seed + 1):  # a stream apart from the encoder/decoder's
            hidden = config.semantic_hidden
            self.semantic_decoder = (nn.Linear(config.n_latents, config.feature_dim) if hidden == 0 else
                                     nn.Sequential(nn.Linear(config.n_latents, hidden), nn.GELU(),
                                                   nn.Linear(hidden, config.feature_dim)))

    def predict_features(self, x: Tensor) -> Tensor:
        """The teacher features the semantic decoder reads off each image's posterior mean."""
        return self.semantic_decoder(self.encode(x).dense)

    def forward(self, batch: Batch, dead_mask: Tensor | None = None) -> Output:
        """Pixel reconstruction + β·KL, plus w_sem · feature loss when w_sem > 0 (then batch["features"] is
        required); `dead_mask` is accepted for the Trainer's interface and unused."""
        x, _ = split_batch(batch)
        x = self.images(x)
        g = self.gaussian(self.encoder(x))
        logits = self.decoder(g.z)
        losses = {"recon": self.reconstruction_loss(logits, x), **self.gaussian_losses(g)}
        if self.config.semantic_weight > 0:
            features = batch.get("features") if isinstance(batch, dict) else None
            if features is None:
                raise DataError("psvae: semantic_weight > 0 needs the teacher's features as batch['features']")
            losses["semantic"] = self.config.semantic_weight * feature_loss(self.semantic_decoder(g.z),
                                                                            features.float())
        return Output(x_hat=self.to_pixels(logits), codes=Codes(self.config.n_latents, dense=g.mean), losses=losses)
