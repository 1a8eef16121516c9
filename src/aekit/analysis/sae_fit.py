"""Fit aekit's TopK SAE to an in-memory activation matrix with the one Trainer: the step every study shares."""

from __future__ import annotations

from torch import Tensor

from ..data.sources import ArraySource
from ..models.sae import SAEConfig, SparseAutoencoder
from ..train.config import TrainConfig
from ..train.trainer import Trainer

__all__ = ["fit_topk_sae", "study_train_config"]


def study_train_config(steps: int, batch_size: int, lr: float, seed: int, device: str, progress: bool) -> TrainConfig:
    """The Trainer settings of an analysis study: warm-up over a tenth of the steps (at most 100), no checkpoints."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(100, steps // 10),
                       checkpoint_every=0, log_every=max(1, steps // 10), progress=progress, seed=seed, device=device)


def fit_topk_sae(x: Tensor, *, n_latents: int, k: int, steps: int, batch_size: int, lr: float = 1e-3, seed: int = 0,
                 device: str = "cpu", progress: bool = False, where: str = "activations") -> SparseAutoencoder:
    """A TopK SAE trained on the rows of x; returned on the CPU in eval mode. `where` names x in error messages."""
    model = SparseAutoencoder(SAEConfig(d_in=x.shape[1], n_latents=n_latents, k=k, architecture="topk"), seed=seed)
    Trainer(model, ArraySource(x, batch_size, seed=seed, where=where),
            study_train_config(steps, batch_size, lr, seed, device, progress)).fit()
    return model.cpu().eval()
