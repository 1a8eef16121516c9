"""The one training loop every aekit autoencoder uses.

Adam (AdamW for models whose `parameter_groups()` set weight decay) with warm-up and decay, gradient
clipping, the model's parameter constraints, dead-latent tracking, a JSONL metrics log, a progress bar,
checkpoints every N steps with exact resume, and DDP under torchrun. Batches are tensors, or dicts of tensors
(labelled data) that are sliced and moved key by key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..models.base import Autoencoder
from .checkpoint import (
    DeadLatentTracker,
    flatten_optimizer,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    unflatten_optimizer,
)
from .config import TrainConfig, learning_rate
from .distributed import DistInfo, resolve_device, setup_distributed
from .optim import gradient_norm, make_optimizer

METRICS_LOG = "metrics.jsonl"
Batch = torch.Tensor | dict[str, torch.Tensor]  # dicts carry labelled data, e.g. {"x": images, "labels": ...}


def _map_batch(batch: Batch, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
    return {key: fn(value) for key, value in batch.items()} if isinstance(batch, dict) else fn(batch)


def _batch_rows(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if isinstance(batch, dict) else len(batch)


def _concat_batches(batches: list[Batch]) -> Batch:
    if isinstance(batches[0], dict):
        return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}
    return torch.cat(batches)


@dataclass
class TrainResult:
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)  # the records logged by this call, in order


class Trainer:
    def __init__(self, model: Autoencoder, source, config: TrainConfig, out_dir: str | Path | None = None):
        config.validate()
        self.config = config
        self.device = resolve_device(config.device)
        self.dist: DistInfo = setup_distributed(self.device)
        if config.batch_size % self.dist.world_size:
            raise ConfigError(
                f"train.batch_size: {config.batch_size} does not split evenly over {self.dist.world_size} ranks"
            )
        self.model = model.to(self.device)
        self.source = source
        self.out_dir = Path(out_dir) if out_dir is not None else None
        groups = model.parameter_groups()
        self.optimizer = make_optimizer(groups or self.model.parameters(), lr=config.lr,
                                        betas=(config.beta1, config.beta2))
        n_latents = getattr(model.config, "n_latents", 0)
        self.tracker = DeadLatentTracker(n_latents, self.device)
        self.step = 0
        self._initialized = False

    # --- checkpoints --------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path | None:
        return self.out_dir / "checkpoints" if self.out_dir else None

    def save_checkpoint(self) -> Path | None:
        if self.checkpoint_root is None or not self.dist.is_main:
            return None
        optim_tensors, optim_meta = flatten_optimizer(self.optimizer.state_dict())
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update(optim_tensors)
        tensors["tracker.samples_since_fired"] = self.tracker.samples_since_fired
        meta = {
            "source": self.source.state_dict(),
            "optimizer": optim_meta,
            "train_config": self.config.to_dict(),
            "model": self.model.describe(),
            "model_training_state": self.model.training_state(),
        }
        return save_checkpoint(self.checkpoint_root, self.step, tensors, meta, self.config.keep_checkpoints)

    def resume(self) -> bool:
        """Continue from the newest checkpoint in out_dir; False when there is none."""
        path = latest_checkpoint(self.checkpoint_root) if self.checkpoint_root else None
        if path is None:
            return False
        tensors, meta = load_checkpoint(path)
        model_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_weights(model_state, str(path / "state.safetensors"))
        self.optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
        self.tracker.samples_since_fired.copy_(tensors["tracker.samples_since_fired"])
        self.model.load_training_state(meta.get("model_training_state", {}))
        self.source.load_state_dict(meta["source"])
        self.step = int(meta["step"])
        self._initialized = True
        self._truncate_log(self.step)
        return True

    # --- the loop -----------------------------------------------------------------------------------
    def _initialize(self) -> None:
        """Data-dependent init from the first rows of the stream, then rewind so training reads them too."""
        self._initialized = True
        if type(self.model).initialize_from_data is Autoencoder.initialize_from_data:
            return  # the model has no data-dependent init: reading init_samples rows would be wasted work
        cursor = self.source.state_dict()
        rows, batches = 0, []
        batch_iter = iter(self.source)
        while rows < self.config.init_samples:
            batches.append(next(batch_iter))
            rows += _batch_rows(batches[-1])
        self.source.load_state_dict(cursor)
        sample = _map_batch(_concat_batches(batches), lambda t: t[: self.config.init_samples].to(self.device))
        self.model.initialize_from_data(sample)

    def _local_slice(self, batch: Batch) -> Batch:
        per_rank = _batch_rows(batch) // self.dist.world_size
        return _map_batch(batch, lambda t: t[self.dist.rank * per_rank : (self.dist.rank + 1) * per_rank])

    def fit(self) -> TrainResult:
        cfg = self.config
        if not self._initialized:
            self._initialize()
        net = self.model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(self.model, device_ids=device_ids)
        history: list[dict[str, Any]] = []
        bar = tqdm(
            total=cfg.steps, initial=self.step, disable=not (cfg.progress and self.dist.is_main),
            desc="train", unit="step", dynamic_ncols=True,
        )
        batches = iter(self.source)
        start = time.perf_counter()
        self.model.train()
        while self.step < cfg.steps:
            x = _map_batch(self._local_slice(next(batches)), lambda t: t.to(self.device, non_blocking=True))
            lr = learning_rate(cfg, self.step)
            out, loss, dead = self.train_step(x, lr, net)

            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                record = self._log(out, loss, lr, dead, start)
                history.append(record)
                bar.set_postfix(loss=f"{record['loss']:.4f}", l0=f"{record['l0']:.1f}",
                                dead=f"{record['dead_fraction']:.2f}")
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save_checkpoint()
            bar.update(1)
        bar.close()
        self.model.eval()
        if cfg.checkpoint_every:
            self.save_checkpoint()
        return TrainResult(steps=self.step, history=history)

    def train_step(self, x: Batch, lr: float,
                   net: torch.nn.Module | None = None) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """One optimisation step on the batch `x` (already on the device): forward, backward, the model's gradient
        hooks, clipping, Adam, the model's constraints, dead-latent bookkeeping. Returns (output, loss, the dead
        mask used). `fit` runs this for every batch; benchmarks time it as the cost of a step."""
        cfg = self.config
        net = self.model if net is None else net
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        dead = self.tracker.dead_mask(cfg.dead_after_samples)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bfloat16"):
            out = net(x, dead_mask=dead)
        loss = sum(out.losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.model.before_optimizer_step()
        if cfg.grad_clip > 0:
            # clip_grad_norm_ scales by min(1, clip / (norm + 1e-6)); when that is 1 the pass changes nothing
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            total_norm = gradient_norm(grads)
            if total_norm + 1e-6 > cfg.grad_clip:
                torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), cfg.grad_clip, total_norm)
        self.optimizer.step()
        self.model.after_optimizer_step()

        fire_counts = out.codes.fire_counts()
        if self.dist.enabled:
            dist.all_reduce(fire_counts, op=dist.ReduceOp.SUM)
        self.tracker.update(fire_counts > 0, cfg.batch_size)
        self.step += 1
        return out, loss, dead

    def _log(self, out, loss: torch.Tensor, lr: float, dead: torch.Tensor, start: float) -> dict[str, Any]:
        terms = torch.stack([loss.detach()] + [v.detach() for v in out.losses.values()]
                            + [out.codes.l0().float().mean()])
        if self.dist.enabled:
            dist.all_reduce(terms, op=dist.ReduceOp.SUM)
            terms /= self.dist.world_size
        values = terms.tolist()
        record = {"step": self.step, "lr": lr, "loss": values[0]}
        record.update({name: v for name, v in zip(out.losses, values[1:-1], strict=True)})
        record.update({
            "l0": values[-1],
            "dead_fraction": float(dead.float().mean()),
            "samples": self.step * self.config.batch_size,
            "elapsed_s": round(time.perf_counter() - start, 3),
        })
        if self.out_dir is not None and self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / METRICS_LOG, "a") as f:
                f.write(json.dumps(record) + "\n")
        return record

    def _truncate_log(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be written again)."""
        log = self.out_dir / METRICS_LOG if self.out_dir else None
        if log is None or not log.is_file() or not self.dist.is_main:
            return
        kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        log.write_text("".join(line + "\n" for line in kept))
