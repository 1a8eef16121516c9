"""Unsupervised lithological mapping of a multispectral raster: stacked-autoencoder codes → k-means, against PCA →
k-means and k-means on the raw pixels, scored against the true unit map.

The stacked autoencoder is trained in two stages, every stage by the one `Trainer`: greedy layer-wise pretraining
(layer i an autoencoder on layer i−1's codes, the first on the per-band standardised pixels), then the stack
fine-tuned end to end as one autoencoder, optionally with a linear head on the codes trained on the few labelled
pixels. Every method's features are clustered by k-means with K = the number of units (10 restarts), and each map
is scored by Hungarian-matched accuracy and Cohen's kappa (`aekit.metrics.mapping`). The sizes are fixed before
measuring: B → 32 → 16 → 4 codes, PCA to the same 4 dimensions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from ..data.sources import ArraySource, DictArraySource
from ..metrics.mapping import hungarian_match, map_scores
from ..models.stacked import LayerAutoencoder, StackedAutoencoder, StackedAutoencoderConfig
from ..train import TrainConfig, Trainer
from ..worlds.raster import RasterScene, RasterWorldConfig, make_raster

__all__ = ["DEFAULT_SIZES", "METHODS", "kmeans_labels", "mapping_study", "train_stacked"]

DEFAULT_SIZES = "32,16,4"
METHODS = ("stacked AE + k-means", "stacked AE + labels + k-means", "PCA + k-means", "raw k-means")
LABELLED_SHARE = 0.1  # labelled rows are repeated to about this share of the fine-tuning rows


def _fit(model, source, steps: int, batch_size: int, lr: float, seed: int) -> None:
    train = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(50, steps - 1),
                        checkpoint_every=0, progress=False, log_every=steps, device="cpu", seed=seed)
    Trainer(model, source, train).fit()


def _standardise(pixels: np.ndarray) -> np.ndarray:
    return ((pixels - pixels.mean(0)) / np.maximum(pixels.std(0), 1e-8)).astype(np.float32)


def train_stacked(pixels: np.ndarray, *, sizes: str = DEFAULT_SIZES, seed: int = 0, pretrain_steps: int = 1500,
                  finetune_steps: int = 3000, batch_size: int = 256, lr: float = 3e-3,
                  labelled: tuple[np.ndarray, np.ndarray] | None = None, n_classes: int = 0) -> StackedAutoencoder:
    """Greedy layer-wise pretraining, then end-to-end fine-tuning, on standardised `pixels` (n, B). With
    `labelled` = (row indices, classes) and `n_classes` > 0, the fine-tuning adds the head's cross-entropy."""
    x = torch.as_tensor(pixels, dtype=torch.float32)
    head = labelled is not None and n_classes > 0
    config = StackedAutoencoderConfig(d=x.shape[1], sizes=sizes, n_classes=n_classes if head else 0, seed=seed)
    layers, h = [], x
    for i, layer_config in enumerate(config.layer_configs()):
        layer = LayerAutoencoder(layer_config)
        _fit(layer, ArraySource(h, batch_size, seed=seed + i, where=f"layer {i + 1} inputs"), pretrain_steps,
             batch_size, lr, seed)
        with torch.no_grad():
            h = layer.encode(h).dense.detach()
        layers.append(layer)
    stack = StackedAutoencoder(config)
    stack.load_layers(layers)
    if head:
        index, classes = labelled
        repeats = max(1, math.ceil(LABELLED_SHARE * len(x) / ((1 - LABELLED_SHARE) * max(len(index), 1))))
        rows = torch.cat([x, x[torch.as_tensor(index)].repeat(repeats, 1)])
        labels = torch.cat([torch.full((len(x),), -1, dtype=torch.int64),
                            torch.as_tensor(classes, dtype=torch.int64).repeat(repeats)])
        source = DictArraySource({"x": rows, "labels": labels}, batch_size, seed=seed, where="fine-tuning rows")
    else:
        source = ArraySource(x, batch_size, seed=seed, where="fine-tuning rows")
    _fit(stack, source, finetune_steps, batch_size, lr, seed)
    stack.eval()
    return stack


def kmeans_labels(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means cluster ids (10 restarts, the best inertia kept)."""
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(features, dtype=np.float64))


def mapping_study(world: RasterWorldConfig | None = None, *, sizes: str = DEFAULT_SIZES, pretrain_steps: int = 1500,
                  finetune_steps: int = 3000, with_labels: bool = True,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Map one scene with every method; returns settings, per-method scores and seconds, and the maps ((H, W) int
    arrays under "maps", cluster ids relabelled to the matched units so the maps' colours agree)."""
    world = world if world is not None else RasterWorldConfig()
    scene: RasterScene = make_raster(world)
    k, seed = world.n_units, world.seed
    pixels, truth = scene.pixels, scene.units.reshape(-1)
    standardised = _standardise(pixels)
    code_size = StackedAutoencoderConfig(d=world.n_bands, sizes=sizes).n_latents
    features: dict[str, Callable[[], np.ndarray]] = {
        "stacked AE + k-means": lambda: _codes(train_stacked(standardised, sizes=sizes, seed=seed,
                                                             pretrain_steps=pretrain_steps,
                                                             finetune_steps=finetune_steps), standardised),
        "stacked AE + labels + k-means": lambda: _codes(train_stacked(
            standardised, sizes=sizes, seed=seed, pretrain_steps=pretrain_steps, finetune_steps=finetune_steps,
            labelled=(scene.labelled_index, scene.labelled_units), n_classes=k), standardised),
        "PCA + k-means": lambda: PCA(n_components=min(code_size, world.n_bands), random_state=seed)
        .fit_transform(pixels),
        "raw k-means": lambda: pixels,
    }
    methods, maps = {}, {"true": scene.units}
    for name, make in features.items():
        if name == "stacked AE + labels + k-means" and not with_labels:
            continue
        start = time.perf_counter()
        clusters = kmeans_labels(make(), k, seed)
        scores = map_scores(truth, clusters)
        methods[name] = {**scores, "seconds": round(time.perf_counter() - start, 2)}
        maps[name] = _matched(truth, clusters, k).reshape(scene.units.shape)
        if progress:
            progress(f"{name}: accuracy {scores['accuracy']:.3f}, kappa {scores['kappa']:.3f}")
    settings = {**world.to_dict(), "sizes": f"{world.n_bands},{sizes}", "pca_components": min(code_size,
                world.n_bands), "pretrain_steps": pretrain_steps, "finetune_steps": finetune_steps,
                "n_labelled": len(scene.labelled_index)}
    return {"settings": settings, "methods": methods, "maps": maps}


def _codes(model: StackedAutoencoder, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.encode(torch.as_tensor(x)).dense.numpy()


def _matched(truth: np.ndarray, clusters: np.ndarray, k: int) -> np.ndarray:
    match = hungarian_match(truth, clusters)
    return np.array([match.get(c, k) for c in range(int(clusters.max()) + 1)])[clusters]
