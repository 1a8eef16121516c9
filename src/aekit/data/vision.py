"""Load Hugging Face vision models (ViT classifiers, CLIP) from a local directory and run images through them.

Images everywhere in aekit are float tensors (n, 3, H, W) in [0, 1]. `pixel_values` turns them into what a model
expects — resized to the model's input size and normalised with the mean and std of its preprocessor_config.json
(0.5 / 0.5 when the directory has none, the ViT default) — so the same call serves the bundled toy models and any
ViT or CLIP checkpoint a user has on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, DataError, ShapeError
from .lm import resolve_device

__all__ = ["TOKEN_SELECTIONS", "VISION_FAMILIES", "VisionModel", "classify", "image_activations", "image_embeddings",
           "load_vision_model", "pixel_values", "read_image_folder", "select_tokens", "text_embeddings"]

VISION_FAMILIES = ("vit", "clip")
DEFAULT_MEAN = DEFAULT_STD = (0.5, 0.5, 0.5)


@dataclass
class VisionModel:
    """A loaded vision model: `family` is "vit" (an image classifier) or "clip" (image and text towers)."""

    model: Any
    family: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    tokenizer: Any = None  # CLIP only
    path: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def vision_tower(self) -> Any:
        """The module whose blocks carry the residual stream of the image (ViTModel or CLIPVisionTransformer)."""
        return self.model.vit if self.family == "vit" else self.model.vision_model


def _normalisation(directory: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    path = directory / "preprocessor_config.json"
    if not path.is_file():
        return DEFAULT_MEAN, DEFAULT_STD
    try:
        config = json.loads(path.read_text())
        return tuple(map(float, config["image_mean"])), tuple(map(float, config["image_std"]))
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: expected image_mean and image_std lists of 3 numbers ({e})") from None


def load_vision_model(path: str | Path, *, device: str | torch.device | None = None) -> VisionModel:
    """A ViT image classifier or a CLIP model (with its tokenizer) from a local Hugging Face directory, in eval mode.

    `device` None means CUDA when available, else the CPU.
    """
    from transformers import AutoConfig

    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise DataError(f"{directory}: not a Hugging Face model directory (no config.json); give the directory a "
                        "ViT or CLIP checkpoint was saved to")
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    family = getattr(config, "model_type", None)
    if family not in VISION_FAMILIES:
        raise ConfigError(f"{directory}: architecture {family!r} is not a supported vision model; "
                          f"supported: {', '.join(VISION_FAMILIES)}")
    dev = resolve_device(None if device is None else str(device))
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a toy model loads in milliseconds; a bar per load is noise
    try:
        return _load(directory, config, family, dev)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _load(directory: Path, config, family: str, dev: torch.device) -> VisionModel:
    from transformers import AutoTokenizer, CLIPModel, ViTForImageClassification

    if family == "vit":
        model, tokenizer, size = ViTForImageClassification.from_pretrained(directory, local_files_only=True), None, \
            config.image_size
    else:
        model = CLIPModel.from_pretrained(directory, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        size = config.vision_config.image_size
    mean, std = _normalisation(directory)
    return VisionModel(model.to(dev).eval(), family, int(size), mean, std, tokenizer, str(directory))


def pixel_values(images: Tensor, image_size: int, mean=DEFAULT_MEAN, std=DEFAULT_STD) -> Tensor:
    """(n, 3, H, W) images in [0, 1] → the model's normalised input at image_size × image_size."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ShapeError(f"images: expected (n, 3, H, W) RGB images in [0, 1]; got shape {tuple(images.shape)}")
    x = images.float()
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                                            antialias=True)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None]
    return (x - m) / s


def model_inputs(vm: VisionModel, images: Tensor) -> Tensor:
    return pixel_values(images, vm.image_size, vm.mean, vm.std).to(vm.device)


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be ≥ 1 (got {batch_size})")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def classify(vm: VisionModel, images: Tensor, batch_size: int = 256) -> Tensor:
    """A ViT classifier's logits (n, num_labels) for images in [0, 1], on the CPU."""
    if vm.family != "vit":
        raise ConfigError(f"{vm.path}: classify needs a ViT image classifier, not a {vm.family} model")
    return torch.cat([vm.model(pixel_values=model_inputs(vm, images[s])).logits.float().cpu()
                      for s in _batches(len(images), batch_size)])


@torch.no_grad()
def image_embeddings(vm: VisionModel, images: Tensor, batch_size: int = 256) -> Tensor:
    """One vector per image, on the CPU: CLIP's projected image embedding, or a ViT's final normalised CLS state."""
    out = []
    for s in _batches(len(images), batch_size):
        x = model_inputs(vm, images[s])
        if vm.family == "clip":
            features = vm.model.get_image_features(pixel_values=x)
            out.append(getattr(features, "pooler_output", features).float().cpu())
        else:
            out.append(vm.model.vit(pixel_values=x).last_hidden_state[:, 0].float().cpu())
    return torch.cat(out)


@torch.no_grad()
def text_embeddings(vm: VisionModel, texts: list[str], batch_size: int = 256) -> Tensor:
    """CLIP's projected text embedding of every text (n, projection_dim), on the CPU."""
    if vm.family != "clip":
        raise ConfigError(f"{vm.path}: text embeddings need a CLIP model, not a {vm.family} model")
    out = []
    for s in _batches(len(texts), batch_size):
        tokens = vm.tokenizer(texts[s], padding=True, return_tensors="pt").to(vm.device)
        features = vm.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        out.append(getattr(features, "pooler_output", features).float().cpu())
    return torch.cat(out)


# ---- activations at hooks -----------------------------------------------------------------------------------

TOKEN_SELECTIONS = ("all", "cls", "patches")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def select_tokens(activation: Tensor, tokens: str) -> Tensor:
    """(batch, seq, ...) hook activations → (rows, features): every token, the CLS token (0) or the patches."""
    if tokens not in TOKEN_SELECTIONS:
        raise ConfigError(f"tokens: choose one of {', '.join(TOKEN_SELECTIONS)} (got {tokens!r})")
    picked = {"all": activation, "cls": activation[:, :1], "patches": activation[:, 1:]}[tokens]
    return picked.reshape(picked.shape[0] * picked.shape[1], -1)


def image_activations(vm: VisionModel, images: Tensor, hook: str, tokens: str = "all",
                      batch_size: int = 256) -> Tensor:
    """Activations at `hook` (e.g. blocks.2.hook_resid_post) of every selected token of every image, on the CPU.

    Rows are image-major: image i's tokens are rows i·t … i·t + t − 1 (t = 1 for cls, patches for patches, both
    for all). Head-wise hooks are flattened to one vector per token.
    """
    from .hooks import ActivationCapture

    capture = ActivationCapture(vm.model, [hook])
    rows = []
    with capture:
        for s in _batches(len(images), batch_size):
            activation = capture.run_images(model_inputs(vm, images[s]))[hook]
            rows.append(select_tokens(activation.float(), tokens).cpu())
    return torch.cat(rows)


def read_image_folder(directory: str | Path, size: int, limit: int | None = None) -> tuple[Tensor, list[str]]:
    """The images of a folder (sorted by name, RGB, resized to size × size) as (n, 3, size, size) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory; give a folder of {', '.join(IMAGE_SUFFIXES)} images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:limit]
    if not files:
        raise DataError(f"{folder}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    out = torch.empty((len(files), 3, size, size))
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{path}: cannot be read as an image ({e})") from None
        out[i] = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(size, size, 3).permute(
            2, 0, 1).float() / 255.0
    return out, [p.name for p in files]
