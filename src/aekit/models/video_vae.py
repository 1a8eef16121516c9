"""A causal spatio-temporal (3-D) VAE: video clips to a grid of Gaussian latents, frame t's latent never sees t + 1.

After the ST-VAE of LaVin-DiT (Wang et al. 2024), whose causal 3-D convolutions follow MAGVIT-v2 (Yu et al. 2023)
and CV-VAE (Zhao et al. 2024). Every convolution is causal in time: its input is padded with copies of the first
frame on the past side only (k − 1 frames for a temporal kernel k, as diffusers' `LTXVideoCausalConv3d`), so output
frame t is a function of input frames ≤ t. Space is padded with zeros on both sides as usual.

The encoder halves height and width once per entry of `channels` (×4 for two entries, ×8 for three) and halves time
in its first log2(`temporal`) stages with stride-2 causal convolutions. A stride-2 causal step maps 1 + 2k frames to
1 + k, output j reading inputs 2j − 2 … 2j, so the first frame is kept alone and every later latent frame summarises
`temporal` new frames: a clip of 1 + 4k frames becomes 1 + k latent frames, latent frame j depending on frames
≤ 4j only. A still image (one frame) is a clip of its own and gets one latent frame, so images and videos share
one latent space. The decoder mirrors the encoder: causal convolutions, then depth-to-space and depth-to-time
("sub-pixel" transposed convolutions) that turn each latent frame into `temporal` frames, the first one into one.

The posterior is a diagonal Gaussian per latent site, q(z|x) = N(μ, diag σ²). The loss is the per-pixel mean
binary cross-entropy of the decoder's logits (frames are intensities in [0, 1]) plus β · KL(q(z|x) ‖ N(0, I)) summed
over latent sites and divided by the pixel count, the convention of `aekit.models.image_ae`, so β = 1 is the ELBO
with a Bernoulli likelihood. There is no normalisation layer: a GroupNorm over the time axis would let the future
leak into the past, and the clips are small.

Batches are clips (n, T, C, H, W), frames-major as video is stored, float in [0, 1] or uint8, or dicts {"x": clips}.
The codes are the posterior means flattened, (n, latent_channels · (1 + (T − 1)/temporal) · h · w).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ShapeError
from ..nn.codes import Codes
from ..nn.conv import parse_channels
from ..nn.gaussian import gaussian_kl
from ..seeding import derive_seed
from .base import Autoencoder, Output, SeededNoise
from .image_ae import split_batch

__all__ = ["CausalConv3d", "VideoVAE", "VideoVAEConfig"]


@dataclass
class VideoVAEConfig(ConfigBase):
    """Clip shape, the conv stack, the compression factors and the KL weight."""

    section = "model"

    frames: int = setting(17, "frames per clip: 1 + a multiple of `temporal` (the first frame is encoded alone)")
    image_channels: int = setting(3, "channels of a frame")
    image_size: int = setting(32, "height and width of a frame, divisible by the spatial compression")
    channels: str = setting("16,32", "width of each encoder stage; each halves height and width (2 stages: ×4)")
    temporal: int = setting(4, "temporal compression: 1, or a power of 2 up to 2^(number of stages)")
    latent_channels: int = setting(4, "Gaussian latent channels per latent site")
    beta: float = setting(1e-3, "weight of KL(q(z|x) ‖ N(0, I)), divided by the pixel count like the reconstruction")
    seed: int = setting(0, "seeds the initial weights and the reparametrisation noise")

    @property
    def widths(self) -> list[int]:
        return parse_channels(self.channels)

    @property
    def spatial(self) -> int:
        """Spatial compression per side."""
        return 2 ** len(self.widths)

    @property
    def latent_frames(self) -> int:
        return 1 + (self.frames - 1) // self.temporal

    @property
    def latent_size(self) -> int:
        return self.image_size // self.spatial

    @property
    def n_latents(self) -> int:
        return self.latent_channels * self.latent_frames * self.latent_size**2

    @property
    def n_pixels(self) -> int:
        return self.frames * self.image_channels * self.image_size**2

    def validate(self) -> None:
        self._require(self.image_channels >= 1, "image_channels", "must be ≥ 1")
        self._require(self.latent_channels >= 1, "latent_channels", "must be ≥ 1")
        stages = len(self.widths)  # parse_channels explains a malformed list
        self._require(self.temporal >= 1 and self.temporal & (self.temporal - 1) == 0
                      and self.temporal <= 2**stages, "temporal",
                      f"must be 1 or a power of 2 up to 2^{stages} (one halving per encoder stage)")
        self._require(self.frames >= 1 and (self.frames - 1) % self.temporal == 0, "frames",
                      f"must be 1 + a multiple of temporal = {self.temporal} (e.g. {1 + 4 * self.temporal})")
        self._require(self.image_size >= 2**stages and self.image_size % 2**stages == 0, "image_size",
                      f"must be a positive multiple of the spatial compression {2**stages}")
        self._require(math.isfinite(self.beta) and self.beta >= 0, "beta", "must be a finite number ≥ 0")
        self._require(self.seed >= 0, "seed", "must be ≥ 0")


class CausalConv3d(nn.Module):
    """Conv3d over (n, C, T, H, W) whose output frame t reads input frames ≤ t only.

    Time is padded on the past side with k_t − 1 copies of the first frame (so a still clip stays still at its
    start), space with zeros on both sides; a temporal stride s then maps 1 + s·m frames to 1 + m."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: tuple[int, int] = (1, 1)):
        super().__init__()
        self.time_pad = kernel - 1
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride=(stride[0], stride[1], stride[1]),
                              padding=(0, kernel // 2, kernel // 2))

    def forward(self, x: Tensor) -> Tensor:
        past = x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1)
        return self.conv(torch.cat([past, x], dim=2))


