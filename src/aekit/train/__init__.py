"""Training: the Trainer, schedules, checkpoints and exact resume, DDP."""

from .config import TrainConfig, learning_rate
from .trainer import METRICS_LOG, Trainer, TrainResult

__all__ = ["METRICS_LOG", "TrainConfig", "TrainResult", "Trainer", "learning_rate"]
