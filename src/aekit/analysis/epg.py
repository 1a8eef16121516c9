"""The EPG study: does self-supervised pre-training of the encoder speed up a pixel-space diffusion model?

One architecture, one seed, one stage-2 step budget, two starts: the encoder from scratch, and the encoder after
`pretrain_steps` of EPG's stage 1 (contrastive + representation-consistency InfoNCE on noisy scenes). The encoder's
initial weights, the decoder's initial weights, the batches and the diffusion noise of stage 2 are identical for
both, so the only difference is where the encoder starts. Every `eval_every` stage-2 steps (the Trainer's own
checkpoints), `n_samples` images are drawn by DDIM from seeded noise (the same noise for both runs) and scored by
the Fréchet distance of their toy-ViT CLS features to those of `n_eval` real test scenes. Reported: both FD
curves, the first checkpoint at or below a threshold fixed before measuring, the real-vs-real floor (a second
draw of `n_samples` real test scenes: the distance finite samples leave), the FD of real scenes reduced to a
quarter of their resolution (a reference quality bar), and the pre-training's own cost, in steps and seconds, so
that the two runs can also be compared at equal total steps.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ..data.sources import DictArraySource
from ..metrics.generative import frechet_distance
from ..models.epg import EPGDenoiser, EPGDenoiserConfig, EPGPretrainConfig, EPGPretrainer
from ..seeding import derive_seed
from ..train.checkpoint import list_checkpoints, load_checkpoint
from ..train.config import TrainConfig
from ..train.distributed import resolve_device
from ..train.trainer import Trainer

__all__ = ["BATCH_SIZE", "FROM_SCRATCH", "LR", "PRETRAINED", "SAMPLE_STEPS", "denoiser_curve", "epg_study",
           "pretrain_encoder", "steps_to_threshold", "train_epg"]

BATCH_SIZE, LR = 64, 1e-3  # fixed before measuring, for both stages and both runs
SAMPLE_STEPS = 10  # DDIM steps of every evaluation sample
FROM_SCRATCH, PRETRAINED = "from scratch", "EPG (pre-trained encoder)"


def train_epg(model: EPGPretrainer | EPGDenoiser, images: Tensor, *, steps: int, seed: int, device: str = "cpu",
              progress: bool = False, out_dir: Path | None = None, checkpoint_every: int = 0) -> float:
    """Fit either stage on images (n, C, s, s) in [0, 1] by the Trainer (constant learning rate after a short
    warm-up, so that a checkpoint half-way is the same model a shorter run would end with); with `out_dir`, the
    Trainer keeps every checkpoint there. Returns the seconds it took; the model ends in eval mode on the CPU."""
    source = DictArraySource({"x": images}, BATCH_SIZE, seed=derive_seed("epg.batches", seed), where="training scenes")
    config = TrainConfig(steps=steps, batch_size=BATCH_SIZE, lr=LR, warmup_steps=min(50, steps // 10), decay="none",
                         checkpoint_every=checkpoint_every, keep_checkpoints=max(1, steps),
                         log_every=max(1, steps // 20), progress=progress, seed=seed, device=device)
    start = time.perf_counter()
    Trainer(model, source, config, out_dir=out_dir).fit()
    model.cpu().eval()
    return time.perf_counter() - start


def pretrain_encoder(images: Tensor, *, steps: int, seed: int, channels: str = "32,64,64", device: str = "cpu",
                     progress: bool = False) -> tuple[EPGPretrainer, float]:
    """Stage 1: (the trained EPGPretrainer, seconds)."""
    model = EPGPretrainer(EPGPretrainConfig(channels=channels, seed=seed))
    return model, train_epg(model, images, steps=steps, seed=seed, device=device, progress=progress)


def denoiser_curve(images: Tensor, score, *, steps: int, eval_every: int, seed: int, channels: str = "32,64,64",
                   pretrained: EPGPretrainer | None = None, device: str = "cpu",
                   progress: bool = False) -> tuple[EPGDenoiser, list[dict[str, float]], float]:
    """Stage 2 with every `eval_every`-th Trainer checkpoint scored by `score(model) -> FD`: (final model, the
    curve [{"step", "frechet"}], training seconds)."""
    config = EPGDenoiserConfig(channels=channels, seed=seed)
    model = EPGDenoiser(config)
    if pretrained is not None:
        model.load_encoder(pretrained)
    curve = []
    with tempfile.TemporaryDirectory(prefix="aekit-epg-") as tmp:
        seconds = train_epg(model, images, steps=steps, seed=seed, device=device, progress=progress,
                            out_dir=Path(tmp), checkpoint_every=eval_every)
        for path in list_checkpoints(Path(tmp) / "checkpoints"):
            tensors, meta = load_checkpoint(path)
            snapshot = EPGDenoiser(config)
            snapshot.load_weights({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")},
                                  str(path))
            snapshot.to(resolve_device(device)).eval()  # sample where it trained
            curve.append({"step": int(meta["step"]), "frechet": score(snapshot)})
    return model, sorted(curve, key=lambda r: r["step"]), seconds


def steps_to_threshold(curve: list[dict[str, float]], threshold: float) -> int | None:
    """The first evaluated step whose FD is at or below `threshold`; None when no checkpoint reaches it."""
    return next((int(r["step"]) for r in curve if r["frechet"] <= threshold), None)


def _low_resolution(images: Tensor, factor: int) -> Tensor:
    """Images averaged over factor×factor blocks and scaled back up bilinearly: real scenes without fine detail."""
    small = F.avg_pool2d(images, factor)
    return F.interpolate(small, scale_factor=factor, mode="bilinear", align_corners=False).clamp(0, 1)


def epg_study(vm, *, n_train: int, n_eval: int, n_samples: int, pretrain_steps: int, steps: int, eval_every: int,
              threshold: float, seed: int, channels: str = "32,64,64", device: str = "cpu",
              progress: bool = False) -> tuple[dict[str, Any], dict[str, Tensor], EPGDenoiser]:
    """Run the study on scenes of the world; returns (the JSON record, image rows for the PNG: real scenes and the
    final samples of both runs, the final denoiser that started from the pre-trained encoder)."""
    from ..data.vision import image_embeddings
    from ..worlds.scenes import sample_scenes

    train = sample_scenes(n_train, seed, "train").images
    reference = image_embeddings(vm, sample_scenes(n_eval, derive_seed("epg.reference", seed), "test").images)
    second_draw = sample_scenes(n_samples, derive_seed("epg.second-draw", seed), "test").images
    sample_seed = derive_seed("epg.samples", seed)

    def score(model: EPGDenoiser) -> float:
        return frechet_distance(image_embeddings(vm, model.sample(n_samples, sample_seed, SAMPLE_STEPS)), reference)

    pretrainer, pretrain_seconds = pretrain_encoder(train, steps=pretrain_steps, seed=seed, channels=channels,
                                                    device=device, progress=progress)
    runs: dict[str, Any] = {}
    finals: dict[str, EPGDenoiser] = {}
    for name, start in ((FROM_SCRATCH, None), (PRETRAINED, pretrainer)):
        model, curve, seconds = denoiser_curve(train, score, steps=steps, eval_every=eval_every, seed=seed,
                                               channels=channels, pretrained=start, device=device, progress=progress)
        finals[name] = model
        reached = steps_to_threshold(curve, threshold)
        extra = pretrain_steps if start is not None else 0
        runs[name] = {"curve": curve, "final_frechet": curve[-1]["frechet"], "steps_to_threshold": reached,
                      "total_steps_to_threshold": None if reached is None else reached + extra,
                      "train_seconds": round(seconds, 1), "parameters": sum(p.numel() for p in model.parameters())}
    record = {
        "settings": {"n_train": n_train, "n_eval": n_eval, "n_samples": n_samples, "pretrain_steps": pretrain_steps,
                     "steps": steps, "eval_every": eval_every, "seed": seed, "channels": channels,
                     "batch_size": BATCH_SIZE, "lr": LR, "sample_steps": SAMPLE_STEPS},
        "threshold": threshold,
        "floor_frechet": frechet_distance(image_embeddings(vm, second_draw), reference),
        "quarter_resolution_frechet": frechet_distance(image_embeddings(vm, _low_resolution(second_draw, 4)),
                                                       reference),
        "pretraining": {"steps": pretrain_steps, "seconds": round(pretrain_seconds, 1),
                        "encoder_parameters": sum(p.numel() for p in pretrainer.encoder.parameters())},
        "runs": runs,
    }
    rows = {"real": second_draw[:8], **{name: model.sample(8, sample_seed, SAMPLE_STEPS) for name, model in
                                         finals.items()}}
    return record, rows, finals[PRETRAINED]
