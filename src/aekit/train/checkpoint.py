"""Trainer checkpoints: everything needed to continue a run bit-for-bit, as JSON + safetensors.

    checkpoints/step_00000500/trainer.json        step, source cursor, optimizer hyper-parameters, configs
    checkpoints/step_00000500/state.safetensors   model tensors, optimizer moments, dead-latent counters
A checkpoint directory is built under a temporary name and renamed when complete, so the newest directory
that exists is always whole.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import FormatError
from ..fileio import atomic_directory, atomic_write_json, atomic_write_safetensors, load_safetensors, read_json

CHECKPOINT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d{8})$")


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and everything else (for JSON)."""
    tensors, scalars = {}, {}
    for pid, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(root: Path, step: int, tensors: dict[str, Tensor], meta: dict[str, Any], keep: int) -> Path:
    target = root / f"step_{step:08d}"
    with atomic_directory(target) as tmp:
        atomic_write_safetensors(tmp / "state.safetensors", tensors)
        atomic_write_json(tmp / "trainer.json", {"checkpoint_version": CHECKPOINT_VERSION, "step": step, **meta})
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name))


def load_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    meta = read_json(path / "trainer.json", "checkpoint metadata")
    if meta.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise FormatError(
            f"{path / 'trainer.json'}: checkpoint_version {meta.get('checkpoint_version')!r} is not supported "
            f"(expects {CHECKPOINT_VERSION})"
        )
    return load_safetensors(path / "state.safetensors"), meta


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


class DeadLatentTracker:
    """Counts, per latent, the samples seen since it last fired."""

    def __init__(self, n_latents: int, device: torch.device | str = "cpu"):
        self.samples_since_fired = torch.zeros(n_latents, dtype=torch.long, device=device)

    def update(self, fired: Tensor, n_samples: int) -> None:
        """`fired` is a boolean (n_latents,) mask of latents active anywhere in the global batch."""
        self.samples_since_fired += n_samples
        self.samples_since_fired[fired] = 0

    def dead_mask(self, threshold: int) -> Tensor:
        return self.samples_since_fired >= threshold
