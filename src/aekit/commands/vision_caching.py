"""`aekit cache --images DIR` / `--world scenes`: images through a ViT or CLIP image tower into an activation store.

The images (a folder, or seeded scenes of the scene world) are run in batches through the image tower only as far
as the hook; every selected token of every image (CLS, patches or all, image-major) becomes one row of the store.
For world scenes the store's provenance records the split and seed, so the scenes (and their factors) can be
regenerated exactly with `aekit.worlds.scenes.sample_scenes`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._version import __version__
from ..data.hooks import ActivationCapture, parse_hook_name
from ..data.lm_source import hook_shape
from ..data.store import DTYPES, ActivationStore, ActivationStoreWriter
from ..data.vision import TOKEN_SELECTIONS, load_vision_model, model_inputs, read_image_folder, select_tokens
from ..errors import ConfigError
from ..fileio import discard_partial_output, require_fresh_directory

__all__ = ["cache_image_activations"]


def cache_image_activations(model: str | Path, hook: str, out: str | Path, *, images: str | Path | None = None,
                            world: str | None = None, n: int = 10_000, split: str = "train", seed: int = 0,
                            tokens: str = "all", batch_size: int = 64, dtype: str = "float32",
                            device: str | None = None, rows_per_shard: int = 65536,
                            progress: bool = True) -> ActivationStore:
    """Write the activations at `hook` of the selected tokens of every image to a new store."""
    from tqdm.auto import tqdm

    from ..worlds.scenes import SPLITS, sample_scenes

    out = Path(out)
    require_fresh_directory(out, "output store")
    if (images is None) == (world is None):
        raise ConfigError("cache: give exactly one of --text, --images DIR or --world scenes")
    if world is not None and world != "scenes":
        raise ConfigError(f"cache: --world must be scenes (got {world!r})")
    if split not in SPLITS:
        raise ConfigError(f"cache: --split must be one of {', '.join(SPLITS)} (got {split!r})")
    if tokens not in TOKEN_SELECTIONS:
        raise ConfigError(f"cache: --tokens must be one of {', '.join(TOKEN_SELECTIONS)} (got {tokens!r})")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: {dtype!r} is not supported; choose one of {', '.join(DTYPES)}")
    if min(n, batch_size) < 1:
        raise ConfigError(f"cache: --n and --batch-size must be ≥ 1 (got {n}, {batch_size})")
    parse_hook_name(hook)
    vm = load_vision_model(model, device=device)
    capture = ActivationCapture(vm.model, [hook])  # checks the layer exists before anything is read or written
    if images is not None:
        pixels, names = read_image_folder(images, vm.image_size)
        source: dict[str, Any] = {"images": str(Path(images).resolve()), "files": len(names)}
    else:
        pixels = sample_scenes(n, seed, split).images
        source = {"world": "scenes", "split": split, "seed": seed, "images": n}
    shape = hook_shape(vm.model, hook)
    provenance = {"source": "aekit cache", "model": str(model), "model_type": vm.family, "hook": hook,
                  "hook_shape": list(shape), "tokens": tokens, "dtype": dtype, "aekit_version": __version__,
                  **source}
    created = not out.exists()
    try:
        writer = ActivationStoreWriter(out, math.prod(shape), dtype=dtype, rows_per_shard=rows_per_shard,
                                       provenance=provenance)
        with capture, tqdm(total=len(pixels), unit="img", desc="caching", disable=not progress) as bar:
            for start in range(0, len(pixels), batch_size):
                batch = pixels[start:start + batch_size]
                activation = capture.run_images(model_inputs(vm, batch))[hook]
                writer.append(select_tokens(activation, tokens).to("cpu", DTYPES[dtype]))
                bar.update(len(batch))
        return writer.close()
    except BaseException:  # nothing partial is left behind, whatever stopped the run
        discard_partial_output(out, created)
        raise
