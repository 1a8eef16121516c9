"""A small ViT and a small CLIP trained on the scene world: real Hugging Face vision models whose factors are known.

`train_toy_vit` trains `transformers.ViTForImageClassification` to read all six 3D Shapes factors of a 32×32 scene
(one block of logits per factor, the sum of per-factor cross-entropies as the loss); `train_toy_clip` trains a
`transformers.CLIPModel` contrastively on scenes paired with generated captions (`aekit.worlds.scenes.captions`),
with a word-level tokenizer over the caption vocabulary. Both train on CPU on seeded streams of "train" scenes
(no held-out (shape, hue) pair, no test image), write a standard Hugging Face directory atomically (config.json,
model.safetensors, preprocessor_config.json, tokenizer files for CLIP, training_log.jsonl, training.json, eval.json)
and are scored through `aekit.data.vision.load_vision_model`, the path every Hugging Face vision model takes.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..config_base import ConfigBase, setting
from ..errors import DataError
from ..fileio import atomic_directory, atomic_write_json, require_fresh_directory
from ..seeding import derive_seed
from .factors import FactorSample
from .scenes import ATTRIBUTES, SCENE_SIZE, attribute_labels, caption_vocabulary, captions, sample_scenes
from .scenes import zero_shot_prompts as attribute_prompts
from .shapes3d import Shapes3DWorld
from .toy_lm import _lr_at

__all__ = ["ToyCLIPConfig", "ToyViTConfig", "bundled_toy_clip_path", "bundled_toy_vit_path", "evaluate_toy_clip",
           "evaluate_toy_vit", "train_toy_clip", "train_toy_vit"]

BUNDLED_VIT, BUNDLED_CLIP = "bundled/toy_vit", "bundled/toy_clip"
PAD, BOS, UNK, EOS = "<pad>", "<bos>", "<unk>", "<eos>"  # ids 0-3; CLIP pools at the first EOS (any id but 2)
# <bos> + the longest caption ("a small red cube turned left on a red floor by a red wall", 14 words) + <eos>
MAX_CAPTION_TOKENS = 16
FACTOR_NAMES, FACTOR_SIZES = Shapes3DWorld.factor_names, Shapes3DWorld().factor_sizes
PREPROCESSOR = {"image_processor_type": "ViTImageProcessor", "do_resize": True,
                "size": {"height": SCENE_SIZE, "width": SCENE_SIZE}, "do_rescale": True, "rescale_factor": 1 / 255,
                "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


@dataclass
class _OptimSettings(ConfigBase):
    """What both toy vision models share: optimisation, the training stream and the evaluation size."""

    steps: int = setting(3000, "optimizer steps (AdamW)")
    batch_size: int = setting(128, "scenes per step")
    lr: float = setting(1e-3, "peak learning rate")
    min_lr_ratio: float = setting(0.05, "the cosine decay ends at lr × min_lr_ratio")
    warmup_steps: int = setting(100, "steps of linear learning-rate warm-up; 0 = none")
    weight_decay: float = setting(0.05, "AdamW weight decay of the weight matrices")
    grad_clip: float = setting(1.0, "maximum global gradient norm")
    seed: int = setting(0, "seeds the initialisation, the training scenes and the evaluation scenes")
    chunk: int = setting(4096, "scenes rendered at a time for the training stream")
    eval_n: int = setting(2000, "held-out scenes scored into eval.json (test and ood splits); 0 skips it")
    log_every: int = setting(25, "steps between records in training_log.jsonl")
    threads: int = setting(1, "torch CPU threads while training")

    def validate(self) -> None:
        for name in ("steps", "batch_size", "chunk", "log_every", "threads"):
            self._require(getattr(self, name) >= 1, name, "must be ≥ 1")
        self._require(self.lr > 0, "lr", "must be > 0")
        self._require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        self._require(self.warmup_steps >= 0, "warmup_steps", "must be ≥ 0")
        self._require(self.weight_decay >= 0, "weight_decay", "must be ≥ 0")
        self._require(self.grad_clip > 0, "grad_clip", "must be > 0")
        self._require(self.eval_n >= 0, "eval_n", "must be ≥ 0 (0 skips the evaluation)")


def _check_transformer(config: ConfigBase, prefix: str = "") -> None:
    hidden, heads = getattr(config, f"{prefix}hidden"), getattr(config, f"{prefix}heads")
    for name in ("hidden", "layers", "heads", "mlp"):
        config._require(getattr(config, prefix + name) >= 1, prefix + name, "must be ≥ 1")
    config._require(hidden % heads == 0, prefix + "hidden", f"must be divisible by {prefix}heads={heads}")


@dataclass
class ToyViTConfig(_OptimSettings):
    """The toy ViT: architecture and training (defaults: the bundled one)."""

    section = "toy_vit"

    hidden: int = setting(128, "width of the residual stream")
    layers: int = setting(4, "transformer blocks")
    heads: int = setting(4, "attention heads per block")
    mlp: int = setting(512, "MLP width")
    patch: int = setting(8, "patch side in pixels (must divide 32)")

    def validate(self) -> None:
        super().validate()
        _check_transformer(self)
        self._require(self.patch >= 1 and SCENE_SIZE % self.patch == 0, "patch", f"must divide {SCENE_SIZE}")


@dataclass
class ToyCLIPConfig(_OptimSettings):
    """The toy CLIP: both towers, the projection and training (defaults: the bundled one)."""

    section = "toy_clip"

    hidden: int = setting(128, "width of the vision tower")
    layers: int = setting(4, "vision transformer blocks")
    heads: int = setting(4, "vision attention heads")
    mlp: int = setting(512, "vision MLP width")
    patch: int = setting(8, "patch side in pixels (must divide 32)")
    text_hidden: int = setting(64, "width of the text tower")
    text_layers: int = setting(2, "text transformer blocks")
    text_heads: int = setting(4, "text attention heads")
    text_mlp: int = setting(256, "text MLP width")
    projection: int = setting(64, "width of the shared image-text embedding")
    keep_probability: float = setting(0.5, "probability that a training caption names each attribute")
    steps: int = setting(2000, "optimizer steps (AdamW)")
    batch_size: int = setting(256, "image-caption pairs per step (the contrastive loss's negatives)")

    def validate(self) -> None:
        super().validate()
        _check_transformer(self)
        _check_transformer(self, "text_")
        self._require(self.patch >= 1 and SCENE_SIZE % self.patch == 0, "patch", f"must divide {SCENE_SIZE}")
        self._require(self.projection >= 1, "projection", "must be ≥ 1")
        self._require(0 < self.keep_probability <= 1, "keep_probability", "must be in (0, 1]")


def _bundled(relative: str, what: str, command: str) -> Path:
    path = Path(str(resources.files("aekit.worlds").joinpath(relative)))
    if not (path / "model.safetensors").is_file():
        raise DataError(f"{path}: the bundled {what} is missing from this aekit installation; reinstall aekit or "
                        f"train one with `aekit world {command} --out DIR`")
    return path


def bundled_toy_vit_path() -> Path:
    """The directory of the toy ViT shipped with aekit (load it with `aekit.data.vision.load_vision_model`)."""
    return _bundled(BUNDLED_VIT, "toy ViT", "train-vit")


def bundled_toy_clip_path() -> Path:
    """The directory of the toy CLIP shipped with aekit (load it with `aekit.data.vision.load_vision_model`)."""
    return _bundled(BUNDLED_CLIP, "toy CLIP", "train-clip")


# ---- models -------------------------------------------------------------------------------------------------


def _vision_settings(config: ToyViTConfig | ToyCLIPConfig) -> dict[str, Any]:
    return dict(image_size=SCENE_SIZE, patch_size=config.patch, num_channels=3, hidden_size=config.hidden,
                num_hidden_layers=config.layers, num_attention_heads=config.heads, intermediate_size=config.mlp)


def build_vit(config: ToyViTConfig):
    """A freshly initialised ViTForImageClassification (seeded by the caller) with one logit per factor value."""
    from transformers import ViTConfig, ViTForImageClassification

    labels = [f"{name}={value}" for name, size in zip(FACTOR_NAMES, FACTOR_SIZES, strict=True) for value in range(size)]
    hf_config = ViTConfig(**_vision_settings(config), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                          num_labels=len(labels), id2label=dict(enumerate(labels)),
                          label2id={label: i for i, label in enumerate(labels)})
    hf_config.factor_names, hf_config.factor_sizes = list(FACTOR_NAMES), list(FACTOR_SIZES)
    return ViTForImageClassification(hf_config)


def build_caption_tokenizer():
    """A word-level `PreTrainedTokenizerFast` over the caption vocabulary; every text becomes <bos> words <eos>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate([PAD, BOS, UNK, EOS, *caption_vocabulary()])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{BOS} $A {EOS}",
                                                             special_tokens=[(BOS, 1), (EOS, 3)])
    tokenizer.add_special_tokens([PAD, BOS, UNK, EOS])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=PAD, model_max_length=MAX_CAPTION_TOKENS, padding_side="right")