class CausalResBlock(nn.Module):
    """x + conv(SiLU(conv(SiLU(x)))) with causal 3×3×3 convolutions."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1, self.conv2 = CausalConv3d(width, width), CausalConv3d(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class CausalUpsample(nn.Module):
    """×2 in space and ×`time` in time by a causal conv to c_out·time·4 channels, then depth-to-space/time.

    Latent frame 0 becomes one frame (the first `time` − 1 frames it would produce are dropped) and every later one
    `time` frames, the inverse of the encoder's causal striding: 1 + m frames become 1 + time·m."""

    def __init__(self, c_in: int, c_out: int, time: int):
        super().__init__()
        self.c_out, self.time = c_out, time
        self.conv = CausalConv3d(c_in, c_out * time * 4)

    def forward(self, x: Tensor) -> Tensor:
        n, _, t, h, w = x.shape
        y = self.conv(x).reshape(n, self.c_out, self.time, 2, 2, t, h, w)
        y = y.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, self.c_out, t * self.time, 2 * h, 2 * w)
        return y[:, :, self.time - 1:]


class VideoVAE(SeededNoise, Autoencoder):
    """Causal 3-D conv encoder → diagonal Gaussian latent grid → causal 3-D conv decoder."""

    kind = "video_vae"
    config_class = VideoVAEConfig

    def __init__(self, config: VideoVAEConfig):
        super().__init__(config)
        c, widths = config, config.widths
        halvings = int(math.log2(c.temporal))
        times = [2 if i < halvings else 1 for i in range(len(widths))]  # the first stages also halve time
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed("video_vae.init", c.seed))
            down: list[nn.Module] = [CausalConv3d(c.image_channels, widths[0])]
            for i, width in enumerate(widths):
                down += [nn.SiLU(), CausalConv3d(widths[max(i - 1, 0)], width, stride=(times[i], 2)),
                         CausalResBlock(width)]
            self.encoder = nn.Sequential(*down, nn.SiLU(), CausalConv3d(widths[-1], 2 * c.latent_channels))
            up: list[nn.Module] = [CausalConv3d(c.latent_channels, widths[-1])]
            for i in reversed(range(len(widths))):
                up += [CausalResBlock(widths[i]), nn.SiLU(), CausalUpsample(widths[i], widths[max(i - 1, 0)], times[i])]
            self.decoder = nn.Sequential(*up, nn.SiLU(), CausalConv3d(widths[0], c.image_channels))

    # --- shapes ---------------------------------------------------------------------------------------
    def latent_shape(self, frames: int | None = None) -> tuple[int, int, int, int]:
        """(channels, latent frames, height, width) of the latent grid of a clip of `frames` frames."""
        c = self.config
        frames = c.frames if frames is None else frames
        return c.latent_channels, 1 + (frames - 1) // c.temporal, c.latent_size, c.latent_size

    def clips(self, x: Tensor) -> Tensor:
        """(n, T, C, H, W) clips, float in [0, 1] or uint8, → (n, C, T, H, W) float for the convolutions; any
        T = 1 + a multiple of the temporal compression is accepted (a still image is T = 1)."""
        c = self.config
        if (x.ndim != 5 or tuple(x.shape[2:]) != (c.image_channels, c.image_size, c.image_size)
                or (x.shape[1] - 1) % c.temporal):
            raise ShapeError(f"video_vae: clips have shape {tuple(x.shape)} but the model expects (batch, 1 + "
                             f"{c.temporal}·k frames, {c.image_channels}, {c.image_size}, {c.image_size})")
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()  # 8-bit frames are stored as uint8
        return x.transpose(1, 2)

    # --- the VAE ----------------------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (n, latent_channels, latent frames, h, w)."""
        mean, logvar = self.encoder(self.clips(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)  # exp() of the clamped range stays finite in float32

    def decode_logits(self, z: Tensor) -> Tensor:
        """(n, C, T, H, W) pixel logits of a latent grid (n, latent_channels, latent frames, h, w)."""
        return self.decoder(z)

    def decode_grid(self, z: Tensor) -> Tensor:
        """(n, T, C, H, W) frames in [0, 1] of a latent grid of any number of latent frames."""
        return torch.sigmoid(self.decode_logits(z)).transpose(1, 2)

    def encode(self, x: Tensor) -> Codes:
        mean, _ = self.posterior(x)
        return Codes(mean[0].numel(), dense=mean.flatten(1))

    def decode(self, codes: Codes) -> Tensor:
        dense = codes.to_dense()
        c, _, h, w = self.latent_shape()
        return self.decode_grid(dense.reshape(len(dense), c, -1, h, w))

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """Negative ELBO per pixel with one reparametrised sample (posterior mean in eval mode); `dead_mask` is
        unused."""
        x, _ = split_batch(batch)
        if x.ndim == 5 and x.shape[1] != self.config.frames:  # the Trainer tracks exactly n_latents codes
            raise ShapeError(f"video_vae: training clips have {x.shape[1]} frames but the model was configured "
                             f"for frames = {self.config.frames}")
        target = self.clips(x)
        mean, logvar = self.posterior(x)
        z = mean
        if self.training:
            # the noise comes from a stream seeded by the config and the draws so far, not the global generator
            g = self.noise_generator()
            z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g).to(mean)
        logits = self.decode_logits(z)
        recon = F.binary_cross_entropy_with_logits(logits, target)
        kl = gaussian_kl(mean.flatten(1), logvar.flatten(1)).mean() / target[0].numel()
        codes = Codes(mean[0].numel(), dense=mean.flatten(1))
        return Output(x_hat=torch.sigmoid(logits).transpose(1, 2), codes=codes,
                      losses={"recon": recon, "kl": self.config.beta * kl})

