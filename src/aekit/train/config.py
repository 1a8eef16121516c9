"""Training hyper-parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config_base import ConfigBase, setting

DECAYS = ("linear", "cosine", "none")
PRECISIONS = ("float32", "bfloat16")


@dataclass
class TrainConfig(ConfigBase):
    section = "train"

    steps: int = setting(2000, "optimizer steps (Adam), one batch each")
    batch_size: int = setting(1024, "rows per step (the global batch: split evenly over ranks under DDP)")
    lr: float = setting(1e-3, "peak learning rate")
    beta1: float = setting(0.9, "Adam β1, in [0, 1)")
    beta2: float = setting(0.999, "Adam β2, in [0, 1)")
    warmup_steps: int = setting(50, "steps of linear learning-rate warm-up; 0 = none")
    decay: str = setting("linear", f"shape of the final learning-rate decay: {', '.join(DECAYS)}")
    decay_start: float = setting(0.8, "fraction of the steps after which the decay begins")
    min_lr_ratio: float = setting(0.0, "learning rate at the end of the decay, as a fraction of lr")
    grad_clip: float = setting(1.0, "maximum global gradient norm; 0 disables clipping")
    dead_after_samples: int = setting(50_000, "a latent silent for this many rows counts as dead (the AuxK loss "
                                              "targets it)")
    init_samples: int = setting(8192, "rows read for the data-dependent initialisation (input scale, decoder bias)")
    checkpoint_every: int = setting(500, "steps between checkpoints (what --resume continues from); "
                                         "0 = only the final model")
    keep_checkpoints: int = setting(2, "newest checkpoints kept; older ones are deleted")
    log_every: int = setting(50, "steps between records in metrics.jsonl")
    buffer_rows: int = setting(262144, "rows of an activation store held in memory for shuffling")
    seed: int = setting(0, "seeds the initialisation and the batch order; the same seed gives the same numbers "
                           "on CPU")
    device: str = setting("auto", "auto, cpu or cuda", "auto = cuda when available, else cpu")
    precision: str = setting("float32", "float32, or bfloat16: the forward pass under autocast, parameters and "
                                        "Adam state stay float32")
    progress: bool = setting(True, "show a progress bar (true/false)")

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
