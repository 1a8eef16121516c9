"""DDMI studies: D2C-VAE reconstruction at the training resolution and at 2×, and latent-diffusion sample quality.

Reconstruction: held-out signals are encoded (posterior means) and decoded at the training pixel centres (1×) and
at a grid twice as fine (2×). On the scene world the 2× target is the 64×64 render of the same factors (the 32×32
scene is its 2×2 average); on the SDF world it is the exact field at the 64×64 pixel centres. References: the
mean training image at 1× and bilinear upsampling of the true 32×32 input at 2× (what a pixel grid gives without
any model).

Sample quality (scene world): latents drawn by DDIM from the latent diffusion model, from the VAE prior N(0, I)
and from a Gaussian fitted to the training latents are decoded and read by a factor classifier (the bundled toy
ViT): coverage = the fraction of the 40 (shape, object hue) classes it assigns to at least one sample, the entropy
of the predicted class distribution, its mean confidence (max softmax averaged over the six factor heads), the
fraction of samples it puts in a held-out pair (combinations never trained on), and the Fréchet distance of the
samples' ViT CLS features to real test scenes. A second real draw (the floor) and the D2C-VAE's reconstructions of
it (the autoencoder's ceiling) are scored the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.sources import ArraySource
from ..metrics.generative import frechet_distance
from ..metrics.representation import psnr
from ..models.ddmi import D2CVAE, D2CVAEConfig, LatentDiffusion, LatentDiffusionConfig
from ..seeding import derive_seed
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .image_models import fit_image_model

__all__ = ["BATCH_SIZE", "DIFFUSION_BATCH", "class_statistics", "decode_latents", "encode_means",
           "reconstruction_scores", "sample_quality", "scenes_study", "sdf_study", "train_d2c_vae",
           "train_latent_diffusion"]

BATCH_SIZE, DIFFUSION_BATCH, LR = 32, 64, 1e-3  # fixed before measuring
OFF_GRID_POINTS = 256  # exact off-grid SDF values per training scene


def train_d2c_vae(images: Tensor, *, steps: int, seed: int, device: str = "cpu", progress: bool = False,
                  coords: Tensor | None = None, values: Tensor | None = None, **config: Any) -> D2CVAE:
    """A D2C-VAE trained by the Trainer on images (n, C, s, s), plus exact `values` (n, q, C) at `coords` (n, q, 2)
    when given; `config` overrides D2CVAEConfig fields."""
    cfg = D2CVAEConfig(image_channels=images.shape[1], image_size=images.shape[-1], seed=seed, **config)
    model = D2CVAE(cfg)
    data = {"x": images} if coords is None else {"x": images, "coords": coords, "values": values}
    fit_image_model(model, data, steps=steps, seed=seed, batch_size=BATCH_SIZE, lr=LR, device=device,
                    progress=progress)
    return model


def train_latent_diffusion(latents: Tensor, vae: D2CVAE, *, steps: int, seed: int, device: str = "cpu",
                           progress: bool = False, channels: str = "32,64") -> LatentDiffusion:
    """The second stage: a LatentDiffusion model trained by the Trainer on frozen posterior means (n, n_latents)."""
    config = LatentDiffusionConfig(latent_channels=vae.config.latent_channels, latent_size=vae.config.latent_size,
                                   channels=channels, seed=seed)
    model = LatentDiffusion(config)
    source = ArraySource(latents, batch_size=DIFFUSION_BATCH, seed=derive_seed("ddmi.latent-batches", seed),
                         where="training latents")
    train = TrainConfig(steps=steps, batch_size=DIFFUSION_BATCH, lr=LR, warmup_steps=min(100, steps // 10),
                        checkpoint_every=0, log_every=max(1, steps // 20), progress=progress, seed=seed,
                        device=device, init_samples=min(len(latents), 8192))
    Trainer(model, source, train).fit()
    return model.cpu().eval()


@torch.no_grad()
def encode_means(vae: D2CVAE, images: Tensor, batch_size: int = 256) -> Tensor:
    """(n, n_latents) posterior means."""
    vae.eval()
    return torch.cat([vae.encode(images[s : s + batch_size]).dense for s in range(0, len(images), batch_size)])


@torch.no_grad()
def decode_latents(vae: D2CVAE, latents: Tensor, size: int | None = None, batch_size: int = 128) -> Tensor:
    """(n, C, size, size) renders of latents at a size×size grid (default: the training size)."""
    vae.eval()
    return torch.cat([vae.render(latents[s : s + batch_size], size) for s in range(0, len(latents), batch_size)])


def reconstruction_scores(vae: D2CVAE, images: Tensor, targets_2x: Tensor) -> dict[str, float]:
    """PSNR (dB, peak 1) of the D2C-VAE's reconstructions at 1× (vs `images`) and 2× (vs `targets_2x`), and the
    references: the mean image at 1×, bilinear upsampling of the true input at 2×."""
    latents = encode_means(vae, images)
    size = images.shape[-1]
    upsampled = F.interpolate(images.float(), scale_factor=2, mode="bilinear", align_corners=False)
    return {"psnr_1x": psnr(images, decode_latents(vae, latents, size)),
            "psnr_2x": psnr(targets_2x, decode_latents(vae, latents, 2 * size)),
            "mean_image_psnr_1x": psnr(images, images.mean(0, keepdim=True).expand_as(images)),
            "bilinear_psnr_2x": psnr(targets_2x, upsampled)}


# --- factor-classifier sample quality ------------------------------------------------------------------------


def class_statistics(logits: Tensor, factor_sizes: tuple[int, ...], held_out: np.ndarray) -> dict[str, float]:
    """Coverage, entropy (nats) and held-out share of the predicted (shape, object hue) classes, and the mean
    confidence, from factor-classifier logits (n, Σ factor_sizes) in Shapes3D factor order.

    `held_out` is a boolean (shapes, hues) mask of the pairs never trained on."""
    blocks = torch.split(logits.float(), list(factor_sizes), dim=1)
    confidence = torch.stack([b.softmax(-1).max(-1).values for b in blocks], dim=1).mean()
    hue, shape = blocks[2].argmax(-1).numpy(), blocks[4].argmax(-1).numpy()
    n_shapes, n_hues = factor_sizes[4], factor_sizes[2]
    counts = np.bincount(shape * n_hues + hue, minlength=n_shapes * n_hues).astype(np.float64)
    p = counts / counts.sum()
    nonzero = p[p > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum()) + 0.0  # + 0.0: one class gives 0, not −0
    return {"coverage": float((counts > 0).mean()), "entropy": entropy,
            "held_out_share": float(p.reshape(n_shapes, n_hues)[held_out].sum()), "confidence": float(confidence)}


def sample_quality(vm, sets: dict[str, Tensor], reference: Tensor) -> dict[str, dict[str, float]]:
    """Per image set: `class_statistics` under the ViT `vm` and the Fréchet distance of its ViT CLS features to
    those of the `reference` images."""
    from ..data.vision import classify, image_embeddings
    from ..worlds.scenes import OOD_PAIRS
    from ..worlds.shapes3d import Shapes3DWorld

    sizes = Shapes3DWorld().factor_sizes
    held_out = np.zeros((sizes[4], sizes[2]), dtype=bool)
    for shape, hue in OOD_PAIRS:
        held_out[shape, hue] = True
    reference_features = image_embeddings(vm, reference)
    out = {}
    for name, images in sets.items():
        stats = class_statistics(classify(vm, images), sizes, held_out)
        stats["frechet"] = frechet_distance(image_embeddings(vm, images), reference_features)
        out[name] = stats
    return out


def _gaussian_fit_latents(latents: Tensor, n: int, seed: int) -> Tensor:
    """n draws from the Gaussian (mean, full covariance) fitted to the training latents: a baseline that keeps
    the latents' first two moments and nothing else."""
    x = latents.double()
    mean, cov = x.mean(0), torch.cov(x.T)
    chol = torch.linalg.cholesky(cov + 1e-6 * cov.diagonal().mean() * torch.eye(len(cov), dtype=torch.float64))
    g = torch.Generator().manual_seed(derive_seed("ddmi.gaussian-fit", seed))
    return (mean + torch.randn((n, len(mean)), generator=g, dtype=torch.float64) @ chol.T).float()


