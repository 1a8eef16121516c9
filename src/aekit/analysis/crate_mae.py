"""CRATE-MAE against a standard MAE of the same shape on the scene world: size, masked completion, token structure.

Both models are trained by the one Trainer for the same steps on the same seeded 32×32 scenes (train split), then
measured on scenes neither has seen (fresh draws whose factor combination is not in the training set, and the
out-of-distribution split of held-out (shape, object hue) pairs):

- parameters: trained weights of each model (the fixed positions are not weights);
- masked-patch PSNR: 10·log10(1 / MSE) over the pixels of the masked patches, predictions clipped to [0, 1], with
  the same masks for both models (`eval_mask`); the floor fills every masked patch with the mean colour of the
  image's visible patches;
- per layer, on the unmasked images: the coding rate R(Z) = ½ logdet(I + d/(N ε²) ZᵀZ) of each image's N tokens
  (d × N, every token scaled to unit length so that R measures how the tokens spread over directions, not their
  scale, and the two models compare), averaged over images; and the fraction of exactly-zero token entries (the
  sparsity CRATE's ISTA steps produce; a ViT block's output is dense).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..models.crate_mae import MAE, CrateMAE, CrateMAEConfig, MAEConfig
from ..models.masked_patches import MaskedPatchAutoencoder, eval_mask, patchify
from ..seeding import derive_seed
from ..worlds.factors import FactorSample
from ..worlds.scenes import sample_scenes, scene_world
from .image_models import fit_image_model

__all__ = ["BATCH_SIZE", "EPSILON", "LR", "MODELS", "build_models", "coding_rate", "held_out_scenes",
           "layer_statistics", "masked_psnr", "run_crate_mae_study", "visible_mean_psnr"]

# One recipe for both models, fixed before measuring: of lr 1e-3 and 3e-3, 3e-3 gave the MAE (and CRATE-MAE) the
# better masked-patch PSNR after 300 steps at width 96, depth 4, seed 0.
BATCH_SIZE, LR = 32, 3e-3
EPSILON = 0.5  # distortion ε of the coding rate (tokens have unit length)
MODELS = ("CRATE-MAE", "MAE")


def coding_rate(tokens: Tensor, epsilon: float = EPSILON) -> Tensor:
    """(b,) R(Z) = ½ logdet(I + d/(N ε²) ZᵀZ) of each image's (N, d) tokens, each token scaled to unit length
    (a zero token stays zero)."""
    b, n, d = tokens.shape
    z = tokens.double()
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    gram = z @ z.transpose(1, 2) if n <= d else z.transpose(1, 2) @ z  # the smaller Gram: same determinant
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return 0.5 * torch.logdet(eye + d / (n * epsilon**2) * gram)


@torch.no_grad()
def layer_statistics(model: MaskedPatchAutoencoder, images: Tensor, epsilon: float = EPSILON,
                     batch_size: int = 250) -> dict[str, list[dict[str, float]]]:
    """Per encoder and decoder layer: mean coding rate of the tokens and fraction of exactly-zero entries."""
    model.eval()
    rates: dict[str, list[list[Tensor]]] = {}
    zeros: dict[str, list[list[Tensor]]] = {}
    for start in range(0, len(images), batch_size):
        for part, layers in model.layer_tokens(images[start : start + batch_size]).items():
            for i, tokens in enumerate(layers):
                rates.setdefault(part, [[] for _ in layers])[i].append(coding_rate(tokens, epsilon))
                zeros.setdefault(part, [[] for _ in layers])[i].append((tokens == 0).double().mean(-1).mean(-1))
    return {part: [{"coding_rate": float(torch.cat(r).mean()), "zero_fraction": float(torch.cat(z).mean())}
                   for r, z in zip(rates[part], zeros[part], strict=True)] for part in rates}


def _psnr(mse: float) -> float:
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


@torch.no_grad()
def masked_psnr(model: MaskedPatchAutoencoder, images: Tensor, masked: Tensor, batch_size: int = 250) -> float:
    """PSNR (dB, peak 1) over the pixels of the masked patches of the model's completions."""
    model.eval()
    p = model.config.patch
    total, count = 0.0, 0
    for start in range(0, len(images), batch_size):
        x, m = images[start : start + batch_size], masked[start : start + batch_size]
        err = (patchify(model.complete(x, m), p) - patchify(x, p)).square()[m]
        total, count = total + float(err.sum()), count + err.numel()
    return _psnr(total / count)


