"""EPG: a pixel-space diffusion model whose encoder is pre-trained self-supervised on noisy images first.

After Lei et al., "Advancing End-to-End Pixel Space Generative Modeling via Self-supervised Pre-training" (2025).
The denoiser is an encoder E (time-conditioned, noisy image → feature maps and a pooled representation) and a
decoder D (feature maps → pixels, reading every encoder level through skip connections and the encoder's time
embedding), built here from `diffusers` UNet blocks: E is a UNet's down path and middle block, D its up path.

Stage 1 (`EPGPretrainer`) trains E alone, with a projector P whose output has two heads, under two InfoNCE losses,
ℓ(a, b; τ) = −log softmax_j(cos(a_i, b_j)/τ)_i over the batch:

* contrastive: two augmented views y₁, y₂ of a clean image, noised with the same ε to the smallest level t₀ of the
  sampling grid; the online head-0 output of one view against the head-0 output of an EMA target network
  (θ⁻ ← m·θ⁻ + (1 − m)·θ after every step) of the other view, τ = 0.2, symmetrised;
* representation consistency: the clean image noised with one shared ε to two adjacent levels t_n > t_{n+1} of the
  sampling grid (neighbouring points of one trajectory, as in consistency training); the online head-1 output at
  t_n against the stop-gradient online output at t_{n+1}, τ = 0.1.

Stage 2 (`EPGDenoiser`) joins E (pre-trained, or fresh for the from-scratch baseline) to a randomly initialised D
and trains both end to end as a DDPM (`diffusers.DDPMScheduler`) with the noise-prediction MSE, or the paper's
clean-image prediction (`prediction = "sample"`); `sample` runs deterministic DDIM (`diffusers.DDIMScheduler`,
η = 0, the predicted clean image clipped to the data range as the paper's sampler clamps it).

Both stages are `Autoencoder`s trained by the one `Trainer`: a batch is clean images in [0, 1] (mapped to [-1, 1]),
the forward pass draws its own noise and time steps from a stream seeded by the config and the number of draws so
far (the checkpoint carries it for an exact resume), and the codes are E's pooled representation.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import ConfigError, ShapeError
from ..nn.codes import Codes
from ..nn.conv import parse_channels
from ..seeding import derive_seed
from .base import Autoencoder, Output, SeededNoise
from .image_ae import seeded

__all__ = ["EPGDecoder", "EPGDenoiser", "EPGDenoiserConfig", "EPGEncoder", "EPGPretrainConfig", "EPGPretrainer",
           "PREDICTIONS", "info_nce", "random_resized_crops"]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = ("epsilon", "sample")


def info_nce(a: Tensor, b: Tensor, tau: float) -> Tensor:
    """Mean over rows of −log softmax_j(cos(a_i, b_j)/τ) at j = i: row i of `b` is row i of `a`'s positive, the
    other rows its negatives."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / tau
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


