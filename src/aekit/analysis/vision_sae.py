"""SAEs on vision transformers: spliced accuracy, latent-to-factor alignment and out-of-distribution detection.

The SAE reads a ViT's (or CLIP image tower's) residual stream at one hook, on the CLS token, the patches or all
tokens. Scored against the scene world's truth:

- spliced accuracy: the model runs with the hook's selected tokens replaced by the SAE's reconstruction; the
  factor accuracy (ViT) or zero-shot attribute accuracy (CLIP) is compared with the clean model and with the
  tokens mean-ablated, and `recovered` = (spliced − ablated) / (clean − ablated);
- alignment ("SAEs in vision models"-style ontology): per factor value, the best F1 of one latent firing (image
  level: max over the image's tokens) against "the image has this value" (`concept_best_f1`), next to a supervised
  logistic-regression probe on the same activations (mean-pooled over the tokens) as the upper bound;
- OOD detection on held-out (shape, hue) pairs, which no model saw in training: images of the "test" split (in
  distribution, never trained on) against images of the "ood" split, scored by the SAE's relative reconstruction
  error, by the rarity of the latents that fire (Σ −log of each firing latent's training firing rate, mean over
  tokens), and by the baselines maximum softmax probability (the ViT's heads; 1 − mean over factors of the top
  probability) and Mahalanobis distance (Lee et al. 2018: class-conditional means and a shared covariance, per
  factor, on the final CLS state; the minimum distance over classes, mean over factors). AUROC of each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from ..data.vision import VisionModel, classify, image_activations, image_embeddings, select_tokens
from ..errors import ConfigError
from ..metrics.concept_scores import concept_best_f1, probe_f1
from ..models.sae import SparseAutoencoder
from ..worlds.scenes import FactorSample, sample_scenes
from ..worlds.shapes3d import Shapes3DWorld
from .sae_fit import fit_topk_sae
from .splicing import replace_hook

__all__ = ["VisionSAEStudy", "alignment", "image_codes", "ood_detection", "reads_factors",
           "spliced_accuracy", "tokens_per_image", "vision_sae_study"]

FACTOR_NAMES, FACTOR_SIZES = Shapes3DWorld.factor_names, Shapes3DWorld().factor_sizes


def tokens_per_image(vm: VisionModel, tokens: str) -> int:
    patches = (vm.image_size // _patch_size(vm)) ** 2
    return {"all": patches + 1, "cls": 1, "patches": patches}[tokens]


def _patch_size(vm: VisionModel) -> int:
    config = vm.model.config.vision_config if vm.family == "clip" else vm.model.config
    return int(config.patch_size)


@torch.no_grad()
def _dense_codes(sae: SparseAutoencoder, rows: Tensor, chunk: int = 8192) -> Tensor:
    return torch.cat([sae.encode(rows[i:i + chunk]).to_dense() for i in range(0, len(rows), chunk)])


@torch.no_grad()
def _reconstruct(sae: SparseAutoencoder, rows: Tensor, chunk: int = 8192) -> Tensor:
    return torch.cat([sae.decode(sae.encode(rows[i:i + chunk])) for i in range(0, len(rows), chunk)])


# ---- spliced accuracy ---------------------------------------------------------------------------------------


def _token_replacer(tokens: str, replace_rows: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """A hook replacement that rewrites only the selected tokens of a (batch, seq, d) activation."""
    def replace(x: Tensor) -> Tensor:
        out = x.clone()
        part = {"all": slice(None), "cls": slice(0, 1), "patches": slice(1, None)}[tokens]
        chosen = out[:, part]
        out[:, part] = replace_rows(select_tokens(chosen, "all")).reshape(chosen.shape).to(x.dtype)
        return out

    return replace


def _score(vm: VisionModel, images: Tensor, factors: np.ndarray) -> float:
    """The model's headline accuracy: mean factor accuracy (ViT) or mean zero-shot attribute accuracy (CLIP)."""
    from ..worlds.toy_vision import factor_accuracy, zero_shot_accuracy

    if vm.family == "clip":
        return zero_shot_accuracy(vm, images, factors)["mean"]
    return factor_accuracy(classify(vm, images), factors)["mean"]