def visible_mean_psnr(images: Tensor, masked: Tensor, patch: int) -> float:
    """The floor: PSNR of filling each masked patch with the mean colour of the image's visible patches."""
    patches = patchify(images, patch)
    b, n, _ = patches.shape
    pixels = patches.reshape(b, n, patch * patch, -1)  # (b, N, p·p, C)
    visible = (~masked).float()[..., None, None]
    colour = (pixels * visible).sum((1, 2), keepdim=True) / (visible.sum(1, keepdim=True) * patch * patch)
    return _psnr(float((pixels - colour).square()[masked].mean()))


def held_out_scenes(n: int, seed: int, training: FactorSample) -> FactorSample:
    """n train-split scenes drawn from a stream of their own, none with a factor combination `training` holds."""
    world = scene_world()
    seen = set(world.factors_to_index(training.factors).tolist())
    stream = derive_seed("crate_mae.held_out", seed) % 2**31
    draw = sample_scenes(n + n // 4 + 16, stream, "train")
    fresh = np.flatnonzero([i not in seen for i in world.factors_to_index(draw.factors).tolist()])[:n]
    if len(fresh) < n:  # only when the training set covers most of the world
        raise ConfigError(f"crate-mae: could not draw {n} scenes outside the {len(training.factors)} training ones")
    return FactorSample(draw.images[fresh], draw.factors[fresh], draw.values[fresh])


def build_models(width: int, depth: int, heads: int, patch: int, seed: int) -> dict[str, MaskedPatchAutoencoder]:
    """CRATE-MAE and an MAE of the same width, depth, heads and patching, both seeded by `seed`."""
    shape = {"width": width, "depth": depth, "heads": heads, "patch": patch, "seed": seed}
    return {"CRATE-MAE": CrateMAE(CrateMAEConfig(**shape)), "MAE": MAE(MAEConfig(**shape))}


def run_crate_mae_study(*, width: int = 96, depth: int = 4, heads: int = 4, patch: int = 4, steps: int = 1500,
                        n_train: int = 10000, n_test: int = 1000, seed: int = 0, device: str = "cpu",
                        progress: bool = False, n_examples: int = 6) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Train both models for `steps` Trainer steps and measure them; returns (the record, the example images the
    plot shows: original, masked input and each model's completion)."""
    if steps < 1 or n_train < BATCH_SIZE or n_test < 1 or seed < 0:
        raise ConfigError(f"crate-mae: need steps ≥ 1, n_train ≥ {BATCH_SIZE}, n_test ≥ 1 and seed ≥ 0 (got steps "
                          f"{steps}, n_train {n_train}, n_test {n_test}, seed {seed})")
    models = build_models(width, depth, heads, patch, seed)  # validates the shape before any scene is rendered
    train = sample_scenes(n_train, seed, "train")
    tests = {"held_out": held_out_scenes(n_test, seed, train).images, "ood": sample_scenes(n_test, seed, "ood").images}
    config = models["MAE"].config
    masks = {name: eval_mask(len(images), config, seed) for name, images in tests.items()}
    record: dict[str, Any] = {
        "settings": {"width": width, "depth": depth, "heads": heads, "patch": patch, "mask_ratio": config.mask_ratio,
                     "steps": steps, "batch_size": BATCH_SIZE, "lr": LR, "n_train": n_train, "n_test": n_test,
                     "seed": seed, "epsilon": EPSILON, "image_size": config.image_size},
        "floor_psnr": {name: visible_mean_psnr(images, masks[name], patch) for name, images in tests.items()},
        "models": {},
    }
    k = min(n_examples, n_test)
    examples = {"original": tests["held_out"][:k], "masked": masks["held_out"][:k]}
    for name, model in models.items():
        start = time.perf_counter()
        history = fit_image_model(model, train.images, steps=steps, seed=seed, batch_size=BATCH_SIZE, lr=LR,
                                  device=device, progress=progress)
        seconds = time.perf_counter() - start
        record["models"][name] = {
            "parameters": model.parameter_count(),
            "train_seconds": round(seconds, 1),
            "final_train_loss": history[-1]["masked_mse"],
            "psnr": {split: masked_psnr(model, images, masks[split]) for split, images in tests.items()},
            "layers": layer_statistics(model, tests["held_out"]),
        }
        examples[name] = model.complete(examples["original"], examples["masked"])
    crate, mae = record["models"]["CRATE-MAE"], record["models"]["MAE"]
    record["parameter_ratio"] = crate["parameters"] / mae["parameters"]
    record["psnr_gap_db"] = {split: crate["psnr"][split] - mae["psnr"][split] for split in tests}
    return record, examples
