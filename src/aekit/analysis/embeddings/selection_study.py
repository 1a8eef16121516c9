"""The data-selection study on the toy world: does selecting by SAE codes give a better fine-tuning set?

1. A base toy GPT-2 is trained without the target task family (it never sees, say, greater-than documents).
2. A candidate pool is drawn in which a known `fraction` of the documents belongs to the target family
   (`selection_pool`); a few further target documents, outside the pool, are the examples.
3. A TopK SAE is fitted on the base model's last residual stream over the (unlabelled) pool, as one would fit it on
   the data one selects from, and every document is embedded by its max-pooled codes.
4. Each method (SAE generalised Jaccard, cosine on mean-pooled hidden states, BM25 on the text, random) selects
   `budget` candidates; its precision is the fraction of them that are targets.
5. The base model is fine-tuned on each selection with the same steps, learning rate and seed, and scored on
   held-out prompts of the target family.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError
from ...metrics.selection import selection_precision, selection_recall
from ...seeding import derive_seed
from .embed import dense_embeddings, sae_embeddings
from .selection import SELECTION_METHODS, bm25_scores, cosine_scores, jaccard_scores, random_scores, select

__all__ = ["selection_study"]


def _sae(model, tokenizer, hook: str, texts: list[str], n_latents: int, k: int, steps: int, seed: int):
    """A TopK SAE on the hook's activations over every real token of `texts`."""
    from ...data.hooks import ActivationCapture
    from ...data.lm_source import document_rows
    from ...estimator import SparseCoder

    capture = ActivationCapture(model, [hook])
    try:
        rows = [document_rows(capture, tokenizer, hook, texts[i:i + 64], max_length=128)
                for i in range(0, len(texts), 64)]
    finally:
        capture.remove()
    activations = torch.cat(rows).float().numpy()
    coder = SparseCoder(n_latents=n_latents, architecture="topk", k=k, steps=steps, random_state=seed, device="cpu")
    return coder.fit(activations).model_.eval()


def _family_accuracy(evaluation: dict[str, Any]) -> dict[str, float]:
    return {name: round(float(value["accuracy"]), 4) for name, value in evaluation.items()
            if isinstance(value, dict) and "accuracy" in value}


