"""Training hyper-parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config_base import ConfigBase

DECAYS = ("linear", "cosine", "none")
PRECISIONS = ("float32", "bfloat16")


@dataclass
class TrainConfig(ConfigBase):
    section = "train"

    steps: int = 2000
    batch_size: int = 1024  # global batch: split evenly over ranks under DDP
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 50
    decay: str = "linear"  # shape of the final learning-rate decay
    decay_start: float = 0.8  # fraction of steps after which the decay begins
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    dead_after_samples: int = 50_000  # a latent silent for this many samples counts as dead (AuxK target)
    init_samples: int = 8192  # rows used for data-dependent initialisation (input scale, decoder bias)
    checkpoint_every: int = 500  # steps; 0 = only the final model
    keep_checkpoints: int = 2
    log_every: int = 50
    buffer_rows: int = 262144  # rows an activation store may hold in memory for shuffling
    seed: int = 0
    device: str = "auto"  # "auto", "cpu" or "cuda"
    precision: str = "float32"  # "bfloat16": forward under autocast; parameters and Adam stay float32
    progress: bool = True

    def validate(self) -> None:
        self._require(self.steps >= 1, "steps", "must be ≥ 1")
        self._require(self.batch_size >= 1, "batch_size", "must be ≥ 1")
        self._require(math.isfinite(self.lr) and self.lr > 0, "lr", "learning rate must be a positive number")
        self._require(0 <= self.beta1 < 1, "beta1", "must be in [0, 1)")
        self._require(0 <= self.beta2 < 1, "beta2", "must be in [0, 1)")
        self._require(self.warmup_steps >= 0, "warmup_steps", "must be ≥ 0")
        self._require(self.decay in DECAYS, "decay", f"choose one of {list(DECAYS)}")
        self._require(0 <= self.decay_start <= 1, "decay_start", "must be a fraction in [0, 1]")
        self._require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        self._require(self.grad_clip >= 0, "grad_clip", "must be ≥ 0")
        self._require(self.dead_after_samples >= 1, "dead_after_samples", "must be ≥ 1")
        self._require(self.init_samples >= 1, "init_samples", "must be ≥ 1")
        self._require(self.checkpoint_every >= 0, "checkpoint_every", "must be ≥ 0")
        self._require(self.keep_checkpoints >= 1, "keep_checkpoints", "must be ≥ 1")
        self._require(self.log_every >= 1, "log_every", "must be ≥ 1")
        self._require(self.buffer_rows >= 1, "buffer_rows", "must be ≥ 1")
        self._require(self.device in ("auto", "cpu", "cuda"), "device", "choose auto, cpu or cuda")
        self._require(self.precision in PRECISIONS, "precision", f"choose one of {list(PRECISIONS)}")


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, a constant plateau, then a linear or cosine decay to min_lr_ratio · lr."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_from = int(config.decay_start * config.steps)
    if config.decay == "none" or step < decay_from or config.steps <= decay_from:
        return config.lr
    progress = (step - decay_from) / (config.steps - decay_from)
    floor = config.min_lr_ratio
    if config.decay == "cosine":
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = 1 - (1 - floor) * progress
    return config.lr * factor