def build_clip(config: ToyCLIPConfig):
    """A freshly initialised CLIPModel (seeded by the caller): the toy ViT's vision tower and a small text tower."""
    from transformers import CLIPConfig, CLIPModel

    text = dict(vocab_size=4 + len(caption_vocabulary()), hidden_size=config.text_hidden,
                num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
                intermediate_size=config.text_mlp, max_position_embeddings=MAX_CAPTION_TOKENS,
                pad_token_id=0, bos_token_id=1, eos_token_id=3)
    hf_config = CLIPConfig(text_config=text, vision_config=_vision_settings(config),
                           projection_dim=config.projection)
    return CLIPModel(hf_config)


# ---- training -----------------------------------------------------------------------------------------------


def _scene_stream(config: _OptimSettings, purpose: str) -> Iterator[FactorSample]:
    """Seeded batches of training scenes, rendered a chunk at a time (the stream does not depend on `steps`)."""
    chunk = 0
    while True:
        scenes = sample_scenes(config.chunk, derive_seed(purpose, config.seed, chunk), "train")
        for start in range(0, config.chunk - config.batch_size + 1, config.batch_size):
            rows = slice(start, start + config.batch_size)
            yield FactorSample(scenes.images[rows], scenes.factors[rows], scenes.values[rows])
        chunk += 1


