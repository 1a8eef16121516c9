"""StackVAE-G on the time-series world: windows, training by the one Trainer, scoring and the metric record."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.sources import ArraySource
from ..errors import ConfigError
from ..metrics.anomaly import best_f1, best_pa_f1, graph_auroc, roc_auc
from ..models.stackvae import StackVAE, StackVAEConfig
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from ..worlds.timeseries import TimeSeriesWorld

__all__ = ["BATCH_SIZE", "LR", "detection_metrics", "stackvae_metrics", "scoring_windows", "train_stackvae", "windows"]

BATCH_SIZE, LR = 128, 3e-3  # fixed before measuring on seed 0 of the default world


def windows(series: np.ndarray, window: int) -> torch.Tensor:
    """(T, C) series → (T − w + 1, C·w) sliding windows, channel-major; window i ends at step i + w − 1."""
    s = torch.as_tensor(np.ascontiguousarray(series), dtype=torch.float32).T
    if s.shape[1] < window:
        raise ConfigError(f"anomaly: a series of {s.shape[1]} steps is shorter than the window {window}")
    return s.unfold(1, window, 1).permute(1, 0, 2).reshape(s.shape[1] - window + 1, -1).contiguous()


def scoring_windows(world: TimeSeriesWorld, window: int) -> torch.Tensor:
    """One window ending at every test step: the last w − 1 train steps are prepended (the series is continuous)."""
    return windows(np.concatenate([world.train[len(world.train) - (window - 1):], world.test]), window)


def train_stackvae(world: TimeSeriesWorld, *, window: int = 32, steps: int = 1000, seed: int = 0,
                   progress: bool = False) -> StackVAE:
    """A StackVAE-G trained by the Trainer on the world's (anomaly-free) train windows."""
    model = StackVAE(StackVAEConfig(channels=world.channels, window=window, seed=seed))
    train = TrainConfig(steps=steps, batch_size=BATCH_SIZE, lr=LR, warmup_steps=min(50, steps // 10),
                        checkpoint_every=0, log_every=max(1, steps // 10), progress=progress, seed=seed, device="cpu")
    Trainer(model, ArraySource(windows(world.train, window), BATCH_SIZE, seed=seed, where="train windows"),
            train).fit()
    return model


def detection_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Best-threshold F1, point-adjusted F1 (inflated, see aekit.metrics.anomaly) and AUROC of per-step scores."""
    f1, pa = best_f1(labels, scores), best_pa_f1(labels, scores)
    return {"f1": f1["f1"], "f1_threshold": f1["threshold"], "pa_f1": pa["f1"], "auroc": roc_auc(labels, scores)}


def stackvae_metrics(model: StackVAE, world: TimeSeriesWorld) -> tuple[dict[str, Any], np.ndarray]:
    """The detection metrics on the test split plus graph recovery, and the per-step scores."""
    scores = model.score(scoring_windows(world, model.config.window)).numpy()
    record = detection_metrics(world.labels, scores)
    record["graph_auroc"] = graph_auroc(model.adjacency().detach().numpy(), world.adjacency)
    return record, scores
