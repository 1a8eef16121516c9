"""Image autoencoders for disentanglement: one conv encoder/decoder, the methods differ by bottleneck and loss.

`ImageAutoencoder` is the plain AE; β-VAE, β-TCVAE and VQ-VAE (here), QLAE (qlae.py) and XFactors
(xfactors.py) replace only `bottleneck` and add loss terms. Every model reconstructs with a per-pixel MEAN
loss — binary cross-entropy on logits by default (images are intensities in [0, 1]; the Bernoulli likelihood
is what disentanglement_lib and the QLAE reference use, so the β values and 0.01 weights of those papers carry
over), or MSE. KL terms are divided by the pixel count so that β keeps its usual meaning (the β-VAE ELBO
with a summed likelihood, divided through by the number of pixels).

Batches are image tensors (batch, C, H, W) — float in [0, 1] or uint8 — or dicts {"x": images, "labels":
factors} for supervised models.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config_base import ConfigBase
from ..errors import DataError, ShapeError
from ..nn.codes import Codes
from ..nn.conv import ConvDecoder, ConvEncoder, feature_map_size, parse_channels
from ..nn.gaussian import GaussianBottleneck, GaussianCode, gaussian_kl, total_correlation_mws
from ..nn.quantize import VectorQuantizer
from .base import Autoencoder, Output

RECONSTRUCTIONS = ("bce", "mse")
Batch = Tensor | dict[str, Tensor]


@dataclass
class ImageAEConfig(ConfigBase):
    """Shape of the images, the latent width, the conv stack and the reconstruction loss."""

    section = "model"

    image_channels: int = 3
    image_size: int = 64
    n_latents: int = 12
    channels: str = "32,32,64,64"  # one stride-2 conv per entry (64 → 4 with four)
    hidden: int = 256  # width of the MLP between the feature map and the latents
    reconstruction: str = "bce"  # "bce": per-pixel mean BCE on logits; "mse": per-pixel mean squared error
    weight_decay: float = 0.0  # decoupled (AdamW) decay on weight matrices and kernels only

    def validate(self) -> None:
        self._require(self.image_channels >= 1, "image_channels", "must be a positive integer")
        self._require(self.image_size >= 1, "image_size", "must be a positive integer")
        self._require(self.n_latents >= 1, "n_latents", "must be a positive integer")
        self._require(self.hidden >= 1, "hidden", "must be a positive integer")
        self._require(self.reconstruction in RECONSTRUCTIONS, "reconstruction",
                      f"choose one of {list(RECONSTRUCTIONS)}")
        self._require(math.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "must be ≥ 0")
        feature_map_size(self.image_size, len(parse_channels(self.channels)))

    @property
    def n_pixels(self) -> int:
        return self.image_channels * self.image_size**2


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Initialise layers from `seed` without disturbing the caller's global random stream."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def split_batch(batch: Batch) -> tuple[Tensor, Tensor | None]:
    """(images, labels or None) from an image tensor or a {"x", "labels"} dict."""
    if isinstance(batch, dict):
        if "x" not in batch:
            raise DataError(f"batch dict has keys {sorted(batch)} but no 'x'; give images as batch['x']")
        return batch["x"], batch.get("labels")
    return batch, None


class ImageAutoencoder(Autoencoder):
    """The plain autoencoder: conv encoder → n_latents numbers → conv decoder."""

    kind = "ae"
    config_class = ImageAEConfig
    discrete_latents: ClassVar[bool] = False  # True when metric latents are codeword indices

    def __init__(self, config: ImageAEConfig, seed: int | None = None):
        super().__init__(config)
        widths = parse_channels(config.channels)
        with seeded(seed):
            self.encoder = ConvEncoder(config.image_channels, config.image_size, widths, config.hidden,
                                       self.encoder_width())
            self.build_bottleneck()
            self.decoder = ConvDecoder(self.decoder_width(), config.image_channels, config.image_size, widths,
                                       config.hidden)

    # --- what subclasses change ------------------------------------------------------------------------
    def encoder_width(self) -> int:
        return self.config.n_latents

    def decoder_width(self) -> int:
        return self.config.n_latents

    def build_bottleneck(self) -> None:
        """Create the bottleneck's modules (called between encoder and decoder, under the model's seed)."""

    def bottleneck(self, h: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Encoder output → (decoder input, the (batch, n_latents) code, extra loss terms)."""
        return h, h, {}

    def code_to_decoder_input(self, code: Tensor) -> Tensor:
        """Map a code from `encode` (or a traversal) to what the decoder reads."""
        return code

    def metric_latents(self, x: Tensor) -> Tensor:
        """The representation disentanglement metrics score (codeword indices when `discrete_latents`)."""
        return self.encode(x).dense

    def traversal_values(self, reference: Tensor, n_steps: int) -> Tensor:
        """(n_latents, n_steps) values each latent takes in a traversal: 2nd to 98th percentile of `reference`."""
        q = torch.linspace(0.02, 0.98, n_steps, device=reference.device, dtype=reference.dtype)
        return torch.quantile(reference, q, dim=0).T

    # --- the protocol -----------------------------------------------------------------------------------
    def images(self, x: Tensor) -> Tensor:
        c, s = self.config.image_channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ShapeError(f"images have shape {tuple(x.shape)} but this {self.kind} model expects "
                             f"(batch, {c}, {s}, {s})")
        return x.float() / 255 if x.dtype == torch.uint8 else x.float()  # 8-bit images are stored as uint8

    def encode(self, x: Tensor) -> Codes:
        _, code, _ = self.bottleneck(self.encoder(self.images(x)), None)
        return Codes(self.config.n_latents, dense=code)

    def decode(self, codes: Codes) -> Tensor:
        return self.to_pixels(self.decoder(self.code_to_decoder_input(codes.to_dense())))

    def forward(self, batch: Batch, dead_mask: Tensor | None = None) -> Output:
        """Reconstruct the images; `dead_mask` is accepted for the Trainer's interface and unused."""
        x, labels = split_batch(batch)
        x = self.images(x)
        z, code, extra = self.bottleneck(self.encoder(x), labels)
        logits = self.decoder(z)
        losses = {"recon": self.reconstruction_loss(logits, x), **extra}
        return Output(x_hat=self.to_pixels(logits), codes=Codes(self.config.n_latents, dense=code), losses=losses)

    def reconstruction_loss(self, out: Tensor, x: Tensor) -> Tensor:
        if self.config.reconstruction == "bce":
            return F.binary_cross_entropy_with_logits(out, x)
        return F.mse_loss(out, x)

    def to_pixels(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out) if self.config.reconstruction == "bce" else out

    # --- Trainer hook -----------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]] | None:
        """Decay weight matrices and conv kernels only: biases and codebooks stay free (QLAE's recipe)."""
        if self.config.weight_decay == 0:
            return None
        decay, free = [], []
        for name, p in self.named_parameters():
            (free if name.endswith("bias") or name.endswith("codebooks") else decay).append(p)
        return [{"params": decay, "weight_decay": self.config.weight_decay}, {"params": free, "weight_decay": 0.0}]


