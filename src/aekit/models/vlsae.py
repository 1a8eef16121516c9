"""VL-SAE: one sparse autoencoder shared by the image and text embeddings of a CLIP-like model.

After Shen, Sun, Huang and Wang, "VL-SAE: Interpreting and Enhancing Vision-Language Alignment with a Unified
Concept Set" (NeurIPS 2025). The encoder is *distance-based*: each latent j owns a vector w_j, and an embedding x
(image or text) activates it by how close the two unit vectors are,

    a_j(x) = 2 − ‖x/‖x‖ − w_j/‖w_j‖‖₂ = 2 − √(2 − 2 cos(x, w_j)),

of which the k largest are kept (aekit's TopK bottleneck; a_j is increasing in the cosine, so they are the k most
similar latents). The encoder has no bias and ignores the norm of x, so an image and a caption that point the same
way get the same code: that is what makes one concept set for both modalities. Two decoders, one per modality
(x̂ = W_m a + b_m), reconstruct each modality's raw embedding, so the encoder need not spend latents on what tells the
modalities apart.

It is an `Autoencoder` trained by the one `Trainer`: a batch is {"image": (b, d), "text": (b, d)} (paired rows, e.g.
from `DictArraySource`), the loss is each modality's squared error divided by that modality's mean squared norm
(measured once at initialisation, so both modalities weigh the same whatever their scales), and the codes of a
batch are the image codes followed by the text codes.

Optional, not in the paper: `center` subtracts each modality's mean embedding before normalising, the usual remedy
for CLIP's modality gap (the two towers' embeddings occupy two separate cones); the encoder then needs to be told
the modality (`encode(x, modality)`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ShapeError
from ..nn.bottlenecks import TopK
from ..nn.codes import Codes
from ..nn.sparse_ops import sparse_decode, sparse_decode_squared_error
from ..seeding import derive_seed
from .base import Autoencoder, Output

__all__ = ["MODALITIES", "VLSAE", "VLSAEConfig", "distance_activations"]

MODALITIES = ("image", "text")
MIN_SQUARED_DISTANCE = 1e-8  # keeps d√/dx finite when an embedding lands exactly on a latent's vector


@dataclass
class VLSAEConfig(ConfigBase):
    section = "model"

    d_in: int = setting(0, "embedding width, the same for images and texts (CLIP's projection dimension)")
    n_latents: int = setting(0, "number of latents: the shared concept set")
    k: int = setting(8, "active latents per embedding (TopK)")
    center: bool = setting(False, "subtract each modality's mean embedding before the distance encoder "
                                  "(not in the paper; closes the modality gap) (true/false)")
    seed: int = setting(0, "seeds the initial weights")

    def validate(self) -> None:
        self._require(self.d_in >= 1, "d_in", "must be a positive integer")
        self._require(self.n_latents >= 1, "n_latents", "must be a positive integer")
        self._require(1 <= self.k <= self.n_latents, "k", f"must be between 1 and n_latents={self.n_latents}")


def distance_activations(x: Tensor, W: Tensor, indices: Tensor) -> Tensor:
    """a_j = 2 − ‖x/‖x‖ − w_j/‖w_j‖‖ for the latents `indices` (batch, m) of each row of x: O(batch·m·d), never the
    dense (batch, n_latents) matrix, so the backward pass costs what a sparse decoder's does."""
    x_unit = nn.functional.normalize(x, dim=1)
    w_unit = nn.functional.normalize(W, dim=1)
    cosine = torch.einsum("bd,bmd->bm", x_unit, w_unit[indices])
    return 2 - torch.sqrt((2 - 2 * cosine).clamp_min(MIN_SQUARED_DISTANCE))