def scenes_study(vm, *, n_train: int, n_eval: int, steps: int, diffusion_steps: int, seed: int,
                 device: str = "cpu", progress: bool = False, diffusion_channels: str = "32,64",
                 **vae_config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the D2C-VAE and the latent diffusion model on `n_train` train-split scenes; score reconstruction on
    `n_eval` test-split scenes and `n_eval` samples of each generator under the ViT `vm`.

    Returns (record, artifacts): artifacts hold the two models and image rows for the PNG."""
    from ..worlds.scenes import sample_scenes
    from ..worlds.shapes3d import Shapes3DWorld

    train = sample_scenes(n_train, seed, "train")
    held = sample_scenes(n_eval, derive_seed("ddmi.eval", seed), "test")
    second = sample_scenes(n_eval, derive_seed("ddmi.eval-second", seed), "test")
    vae = train_d2c_vae(train.images, steps=steps, seed=seed, device=device, progress=progress, **vae_config)
    recon = reconstruction_scores(vae, held.images, Shapes3DWorld().render(held.factors))
    latents = encode_means(vae, train.images)
    ldm = train_latent_diffusion(latents, vae, steps=diffusion_steps, seed=seed, device=device, progress=progress,
                                 channels=diffusion_channels)
    g = torch.Generator().manual_seed(derive_seed("ddmi.prior", seed))
    drawn = {"DDMI (latent diffusion)": ldm.sample(n_eval, seed),
             "VAE prior N(0, I)": torch.randn((n_eval, vae.config.n_latents), generator=g),
             "Gaussian fit to latents": _gaussian_fit_latents(latents, n_eval, seed)}
    sets = {name: decode_latents(vae, z) for name, z in drawn.items()}
    sets["D2C-VAE reconstructions"] = decode_latents(vae, encode_means(vae, second.images))
    sets["real (second draw)"] = second.images
    quality = sample_quality(vm, sets, held.images)
    record = {"world": "scenes", "n_train": n_train, "n_eval": n_eval, "steps": steps,
              "diffusion_steps": diffusion_steps, "vae": vae.config.to_dict(), "diffusion": ldm.config.to_dict(),
              "reconstruction": recon, "samples": quality}
    shown = held.images[:8]
    shown_latents = encode_means(vae, shown)
    rows = {"real 32×32": shown, "reconstruction 1×": decode_latents(vae, shown_latents),
            "real 64×64": Shapes3DWorld().render(held.factors[:8]),
            "reconstruction 2×": decode_latents(vae, shown_latents, 2 * shown.shape[-1]),
            "DDMI samples": sets["DDMI (latent diffusion)"][:8], "VAE prior samples": sets["VAE prior N(0, I)"][:8]}
    return record, {"vae": vae, "diffusion": ldm, "rows": rows}


def _off_grid_points(scenes, n_points: int, seed: int) -> tuple[Tensor, Tensor]:
    """Uniform coordinates (n, q, 2) in [-1, 1]² per scene and the exact field values (n, q, 1) there."""
    rng = np.random.default_rng(derive_seed("ddmi.sdf-points", seed))
    coords = rng.uniform(-1.0, 1.0, (len(scenes), n_points, 2))
    values = np.stack([scene.field(c) for scene, c in zip(scenes, coords, strict=True)])
    return torch.from_numpy(coords.astype(np.float32)), torch.from_numpy(values.astype(np.float32)).unsqueeze(-1)


def sdf_study(*, n_train: int, n_eval: int, steps: int, seed: int, size: int = 32, off_grid: int = OFF_GRID_POINTS,
              device: str = "cpu", progress: bool = False, **vae_config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the D2C-VAE on SDF images (size×size, plus `off_grid` exact values per scene at random coordinates)
    and score reconstruction at 1× and 2× against the exact field; also the fraction of 2× pixels whose sign
    (inside/outside) the decoder gets right."""
    from ..worlds.sdf import render_sdf, sample_sdf_scenes

    train = sample_sdf_scenes(n_train, seed)
    held = sample_sdf_scenes(n_eval, derive_seed("ddmi.sdf-eval", seed))
    images = render_sdf(train, size)
    coords, values = _off_grid_points(train, off_grid, seed) if off_grid else (None, None)
    vae = train_d2c_vae(images, steps=steps, seed=seed, device=device, progress=progress, coords=coords,
                        values=values, output="linear", **vae_config)
    held_images, target = render_sdf(held, size), render_sdf(held, 2 * size)
    recon = reconstruction_scores(vae, held_images, target)
    latents = encode_means(vae, held_images)
    fine = decode_latents(vae, latents, 2 * size)
    recon["sign_accuracy_2x"] = float(((fine > 0) == (target > 0)).float().mean())
    upsampled = F.interpolate(held_images, scale_factor=2, mode="bilinear", align_corners=False)
    recon["bilinear_sign_accuracy_2x"] = float(((upsampled > 0) == (target > 0)).float().mean())
    record = {"world": "sdf", "n_train": n_train, "n_eval": n_eval, "steps": steps, "off_grid_points": off_grid,
              "vae": vae.config.to_dict(), "reconstruction": recon}
    rows = {"exact field 32×32": held_images[:8], "reconstruction 1×": decode_latents(vae, latents[:8]),
            "exact field 64×64": target[:8], "reconstruction 2×": fine[:8]}
    return record, {"vae": vae, "rows": rows}
