"""Masked autoencoding of image patches: the pieces CRATE-MAE and the MAE baseline share.

An image (C, H, W) is cut into N = (H/p)² patches of p·p·C pixels (`patchify`), each patch is embedded as a token
of `width` numbers and given a fixed 2-D sine-cosine position (`sincos_positions`, as in MAE). Training hides a
random `mask_ratio` of the patches of every image (`random_mask`, drawn from a stream seeded by the config and
the number of batches drawn so far, so a resumed run masks exactly as an uninterrupted one) and scores the
prediction of the hidden patches only: the mean over masked patches of the per-pixel squared error (He et al.
2022).

`MaskedPatchAutoencoder` is the `Autoencoder` both models subclass. A subclass builds `encoder_layers` and
`decoder_layers` and says where the mask enters (`encode_tokens` / `decode_tokens`); this class supplies the
embedding, the mask token, the pixel head (LayerNorm + linear to p·p·C), the loss, the completed reconstruction
and the per-layer tokens the analysis measures. Codes are the encoder's output tokens of the unmasked image,
flattened to N·width numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ShapeError
from ..nn.codes import Codes
from ..seeding import derive_seed
from .base import Autoencoder, Output
from .image_ae import split_batch

__all__ = ["MaskedPatchAutoencoder", "MaskedPatchConfig", "eval_mask", "fill_masked", "patchify", "random_mask",
           "sincos_positions", "unpatchify"]


def patchify(images: Tensor, patch: int) -> Tensor:
    """(b, C, H, W) → (b, N, p·p·C): patches in row-major order, each flattened as (row, column, channel)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: Tensor, patch: int, channels: int) -> Tensor:
    """The inverse of `patchify` for square images: (b, N, p·p·C) → (b, C, H, W)."""
    b, n, _ = patches.shape
    g = math.isqrt(n)
    x = patches.reshape(b, g, g, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, g * patch, g * patch)


def sincos_positions(grid: int, width: int) -> Tensor:
    """(grid², width) fixed 2-D sine-cosine positions: half the width encodes the row, half the column (MAE)."""
    quarter = width // 4
    freq = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for axis in (rows, cols):
        angle = axis.reshape(-1, 1) * freq
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1).float()


def random_mask(batch: int, n_tokens: int, n_masked: int, generator: torch.Generator) -> Tensor:
    """(batch, n_tokens) bool, True where a patch is hidden: exactly `n_masked` per row, uniform without
    replacement (the rank of a uniform noise decides, as in MAE's per-sample shuffle)."""
    noise = torch.rand(batch, n_tokens, generator=generator)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks >= n_tokens - n_masked


def eval_mask(batch: int, config: MaskedPatchConfig, seed: int) -> Tensor:
    """The masks an evaluation uses: a function of (batch, grid, mask ratio, seed) only, so two models with the same
    patching are scored on exactly the same hidden patches."""
    g = torch.Generator().manual_seed(derive_seed("masked_patches.eval", seed))
    return random_mask(batch, config.n_patches, config.n_masked, g)


def fill_masked(visible: Tensor, masked: Tensor, token: Tensor) -> Tensor:
    """Tokens of the visible patches (b, n_visible, d) put back at their positions of the (b, N) grid, `token`
    (d,) at the masked ones."""
    b, n = masked.shape
    out = token.to(visible.dtype).expand(b, n, visible.shape[-1]).clone()
    out[~masked] = visible.reshape(-1, visible.shape[-1])  # row-major: positions ascend within each image
    return out