def _pixels(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.5) / 0.5  # PREPROCESSOR's normalisation


def factor_loss(logits: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Mean over factors of the cross-entropy of each factor's block of logits."""
    losses, start = [], 0
    for k, size in enumerate(FACTOR_SIZES):
        losses.append(F.cross_entropy(logits[:, start:start + size], factors[:, k]))
        start += size
    return torch.stack(losses).mean()


def _fit(model, loss_of: Callable[[FactorSample], torch.Tensor], batches: Iterator[FactorSample],
         config: _OptimSettings, log_path: Path, name: str, progress: bool) -> tuple[float, float]:
    """The one training loop of the toy vision models; returns (final mean loss, seconds)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))
    running, count, loss_value = 0.0, 0, float("nan")
    with open(log_path, "w") as log, tqdm(range(config.steps), desc=name, disable=not progress) as bar:
        for step in bar:
            lr = _lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_of(next(batches))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            running, count = running + loss.item(), count + 1
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                loss_value = running / count
                log.write(json.dumps({"step": step + 1, "loss": round(loss_value, 5), "lr": lr,
                                      "elapsed": round(time.perf_counter() - start, 2)}) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{loss_value:.3f}")
                running, count = 0.0, 0
    model.eval()
    return loss_value, time.perf_counter() - start


def _train(out_dir: str | Path, config: _OptimSettings, build: Callable[[], Any],
           loss_of: Callable[[Any, FactorSample], torch.Tensor], save_extra: Callable[[Path], None],
           evaluate: Callable[[Path], dict[str, Any]], name: str, progress: bool, overwrite: bool) -> dict[str, Any]:
    config.validate()
    out_dir = Path(out_dir)
    if not overwrite:
        require_fresh_directory(out_dir, f"the {name} output directory")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        model = build()
        with atomic_directory(out_dir) as tmp:
            loss, seconds = _fit(model, lambda batch: loss_of(model, batch),
                                 _scene_stream(config, f"{config.section}.train"), config,
                                 tmp / "training_log.jsonl", name, progress)
            model.save_pretrained(tmp)
            atomic_write_json(tmp / "preprocessor_config.json", PREPROCESSOR)
            save_extra(tmp)
            summary: dict[str, Any] = {
                "steps": config.steps, "images": config.steps * config.batch_size,
                "train_seconds": round(seconds, 1), "final_loss": round(loss, 5),
                "parameters": sum(p.numel() for p in model.parameters()), "config": config.to_dict(),
                "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor(),
            }
            atomic_write_json(tmp / "training.json", summary)
            if config.eval_n:
                summary["eval"] = evaluate(tmp)
                atomic_write_json(tmp / "eval.json", summary["eval"])
    finally:
        torch.set_num_threads(threads_before)
    summary["out_dir"] = str(out_dir)
    return summary


def train_toy_vit(out_dir: str | Path, config: ToyViTConfig | None = None, progress: bool = True,
                  overwrite: bool = False) -> dict[str, Any]:
    """Train the toy ViT on CPU and write its Hugging Face directory to `out_dir` (atomically); return a summary."""
    config = config or ToyViTConfig()

    def loss_of(model, batch: FactorSample) -> torch.Tensor:
        return factor_loss(model(pixel_values=_pixels(batch.images)).logits, torch.from_numpy(batch.factors))

    return _train(out_dir, config, lambda: build_vit(config), loss_of, lambda tmp: None,
                  lambda tmp: evaluate_toy_vit(tmp, n=config.eval_n, seed=config.seed), "toy ViT", progress,
                  overwrite)


def train_toy_clip(out_dir: str | Path, config: ToyCLIPConfig | None = None, progress: bool = True,
                   overwrite: bool = False) -> dict[str, Any]:
    """Train the toy CLIP on CPU and write its HF directory (with tokenizer) to `out_dir`; return a summary."""
    config = config or ToyCLIPConfig()
    tokenizer = build_caption_tokenizer()
    caption_draws = iter(range(2**62))

    def loss_of(model, batch: FactorSample) -> torch.Tensor:
        texts = captions(batch.factors, derive_seed("toy_clip.captions", config.seed, next(caption_draws)),
                         config.keep_probability)
        tokens = tokenizer(texts, padding=True, return_tensors="pt")
        return model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"],
                     pixel_values=_pixels(batch.images), return_loss=True).loss

    def save_tokenizer(tmp: Path) -> None:
        tokenizer.save_pretrained(tmp)

    return _train(out_dir, config, lambda: build_clip(config), loss_of, save_tokenizer,
                  lambda tmp: evaluate_toy_clip(tmp, n=config.eval_n, seed=config.seed), "toy CLIP", progress,
                  overwrite)


# ---- evaluation ---------------------------------------------------------------------------------------------


def factor_accuracy(logits: torch.Tensor, factors: np.ndarray) -> dict[str, float]:
    """Accuracy of each factor's block of logits against the factor indices, and their mean."""
    out, start = {}, 0
    for k, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES, strict=True)):
        predicted = logits[:, start:start + size].argmax(-1).numpy()
        out[name] = float((predicted == factors[:, k]).mean())
        start += size
    out["mean"] = float(np.mean([out[name] for name in FACTOR_NAMES]))
    return out