class VLSAE(Autoencoder):
    """Distance-based shared encoder + TopK + one linear decoder per modality."""

    kind = "vlsae"
    config_class = VLSAEConfig

    def __init__(self, config: VLSAEConfig):
        super().__init__(config)
        n, d = config.n_latents, config.d_in
        g = torch.Generator().manual_seed(derive_seed("vlsae.init", config.seed))
        self.W_enc = nn.Parameter(torch.randn(n, d, generator=g))  # only directions matter: rows are normalised
        self.W_image = nn.Parameter(torch.randn(n, d, generator=g) / n ** 0.5)
        self.W_text = nn.Parameter(torch.randn(n, d, generator=g) / n ** 0.5)
        self.b_image = nn.Parameter(torch.zeros(d))
        self.b_text = nn.Parameter(torch.zeros(d))
        # per-modality centring of the encoder input (zeros unless `center`) and the loss normalisers
        self.register_buffer("mean_image", torch.zeros(d))
        self.register_buffer("mean_text", torch.zeros(d))
        self.register_buffer("norm2_image", torch.ones(()))
        self.register_buffer("norm2_text", torch.ones(()))
        self.bottleneck = TopK(config)

    # --- pieces ----------------------------------------------------------------------------------------
    def _check(self, x: Tensor, what: str) -> None:
        if x.ndim != 2 or x.shape[1] != self.config.d_in:
            raise ShapeError(f"vlsae: {what} embeddings have shape {tuple(x.shape)} but the model expects "
                             f"(batch, {self.config.d_in})")

    def _modality(self, modality: str) -> str:
        if modality not in MODALITIES:
            raise ShapeError(f"vlsae: modality must be one of {list(MODALITIES)} (got {modality!r})")
        return modality

    def activations_at(self, x: Tensor, modality: str, indices: Tensor) -> Tensor:
        """a_j(x) at the latents `indices` (batch, m) of `modality` embeddings, with its gradient."""
        return distance_activations(x - getattr(self, f"mean_{modality}"), self.W_enc, indices)

    def similarities(self, x: Tensor, modality: str) -> Tensor:
        """cos(x − mean, w_j) for every latent (batch, n_latents), without gradient: what TopK ranks."""
        with torch.no_grad():
            x_unit = nn.functional.normalize(x - getattr(self, f"mean_{modality}"), dim=1)
            return x_unit @ nn.functional.normalize(self.W_enc, dim=1).T

    def _decoder(self, modality: str) -> tuple[Tensor, Tensor]:
        return getattr(self, f"W_{modality}"), getattr(self, f"b_{modality}")

    # --- Autoencoder -----------------------------------------------------------------------------------
    def encode(self, x: Tensor, modality: str = "image") -> Codes:
        """Sparse codes of `modality` embeddings; without `center` the modality does not change them."""
        self._check(x, self._modality(modality))
        indices = self.bottleneck.select(self.similarities(x, modality)).indices
        values = self.bottleneck.activate(self.activations_at(x, modality, indices), indices)
        return Codes(self.config.n_latents, values=values, indices=indices)

    def decode(self, codes: Codes, modality: str = "image") -> Tensor:
        """The `modality` decoder's reconstruction of raw embeddings."""
        W, b = self._decoder(self._modality(modality))
        if codes.is_sparse:
            return sparse_decode(codes.values.to(W.dtype), codes.indices, W) + b
        return codes.dense @ W + b

    def forward(self, batch: dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """Both modalities' normalised squared errors; `x_hat` and `codes` stack images then texts. `dead_mask` is
        unused (the paper has no auxiliary loss)."""
        if not isinstance(batch, dict) or set(MODALITIES) - set(batch):
            raise ShapeError("vlsae: a batch must be a dict with 'image' and 'text' embeddings of paired rows")
        if len(batch["image"]) != len(batch["text"]):
            raise ShapeError(f"vlsae: {len(batch['image'])} image rows but {len(batch['text'])} text rows; "
                             "rows must be pairs")
        losses, x_hat, codes = {}, [], []
        for m in MODALITIES:
            x = batch[m]
            c = self.encode(x, m)
            W, b = self._decoder(m)
            error, x_hat_m = sparse_decode_squared_error(c.values, c.indices, W, b, x)
            losses[f"{m}_mse"] = error / getattr(self, f"norm2_{m}")
            x_hat.append(x_hat_m)
            codes.append(c)
        joined = Codes(self.config.n_latents, values=torch.cat([c.values for c in codes]),
                       indices=torch.cat([c.indices for c in codes]))
        return Output(x_hat=torch.cat(x_hat), codes=joined, losses=losses)

    @torch.no_grad()
    def initialize_from_data(self, batch: dict[str, Tensor]) -> None:
        """Decoder biases at each modality's mean, the loss normalisers at its mean squared norm, and (with
        `center`) the encoder's centring at its mean."""
        for m in MODALITIES:
            x = batch[m].float()
            self._check(x, m)
            mean = x.mean(0)
            getattr(self, f"b_{m}").copy_(mean)
            getattr(self, f"norm2_{m}").fill_(float(x.pow(2).sum(1).mean().clamp_min(1e-12)))
            if self.config.center:
                getattr(self, f"mean_{m}").copy_(mean)