def spliced_accuracy(vm: VisionModel, sae: SparseAutoencoder, hook: str, tokens: str, scenes: FactorSample,
                     mean: Tensor) -> dict[str, float]:
    """Clean, SAE-spliced and mean-ablated accuracy on `scenes`, and the fraction of accuracy the SAE recovers."""
    param = next(sae.parameters())

    def through_sae(rows: Tensor) -> Tensor:
        return sae.decode(sae.encode(rows.to(param.device, param.dtype))).to(rows.device)

    def ablate(rows: Tensor) -> Tensor:
        return mean.to(rows.device, rows.dtype).expand_as(rows)

    result = {"clean": _score(vm, scenes.images, scenes.factors)}
    for name, rows_fn in (("sae", through_sae), ("mean_ablated", ablate)):
        with replace_hook(vm.model, hook, _token_replacer(tokens, rows_fn)), torch.no_grad():
            result[name] = _score(vm, scenes.images, scenes.factors)
    gap = result["clean"] - result["mean_ablated"]
    result["recovered"] = (result["sae"] - result["mean_ablated"]) / gap if gap > 0 else float("nan")
    return result


# ---- alignment with the factors -----------------------------------------------------------------------------


def _per_image(rows: Tensor, per_image: int, how: str) -> Tensor:
    grouped = rows.reshape(-1, per_image, rows.shape[-1])
    return grouped.amax(1) if how == "max" else grouped.mean(1)


def image_codes(sae: SparseAutoencoder, activations: Tensor, per_image: int) -> Tensor:
    """(images, n_latents) image-level codes: each latent's largest activation over the image's tokens."""
    return _per_image(_dense_codes(sae, activations), per_image, "max")


def alignment(codes: Tensor, activations: Tensor, factors: np.ndarray, per_image: int,
              seed: int = 0) -> dict[str, Any]:
    """Per factor: mean over its values of the best single-latent F1 (image-level codes) and of a linear probe.

    `best` lists, per value, the latent that detects it best and that latent's F1.
    """
    pooled = _per_image(activations, per_image, "mean").numpy()
    out: dict[str, Any] = {}
    for k, name in enumerate(FACTOR_NAMES):
        best = concept_best_f1(codes.numpy(), factors[:, k])
        probe = probe_f1(pooled, factors[:, k], seed=seed)
        out[name] = {"latent_f1": float(np.mean([f1 for _, f1 in best.values()])),
                     "probe_f1": float(np.mean(list(probe.values()))),
                     "best": {str(value): [latent, round(f1, 4)] for value, (latent, f1) in best.items()}}
    out["mean_latent_f1"] = float(np.mean([out[n]["latent_f1"] for n in FACTOR_NAMES]))
    out["mean_probe_f1"] = float(np.mean([out[n]["probe_f1"] for n in FACTOR_NAMES]))
    return out


# ---- out-of-distribution detection --------------------------------------------------------------------------


def _sae_scores(sae: SparseAutoencoder, rows: Tensor, per_image: int, log_rarity: Tensor) -> dict[str, Tensor]:
    x_hat = _reconstruct(sae, rows)
    error = ((rows - x_hat) ** 2).sum(-1) / (rows**2).sum(-1).clamp_min(1e-12)
    fires = _dense_codes(sae, rows) > 0
    rarity = (fires.float() * log_rarity).sum(-1)
    return {"sae_error": error.reshape(-1, per_image).mean(1), "sae_rarity": rarity.reshape(-1, per_image).mean(1)}


def _softmax_score(vm: VisionModel, images: Tensor) -> Tensor:
    logits, start, top = classify(vm, images), 0, []
    for size in FACTOR_SIZES:
        top.append(torch.softmax(logits[:, start:start + size], -1).amax(-1))
        start += size
    return 1.0 - torch.stack(top).mean(0)


class _Mahalanobis:
    """Lee et al. 2018 on one feature space: per factor, class means and a shared (tied) covariance."""

    def __init__(self, features: Tensor, factors: np.ndarray, ridge: float = 1e-3):
        x = features.double()
        self.means, self.precisions = [], []
        for k in range(factors.shape[1]):
            labels = torch.from_numpy(factors[:, k])
            means = torch.stack([x[labels == c].mean(0) for c in range(int(factors[:, k].max()) + 1)])
            centred = x - means[labels]
            covariance = centred.T @ centred / len(x)
            covariance += ridge * covariance.diagonal().mean() * torch.eye(x.shape[1], dtype=x.dtype)
            self.means.append(means)
            self.precisions.append(torch.linalg.inv(covariance))

    def score(self, features: Tensor) -> Tensor:
        x, per_factor = features.double(), []
        for means, precision in zip(self.means, self.precisions, strict=True):
            d = x[:, None, :] - means[None]
            per_factor.append(torch.einsum("ncd,de,nce->nc", d, precision, d).amin(1))
        return torch.stack(per_factor).mean(0).float()


