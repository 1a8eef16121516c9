"""The vision world of aekit's toy image models: 3D Shapes scenes at 32×32, captions, and held-out combinations.

Every vision method (the toy ViT and CLIP, vision SAEs, VL-SAE, PS-VAE, CRATE-MAE, LV-RAE) reads the same scenes:
`Shapes3DWorld` images average-pooled 2×2 to 32×32 (a quarter of the pixels, so CPU training stays minutes, not
hours), with the world's six factors as ground truth.

Splits: eight (shape, object hue) pairs are never shown in training — every shape and every hue is seen, only these
combinations are not — and a fixed tenth of the remaining grid is the in-distribution test set. `sample_scenes`
draws "train" (neither), "test" (the held-out tenth), "ood" (only the held-out pairs) or "all" (anything).

Captions name a random subset of six attributes (object colour, shape, size, pose, floor colour, wall colour), e.g.
"a small red cube turned left on a blue floor by a green wall"; size and pose are the scale and orientation factors
binned into three words each. `ATTRIBUTES` gives every attribute's words and the factor bin each image has, which
is what zero-shot evaluation and caption-concept alignment score against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..seeding import derive_seed
from .factors import FactorSample
from .shapes3d import Shapes3DWorld

__all__ = ["ATTRIBUTES", "OOD_PAIRS", "SCENE_SIZE", "SPLITS", "Attribute", "attribute_labels", "caption_words",
           "caption_vocabulary", "captions", "in_split", "is_ood", "is_test", "render_scenes", "sample_scenes",
           "scene_world", "zero_shot_prompts"]

SCENE_SIZE = 32
SPLITS = ("train", "test", "ood", "all")
SHAPE_FACTOR, OBJECT_HUE_FACTOR = 4, 2
# (shape index, object-hue index) pairs never seen in training: two hues per shape, every hue at most once
OOD_PAIRS = ((0, 0), (0, 5), (1, 2), (1, 7), (2, 4), (2, 9), (3, 1), (3, 6))
COLOUR_WORDS = ("red", "orange", "yellow", "lime", "green", "cyan", "azure", "blue", "purple", "pink")


@dataclass(frozen=True)
class Attribute:
    """A captioned property: its words (one per class), the factor it reads and how factor indices map to classes."""

    name: str
    factor: int  # column of the Shapes3D factor array
    words: tuple[str, ...]
    bins: tuple[int, ...]  # class of every factor index (len = factor size)

    def phrase(self, word: str) -> str:
        """The caption fragment naming this attribute (zero-shot prompts use it alone)."""
        if self.name == "floor_colour":
            return f"on a {word} floor"
        if self.name == "wall_colour":
            return f"by a {word} wall"
        return word


ATTRIBUTES = (
    Attribute("object_colour", 2, COLOUR_WORDS, tuple(range(10))),
    Attribute("shape", 4, Shapes3DWorld.shape_names, tuple(range(4))),
    Attribute("size", 3, ("small", "medium", "large"), (0, 0, 0, 1, 1, 2, 2, 2)),
    Attribute("pose", 5, ("left", "forward", "right"), (0,) * 5 + (1,) * 5 + (2,) * 5),
    Attribute("floor_colour", 0, COLOUR_WORDS, tuple(range(10))),
    Attribute("wall_colour", 1, COLOUR_WORDS, tuple(range(10))),
)
_POSE_PHRASE = {"left": "turned left", "forward": "facing forward", "right": "turned right"}


def scene_world() -> Shapes3DWorld:
    return Shapes3DWorld()


def render_scenes(factors: np.ndarray) -> Tensor:
    """32×32 RGB images (n, 3, 32, 32) in [0, 1] of Shapes3D factor indices: the 64×64 render, 2×2 averaged."""
    full = scene_world().render(factors)
    return torch.nn.functional.avg_pool2d(full, 2)


def is_ood(factors: np.ndarray) -> np.ndarray:
    """Whether each row's (shape, object hue) pair is one of the held-out `OOD_PAIRS`."""
    pairs = factors[:, SHAPE_FACTOR] * 10 + factors[:, OBJECT_HUE_FACTOR]
    return np.isin(pairs, [s * 10 + h for s, h in OOD_PAIRS])