def evaluate_toy_vit(model_dir: str | Path, n: int = 2000, seed: int = 0, device: str | None = "cpu") -> dict:
    """Factor accuracy of a toy ViT directory on n held-out "test" scenes and n "ood" scenes (unseen pairs)."""
    from ..data.vision import classify, load_vision_model

    vm = load_vision_model(model_dir, device=device)
    result: dict[str, Any] = {"n": n, "seed": seed}
    for split in ("test", "ood"):
        scenes = sample_scenes(n, derive_seed("toy_vision.eval", seed), split)
        accuracy = factor_accuracy(classify(vm, scenes.images), scenes.factors)
        result[split] = {name: round(value, 4) for name, value in accuracy.items()}
    return result


def zero_shot_accuracy(vm, images: torch.Tensor, factors: np.ndarray) -> dict[str, float]:
    """CLIP zero-shot accuracy per captioned attribute: the nearest of the attribute's one-word prompts."""
    from ..data.vision import image_embeddings, text_embeddings

    image = F.normalize(image_embeddings(vm, images), dim=-1)
    labels = attribute_labels(factors)
    out = {}
    for attribute in ATTRIBUTES:
        text = F.normalize(text_embeddings(vm, attribute_prompts(attribute)), dim=-1)
        predicted = (image @ text.T).argmax(-1).numpy()
        out[attribute.name] = round(float((predicted == labels[attribute.name]).mean()), 4)
    out["mean"] = round(float(np.mean([out[a.name] for a in ATTRIBUTES])), 4)
    return out


def evaluate_toy_clip(model_dir: str | Path, n: int = 2000, seed: int = 0, device: str | None = "cpu") -> dict:
    """Zero-shot attribute accuracy of a toy CLIP directory on n "test" scenes and n "ood" scenes."""
    from ..data.vision import load_vision_model

    vm = load_vision_model(model_dir, device=device)
    result: dict[str, Any] = {"n": n, "seed": seed, "prompts": {a.name: attribute_prompts(a) for a in ATTRIBUTES}}
    for split in ("test", "ood"):
        scenes = sample_scenes(n, derive_seed("toy_vision.eval", seed), split)
        result[split] = zero_shot_accuracy(vm, scenes.images, scenes.factors)
    return result