def ood_detection(vm: VisionModel, sae: SparseAutoencoder, hook: str, tokens: str, train: FactorSample,
                  train_rows: Tensor, test: FactorSample, ood: FactorSample) -> dict[str, Any]:
    """AUROC of every OOD score (higher = more unusual) separating `ood` from `test` images, plus the raw scores."""
    per_image = tokens_per_image(vm, tokens)
    firing_rate = (_dense_codes(sae, train_rows) > 0).double().mean(0)
    log_rarity = (-torch.log(firing_rate.clamp_min(1.0 / len(train_rows)))).float()
    scores: dict[str, dict[str, Tensor]] = {}
    for split, scenes in (("test", test), ("ood", ood)):
        rows = image_activations(vm, scenes.images, hook, tokens)
        scores[split] = _sae_scores(sae, rows, per_image, log_rarity)
    if vm.family == "vit":
        features = image_embeddings(vm, train.images)
        mahalanobis = _Mahalanobis(features, train.factors)
        for split, scenes in (("test", test), ("ood", ood)):
            scores[split]["max_softmax"] = _softmax_score(vm, scenes.images)
            scores[split]["mahalanobis"] = mahalanobis.score(image_embeddings(vm, scenes.images))
    labels = np.r_[np.zeros(len(test.images)), np.ones(len(ood.images))]
    auroc = {name: float(roc_auc_score(labels, torch.cat([scores["test"][name], scores["ood"][name]]).numpy()))
             for name in scores["test"]}
    return {"auroc": auroc, "scores": {split: {k: v.tolist() for k, v in s.items()} for split, s in scores.items()}}


def reads_factors(vm: VisionModel) -> bool:
    """Whether the model's accuracy on the scene world can be scored: a CLIP, or a ViT with one head per factor."""
    return vm.family == "clip" or list(getattr(vm.model.config, "factor_sizes", [])) == list(FACTOR_SIZES)


@dataclass
class VisionSAEStudy:
    """A study's record (JSON-ready), its SAE, the test scenes and their image-level codes (for feature grids)."""

    record: dict[str, Any]
    sae: SparseAutoencoder
    test: FactorSample
    codes: Tensor


def vision_sae_study(vm: VisionModel, hook: str, *, tokens: str = "all", n_latents: int = 1024, k: int = 16,
                     steps: int = 2000, n_train: int = 4000, n_eval: int = 1000, seed: int = 0, device: str = "cpu",
                     progress: bool = False) -> VisionSAEStudy:
    """Train a TopK SAE at `hook` on training scenes, then score splicing, alignment and OOD detection."""
    if min(n_train, n_eval) < 2:
        raise ConfigError(f"vision SAE: --n-train and --n-eval must be ≥ 2 (got {n_train}, {n_eval})")
    train, test, ood = (sample_scenes(n, seed, split) for n, split in ((n_train, "train"), (n_eval, "test"),
                                                                       (n_eval, "ood")))
    rows = image_activations(vm, train.images, hook, tokens)
    sae = fit_topk_sae(rows, n_latents=n_latents, k=k, steps=steps, batch_size=1024, seed=seed, device=device,
                       progress=progress, where="vision activations")
    test_rows = image_activations(vm, test.images, hook, tokens)
    x_hat = _reconstruct(sae, test_rows)
    fvu = float(((test_rows - x_hat) ** 2).sum() / ((test_rows - test_rows.mean(0)) ** 2).sum())
    per_image = tokens_per_image(vm, tokens)
    codes = image_codes(sae, test_rows, per_image)
    record: dict[str, Any] = {
        "settings": {"model": vm.path, "family": vm.family, "hook": hook, "tokens": tokens, "n_latents": n_latents,
                     "k": k, "steps": steps, "n_train": n_train, "n_eval": n_eval, "seed": seed},
        "fvu": fvu, "tokens_per_image": per_image,
        "alignment": alignment(codes, test_rows, test.factors, per_image, seed=seed),
        "ood": ood_detection(vm, sae, hook, tokens, train, rows, test, ood),
    }
    if reads_factors(vm):
        record["spliced"] = spliced_accuracy(vm, sae, hook, tokens, test, rows.double().mean(0).float())
    return VisionSAEStudy(record, sae, test, codes)
