"""End-to-end jobs the CLI runs: train (fresh or resumed), evaluate, the demo.

Each job validates every input before it writes anything, and a fresh run that fails removes the output
directory it created, so a mistake never leaves half an output behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config_base import coerce
from ..errors import AekitError, ConfigError, DataError, FormatError, ShapeError
from ..fileio import atomic_write_json, discard_partial_output, read_json, require_fresh_directory
from ..interop import load_any
from ..models import SAEConfig, SparseAutoencoder
from ..models.evaluate import evaluate_reconstruction
from ..report import plot_training
from ..train import TrainConfig, Trainer
from ..train.checkpoint import latest_checkpoint
from ..train.distributed import launched_rank
from .training_data import DataSpec, data_provenance, open_training_source, record, sample_rows

RUN_FILE = "run.json"
MODEL_DIR = "model"
DEFAULT_EXPANSION = 8  # n_latents = 8 · d_in when not given


@dataclass
class RunSummary:
    out_dir: Path
    model: SparseAutoencoder
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


def build_model_config(settings: dict[str, Any], data_dim: int) -> SAEConfig:
    """Fill d_in (and the default n_latents) from the data; a transcoder's rows are [x | y], y of size d_out."""
    settings = dict(settings)
    d_out = coerce(settings.get("d_out"), int | None, "model.d_out")
    d_in = data_dim - (d_out or 0)
    if d_in < 1:
        raise ShapeError(f"model.d_out: the data has {data_dim} columns, too few for a d_out={d_out} target plus input")
    given = settings.get("d_in")
    if given not in (None, 0, "0") and coerce(given, int, "model.d_in") not in (0, d_in):
        raise ShapeError(f"model.d_in: the data has {d_in} features for the input but d_in={given} was requested")
    settings["d_in"] = d_in
    if settings.get("n_latents") in (None, 0, "0"):
        settings["n_latents"] = DEFAULT_EXPANSION * d_in
    return SAEConfig.from_dict(settings)


def train(data: DataSpec, out_dir: str | Path, model_settings: dict[str, Any], train_config: TrainConfig,
          provenance: dict[str, Any] | None = None) -> RunSummary:
    """Train a new SAE on `data` (array file or activation store) into `out_dir`."""
    out_dir = Path(out_dir)
    main_process = launched_rank() == 0  # under torchrun only rank 0 owns the output directory
    if main_process:
        require_fresh_directory(out_dir, "output directory", ", or pass --resume to continue the run saved there")
    train_config.validate()
    source = open_training_source(data, train_config)
    model_config = build_model_config(model_settings, source.d)
    created = not out_dir.exists()
    try:
        if main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(out_dir / RUN_FILE, {
                "data": record(data),
                "model": model_config.to_dict(),
                "train": train_config.to_dict(),
                "provenance": dict(provenance or {}),
            })
        model = SparseAutoencoder(model_config, seed=train_config.seed)
        model.provenance.update(data_provenance(data, source))
        model.provenance.update(provenance or {})
        trainer = Trainer(model, source, train_config, out_dir=out_dir)
        return _finish(trainer, data, out_dir)
    except (AekitError, KeyboardInterrupt, OSError):
        if main_process and not (out_dir / "checkpoints").is_dir():  # with a checkpoint, keep it for --resume
            discard_partial_output(out_dir, created)
        raise


def resume(out_dir: str | Path, data: DataSpec | None = None) -> RunSummary:
    """Continue the run saved in `out_dir` from its newest checkpoint."""
    out_dir = Path(out_dir)
    if not (out_dir / RUN_FILE).is_file():
        raise ConfigError(f"{out_dir / RUN_FILE}: not found, so there is no run to resume in {out_dir}; start a "
                          "new run with --data and --out")
    run = read_json(out_dir / RUN_FILE, "run description")
    for key in ("data", "train", "model"):
        if key not in run or (key == "data" and not isinstance(run[key], str | dict)):
            raise FormatError(f"{out_dir / RUN_FILE}: run description lacks a valid {key!r} entry; "
                              "it was not written by aekit train or was edited")
    data = data or run["data"]
    train_config = TrainConfig.from_dict(run["train"], where=f"{out_dir / RUN_FILE}:train")
    model_config = SAEConfig.from_dict(run["model"], where=f"{out_dir / RUN_FILE}:model")
    source = open_training_source(data, train_config)
    expected = model_config.d_in + (model_config.d_out or 0)
    if source.d != expected:
        raise ShapeError(f"{data}: the data has {source.d} columns but the saved run expects {expected}")
    model = SparseAutoencoder(model_config, seed=train_config.seed)
    model.provenance.update(data_provenance(data, source))
    model.provenance.update(run.get("provenance") or {})
    trainer = Trainer(model, source, train_config, out_dir=out_dir)
    if not trainer.resume():
        raise ConfigError(f"{out_dir}: no checkpoint to resume from; start a new run instead")
    return _finish(trainer, data, out_dir)


