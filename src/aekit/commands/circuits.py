"""`aekit circuits`: head-level circuit discovery with discrete SAE codes (O'Neill & Bui 2024) on a causal LM.

The discrete-code method scores every head and head pair of the model on a task's prompt pairs; the circuit is the
heads whose node score reaches a threshold (or the top N) and the edges whose score does. Optionally the exhaustive
patching ground truth (toy tasks only, on a separate prompt set) and the ACDC, attribution-patching and HISP
baselines are computed too, every method timed, and their rankings scored by ROC AUC against that truth.

Outputs: `<out>/circuits.json` (every score, the selection, settings, timings) and `<out>/circuit.png`.
Everything is computed before anything is written, so a bad input leaves no output behind.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._version import __version__
from ..analysis.circuits import (
    CircuitTask,
    CodeCircuit,
    DiscreteCodeSettings,
    acdc_heads,
    attribution_patching,
    discrete_code_circuit,
    head_importance,
    task_from_file,
    toy_task,
)
from ..analysis.circuits import ground_truth as exhaustive_ground_truth
from ..data.hooks import model_layout
from ..data.lm import load_lm
from ..errors import ConfigError
from ..fileio import atomic_write_json, discard_partial_output, refuse_existing_file
from ..metrics.circuits import circuit_precision_recall, ranking_auc
from ..report.circuit_plot import plot_circuit

__all__ = ["DEFAULT_N_PROMPTS", "GROUND_TRUTH_PROMPTS", "GROUND_TRUTH_SEED_OFFSET", "JSON_NAME", "PNG_NAME", "TASKS",
           "run_circuits", "select_edges", "select_heads"]

TASKS = ("ioi", "greater_than", "docstring", "induction")
DEFAULT_N_PROMPTS = 10
GROUND_TRUTH_PROMPTS = 200
GROUND_TRUTH_SEED_OFFSET = 10_000  # the truth is measured on prompts the method never saw
JSON_NAME, PNG_NAME = "circuits.json", "circuit.png"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _json_safe(value: Any) -> Any:
    """Nested lists of floats with NaN and ±inf as None, so the file is strict JSON."""
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _heads(mask: Tensor) -> list[list[int]]:
    """[layer, head] of every True entry, in layer then head order."""
    return mask.nonzero().tolist()


def select_heads(node_scores: Tensor, threshold: float, size: int | None) -> Tensor:
    """Boolean (layers, heads): the `size` highest-scoring heads (ties broken by position), or every head whose
    score reaches `threshold` when no size is given."""
    if size is None:
        return node_scores >= threshold
    order = torch.argsort(-node_scores.flatten(), stable=True)[:size]
    mask = torch.zeros(node_scores.numel(), dtype=torch.bool)
    mask[order] = True
    return mask.reshape(node_scores.shape)


def select_edges(edge_scores: Tensor, threshold: float) -> list[list[int]]:
    """[sender layer, sender head, receiver layer, receiver head] of every edge whose score reaches `threshold`,
    highest score first."""
    index = (torch.nan_to_num(edge_scores, nan=-math.inf) >= threshold).nonzero()
    scores = edge_scores[tuple(index.T)]
    return index[torch.argsort(-scores, stable=True)].tolist()


def _check_arguments(task: str, prompts: str | Path | None, n_prompts: int | None, threshold: float,
                     size: int | None, ground_truth: bool, settings: DiscreteCodeSettings, out: Path) -> None:
    """Refuse a bad combination before the model is loaded."""
    if prompts is None and task not in TASKS:
        raise ConfigError(f"circuits: unknown task {task!r}; choose one of {', '.join(TASKS)} or give --prompts")
    if prompts is not None and ground_truth:
        raise ConfigError("circuits: --ground-truth needs a toy task (--task), whose prompt generator gives a "
                          "separate prompt set; it cannot be used with --prompts")
    if prompts is not None and n_prompts is not None:
        raise ConfigError("circuits: --n-prompts applies to --task only; a --prompts file is used whole")
    if n_prompts is not None and n_prompts < 1:
        raise ConfigError(f"circuits: --n-prompts must be ≥ 1 (got {n_prompts})")
    if size is not None and size < 1:
        raise ConfigError(f"circuits: --size must be ≥ 1 (got {size})")
    if not math.isfinite(threshold):
        raise ConfigError(f"circuits: --threshold must be a finite number (got {threshold})")
    settings.validate()
    refuse_existing_file(out)


def _model_record(model: str | Path) -> str:
    """A local model directory as an absolute path; a hub name as given."""
    return str(Path(model).resolve()) if Path(model).expanduser().exists() else str(model)


def _baselines(model, circuit_task: CircuitTask, progress: bool) -> tuple[dict[str, Any], dict[str, float]]:
    """ACDC, attribution patching and HISP scores on the method's own prompts, with their times."""
    (acdc, kept), t_acdc = _timed(lambda: acdc_heads(model, circuit_task, progress=progress))
    attribution, t_attr = _timed(lambda: attribution_patching(model, circuit_task))
    hisp, t_hisp = _timed(lambda: head_importance(model, circuit_task))
    scores = {"acdc": {"scores": acdc, "kept": _heads(kept)}, "attribution_patching": {"scores": attribution},
              "hisp": {"scores": hisp}}
    return scores, {"acdc": t_acdc, "attribution_patching": t_attr, "hisp": t_hisp}