@dataclass
class MaskedPatchConfig(ConfigBase):
    """Image shape, patching, token width, depth and mask ratio: what CRATE-MAE and its MAE baseline share."""

    section = "model"

    image_size: int = setting(32, "height = width of the square input images")
    image_channels: int = setting(3, "channels of the input images")
    patch: int = setting(4, "side p of the square patches; image_size must be a multiple of it")
    width: int = setting(96, "token width d; a multiple of 4 (sine-cosine positions) and of heads")
    depth: int = setting(4, "layers of the encoder, and of the decoder")
    heads: int = setting(4, "attention heads (CRATE: subspaces U_k) per layer")
    mask_ratio: float = setting(0.75, "fraction of the patches hidden from the model in training")
    seed: int = setting(0, "seeds the initial weights and the training masks")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    @property
    def n_patches(self) -> int:
        return self.grid**2

    @property
    def patch_dim(self) -> int:
        return self.patch**2 * self.image_channels

    @property
    def n_masked(self) -> int:
        """Patches hidden per image: N − int(N·(1 − ratio)) visible, as MAE counts them."""
        return self.n_patches - int(self.n_patches * (1 - self.mask_ratio))

    @property
    def n_latents(self) -> int:
        return self.n_patches * self.width

    def validate(self) -> None:
        for name in ("image_size", "image_channels", "patch", "depth", "heads"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        self._require(self.image_size % self.patch == 0, "patch", f"must divide image_size {self.image_size}")
        self._require(self.width >= 4 and self.width % 4 == 0, "width", "must be a positive multiple of 4")
        self._require(self.width % self.heads == 0, "width", f"must be a multiple of heads ({self.heads})")
        self._require(0 < self.mask_ratio < 1 and 0 < self.n_masked < self.n_patches, "mask_ratio",
                      f"must hide at least one and keep at least one of the {self.n_patches} patches")


class MaskedPatchAutoencoder(Autoencoder):
    """Patch embedding, mask token, pixel head and masked-patch loss around a subclass's encoder and decoder."""

    config_class = MaskedPatchConfig

    def __init__(self, config: MaskedPatchConfig):
        super().__init__(config)
        c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(f"{self.kind}.init", c.seed))
            self.embed = nn.Linear(c.patch_dim, c.width)
            self.mask_token = nn.Parameter(0.02 * torch.randn(c.width))
            self.encoder_layers = nn.ModuleList()
            self.decoder_layers = nn.ModuleList()
            self.build_layers()
            self.head_norm = nn.LayerNorm(c.width)
            self.head = nn.Linear(c.width, c.patch_dim)
            for module in self.modules():  # xavier-uniform linear maps, zero biases (MAE's and CRATE-MAE's recipe)
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        self.register_buffer("positions", sincos_positions(c.grid, c.width), persistent=False)
        self.mask_draws = 0  # training masks drawn so far: the checkpoint carries it for an exact resume

    # --- what a subclass provides ---------------------------------------------------------------------
    def build_layers(self) -> None:
        """Fill `encoder_layers` and `decoder_layers` (and any extra modules), under the model's seed."""
        raise NotImplementedError

    def encode_tokens(self, patches: Tensor, masked: Tensor | None) -> Tensor:
        """(b, N, p·p·C) patches → encoder output tokens; `masked` (b, N) hides patches, None hides none."""
        raise NotImplementedError

    def decode_tokens(self, z: Tensor, masked: Tensor | None) -> Tensor:
        """Encoder output tokens → (b, N, p·p·C) predicted patches."""
        raise NotImplementedError

    # --- shared pieces --------------------------------------------------------------------------------
    def images(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.image_channels, c.image_size, c.image_size):
            raise ShapeError(f"{self.kind}: images have shape {tuple(x.shape)} but the model expects "
                             f"(batch, {c.image_channels}, {c.image_size}, {c.image_size})")
        return x.float() / 255 if x.dtype == torch.uint8 else x.float()

    def to_pixels(self, tokens: Tensor) -> Tensor:
        """The pixel head: LayerNorm, then a linear map of every token to its patch's p·p·C pixels."""
        return self.head(self.head_norm(tokens))

    def draw_mask(self, batch: int) -> Tensor:
        """Training masks from a stream seeded by the config and the number of batches masked so far."""
        g = torch.Generator().manual_seed(derive_seed(f"{self.kind}.mask", self.config.seed, self.mask_draws))
        self.mask_draws += 1
        return random_mask(batch, self.config.n_patches, self.config.n_masked, g)

    @staticmethod
    def masked_loss(pred: Tensor, target: Tensor, masked: Tensor) -> Tensor:
        """Mean over the masked patches of each patch's mean squared pixel error."""
        per_patch = (pred - target).square().mean(-1)
        return per_patch[masked].mean()

    def _check_mask(self, masked: Tensor, batch: int) -> Tensor:
        expected = (batch, self.config.n_patches)
        if tuple(masked.shape) != expected or masked.dtype != torch.bool:
            raise ShapeError(f"{self.kind}: mask must be a bool tensor of shape {expected}, got {masked.dtype} "
                             f"{tuple(masked.shape)}")
        if not bool((masked.sum(1) == masked[0].sum()).all()):
            raise ShapeError(f"{self.kind}: every image must hide the same number of patches")
        return masked.to(self.positions.device)

    # --- Autoencoder ----------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        """Encoder tokens of the whole (unmasked) images, flattened: (b, N·width)."""
        z = self.encode_tokens(patchify(self.images(x), self.config.patch), None)
        return Codes(self.config.n_latents, dense=z.flatten(1))

    def decode(self, codes: Codes) -> Tensor:
        c = self.config
        z = codes.to_dense().reshape(-1, c.n_patches, c.width)
        return unpatchify(self.decode_tokens(z, None), c.patch, c.image_channels)

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """Hide `mask_ratio` of every image's patches and score their prediction; `dead_mask` is unused."""
        x = self.images(split_batch(batch)[0])
        masked = self.draw_mask(len(x)).to(x.device)
        patches = patchify(x, self.config.patch)
        z = self.encode_tokens(patches, masked)
        pred = self.decode_tokens(z, masked)
        if z.shape[1] < masked.shape[1]:  # an encoder of visible patches only: masked positions code as zeros
            z = fill_masked(z, masked, torch.zeros(z.shape[-1], device=z.device))
        return Output(x_hat=unpatchify(pred, self.config.patch, self.config.image_channels),
                      codes=Codes(self.config.n_latents, dense=z.flatten(1)),
                      losses={"masked_mse": self.masked_loss(pred, patches, masked)})

    def training_state(self) -> dict[str, Any]:
        return {"mask_draws": self.mask_draws}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.mask_draws = int(state.get("mask_draws", 0))

    # --- evaluation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def complete(self, x: Tensor, masked: Tensor) -> Tensor:
        """The images with their masked patches replaced by the prediction (visible patches kept), in [0, 1]."""
        x = self.images(x)
        masked = self._check_mask(masked, len(x))
        patches = patchify(x, self.config.patch)
        pred = self.decode_tokens(self.encode_tokens(patches, masked), masked).clamp(0, 1)
        filled = torch.where(masked.unsqueeze(-1), pred, patches)
        return unpatchify(filled, self.config.patch, self.config.image_channels)

    @torch.no_grad()
    def layer_tokens(self, x: Tensor) -> dict[str, list[Tensor]]:
        """The tokens after every encoder and decoder layer on the unmasked images: {"encoder": [...], "decoder":
        [...]}, each (b, N, width)."""
        recorded: dict[str, list[Tensor]] = {"encoder": [], "decoder": []}
        hooks = [layer.register_forward_hook(lambda _m, _i, out, part=part: recorded[part].append(out.detach()))
                 for part, layers in (("encoder", self.encoder_layers), ("decoder", self.decoder_layers))
                 for layer in layers]
        try:
            self.decode(self.encode(x))
        finally:
            for hook in hooks:
                hook.remove()
        return recorded

    def parameter_count(self) -> int:
        """Trained parameters (the fixed positions are a buffer, not counted)."""
        return sum(p.numel() for p in self.parameters())
