"""DDMI: a D2C-VAE whose latent grid becomes positional embeddings of a continuous decoder, and latent diffusion.

After Park et al., "DDMI: Domain-Agnostic Latent Diffusion Models for Synthesizing High-Quality Implicit Neural
Representations" (ICLR 2024). The D2C-VAE (discrete-to-continuous VAE) maps a discrete image x (s×s pixels) to a
Gaussian latent grid z (c_z × s/4 × s/4) and decodes z to a *function*: a conv decoder turns z into three
hierarchically decomposed basis fields Ξ = (Ξ_coarse at s/4, Ξ_middle at s/2, Ξ_fine at s; each `pe_channels`
deep), the positional embedding of a coordinate c ∈ [-1, 1]² is the bilinear interpolation γ(c; Ξ_l) of each field,
and an MLP reads them coarse to fine — h₁ = σ(W₁[γ(c; Ξ_coarse), φ(c)]), h₂ = σ(W₂[h₁, γ(c; Ξ_middle)]),
h₃ = σ(W₃[h₂, γ(c; Ξ_fine)]), f(c) = W₅σ(W₄h₃) — with φ(c) fixed Fourier features of c. Because the decoder is
queried at coordinates, one latent renders at any resolution. The loss is the per-value MSE at the training pixel
centres (plus at extra off-grid coordinates when a batch carries them: a continuous signal can be supervised
anywhere) and kl_weight · KL(q(z|x) ‖ N(0, I)) per output value.

`LatentDiffusion` is the second stage: a DDPM over the frozen D2C-VAE posterior means (scaled to unit variance, as
LDM does), with a small `diffusers.UNet2DModel` as the denoiser, the `diffusers.DDPMScheduler` noise schedule and
deterministic DDIM sampling. It predicts v = √ᾱ·ε − √(1 − ᾱ)·z₀ by default rather than ε: at high noise an
ε-error δ becomes a z₀-error δ·√(1 − ᾱ)/√ᾱ, which a small model trained for minutes on a CPU leaves large enough
to throw samples far outside the data, while v keeps the error balanced at every noise level (ε is a setting).
Both are `Autoencoder`s trained by the one `Trainer`; the diffusion model's "reconstruction" is its prediction, and
its loss the MSE to the prediction target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_base import ConfigBase, setting
from ..errors import DataError, ShapeError
from ..nn.codes import Codes
from ..nn.conv import parse_channels
from ..seeding import derive_seed
from .base import Autoencoder, Output, SeededNoise
from .image_ae import seeded

__all__ = ["D2CVAE", "D2CVAEConfig", "LatentDiffusion", "LatentDiffusionConfig", "OUTPUTS", "pixel_centres",
           "sample_fields"]

OUTPUTS = ("sigmoid", "linear")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = ("v_prediction", "epsilon", "sample")
DOWNSAMPLE = 4  # two stride-2 convs: the latent grid is s/4 on a side


def pixel_centres(size: int, device: torch.device | str | None = None) -> Tensor:
    """(size², 2) coordinates (x, y) in [-1, 1] of a size×size image's pixel centres, row-major."""
    centres = -1.0 + (2.0 * torch.arange(size, device=device, dtype=torch.float32) + 1.0) / size
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x, y], dim=-1).reshape(-1, 2)