def _truth_record(truth, seed: int) -> dict[str, Any]:
    return {"n_prompts": GROUND_TRUTH_PROMPTS, "seed": seed, "threshold": truth.threshold,
            "edge_threshold": truth.edge_threshold, "clean_metric": truth.clean_metric,
            "negative_metric": truth.negative_metric, "effects": dict(truth.effects), "head_effect": truth.head_effect,
            "heads": _heads(truth.heads), "edge_effects": truth.edge_effects,
            "edges": truth.edges.nonzero().tolist() if truth.edges is not None else None,
            "seconds": truth.seconds}


def _aucs(node_scores: Tensor, edge_scores: Tensor, baselines: dict[str, Any] | None, truth) -> dict[str, float]:
    """ROC AUC of each method's head ranking against the true heads (NaN where the truth has one class)."""
    aucs = {"discrete_codes": ranking_auc(node_scores, truth.heads)}
    for name, result in (baselines or {}).items():
        aucs[name] = ranking_auc(result["scores"], truth.heads)
    if truth.edges is not None:
        aucs["discrete_codes_edges"] = ranking_auc(edge_scores, truth.edges)
    return aucs


def _write_outputs(out: Path, record: dict[str, Any], code_circuit: CodeCircuit, selected: Tensor,
                   truth_heads: Tensor | None) -> None:
    """circuit.png then circuits.json, each atomically; a directory this call created is removed on failure."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        title = f"{record['task']['name']}: discrete-code circuit ({int(selected.sum())} heads selected)"
        plot_circuit(code_circuit.node_scores, code_circuit.edge_scores, out / PNG_NAME, title=title,
                     selected=selected, truth=truth_heads)
        atomic_write_json(out / JSON_NAME, record)
    except BaseException:
        if created:
            discard_partial_output(out, created=True)
        raise


def run_circuits(model: str | Path | None = None, task: str = "ioi", prompts: str | Path | None = None,
                 n_prompts: int | None = None, seed: int = 0, n_latents: int = 200, l1: float = 0.02,
                 epochs: int = 500, threshold: float = 1.0, size: int | None = None, ground_truth: bool = False,
                 baselines: bool = False, out: str | Path = "circuits-out", device: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Find a task's circuit with discrete codes (plus, optionally, ground truth and baselines), write
    circuits.json and circuit.png into `out` and return the record with the two paths added.

    `model` defaults to the bundled toy GPT-2; `prompts` (a JSONL file) replaces the toy `task`; `n_prompts`
    defaults to 10 toy prompt pairs. Heads are selected by node score ≥ `threshold`, or as the top `size`.
    """
    from ..worlds.toy_lm import bundled_toy_lm_path

    out = Path(out)
    settings = DiscreteCodeSettings(n_latents=n_latents, l1_coefficient=l1, epochs=epochs, seed=seed)
    _check_arguments(task, prompts, n_prompts, threshold, size, ground_truth, settings, out)
    model_name = model if model is not None else bundled_toy_lm_path()
    lm, tokenizer = load_lm(model_name, device=device, progress=progress)
    if prompts is not None:
        circuit_task = task_from_file(prompts, tokenizer)
    else:
        circuit_task = toy_task(task, tokenizer, n_prompts or DEFAULT_N_PROMPTS, seed=seed, split="test")
    layout = model_layout(lm)
    if size is not None and size > layout.n_layers * layout.n_heads:
        raise ConfigError(f"circuits: --size {size} is more than the model's {layout.n_layers * layout.n_heads} "
                          f"heads ({layout.n_layers} layers × {layout.n_heads})")

    code_circuit, t_codes = _timed(lambda: discrete_code_circuit(lm, circuit_task, settings, progress=progress))
    seconds: dict[str, Any] = {"discrete_codes": t_codes, "discrete_codes_stages": code_circuit.seconds}
    baseline_scores = None
    if baselines:
        baseline_scores, baseline_seconds = _baselines(lm, circuit_task, progress)
        seconds.update(baseline_seconds)
    truth, truth_seed = None, seed + GROUND_TRUTH_SEED_OFFSET
    if ground_truth:
        truth_task = toy_task(task, tokenizer, GROUND_TRUTH_PROMPTS, seed=truth_seed, split="test")
        truth, seconds["ground_truth"] = _timed(lambda: exhaustive_ground_truth(lm, truth_task, progress=progress))

    nodes, edges = code_circuit.node_scores, code_circuit.edge_scores
    selected = select_heads(nodes, threshold, size)
    record: dict[str, Any] = {
        "aekit_version": __version__,
        "model": _model_record(model_name),
        "task": {"name": circuit_task.name, "source": str(Path(prompts).resolve()) if prompts else "toy",
                 "n_prompts": len(circuit_task), "seed": seed},
        "n_layers": layout.n_layers, "n_heads": layout.n_heads,
        "settings": {"n_latents": n_latents, "l1_coefficient": l1, "lr": settings.lr, "epochs": epochs, "seed": seed,
                     "threshold": threshold, "size": size, "device": str(next(lm.parameters()).device)},
        "node_scores": nodes, "edge_scores": edges,
        "selected_heads": _heads(selected), "selected_edges": select_edges(edges, threshold),
        "seconds": seconds,
    }
    if baseline_scores is not None:
        record["baselines"] = baseline_scores
    if truth is not None:
        record["ground_truth"] = _truth_record(truth, truth_seed)
        record["auc"] = _aucs(nodes, edges, baseline_scores, truth)
        precision, recall = circuit_precision_recall(selected, truth.heads)
        record["selected_precision"], record["selected_recall"] = precision, recall
    record = _json_safe(record)
    _write_outputs(out, record, code_circuit, selected, truth.heads if truth is not None else None)
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