@dataclass
class BetaVAEConfig(ImageAEConfig):
    beta: float = 4.0  # weight of KL(q(z|x) ‖ N(0, I)) relative to the summed reconstruction likelihood

    def validate(self) -> None:
        super().validate()
        self._require(math.isfinite(self.beta) and self.beta >= 0, "beta", "must be a finite number ≥ 0")


class BetaVAE(ImageAutoencoder):
    """β-VAE (Higgins et al. 2017): a Gaussian bottleneck and β·KL."""

    kind = "betavae"
    config_class = BetaVAEConfig

    def encoder_width(self) -> int:
        return 2 * self.config.n_latents

    def build_bottleneck(self) -> None:
        self.gaussian = GaussianBottleneck(self.config.n_latents)

    def bottleneck(self, h: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        g = self.gaussian(h)
        return g.z, g.mean, self.gaussian_losses(g)

    def gaussian_losses(self, g: GaussianCode) -> dict[str, Tensor]:
        return {"kl": self.config.beta * gaussian_kl(g.mean, g.logvar).mean() / self.config.n_pixels}

    def encode_distribution(self, x: Tensor) -> GaussianCode:
        """q(z|x) for a batch of images (the sample `z` follows the model's train/eval mode)."""
        return self.gaussian(self.encoder(self.images(x)))


@dataclass
class BetaTCVAEConfig(BetaVAEConfig):
    beta: float = 6.0  # weight of the total-correlation term (α = γ = 1 on mutual information and dimension-wise KL)
    dataset_size: int = 480_000  # N of the minibatch-weighted-sampling estimator (Shapes3D has 480 000 images)

    def validate(self) -> None:
        super().validate()
        self._require(self.dataset_size >= 1, "dataset_size", "must be a positive integer")


class BetaTCVAE(BetaVAE):
    """β-TCVAE (Chen et al. 2018): KL = MI + TC + dimension-wise KL, with TC weighted by β.

    The loss adds (β − 1)·TC to the closed-form KL, which equals MI + β·TC + DWKL in expectation with lower
    variance than summing three sampled estimates.
    """

    kind = "betatcvae"
    config_class = BetaTCVAEConfig

    def gaussian_losses(self, g: GaussianCode) -> dict[str, Tensor]:
        cfg = self.config
        tc = total_correlation_mws(g.z, g.mean, g.logvar, cfg.dataset_size)
        return {"kl": gaussian_kl(g.mean, g.logvar).mean() / cfg.n_pixels, "tc": (cfg.beta - 1) * tc / cfg.n_pixels}


@dataclass
class VQVAEConfig(ImageAEConfig):
    slot_dim: int = 16  # each of the n_latents slots is a vector of this size, snapped to a shared codebook
    n_codes: int = 64
    commitment: float = 0.25

    def validate(self) -> None:
        super().validate()
        self._require(self.slot_dim >= 1, "slot_dim", "must be a positive integer")
        self._require(self.n_codes >= 2, "n_codes", "must be ≥ 2")
        self._require(math.isfinite(self.commitment) and self.commitment >= 0, "commitment", "must be ≥ 0")


class VQVAE(ImageAutoencoder):
    """VQ-VAE (van den Oord et al. 2017) baseline: n_latents slots, one shared codebook; codes are indices."""

    kind = "vqvae"
    config_class = VQVAEConfig
    discrete_latents = True

    def encoder_width(self) -> int:
        return self.config.n_latents * self.config.slot_dim

    decoder_width = encoder_width

    def build_bottleneck(self) -> None:
        self.quantizer = VectorQuantizer(self.config.n_codes, self.config.slot_dim)

    def bottleneck(self, h: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        q = self.quantizer(h)
        losses = {"codebook": q.quantize_loss, "commit": self.config.commitment * q.commit_loss}
        return q.straight_through, q.indices.to(h.dtype), losses

    def code_to_decoder_input(self, code: Tensor) -> Tensor:
        return self.quantizer.lookup(code.round().long()).flatten(1)

    def traversal_values(self, reference: Tensor, n_steps: int) -> Tensor:
        """Per slot, the n_steps codewords it uses most on `reference` (fewer used ones repeat the last)."""
        rows = []
        for slot in reference.long().T:
            counts = torch.bincount(slot, minlength=self.config.n_codes)
            top = counts.argsort(descending=True)[: max(1, int((counts > 0).sum()))][:n_steps]
            rows.append(torch.cat([top, top[-1:].expand(n_steps - len(top))]))
        return torch.stack(rows).to(reference.dtype)