def sample_fields(field: Tensor, coords: Tensor) -> Tensor:
    """γ(c; Ξ): bilinear interpolation of a field (n, d, h, w) at coordinates (n, q, 2) → (n, q, d).

    align_corners=False puts the field's cell centres at the pixel centres of an h×w image of [-1, 1]², so a
    field as fine as the image is read without interpolation at the training pixels; outside the outermost
    centres the border value is held."""
    out = F.grid_sample(field, coords.unsqueeze(1).to(field.dtype), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.squeeze(2).transpose(1, 2)


@dataclass
class D2CVAEConfig(ConfigBase):
    section = "model"

    image_channels: int = setting(3, "channels of the discrete signal (3: RGB scenes, 1: SDF fields)")
    image_size: int = setting(32, "side s of the training images (a multiple of 4)")
    latent_channels: int = setting(4, "channels c_z of the latent grid (s/4 × s/4)")
    channels: int = setting(32, "width of the conv encoder and of the basis-field decoder")
    pe_channels: int = setting(16, "channels of each of the three basis fields (the positional-embedding width)")
    hidden: int = setting(64, "width of the coordinate MLP")
    fourier: int = setting(4, "Fourier frequencies 2^k·π (k < fourier) of each coordinate fed to the MLP; 0 = none")
    output: str = setting("sigmoid", f"output map of the MLP: {', '.join(OUTPUTS)} (sigmoid for [0, 1] images)")
    kl_weight: float = setting(1e-3, "weight of KL(q(z|x) ‖ N(0, I)) per output value")
    seed: int = setting(0, "seeds the initial weights and the reparametrisation noise")

    @property
    def latent_size(self) -> int:
        return self.image_size // DOWNSAMPLE

    @property
    def n_latents(self) -> int:
        return self.latent_channels * self.latent_size**2

    def validate(self) -> None:
        for name in ("image_channels", "latent_channels", "channels", "pe_channels", "hidden"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        self._require(self.image_size >= DOWNSAMPLE and self.image_size % DOWNSAMPLE == 0, "image_size",
                      f"must be a positive multiple of {DOWNSAMPLE}")
        self._require(self.fourier >= 0, "fourier", "must be ≥ 0")
        self._require(self.output in OUTPUTS, "output", f"choose one of {list(OUTPUTS)}")
        self._require(math.isfinite(self.kl_weight) and self.kl_weight >= 0, "kl_weight", "must be a number ≥ 0")


class D2CVAE(SeededNoise, Autoencoder):
    """Conv encoder → Gaussian latent grid → three basis fields → coordinate MLP; `render` decodes at any size."""

    kind = "d2c_vae"
    config_class = D2CVAEConfig

    def __init__(self, config: D2CVAEConfig):
        super().__init__(config)
        c, w, pe = config, config.channels, config.pe_channels
        with seeded(derive_seed("d2c_vae.init", c.seed)):
            self.encoder = nn.Sequential(
                nn.Conv2d(c.image_channels, w, 3, padding=1), nn.GELU(),
                nn.Conv2d(w, w, 4, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(w, w, 4, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(w, 2 * c.latent_channels, 3, padding=1))
            self.stem = nn.Sequential(nn.Conv2d(c.latent_channels, w, 3, padding=1), nn.GELU())
            self.up = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                  nn.Conv2d(w, w, 3, padding=1), nn.GELU()) for _ in range(2))
            self.to_fields = nn.ModuleList(nn.Conv2d(w, pe, 1) for _ in range(3))  # coarse, middle, fine
            d_coord = 2 + 4 * c.fourier
            self.mlp = nn.ModuleList([nn.Linear(pe + d_coord, c.hidden), nn.Linear(c.hidden + pe, c.hidden),
                                      nn.Linear(c.hidden + pe, c.hidden), nn.Linear(c.hidden, c.hidden)])
            self.out = nn.Linear(c.hidden, c.image_channels)

    # --- the pieces ---------------------------------------------------------------------------------------
    def _images(self, x: Tensor) -> Tensor:
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.image_channels, c.image_size, c.image_size):
            raise ShapeError(f"d2c_vae: images must be (n, {c.image_channels}, {c.image_size}, {c.image_size}), "
                             f"got {tuple(x.shape)}")
        return x.float()

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance (n, c_z, s/4, s/4) of q(z|x)."""
        mu, logvar = self.encoder(self._images(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def _grid(self, z: Tensor) -> Tensor:
        c = self.config
        return z.reshape(len(z), c.latent_channels, c.latent_size, c.latent_size)

    def basis_fields(self, z: Tensor) -> list[Tensor]:
        """The hierarchically decomposed basis fields [coarse (s/4), middle (s/2), fine (s)] of latent grids z."""
        h = self.stem(self._grid(z))
        fields = [self.to_fields[0](h)]
        for up, to_field in zip(self.up, self.to_fields[1:], strict=True):
            h = up(h)
            fields.append(to_field(h))
        return fields

    def _coordinate_features(self, coords: Tensor) -> Tensor:
        """[c, sin(2^k π c), cos(2^k π c)]: frequencies stop at `fourier` so that they stay below the training
        grid's Nyquist rate (above it the MLP could fit them between pixels and alias at finer resolutions)."""
        feats = [coords]
        for k in range(self.config.fourier):
            feats += [torch.sin(2**k * math.pi * coords), torch.cos(2**k * math.pi * coords)]
        return torch.cat(feats, dim=-1)

    def query_fields(self, fields: list[Tensor], coords: Tensor) -> Tensor:
        """f(c) at coordinates (n, q, 2) (or (q, 2), shared) given the basis fields → (n, q, image_channels)."""
        n = len(fields[0])
        if coords.ndim == 2:
            coords = coords.expand(n, -1, -1)
        if coords.ndim != 3 or coords.shape[-1] != 2 or len(coords) != n:
            raise ShapeError(f"d2c_vae: coordinates must be (q, 2) or ({n}, q, 2), got {tuple(coords.shape)}")
        embeddings = [sample_fields(f, coords) for f in fields]
        return self._mlp(embeddings, self._coordinate_features(coords.to(embeddings[0].dtype)))

    def render_fields(self, fields: list[Tensor], size: int) -> Tensor:
        """Images (n, C, size, size): f at a size×size grid's pixel centres. Bilinear resizing of a field with
        align_corners=False samples exactly the pixel centres (clamped at the border) that `query_fields` reads
        with grid_sample, at a fraction of its cost on a regular grid."""
        n = len(fields[0])
        embeddings = [F.interpolate(f, size=(size, size), mode="bilinear", align_corners=False)
                      .flatten(2).transpose(1, 2) for f in fields]
        features = self._coordinate_features(pixel_centres(size, fields[0].device)).expand(n, -1, -1)
        out = self._mlp(embeddings, features.to(embeddings[0].dtype))
        return out.transpose(1, 2).reshape(n, self.config.image_channels, size, size)

    def _mlp(self, embeddings: list[Tensor], coordinate_features: Tensor) -> Tensor:
        """The coordinate MLP: coarse embedding and coordinates first, the middle and fine ones joined later."""
        coarse, middle, fine = embeddings
        h = F.gelu(self.mlp[0](torch.cat([coarse, coordinate_features], -1)))
        h = F.gelu(self.mlp[1](torch.cat([h, middle], -1)))
        h = F.gelu(self.mlp[2](torch.cat([h, fine], -1)))
        out = self.out(F.gelu(self.mlp[3](h)))
        return torch.sigmoid(out) if self.config.output == "sigmoid" else out

    def query(self, z: Tensor, coords: Tensor) -> Tensor:
        """The decoded function of latents z (n, n_latents) or (n, c_z, s/4, s/4) at coordinates → (n, q, C)."""
        return self.query_fields(self.basis_fields(z), coords)

    def render(self, z: Tensor, size: int | None = None) -> Tensor:
        """Images (n, C, size, size) of latents z sampled at a size×size grid's pixel centres (default: s)."""
        return self.render_fields(self.basis_fields(z), size or self.config.image_size)

    # --- the protocol -------------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        return Codes(self.config.n_latents, dense=self.posterior(x)[0].flatten(1))

    def decode(self, codes: Codes) -> Tensor:
        return self.render(codes.to_dense())

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """Negative ELBO-style loss on the training grid (and on `coords`/`values` when the batch carries them);
        `dead_mask` is the Trainer's and unused."""
        x = batch["x"] if isinstance(batch, dict) else batch
        mu, logvar = self.posterior(x)
        g = self.noise_generator()
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g).to(mu)
        fields = self.basis_fields(z)
        x_hat = self.render_fields(fields, self.config.image_size)
        n_values = x[0].numel()
        losses = {"reconstruction": F.mse_loss(x_hat, x.float()),
                  "kl": self.config.kl_weight * 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum() / (
                      len(x) * n_values)}
        if isinstance(batch, dict) and "coords" in batch:
            if "values" not in batch:
                raise DataError("d2c_vae: a batch with 'coords' needs their 'values' (n, q, channels) too")
            losses["off_grid"] = F.mse_loss(self.query_fields(fields, batch["coords"]), batch["values"].float())
        return Output(x_hat=x_hat, codes=Codes(self.config.n_latents, dense=mu.flatten(1)), losses=losses)