def _finish(trainer: Trainer, data: DataSpec, out_dir: Path) -> RunSummary:
    result = trainer.fit()
    model = trainer.model
    if not trainer.dist.is_main:
        return RunSummary(out_dir, model, {}, result.history)
    model.save(out_dir / MODEL_DIR)
    history = read_history(out_dir)
    metrics = evaluate_reconstruction(model, sample_rows(data, 65536, seed=trainer.config.seed + 1))
    metrics["final_loss"] = history[-1]["loss"] if history else None
    atomic_write_json(out_dir / "metrics.json", metrics)
    plot_training(history, metrics["density_histogram"], out_dir / "training.png",
                  title=f"{model.config.architecture} SAE, {model.config.n_latents} latents")
    return RunSummary(out_dir, model, metrics, history)


def read_history(out_dir: Path) -> list[dict[str, Any]]:
    log = out_dir / "metrics.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def load_saved_model(model_dir: str | Path):
    """A saved model (aekit, SAELens or sparsify); a training run directory is pointed to the model inside it."""
    path = Path(model_dir)
    if (path / RUN_FILE).is_file() and not (path / "config.json").is_file():
        if (path / MODEL_DIR).is_dir():
            raise ConfigError(f"{path}: is a training run directory, not a model; give the model inside it: "
                              f"{path / MODEL_DIR}")
        if latest_checkpoint(path / "checkpoints") is not None:
            raise ConfigError(f"{path}: is a training run that has not finished, so it holds no model yet; continue "
                              f"it with `aekit train --resume --out {path}`")
        raise ConfigError(f"{path}: is a training run without a model or a checkpoint; train it again")
    return load_any(path)


def evaluate(model_dir: str | Path, data: str | Path, max_rows: int = 262144) -> dict[str, Any]:
    model = load_saved_model(model_dir)
    x = sample_rows(data, max_rows)
    expected = model.config.d_in + (model.config.d_out or 0)
    if x.shape[1] != expected:
        raise ShapeError(f"{data}: the data has {x.shape[1]} features but the model expects {expected}")
    return evaluate_reconstruction(model, x)


def evaluate_spliced(model_dir: str | Path, lm: str, hook: str, text: str | Path, max_documents: int = 256,
                     max_length: int = 128, batch_size: int = 8) -> dict[str, Any]:
    """Splice the SAE into `lm` at `hook` on the first documents of a corpus: CE recovered, KL, Δ loss."""
    from itertools import islice

    from ..analysis.splicing import spliced_eval
    from ..data.corpus import iter_documents
    from ..data.lm import load_lm

    sae = load_saved_model(model_dir)
    documents = list(islice(iter_documents(text), max_documents))
    if not documents:
        raise DataError(f"{text}: the corpus holds no documents")
    model, tokenizer = load_lm(lm, progress=False)
    batch = tokenizer(documents, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    result = spliced_eval(model, sae, hook, batch["input_ids"], batch["attention_mask"], batch_size=batch_size)
    return {"hook": hook, "documents": len(documents), **result}


def feature_report(model_dir: str | Path, text: str | Path, out: str | Path, *, lm: str | None = None,
                   hook: str | None = None, features: list[int] | None = None, n_features: int = 32,
                   max_documents: int = 2000, max_tokens: int = 50_000, max_length: int = 128,
                   progress: bool = True) -> dict[str, Any]:
    """Write the HTML feature report of an SAE; the LM and hook default to those recorded when it was trained."""
    from itertools import islice

    from ..data.corpus import check_corpus, iter_documents
    from ..data.lm import load_lm
    from ..report.feature_report import build_report
    from ..report.html import write_report

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"{out}: the report is one HTML file; give a path ending in .html")
    if out.is_dir():
        raise ConfigError(f"{out}: is a directory; give the path of the HTML file to write")
    sae = load_saved_model(model_dir)
    lm = lm or sae.provenance.get("model")
    hook = hook or sae.provenance.get("hook")
    if not lm or not hook:
        raise ConfigError(f"{model_dir}: the model does not record which language model and hook it was trained "
                          "on; pass --lm and --hook")
    documents = list(islice(iter_documents(check_corpus(text)), max_documents))
    if not documents:
        raise DataError(f"{text}: the corpus holds no documents")
    model, tokenizer = load_lm(lm, progress=False)
    meta = {"SAE": str(model_dir), "language model": str(lm), "corpus": str(text),
            "architecture": getattr(sae.config, "architecture", sae.kind)}
    data = build_report(sae, model, tokenizer, hook, documents, features=features, n_features=n_features,
                        max_tokens=max_tokens, max_length=max_length, meta=meta, progress=progress)
    write_report(data, out)
    return {"report": str(out), "features": [card.index for card in data.cards], "tokens": int(data.meta["tokens"]),
            "alive": int((data.density > 0).sum()), "n_latents": len(data.density)}


def info(model_dir: str | Path) -> dict[str, Any]:
    model = load_saved_model(model_dir)
    description = model.describe()
    description["parameters"] = {name: list(t.shape) for name, t in model.state_dict().items()}
    return description
