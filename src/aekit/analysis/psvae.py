"""PS-VAE study: does reconstructing a frozen teacher's features make a VAE's latent as readable as the teacher?

A PS-VAE (pixel + semantic reconstruction) and the pixel-only VAE of the same architecture and seed are trained on
the same scenes; the teacher's features (`aekit.data.vision.image_embeddings`: a ViT's final normalised CLS state,
or CLIP's image embedding) of every training image are computed once, since the teacher is frozen. Each
representation — both latents and the teacher's own features — gets one multinomial logistic-regression probe per
Shapes3D factor, fitted on the training scenes and scored on held-out ones; reconstruction PSNR is measured on the
held-out scenes. The target: PS-VAE's mean probe accuracy within 2 points of the teacher's, at a PSNR no more than
1 dB below the pixel-only VAE's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.vision import VisionModel, image_embeddings
from ..errors import ShapeError
from ..metrics.representation import probe_accuracy, psnr
from ..models.psvae import PSVAE, PSVAEConfig
from ..seeding import derive_seed
from ..worlds.factors import FactorSample
from ..worlds.shapes3d import Shapes3DWorld
from .image_models import CHANNELS, decode_latents, encode_latents, fit_image_model

__all__ = ["PIXEL_ONLY", "PS_VAE", "TEACHER", "psvae_study", "standardize", "teacher_features"]

PS_VAE, PIXEL_ONLY, TEACHER = "PS-VAE", "pixel-only VAE", "teacher"


def teacher_features(teacher: VisionModel, images: Tensor) -> Tensor:
    """The frozen teacher's feature vector of every image, on the CPU."""
    return image_embeddings(teacher, images)


def standardize(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    """Both feature sets z-scored with the training set's per-feature mean and std.

    A final layer norm leaves a few feature dimensions far larger than the rest; unscaled, they would dominate the
    squared error. Per-feature affine scaling keeps every linear fact about the features (what a probe reads)."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _probe(train: Tensor, test: Tensor, train_scenes: FactorSample, test_scenes: FactorSample) -> dict[str, Any]:
    return probe_accuracy(train, train_scenes.factors, test, test_scenes.factors, Shapes3DWorld.factor_names)


def psvae_study(train: FactorSample, test: FactorSample, train_features: Tensor, test_features: Tensor, *,
                steps: int, seed: int, n_latents: int = 32, semantic_weight: float = 4.0, beta: float = 0.1,
                channels: str = CHANNELS, device: str = "cpu",
                progress: bool = False) -> tuple[dict[str, Any], dict[str, PSVAE]]:
    """Train PS-VAE and the pixel-only VAE on `train`, probe both latents and the teacher's features.

    `train_features` / `test_features` are the frozen teacher's features of the scenes (`teacher_features`); they
    are standardised with the training set's statistics. Returns (record, {"PS-VAE": model, "pixel-only VAE":
    model}); the record has, per representation, the probe accuracies (per factor and mean) and, for the two VAEs,
    the held-out PSNR, plus the two target gaps."""
    if len(train_features) != len(train.images) or len(test_features) != len(test.images):
        raise ShapeError(f"psvae: {len(train_features)}/{len(test_features)} teacher feature rows for "
                         f"{len(train.images)}/{len(test.images)} scenes")
    train_features, test_features = standardize(train_features.float(), test_features.float())
    settings = {"n_latents": n_latents, "beta": beta, "feature_dim": int(train_features.shape[1]),
                "image_size": int(train.images.shape[-1]), "channels": channels}
    configs = {PS_VAE: PSVAEConfig(semantic_weight=semantic_weight, **settings),
               PIXEL_ONLY: PSVAEConfig(semantic_weight=0.0, **settings)}
    record: dict[str, Any] = {TEACHER: {"probe": _probe(train_features, test_features, train, test), "psnr": None}}
    models = {}
    for name, config in configs.items():
        model = PSVAE(config, seed=derive_seed("psvae-init", seed))  # the same initial weights for both
        history = fit_image_model(model, {"x": train.images, "features": train_features}, steps=steps, seed=seed,
                                  device=device, progress=progress)
        codes = encode_latents(model, test.images)
        entry = {"probe": _probe(encode_latents(model, train.images), codes, train, test),
                 "psnr": psnr(test.images, decode_latents(model, codes)), "final_losses": _losses(history[-1])}
        with torch.no_grad():  # how well the semantic decoder reproduces the teacher on held-out scenes
            predicted = model.semantic_decoder(codes)
        entry["feature_cosine"] = float(torch.nn.functional.cosine_similarity(predicted, test_features).mean())
        record[name], models[name] = entry, model
    record["targets"] = {
        "probe_gap_points": 100 * (record[TEACHER]["probe"]["mean"] - record[PS_VAE]["probe"]["mean"]),
        "psnr_gap_db": record[PS_VAE]["psnr"] - record[PIXEL_ONLY]["psnr"],
    }
    record["targets"]["met"] = bool(record["targets"]["probe_gap_points"] <= 2.0
                                    and record["targets"]["psnr_gap_db"] >= -1.0)
    record["settings"] = {**settings, "semantic_weight": semantic_weight, "steps": steps, "seed": seed,
                          "n_train": len(train.images), "n_test": len(test.images)}
    return record, models


def _losses(entry: dict[str, Any]) -> dict[str, float]:
    """The loss terms of a Trainer history record (its bookkeeping fields dropped)."""
    skip = {"step", "lr", "samples", "l0", "dead_fraction", "elapsed_s"}
    return {k: float(v) for k, v in entry.items() if k not in skip and np.isfinite(v)}
