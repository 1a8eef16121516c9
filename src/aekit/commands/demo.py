"""`aekit demo`: the whole pipeline on bundled ground truth, in minutes on a CPU.

- `language_demo` (the default): the bundled toy GPT-2 → generated text → activation cache → TopK SAE on one
  residual layer → spliced CE loss recovered, concept recovery against the language's true concepts (next to a
  linear-probe upper bound) and the HTML feature report.
- `feature_world_demo`: a TopK SAE on the synthetic feature world, scored against the true feature directions.

Each writes into a fresh directory (or replaces a previous demo output there, never anything else).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..fileio import atomic_write_bytes, atomic_write_json, refuse_existing_file
from ..models.evaluate import evaluate_reconstruction
from ..report import plot_training
from ..train import TrainConfig

DEMO_MARKER = "demo.json"
LANGUAGE_HOOK = "blocks.1.hook_resid_post"

__all__ = ["DEMO_MARKER", "feature_world_demo", "language_demo"]


def _in_fresh_demo_dir(out_dir: str | Path, description: dict[str, Any], job: Callable[[Path], dict[str, Any]]):
    """Run `job(out_dir)` in an empty directory; a previous demo output is replaced, anything else refused."""
    out_dir = Path(out_dir)
    refuse_existing_file(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / DEMO_MARKER).is_file():
            raise ConfigError(f"{out_dir}: exists and is not a previous demo output; choose another --out")
        shutil.rmtree(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / DEMO_MARKER, description)
        return job(out_dir)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


def feature_world_demo(out_dir: str | Path = "demo-out", steps: int = 4000, seed: int = 0,
                       progress: bool = True) -> dict[str, Any]:
    """Train a TopK SAE on the default synthetic feature world and score it against the true features."""
    from ..data import write_store
    from ..worlds import FeatureWorld, FeatureWorldConfig, recovery_scores
    from .workflows import train

    world = FeatureWorld(FeatureWorldConfig(seed=seed))

    def job(out: Path) -> dict[str, Any]:
        train_x = world.sample(300_000, seed=1, with_magnitudes=False).x
        provenance = {"dataset": "aekit feature world", "world": world.config.to_dict()}
        write_store(out / "store", train_x, rows_per_shard=65536, provenance=provenance)
        del train_x
        summary = train(
            out / "store", out / "run",
            {"architecture": "topk", "n_latents": 2 * world.config.n_features, "k": 5},
            TrainConfig(steps=steps, batch_size=1024, lr=1e-3, seed=seed, progress=progress, checkpoint_every=1000),
            provenance=provenance,
        )
        held_out = world.sample(20_000, seed=2)
        metrics = evaluate_reconstruction(summary.model, held_out.x)
        metrics.update(recovery_scores(summary.model, world, held_out))
        metrics["true_mean_active"] = float(held_out.active.sum(-1).float().mean())
        atomic_write_json(out / "metrics.json", metrics)
        plot_training(summary.history, metrics["density_histogram"], out / "training.png",
                      title=f"demo: TopK SAE on the feature world — MCC {metrics['mcc']:.3f}")
        return metrics

    return _in_fresh_demo_dir(out_dir, {"world": "features", "config": world.config.to_dict(), "steps": steps,
                                        "seed": seed}, job)


def _write_corpus(path: Path, texts: list[str]) -> Path:
    atomic_write_bytes(path, ("\n".join(texts) + "\n").encode("utf-8"))
    return path


def language_demo(out_dir: str | Path = "demo-out", steps: int = 1500, seed: int = 0, progress: bool = True,
                  n_documents: int = 6000, hook: str = LANGUAGE_HOOK) -> dict[str, Any]:
    """The bundled toy LM end to end: cache, train an SAE, splice it in, score concepts, write the report.

    `n_documents` generated documents are cached for training; a quarter as many (≤ 1500) fresh prose documents
    are scored for concept recovery and a fifteenth (≤ 400) held-out documents give CE loss and the report.
    """
    from ..analysis.concept_recovery import concept_activations, concept_recovery
    from ..data.lm import load_lm
    from ..worlds.language import LanguageConfig, LanguageWorld, mixed_documents
    from ..worlds.toy_lm import ToyLMConfig, bundled_toy_lm_path
    from .caching import cache_activations
    from .workflows import evaluate_spliced, feature_report, train

    lm_path = bundled_toy_lm_path()
    world = LanguageWorld(LanguageConfig(seed=ToyLMConfig().world_seed))

    def job(out: Path) -> dict[str, Any]:
        start = time.perf_counter()
        mixture = ToyLMConfig().mixture
        corpus = _write_corpus(out / "corpus.txt", [d.text for d in mixed_documents(world, n_documents, seed + 101,
                                                                                     mixture)])
        n_held_out = max(20, min(400, n_documents // 15))
        held_out = _write_corpus(out / "held_out.txt", [d.text for d in mixed_documents(world, n_held_out,
                                                                                        seed + 202, mixture)])
        cache_activations(lm_path, hook, corpus, out / "store", batch_size=32, progress=progress)
        summary = train(out / "store", out / "run", {"architecture": "topk", "n_latents": 1024, "k": 16},
                        TrainConfig(steps=steps, batch_size=1024, lr=1e-3, seed=seed, progress=progress,
                                    checkpoint_every=1000))
        model_dir = out / "run" / "model"
        spliced = evaluate_spliced(model_dir, str(lm_path), hook, held_out, max_documents=n_held_out)
        model, tokenizer = load_lm(lm_path, progress=False)
        n_concept = max(50, min(1500, n_documents // 4))
        concepts = concept_recovery(summary.model, concept_activations(model, tokenizer, hook, world, n_concept,
                                                                       seed=seed + 303), seed=seed)
        report = feature_report(model_dir, held_out, out / "report.html", n_features=48, progress=progress)
        metrics = {
            "hook": hook, "reconstruction": {k: v for k, v in summary.metrics.items() if k != "density_histogram"},
            "spliced": spliced, "concepts": concepts, "report": report["report"],
            "wall_seconds": round(time.perf_counter() - start, 1),
        }
        atomic_write_json(out / "metrics.json", metrics)
        return metrics

    return _in_fresh_demo_dir(out_dir, {"world": "language", "hook": hook, "steps": steps, "seed": seed}, job)