def is_test(factors: np.ndarray) -> np.ndarray:
    """Whether each image is in the held-out tenth of the grid (a fixed hash of its flat index): never trained on."""
    flat = scene_world().factors_to_index(factors).astype(np.uint64)
    return (flat * np.uint64(2654435761)) % np.uint64(2**32) % np.uint64(10) == 0


def in_split(factors: np.ndarray, split: str) -> np.ndarray:
    """Which rows belong to `split` (see `sample_scenes`)."""
    if split == "all":
        return np.ones(len(factors), dtype=bool)
    if split == "ood":
        return is_ood(factors)
    return ~is_ood(factors) & (is_test(factors) == (split == "test"))


def sample_scenes(n: int, seed: int, split: str = "train") -> FactorSample:
    """n seeded 32×32 scenes of one split, uniform over the split's images.

    train: neither a held-out pair nor a test image; test: the held-out tenth of the grid without held-out pairs
    (in distribution, never trained on); ood: only held-out (shape, hue) pairs; all: any image.
    """
    if split not in SPLITS:
        raise ConfigError(f"split: choose one of {list(SPLITS)} (got {split!r})")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ConfigError(f"n: number of scenes must be an integer ≥ 0 (got {n!r})")
    world = scene_world()
    kept: list[np.ndarray] = []
    have, draw = 0, 0
    while have < n:  # rejection sampling: uniform over the split, the same rows for the same (n, seed, split)
        candidates = world.sample_factors(max(4 * (n - have), 64), derive_seed(f"scenes:{split}", seed, draw))
        candidates = candidates[in_split(candidates, split)]
        kept.append(candidates)
        have += len(candidates)
        draw += 1
    factors = np.concatenate(kept)[:n] if kept else np.zeros((0, world.n_factors), dtype=np.int64)
    return FactorSample(render_scenes(factors), factors, world.factor_values(factors).astype(np.float32))


def attribute_labels(factors: np.ndarray) -> dict[str, np.ndarray]:
    """The class of every image under every captioned attribute: name → (n,) int64."""
    return {a.name: np.asarray(a.bins, dtype=np.int64)[factors[:, a.factor]] for a in ATTRIBUTES}


def caption_words(factors: np.ndarray) -> list[dict[str, str]]:
    """Every image's word for every attribute (the full description a caption draws from)."""
    labels = attribute_labels(factors)
    return [{a.name: a.words[labels[a.name][i]] for a in ATTRIBUTES} for i in range(len(factors))]


def _caption(words: dict[str, str], keep: dict[str, bool]) -> str:
    parts = ["a"]
    parts += [words["size"]] if keep["size"] else []
    parts += [words["object_colour"]] if keep["object_colour"] else []
    parts.append(words["shape"] if keep["shape"] else "object")
    parts += [_POSE_PHRASE[words["pose"]]] if keep["pose"] else []
    for name in ("floor_colour", "wall_colour"):
        if keep[name]:
            parts.append(ATTRIBUTES[[a.name for a in ATTRIBUTES].index(name)].phrase(words[name]))
    return " ".join(parts)


def captions(factors: np.ndarray, seed: int, keep_probability: float = 0.5) -> list[str]:
    """One caption per image naming each attribute with probability `keep_probability` (1.0: all of them)."""
    if not 0.0 <= keep_probability <= 1.0:
        raise ConfigError(f"keep_probability: must be in [0, 1] (got {keep_probability})")
    rng = np.random.default_rng(derive_seed("scenes:captions", seed))
    keep = rng.random((len(factors), len(ATTRIBUTES))) < keep_probability
    return [_caption(words, {a.name: bool(keep[i, j]) for j, a in enumerate(ATTRIBUTES)})
            for i, words in enumerate(caption_words(factors))]


def zero_shot_prompts(attribute: Attribute) -> list[str]:
    """One prompt per class of `attribute`, naming that attribute alone (as a caption with only it kept)."""
    prompts = []
    for word in attribute.words:
        words = {a.name: "" for a in ATTRIBUTES} | {attribute.name: word}
        prompts.append(_caption(words, {a.name: a.name == attribute.name for a in ATTRIBUTES}))
    return prompts


def caption_vocabulary() -> list[str]:
    """Every word a caption or prompt can contain, in a fixed order."""
    words = ["a", "object", "turned", "facing", "on", "floor", "by", "wall"]
    for a in ATTRIBUTES:
        words += [w for w in a.words if w not in words]
    return words