def selection_study(seed: int = 0, target: str = "greater_than", n_candidates: int = 2000, fraction: float = 0.05,
                    n_examples: int = 5, budget: int | None = None, methods: tuple[str, ...] = SELECTION_METHODS,
                    base_steps: int = 1200, finetune_steps: int = 100, finetune_lr: float = 1e-3,
                    n_latents: int = 256, k: int = 16, sae_steps: int = 600, eval_n: int = 200,
                    work_dir: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the study (about 2-3 minutes on one CPU core at the defaults) and return a JSON-able record.

    `budget` defaults to the number of targets in the pool, so a perfect selection has precision 1. The record
    holds the settings, the base model's held-out accuracy per family, per method the selection's precision and
    recall and the fine-tuned model's accuracy (on `target` and on every family), and the seconds of each stage.
    `work_dir` keeps the base and fine-tuned models; by default they go to a temporary directory that is removed.
    """
    from ...data.lm import load_lm
    from ...worlds.language import TASK_FAMILIES, LanguageConfig, LanguageWorld, task_document
    from ...worlds.language.corpora import selection_pool
    from ...worlds.toy_finetune import finetune_toy_lm
    from ...worlds.toy_lm import ToyLMConfig, evaluate_toy_lm, train_toy_lm

    unknown = [m for m in methods if m not in SELECTION_METHODS]
    if unknown:
        raise ConfigError(f"methods: unknown {unknown[0]!r}; choose from {', '.join(SELECTION_METHODS)}")
    if target not in TASK_FAMILIES:
        raise ConfigError(f"target: must be one of {', '.join(TASK_FAMILIES)} (got {target!r})")
    if n_examples < 1:
        raise ConfigError(f"n_examples: must be ≥ 1 (got {n_examples})")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # the toy models are fastest on one thread, and the numbers do not depend on load
    with tempfile.TemporaryDirectory(prefix="aekit-selection-") as scratch:
        root = Path(work_dir) if work_dir is not None else Path(scratch)
        try:
            # 1. the base model, trained without the target family
            config = ToyLMConfig(n_layer=2, n_head=4, d_model=64, steps=base_steps, warmup_steps=min(60, base_steps),
                                 seed=seed, eval_n=0, eval_every=0, **{target: 0.0})
            t = time.perf_counter()
            train_toy_lm(root / "base", config, progress=progress, overwrite=True)
            seconds["base_training"] = time.perf_counter() - t
            base_accuracy = _family_accuracy(evaluate_toy_lm(root / "base", n=eval_n, seed=seed))

            # 2. the pool and the examples
            world = LanguageWorld(LanguageConfig(seed=config.world_seed))
            pool, is_target = selection_pool(world, n_candidates, seed=seed, target=target, fraction=fraction)
            rng = random.Random(derive_seed("selection_study.examples", seed))
            examples = [task_document(target, rng).text for _ in range(n_examples)]
            texts = [doc.text for doc in pool]
            n_targets = int(is_target.sum())
            budget = n_targets if budget is None else budget

            # 3. SAE codes and dense activations of pool and examples
            model, tokenizer = load_lm(root / "base", device="cpu", progress=False)
            hook = f"blocks.{config.n_layer - 1}.hook_resid_post"
            t = time.perf_counter()
            sae = _sae(model, tokenizer, hook, texts, n_latents, k, sae_steps, seed)
            seconds["sae_training"] = time.perf_counter() - t
            t = time.perf_counter()
            codes = sae_embeddings(sae, model, tokenizer, hook, texts + examples, progress=False)
            candidates, example_codes = codes.subset(np.arange(len(texts))), codes.subset(np.arange(len(texts),
                                                                                                   len(codes.doc_ids)))
            seconds["sae_embedding"] = time.perf_counter() - t
            t = time.perf_counter()
            dense = dense_embeddings(model, tokenizer, hook, texts + examples, progress=False)
            seconds["dense_embedding"] = time.perf_counter() - t

            # 4. selections
            scorers = {"jaccard": lambda: jaccard_scores(candidates, example_codes),
                       "cosine": lambda: cosine_scores(dense[:len(texts)], dense[len(texts):]),
                       "bm25": lambda: bm25_scores(texts, examples),
                       "random": lambda: random_scores(len(texts), seed)}
            results: dict[str, Any] = {}
            for method in methods:
                t = time.perf_counter()
                chosen = select(scorers[method](), budget)
                select_seconds = time.perf_counter() - t
                # 5. fine-tune on the selection and score the target family
                t = time.perf_counter()
                out = root / f"finetuned_{method}"
                finetune_toy_lm(root / "base", [texts[i] for i in chosen], out, steps=finetune_steps,
                                lr=finetune_lr, seed=seed, warmup_steps=min(10, finetune_steps), overwrite=True)
                accuracy = _family_accuracy(evaluate_toy_lm(out, n=eval_n, seed=seed))
                results[method] = {
                    "precision": selection_precision(chosen, is_target),
                    "recall": selection_recall(chosen, is_target),
                    "targets_selected": int(is_target[chosen].sum()),
                    "target_accuracy": accuracy[target], "accuracy": accuracy,
                    "seconds_select": round(select_seconds, 3),
                    "seconds_finetune": round(time.perf_counter() - t, 2),
                }
        finally:
            torch.set_num_threads(threads_before)
    seconds["total"] = time.perf_counter() - start
    return {
        "settings": {"seed": seed, "target": target, "n_candidates": n_candidates, "fraction": fraction,
                     "n_targets": n_targets, "n_examples": n_examples, "budget": budget, "base_steps": base_steps,
                     "finetune_steps": finetune_steps, "finetune_lr": finetune_lr, "n_latents": n_latents, "k": k,
                     "sae_steps": sae_steps, "eval_n": eval_n, "hook": hook, "pooling": codes.pooling,
                     "base_model": {"n_layer": config.n_layer, "d_model": config.d_model, "n_head": config.n_head}},
        "base_accuracy": base_accuracy, "base_target_accuracy": base_accuracy[target],
        "methods": results,
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
    }
