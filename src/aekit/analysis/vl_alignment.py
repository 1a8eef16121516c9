"""Concept alignment of image and text codes: does a latent fire on an image *and* on its own caption, and how pure
is the concept it stands for? Used to compare VL-SAE (one concept set) with per-modality SAEs (two).

Metrics, all on paired evaluation rows (image i belongs with text i) and codes where "fires" means > 0:
- shared fraction: among latents active on the pairs (firing on at least one image or text), the fraction that are
  *shared*: over the pairs where the latent fires on either side, it fires on both in at least half
  (|fires on image ∧ on caption| / |fires on image ∨ on caption| ≥ 0.5);
- pair overlap: the mean over pairs of the Jaccard index of the image's and the caption's active sets;
- factor purity: for each live latent (firing on at least `min_fires` rows), the best precision over (attribute,
  value) of "the latent fires → the row has that value" (for a caption: names it), averaged over live latents; the
  same codes with their rows shuffled give the chance level;
- recall@1: image → caption retrieval by the cosine similarity of the codes, a hit when the retrieved caption is the
  image's own (or reads the same).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.sources import DictArraySource
from ..errors import DataError
from ..models.sae import SparseAutoencoder
from ..models.vlsae import VLSAE, VLSAEConfig
from ..seeding import derive_seed
from ..train.trainer import Trainer
from ..worlds.scenes import ATTRIBUTES
from .sae_fit import fit_topk_sae, study_train_config

__all__ = ["BATCH_SIZE", "LR", "SHARED_THRESHOLD", "caption_labels", "compare_methods", "dense_codes",
           "factor_purity", "recall_at_1", "shared_concepts", "train_separate_saes", "train_vlsae"]

BATCH_SIZE, LR = 256, 1e-3  # fixed before measuring
SHARED_THRESHOLD = 0.5


def _mean(values: np.ndarray) -> float | None:
    """The mean, or None (JSON null) for no values: a method with no live latent has no purity."""
    return float(np.mean(values)) if len(values) else None


def _fires(codes: Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(torch.as_tensor(codes).detach().cpu().numpy()) > 0


def shared_concepts(image_codes, text_codes, threshold: float = SHARED_THRESHOLD) -> dict[str, Any]:
    """Shared fraction, modality-specific fraction and mean pair overlap of paired (n, n_latents) codes."""
    fi, ft = _fires(image_codes), _fires(text_codes)
    if fi.shape != ft.shape or fi.ndim != 2:
        raise DataError(f"image and text codes must be paired (n, n_latents) arrays of one shape "
                        f"(got {fi.shape} and {ft.shape})")
    either, both = (fi | ft).sum(0), (fi & ft).sum(0)
    active = either > 0
    agreement = np.where(active, both / np.maximum(either, 1), 0.0)
    shared = active & (agreement >= threshold)
    one_sided = active & ((fi.sum(0) == 0) | (ft.sum(0) == 0))
    union = (fi | ft).sum(1)
    pair_jaccard = np.where(union > 0, (fi & ft).sum(1) / np.maximum(union, 1), 0.0)
    n_active = int(active.sum())
    return {"active_latents": n_active, "shared_latents": int(shared.sum()),
            "shared_fraction": float(shared.sum() / max(n_active, 1)),
            "one_modality_fraction": float(one_sided.sum() / max(n_active, 1)),
            "pair_jaccard": float(pair_jaccard.mean()) if len(pair_jaccard) else 0.0,
            "agreement": agreement, "shared": shared}


def factor_purity(codes, labels: dict[str, np.ndarray], min_fires: int = 10, seed: int | None = 0) -> dict[str, Any]:
    """Mean over live latents of max over (attribute, value) of P(value | latent fires); labels are (n,) class
    indices per attribute, −1 where the row does not have (name) the attribute. `seed` shuffles the rows once for
    the chance level (None: skip it)."""
    fires = _fires(codes)
    names = list(labels)
    columns, which = [], []
    for name in names:
        y = np.asarray(labels[name])
        if y.shape != (len(fires),):
            raise DataError(f"labels[{name!r}]: expected ({len(fires)},) class indices, got shape {y.shape}")
        for v in range(int(y.max(initial=-1)) + 1):
            columns.append(y == v)
            which.append((name, v))
    if not columns:
        raise DataError("labels: no attribute has a class ≥ 0")
    onehot = np.stack(columns, 1).astype(np.float64)

    def best(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = f.sum(0)
        precision = (f.T.astype(np.float64) @ onehot) / np.maximum(counts, 1)[:, None]
        return counts >= min_fires, precision.max(1), precision.argmax(1)

    live, top, arg = best(fires)
    record: dict[str, Any] = {"live_latents": int(live.sum()), "purity": _mean(top[live])}
    by_attribute = {}
    for name in names:
        mine = live & np.array([which[j][0] == name for j in arg])
        by_attribute[name] = {"latents": int(mine.sum()), "purity": _mean(top[mine])}
    record["by_attribute"] = by_attribute
    record["best"] = [{"latent": int(j), "attribute": which[arg[j]][0], "value": int(which[arg[j]][1]),
                       "precision": float(top[j]), "fires": int(fires[:, j].sum())} for j in np.flatnonzero(live)]
    if seed is not None:
        perm = np.random.default_rng(derive_seed("vl_alignment.shuffle", seed)).permutation(len(fires))
        live_s, top_s, _ = best(fires[perm])
        record["purity_shuffled"] = _mean(top_s[live_s])
    return record


def recall_at_1(query, candidates, keys: list | np.ndarray | None = None) -> float:
    """Fraction of query rows whose most cosine-similar candidate row is its own (row i), or has the same key."""
    q = torch.nn.functional.normalize(torch.as_tensor(query).float(), dim=1)
    c = torch.nn.functional.normalize(torch.as_tensor(candidates).float(), dim=1)
    if q.shape != c.shape:
        raise DataError(f"query and candidates must be paired arrays of one shape (got {tuple(q.shape)} and "
                        f"{tuple(c.shape)})")
    top = (q @ c.T).argmax(1).numpy()
    rows = np.arange(len(top))
    hit = top == rows
    if keys is not None:
        k = np.asarray(keys)
        hit |= k[top] == k[rows]
    return float(hit.mean())


def caption_labels(texts: list[str]) -> dict[str, np.ndarray]:
    """The class of every attribute a scenes caption names (`aekit.worlds.scenes.captions`), −1 where unnamed.

    Colour words are told apart by position: "<colour> floor" and "<colour> wall" name the floor and the wall, any
    other colour word names the object."""
    out = {a.name: np.full(len(texts), -1, dtype=np.int64) for a in ATTRIBUTES}
    by_name = {a.name: a for a in ATTRIBUTES}
    for i, text in enumerate(texts):
        words = text.split()
        for pos, word in enumerate(words):
            following = words[pos + 1] if pos + 1 < len(words) else ""
            if word in by_name["object_colour"].words:
                name = {"floor": "floor_colour", "wall": "wall_colour"}.get(following, "object_colour")
                out[name][i] = by_name[name].words.index(word)
            for name in ("shape", "size", "pose"):
                if word in by_name[name].words:
                    out[name][i] = by_name[name].words.index(word)
    return out


def train_vlsae(image: Tensor, text: Tensor, *, n_latents: int, k: int, steps: int, seed: int = 0,
                center: bool = False, device: str = "cpu", progress: bool = False) -> VLSAE:
    """A VL-SAE trained by the Trainer on paired (image, text) embedding rows."""
    model = VLSAE(VLSAEConfig(d_in=image.shape[1], n_latents=n_latents, k=k, center=center, seed=seed))
    source = DictArraySource({"image": image, "text": text}, BATCH_SIZE, seed=seed, where="paired embeddings")
    Trainer(model, source, study_train_config(steps, BATCH_SIZE, LR, seed, device, progress)).fit()
    return model.cpu().eval()


def train_topk_sae(x: Tensor, *, n_latents: int, k: int, steps: int, seed: int = 0, device: str = "cpu",
                   progress: bool = False) -> SparseAutoencoder:
    """aekit's TopK SAE trained by the Trainer on the rows of x."""
    return fit_topk_sae(x, n_latents=n_latents, k=k, steps=steps, batch_size=BATCH_SIZE, lr=LR, seed=seed,
                        device=device, progress=progress, where="embeddings")