def random_resized_crops(x: Tensor, generator: torch.Generator, min_area: float) -> Tensor:
    """One random square crop of each image (area fraction uniform in [min_area, 1], anywhere inside it) resized
    back to full size, mirrored left-right with probability ½: the views of the contrastive loss."""
    n = len(x)
    side = torch.sqrt(min_area + (1 - min_area) * torch.rand(n, generator=generator))
    shift = (1 - side).unsqueeze(1) * (2 * torch.rand(n, 2, generator=generator) - 1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = side * flip, side
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class EPGEncoderConfig(ConfigBase):
    """What both stages share: the images, the encoder's widths and the diffusion schedule."""

    section = "model"

    image_channels: int = setting(3, "channels of the images")
    image_size: int = setting(32, "side of the images")
    patch: int = setting(2, "side of the pixel patches the encoder embeds and the decoder unfolds (ViT-style)")
    channels: str = setting("32,64,64", "widths of the UNet levels, one down (and up) block each, comma-separated")
    groups: int = setting(8, "GroupNorm groups (must divide every width)")
    train_timesteps: int = setting(1000, "diffusion steps T of the DDPM noise schedule")
    beta_schedule: str = setting("squaredcos_cap_v2", f"noise schedule: {', '.join(BETA_SCHEDULES)}")
    sample_steps: int = setting(20, "DDIM steps when sampling; stage 1 draws its adjacent noise levels from this grid")
    seed: int = setting(0, "seeds the initial weights, the noise, the time steps and the augmentations")

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(parse_channels(self.channels))

    @property
    def n_latents(self) -> int:
        """The codes are the encoder's pooled representation (the deepest level's channel means)."""
        return self.widths[-1]

    def validate(self) -> None:
        for name in ("image_channels", "patch", "groups", "train_timesteps"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        widths = self.widths  # raises, naming the field, unless comma-separated positive integers
        self._require(all(w % self.groups == 0 for w in widths), "groups", f"must divide every width {widths}")
        factor = self.patch * 2 ** (len(widths) - 1)
        self._require(self.image_size >= 1 and self.image_size % factor == 0, "image_size",
                      f"must be a positive multiple of {factor} (the patch side, then one halving per level after "
                      "the first)")
        self._require(self.beta_schedule in BETA_SCHEDULES, "beta_schedule", f"choose one of {list(BETA_SCHEDULES)}")
        self._require(2 <= self.sample_steps <= self.train_timesteps, "sample_steps",
                      "must be between 2 and train_timesteps")


class EPGEncoder(nn.Module):
    """A UNet's down path and middle block: (x_t, t) → (deepest feature map, every level's skip maps, time
    embedding). Its pooled representation is the deepest map's channel means."""

    def __init__(self, c: EPGEncoderConfig):
        super().__init__()
        from diffusers.models.embeddings import TimestepEmbedding, Timesteps
        from diffusers.models.unets.unet_2d_blocks import DownBlock2D, UNetMidBlock2D

        widths = c.widths
        self.time_proj = Timesteps(widths[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(widths[0], 4 * widths[0])
        self.conv_in = nn.Conv2d(c.image_channels, widths[0], c.patch, stride=c.patch)  # patch embedding
        temb = 4 * widths[0]
        self.down = nn.ModuleList(
            DownBlock2D(in_channels=widths[max(i - 1, 0)], out_channels=w, temb_channels=temb, num_layers=1,
                        resnet_groups=c.groups, add_downsample=i < len(widths) - 1)
            for i, w in enumerate(widths))
        self.mid = UNetMidBlock2D(widths[-1], temb, resnet_groups=c.groups, add_attention=False)

    def forward(self, x_t: Tensor, t: Tensor) -> tuple[Tensor, tuple[Tensor, ...], Tensor]:
        emb = self.time_embedding(self.time_proj(t).to(x_t.dtype))
        h = self.conv_in(x_t)
        skips: tuple[Tensor, ...] = (h,)
        for block in self.down:
            h, res = block(hidden_states=h, temb=emb)
            skips += res
        return self.mid(h, emb), skips, emb

    @staticmethod
    def pooled(h: Tensor) -> Tensor:
        return h.mean(dim=(2, 3))


class EPGDecoder(nn.Module):
    """A UNet's up path: the encoder's deepest map, its skip maps and time embedding → an image-shaped prediction."""

    def __init__(self, c: EPGEncoderConfig):
        super().__init__()
        from diffusers.models.unets.unet_2d_blocks import UpBlock2D

        widths = list(reversed(c.widths))
        blocks, out = [], widths[0]
        for i in range(len(widths)):
            prev, out = out, widths[i]
            blocks.append(UpBlock2D(in_channels=widths[min(i + 1, len(widths) - 1)], prev_output_channel=prev,
                                    out_channels=out, temb_channels=4 * c.widths[0], num_layers=2,
                                    resnet_groups=c.groups, add_upsample=i < len(widths) - 1))
        self.up = nn.ModuleList(blocks)
        self.norm_out = nn.GroupNorm(c.groups, widths[-1], eps=1e-5)
        self.conv_out = nn.Conv2d(widths[-1], c.image_channels * c.patch**2, 3, padding=1)
        self.patch = c.patch

    def forward(self, h: Tensor, skips: tuple[Tensor, ...], emb: Tensor) -> Tensor:
        for block in self.up:
            k = len(block.resnets)
            h, skips = block(h, skips[-k:], emb), skips[:-k]
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), self.patch)  # patches back to pixels


class _Diffusion(SeededNoise, Autoencoder):
    """What both stages share: the encoder, the DDPM schedule, the sampling grid, image checks and the seeded
    noise stream."""

    config_class: Any

    def __init__(self, config: EPGEncoderConfig):
        super().__init__(config)
        from diffusers import DDIMScheduler, DDPMScheduler

        self.scheduler = DDPMScheduler(num_train_timesteps=config.train_timesteps, beta_schedule=config.beta_schedule,
                                       prediction_type=getattr(config, "prediction", "epsilon"), clip_sample=False)
        grid = DDIMScheduler.from_config(self.scheduler.config)
        grid.set_timesteps(config.sample_steps)
        self.grid = grid.timesteps.clone()  # descending: the levels DDIM visits, t_0 of stage 1 is the last

    def images(self, x: Tensor) -> Tensor:
        """Images in [0, 1] (n, C, s, s) → the model's [-1, 1] pixels."""
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.image_channels, c.image_size, c.image_size):
            raise ShapeError(f"{self.kind}: images must be (n, {c.image_channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(x.shape)}")
        return 2 * x.float() - 1

    def _noised(self, x: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        return self.scheduler.add_noise(x, eps, t.to(x.device))

    def encode(self, x: Tensor) -> Codes:
        """The pooled representation of the clean images (encoded at the grid's lowest noise level)."""
        x = self.images(x)
        t = self.grid[-1].expand(len(x)).to(x.device)
        return Codes(self.config.n_latents, dense=EPGEncoder.pooled(self.encoder(x, t)[0]))



@dataclass
class EPGPretrainConfig(EPGEncoderConfig):
    projector_hidden: int = setting(256, "hidden width of the projector MLP")
    projection: int = setting(64, "output width of each projector head")
    tau_contrastive: float = setting(0.2, "InfoNCE temperature of the contrastive loss between augmented views")
    tau_consistency: float = setting(0.1, "InfoNCE temperature of the consistency loss between adjacent levels")
    target_ema: float = setting(0.99, "EMA rate m of the target network θ⁻ ← m·θ⁻ + (1 − m)·θ")
    crop_min_area: float = setting(0.5, "smallest area fraction of a random crop of the contrastive views")

    def validate(self) -> None:
        super().validate()
        self._require(self.projector_hidden >= 1, "projector_hidden", "must be ≥ 1")
        self._require(self.projection >= 1, "projection", "must be ≥ 1")
        for name in ("tau_contrastive", "tau_consistency"):
            value = getattr(self, name)
            self._require(math.isfinite(value) and value > 0, name, "must be a positive number")
        self._require(0 <= self.target_ema < 1, "target_ema", "must be in [0, 1)")
        self._require(0 < self.crop_min_area <= 1, "crop_min_area", "must be in (0, 1]")


class EPGPretrainer(_Diffusion):
    """Stage 1: the encoder, a two-headed projector and their EMA target, trained by the contrastive and the
    representation-consistency InfoNCE losses."""

    kind = "epg_pretrain"
    config_class = EPGPretrainConfig

    def __init__(self, config: EPGPretrainConfig):
        super().__init__(config)
        c = config
        with seeded(derive_seed("epg.encoder.init", c.seed)):
            self.encoder = EPGEncoder(c)
        with seeded(derive_seed("epg_pretrain.projector.init", c.seed)):
            self.projector = nn.Sequential(nn.Linear(c.n_latents, c.projector_hidden), nn.GELU(),
                                           nn.Linear(c.projector_hidden, c.projector_hidden), nn.GELU(),
                                           nn.Linear(c.projector_hidden, 2 * c.projection))
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def heads(self, x_t: Tensor, t: Tensor, target: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(pooled representation, contrastive head, consistency head) of noisy images, online or target."""
        encoder, projector = (self.target_encoder, self.target_projector) if target else (self.encoder, self.projector)
        rep = EPGEncoder.pooled(encoder(x_t, t)[0])
        z = projector(rep)
        return rep, *z.chunk(2, dim=1)

    def decode(self, codes: Codes) -> Tensor:
        raise NotImplementedError("stage 1 trains an encoder only; join it to a decoder with EPGDenoiser")

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """Both pre-training losses on a batch of clean images; `dead_mask` is the Trainer's and unused."""
        c = self.config
        x = self.images(batch["x"] if isinstance(batch, dict) else batch)
        n, g = len(x), self.noise_generator()
        eps = torch.randn(x.shape, generator=g).to(x)
        views = [random_resized_crops(x.cpu(), g, c.crop_min_area).to(x) for _ in range(2)]
        t0 = self.grid[-1].expand(n)
        noisy = [self._noised(v, eps, t0) for v in views]
        t0 = t0.to(x.device)
        rep, online_1, _ = self.heads(noisy[0], t0)
        _, online_2, _ = self.heads(noisy[1], t0)
        with torch.no_grad():
            target_1, target_2 = self.heads(noisy[0], t0, True)[1], self.heads(noisy[1], t0, True)[1]
        contrastive = info_nce(online_1, target_2, c.tau_contrastive) + info_nce(online_2, target_1,
                                                                                c.tau_contrastive)
        k = torch.randint(0, len(self.grid) - 1, (n,), generator=g)
        t_hi, t_lo = self.grid[k], self.grid[k + 1]  # adjacent levels of the sampling grid, t_hi noisier
        _, _, h_hi = self.heads(self._noised(x, eps, t_hi), t_hi.to(x.device))
        with torch.no_grad():
            _, _, h_lo = self.heads(self._noised(x, eps, t_lo), t_lo.to(x.device))
        consistency = info_nce(h_hi, h_lo, c.tau_consistency)
        return Output(x_hat=online_1, codes=Codes(c.n_latents, dense=rep),
                      losses={"contrastive": contrastive, "consistency": consistency})

    def parameter_groups(self) -> list[dict[str, Any]] | None:
        """Only the online network is optimised: the target follows it by EMA."""
        return [{"params": [*self.encoder.parameters(), *self.projector.parameters()], "weight_decay": 0.0}]

    def after_optimizer_step(self) -> None:
        m = self.config.target_ema
        with torch.no_grad():
            for online, target in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
                for p, q in zip(online.parameters(), target.parameters(), strict=True):
                    q.mul_(m).add_(p, alpha=1 - m)


@dataclass
class EPGDenoiserConfig(EPGEncoderConfig):
    prediction: str = setting("epsilon", f"what the decoder predicts: {' or '.join(PREDICTIONS)} (the clean image, "
                                         "the paper's choice)")

    def validate(self) -> None:
        super().validate()
        self._require(self.prediction in PREDICTIONS, "prediction", f"choose one of {list(PREDICTIONS)}")


class EPGDenoiser(_Diffusion):
    """Stage 2: encoder + decoder trained end to end as a pixel-space DDPM; `sample` runs DDIM."""

    kind = "epg_denoiser"
    config_class = EPGDenoiserConfig

    def __init__(self, config: EPGDenoiserConfig):
        super().__init__(config)
        with seeded(derive_seed("epg.encoder.init", config.seed)):
            self.encoder = EPGEncoder(config)
        with seeded(derive_seed("epg_denoiser.decoder.init", config.seed)):
            self.decoder = EPGDecoder(config)

    def load_encoder(self, pretrainer: EPGPretrainer) -> None:
        """Start from a stage-1 encoder (the online one; the projector and target are discarded)."""
        mine, theirs = self.config, pretrainer.config
        if (mine.widths, mine.groups, mine.image_channels) != (theirs.widths, theirs.groups, theirs.image_channels):
            raise ConfigError(f"epg: the pre-trained encoder has widths {theirs.channels} and {theirs.groups} groups "
                              f"but this denoiser expects {mine.channels} and {mine.groups}")
        self.encoder.load_state_dict(pretrainer.encoder.state_dict())

    def predict(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The decoder's prediction (noise or clean image, per `prediction`) for noisy [-1, 1] images at steps t."""
        return self.decoder(*self.encoder(x_t, t))

    def decode(self, codes: Codes) -> Tensor:
        raise NotImplementedError("a denoiser maps (x_t, t) to a prediction, not codes to images; use sample()")

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """The denoising loss at uniform time steps; `dead_mask` is the Trainer's and unused."""
        x = self.images(batch["x"] if isinstance(batch, dict) else batch)
        g = self.noise_generator()
        t = torch.randint(0, self.config.train_timesteps, (len(x),), generator=g)
        eps = torch.randn(x.shape, generator=g).to(x)
        t = t.to(x.device)
        h, skips, emb = self.encoder(self._noised(x, eps, t), t)
        pred = self.decoder(h, skips, emb)
        target = eps if self.config.prediction == "epsilon" else x
        return Output(x_hat=pred, codes=Codes(self.config.n_latents, dense=EPGEncoder.pooled(h)),
                      losses={"denoise": F.mse_loss(pred, target)})

    @torch.no_grad()
    def sample(self, n: int, seed: int, steps: int | None = None, batch_size: int = 250) -> Tensor:
        """n images (n, C, s, s) in [0, 1], on the CPU, by deterministic DDIM (η = 0) from seeded noise."""
        from diffusers import DDIMScheduler

        c = self.config
        ddim = DDIMScheduler.from_config(self.scheduler.config, clip_sample=True, clip_sample_range=1.0)
        ddim.set_timesteps(steps or c.sample_steps)
        g = torch.Generator().manual_seed(derive_seed("epg_denoiser.sample", seed))
        device = next(self.parameters()).device
        out = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            x = torch.randn((m, c.image_channels, c.image_size, c.image_size), generator=g).to(device)
            for t in ddim.timesteps:
                x = ddim.step(self.predict(x, t.to(device).expand(m)), t, x, eta=0.0).prev_sample
            out.append(((x.clamp(-1, 1) + 1) / 2).cpu())
        return torch.cat(out) if out else torch.zeros(0, c.image_channels, c.image_size, c.image_size)