@dataclass
class LatentDiffusionConfig(ConfigBase):
    section = "model"

    latent_channels: int = setting(4, "channels of the latent grid it generates")
    latent_size: int = setting(8, "side of the latent grid")
    channels: str = setting("32,64", "UNet2DModel block widths, one down/up block each (comma-separated)")
    groups: int = setting(8, "GroupNorm groups of the UNet (must divide every width)")
    train_timesteps: int = setting(1000, "diffusion steps T of the DDPM noise schedule")
    beta_schedule: str = setting("scaled_linear", f"noise schedule: {', '.join(BETA_SCHEDULES)}")
    prediction: str = setting("v_prediction", f"what the UNet predicts: {', '.join(PREDICTIONS)}")
    sample_steps: int = setting(50, "DDIM steps when sampling")
    seed: int = setting(0, "seeds the initial weights, the training noise and the time steps")

    @property
    def n_latents(self) -> int:
        return self.latent_channels * self.latent_size**2

    def validate(self) -> None:
        for name in ("latent_channels", "latent_size", "groups", "train_timesteps", "sample_steps"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        widths = parse_channels(self.channels)
        self._require(all(w % self.groups == 0 for w in widths), "groups", f"must divide every width {widths}")
        self._require(self.latent_size % 2 ** (len(widths) - 1) == 0, "latent_size",
                      f"must be divisible by {2 ** (len(widths) - 1)} (one halving per block after the first)")
        self._require(self.beta_schedule in BETA_SCHEDULES, "beta_schedule", f"choose one of {list(BETA_SCHEDULES)}")
        self._require(self.prediction in PREDICTIONS, "prediction", f"choose one of {list(PREDICTIONS)}")
        self._require(self.sample_steps <= self.train_timesteps, "sample_steps", "must be ≤ train_timesteps")


class LatentDiffusion(SeededNoise, Autoencoder):
    """A DDPM over latent grids with a tiny `diffusers.UNet2DModel`; `sample` runs DDIM."""

    kind = "latent_diffusion"
    config_class = LatentDiffusionConfig

    def __init__(self, config: LatentDiffusionConfig):
        super().__init__(config)
        from diffusers import DDPMScheduler, UNet2DModel

        c = config
        widths = tuple(parse_channels(c.channels))
        with seeded(derive_seed("latent_diffusion.init", c.seed)):
            self.unet = UNet2DModel(sample_size=c.latent_size, in_channels=c.latent_channels,
                                    out_channels=c.latent_channels, block_out_channels=widths, layers_per_block=1,
                                    down_block_types=("DownBlock2D",) * len(widths),
                                    up_block_types=("UpBlock2D",) * len(widths), norm_num_groups=c.groups)
        self.scheduler = DDPMScheduler(num_train_timesteps=c.train_timesteps, beta_schedule=c.beta_schedule,
                                       prediction_type=c.prediction, clip_sample=False)
        # LDM's scale factor: latents are divided by their standard deviation so the schedule's unit-variance
        # noise meets unit-variance data (set from the training latents, saved with the weights)
        self.register_buffer("latent_scale", torch.ones(()))

    def _grid(self, z: Tensor) -> Tensor:
        c = self.config
        if z.ndim == 2 and z.shape[1] == c.n_latents:
            return z.reshape(len(z), c.latent_channels, c.latent_size, c.latent_size)
        if z.ndim == 4 and tuple(z.shape[1:]) == (c.latent_channels, c.latent_size, c.latent_size):
            return z
        raise ShapeError(f"latent_diffusion: latents must be (n, {c.n_latents}) or (n, {c.latent_channels}, "
                         f"{c.latent_size}, {c.latent_size}), got {tuple(z.shape)}")

    def initialize_from_data(self, x: Tensor) -> None:
        """The scale factor: the standard deviation of the training latents."""
        x = x["x"] if isinstance(x, dict) else x
        with torch.no_grad():
            self.latent_scale.copy_(x.float().std().clamp_min(1e-6))

    def predict(self, z_t: Tensor, t: Tensor) -> Tensor:
        """The UNet's output at noisy latents z_t and time steps t: ε, v or z₀ as `prediction` says."""
        return self.unet(z_t, t).sample

    def target(self, z: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """What `predict` is trained to output for clean latents z noised with ε at t."""
        if self.config.prediction == "epsilon":
            return eps
        if self.config.prediction == "sample":
            return z
        return self.scheduler.get_velocity(z, eps, t)  # v = √ᾱ_t·ε − √(1 − ᾱ_t)·z

    def encode(self, x: Tensor) -> Codes:
        return Codes(self.config.n_latents, dense=self._grid(x).flatten(1) / self.latent_scale)

    def decode(self, codes: Codes) -> Tensor:
        return codes.to_dense() * self.latent_scale

    def forward(self, batch: Tensor | dict[str, Tensor], dead_mask: Tensor | None = None) -> Output:
        """Noise scaled clean latents at uniform time steps and score the prediction against its target; the codes
        are the prediction (only the Trainer's activity count reads them)."""
        z = self._grid(batch["x"] if isinstance(batch, dict) else batch).float() / self.latent_scale
        g = self.noise_generator()
        t = torch.randint(0, self.config.train_timesteps, (len(z),), generator=g).to(z.device)
        eps = torch.randn(z.shape, generator=g).to(z)
        pred = self.predict(self.scheduler.add_noise(z, eps, t), t)
        return Output(x_hat=pred.flatten(1), codes=Codes(self.config.n_latents, dense=pred.flatten(1)),
                      losses={"diffusion_mse": F.mse_loss(pred, self.target(z, eps, t))})

    @torch.no_grad()
    def sample(self, n: int, seed: int, steps: int | None = None, batch_size: int = 500) -> Tensor:
        """n latents (n, n_latents) in the D2C-VAE's units, by deterministic DDIM (η = 0) from seeded noise."""
        from diffusers import DDIMScheduler

        c = self.config
        ddim = DDIMScheduler.from_config(self.scheduler.config)
        ddim.set_timesteps(steps or c.sample_steps)
        g = torch.Generator().manual_seed(derive_seed("latent_diffusion.sample", seed))
        device = self.latent_scale.device
        out = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = torch.randn((m, c.latent_channels, c.latent_size, c.latent_size), generator=g).to(device)
            for t in ddim.timesteps:
                z = ddim.step(self.predict(z, t.to(device).expand(m)), t, z, eta=0.0).prev_sample
            out.append((z * self.latent_scale).flatten(1).cpu())
        return torch.cat(out) if out else torch.zeros(0, c.n_latents)