def train_separate_saes(image: Tensor, text: Tensor, *, seed: int = 0, **kwargs: Any) -> dict[str, SparseAutoencoder]:
    """One TopK SAE per modality, each from its own seed: trained independently, as the paper's baseline, so
    nothing ties latent j of one to latent j of the other (two SAEs started from one initialisation on similar
    data would share latents by construction, not by anything they learned)."""
    return {m: train_topk_sae(x, seed=derive_seed(f"vl_alignment.sae.{m}", seed), **kwargs)
            for m, x in (("image", image), ("text", text))}


@torch.no_grad()
def dense_codes(model, x: Tensor, modality: str | None = None) -> Tensor:
    """(n, n_latents) codes of a VL-SAE (`modality` given) or an SAE."""
    codes = model.encode(x, modality) if modality is not None else model.encode(x)
    return codes.to_dense().float()


def _scores(image_codes: Tensor, text_codes: Tensor, image_labels: dict, text_labels: dict, keys,
            image_x: Tensor, text_x: Tensor, recon) -> dict[str, Any]:
    record = shared_concepts(image_codes, text_codes)
    record.pop("agreement"), record.pop("shared")
    pi, pt = factor_purity(image_codes, image_labels), factor_purity(text_codes, text_labels)
    record.update({"purity_image": pi["purity"], "purity_text": pt["purity"],
                   "purity": _mean(np.array([p for p in (pi["purity"], pt["purity"]) if p is not None])),
                   "purity_shuffled": _mean(np.array([p for p in (pi["purity_shuffled"], pt["purity_shuffled"])
                                                      if p is not None])),
                   "live_image": pi["live_latents"], "live_text": pt["live_latents"],
                   "purity_by_attribute_image": pi["by_attribute"], "purity_by_attribute_text": pt["by_attribute"],
                   "recall_at_1": recall_at_1(image_codes, text_codes, keys)})
    for m, x in (("image", image_x), ("text", text_x)):
        with torch.no_grad():
            x_hat = recon(m)
        record[f"fvu_{m}"] = float((x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    return record


def compare_methods(train: dict[str, Tensor], evaluate: dict[str, Tensor], image_labels: dict[str, np.ndarray],
                    text_labels: dict[str, np.ndarray], keys=None, *, n_latents: int, k: int, steps: int,
                    seed: int = 0, device: str = "cpu", progress: bool = False) -> tuple[dict[str, Any], VLSAE]:
    """Train VL-SAE (as in the paper, and with per-modality centring), two separate TopK SAEs and one TopK SAE on
    both modalities' rows, all with the same width, k and steps; score each on the evaluation pairs.
    Returns ({method: metrics}, the paper's VL-SAE)."""
    kw = {"n_latents": n_latents, "k": k, "steps": steps, "seed": seed, "device": device, "progress": progress}
    xi, xt = evaluate["image"], evaluate["text"]
    methods: dict[str, Any] = {}
    paper = None
    for name, center in (("VL-SAE", False), ("VL-SAE, centred", True)):
        model = train_vlsae(train["image"], train["text"], center=center, **kw)
        paper = paper or model
        ci, ct = dense_codes(model, xi, "image"), dense_codes(model, xt, "text")
        methods[name] = _scores(ci, ct, image_labels, text_labels, keys, xi, xt,
                                lambda m, model=model: model.decode(model.encode(evaluate[m], m), m))
    separate = train_separate_saes(train["image"], train["text"], **kw)  # seeds derived from `seed`
    methods["separate TopK SAEs"] = _scores(
        dense_codes(separate["image"], xi), dense_codes(separate["text"], xt), image_labels, text_labels, keys, xi, xt,
        lambda m: separate[m].decode(separate[m].encode(evaluate[m])))
    pooled = train_topk_sae(torch.cat([train["image"], train["text"]]), **kw)
    methods["one TopK SAE on both"] = _scores(
        dense_codes(pooled, xi), dense_codes(pooled, xt), image_labels, text_labels, keys, xi, xt,
        lambda m: pooled.decode(pooled.encode(evaluate[m])))
    return methods, paper


def scene_pairs(vm, n: int, seed: int, split: str, keep_probability: float) -> dict[str, Any]:
    """n seeded scenes of `split` and their captions, through a CLIP's two towers: {"image", "text"} embeddings
    (n, d), the caption strings and the factor indices."""
    from ..data.vision import image_embeddings, text_embeddings
    from ..worlds.scenes import captions, sample_scenes

    sample = sample_scenes(n, seed, split)
    texts = captions(sample.factors, seed, keep_probability)
    return {"image": image_embeddings(vm, sample.images), "text": text_embeddings(vm, texts), "texts": texts,
            "factors": sample.factors}


def scene_study(vm, *, pairs: int, eval_pairs: int, n_latents: int, k: int, steps: int, seed: int = 0,
                device: str = "cpu", progress: bool = False) -> tuple[dict[str, Any], VLSAE]:
    """`compare_methods` on a CLIP's embeddings of the scenes world: trained on `pairs` train-split scenes with
    their usual captions (each attribute named with probability 0.5, as the toy CLIP was trained), scored on
    `eval_pairs` held-out test-split scenes with full captions (every attribute named, so a perfect shared concept
    fires on both sides of every pair). Images are scored against their factors, captions against what they name."""
    from ..worlds.scenes import attribute_labels

    train = scene_pairs(vm, pairs, seed, "train", 0.5)
    held_out = scene_pairs(vm, eval_pairs, seed, "test", 1.0)
    methods, model = compare_methods(
        train, held_out, attribute_labels(held_out["factors"]), caption_labels(held_out["texts"]), held_out["texts"],
        n_latents=n_latents, k=k, steps=steps, seed=seed, device=device, progress=progress)
    methods["CLIP embeddings"] = {"recall_at_1": recall_at_1(held_out["image"], held_out["text"], held_out["texts"])}
    return {"d": int(train["image"].shape[1]), "methods": methods}, model
