"""The Autoencoder protocol and the model-directory format (config.json + model.safetensors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .._version import __version__
from ..config_base import ConfigBase
from ..errors import FormatError
from ..fileio import atomic_directory, atomic_write_json, atomic_write_safetensors, load_safetensors, read_json
from ..nn.codes import Codes
from ..seeding import derive_seed

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

MODEL_KINDS: dict[str, type[Autoencoder]] = {}


@dataclass
class Output:
    """What a forward pass returns: the reconstruction, the codes and the loss terms the Trainer sums."""

    x_hat: Tensor
    codes: Codes
    losses: dict[str, Tensor] = field(default_factory=dict)


class Autoencoder(nn.Module):
    """encoder + bottleneck + decoder + loss terms. Subclasses set `kind` and `config_class`."""

    kind: ClassVar[str]
    config_class: ClassVar[type[ConfigBase]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            MODEL_KINDS[cls.kind] = cls

    def __init__(self, config: ConfigBase):
        super().__init__()
        config.validate()
        self.config = config
        self.provenance: dict[str, Any] = {}

    # --- the protocol -------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> Codes:
        raise NotImplementedError

    def decode(self, codes: Codes) -> Tensor:
        raise NotImplementedError

    # --- hooks the Trainer calls --------------------------------------------------------------------
    def initialize_from_data(self, x: Tensor) -> None:
        """Data-dependent initialisation from a sample batch, once, before the first step."""

    def before_optimizer_step(self) -> None:
        """Adjust gradients (e.g. project out directions a constraint forbids)."""

    def after_optimizer_step(self) -> None:
        """Re-impose parameter constraints (e.g. unit-norm decoder rows)."""

    def parameter_groups(self) -> list[dict[str, Any]] | None:
        """Optimizer parameter groups (e.g. weight decay on weights only); None = all parameters, no decay."""
        return None

    def training_state(self) -> dict[str, Any]:
        """Training-only state outside the tensors that a checkpoint must carry for an exact resume (JSON)."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what `training_state` returned."""

    def prepare_for_save(self) -> None:
        """Fold training-only reparametrisations into the weights so the saved model is self-contained."""

    # --- format ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write config.json + model.safetensors atomically; the directory appears only when complete."""
        self.prepare_for_save()
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            atomic_write_safetensors(tmp / WEIGHTS_FILE, self.state_dict())
            atomic_write_json(tmp / CONFIG_FILE, self.describe())
        return directory

    def describe(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "aekit_version": __version__,
            "config": self.config.to_dict(),
            "provenance": dict(self.provenance),
        }

    def load_weights(self, tensors: dict[str, Tensor], where: str) -> None:
        """Load a state dict after checking every name and shape, explaining any mismatch."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise FormatError(
                f"{where}: tensors do not match a {self.kind} model (missing {missing}, unexpected {extra})"
            )
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise FormatError(
                    f"{where}: tensor {name!r} has shape {tuple(tensor.shape)} but config.json implies "
                    f"{tuple(expected[name].shape)}; the weights and config do not belong together"
                )
        self.load_state_dict({name: t.to(expected[name].dtype) for name, t in tensors.items()})

    @classmethod
    def load(cls, directory: str | Path) -> Autoencoder:
        return load_model(directory)


class SeededNoise:
    """Mixin for models that draw their own training noise (reparametrisation, diffusion noise, denoising targets).

    The noise of each batch comes from a generator seeded by the model's kind, `config.seed` and `noise_draws`, the
    number of batches drawn so far — never from the global RNG — and the checkpoint carries that count, so a resumed
    run draws exactly the noise the uninterrupted run would have. List it before `Autoencoder` in the bases.
    """

    noise_draws: int = 0

    def noise_generator(self) -> torch.Generator:
        """A CPU generator for the next batch's noise; each call advances the stream by one draw."""
        g = torch.Generator().manual_seed(derive_seed(f"{self.kind}.noise", self.config.seed, self.noise_draws))
        self.noise_draws += 1
        return g

    def training_state(self) -> dict[str, Any]:
        return {"noise_draws": self.noise_draws}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.noise_draws = int(state.get("noise_draws", 0))


def load_model(directory: str | Path) -> Autoencoder:
    """Load any aekit model directory, checking format version, kind, config and tensor shapes."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory}: model directory not found")
    meta = read_json(directory / CONFIG_FILE, "model config")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"{directory / CONFIG_FILE}: format_version {version!r} is not supported by aekit {__version__} "
            f"(expects {FORMAT_VERSION}); upgrade aekit or re-export the model"
        )
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise FormatError(f"{directory / CONFIG_FILE}: unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    model_cls = MODEL_KINDS[kind]
    config = model_cls.config_class.from_dict(meta.get("config", {}), where=f"{directory / CONFIG_FILE}:config")
    model = model_cls(config)
    model.load_weights(load_safetensors(directory / WEIGHTS_FILE), str(directory / WEIGHTS_FILE))
    model.provenance = dict(meta.get("provenance") or {})
    model.eval()
    return model


__all__ = ["Autoencoder", "FORMAT_VERSION", "MODEL_KINDS", "Output", "load_model"]
