"""Ground-truth circuits by exhaustive patching: every head ablated alone, every head pair path-patched.

Node effects. For each head h, the task metric m (see `tasks`) is measured on the positive prompts with h's
output replaced, and normalised by the clean–negative gap:

    effect_h = (m_clean − m_h) / (m_clean − m_negative)

with two replacements: *mean ablation* (h's output at each position replaced by its mean over the negative
prompts at that position — the "ABC" mean ablation of Wang et al. 2023) and *resample ablation* (h's output taken
from the prompt's own negative). Threshold rule: a head is in the true circuit when |effect| ≥ `threshold`
(default 0.1, a tenth of the task's clean–negative gap) under either ablation.

Edge effects. For a sender head s in layer i and a receiver r in layer j > i, path patching (Wang et al. 2023)
gives r's input the sender's negative-prompt write in place of its clean write, while every other path from s
stays clean; the effect is normalised like a node's. An edge is true when |effect| ≥ `edge_threshold`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...data.hooks import model_layout
from ...errors import DataError
from .patching import editing_heads, head_outputs_z, last_logits, path_patched_logits
from .tasks import CircuitTask

__all__ = ["ABLATIONS", "GroundTruth", "ablation_effects", "ground_truth", "path_patching_effects"]

ABLATIONS = ("mean", "resample")
DEFAULT_THRESHOLD = 0.1
DEFAULT_EDGE_THRESHOLD = 0.05


@dataclass
class GroundTruth:
    """Normalised patching effects of every head (layers, heads) and head pair (layers, heads, layers, heads)."""

    clean_metric: float
    negative_metric: float
    effects: dict[str, Tensor]  # ablation name -> (layers, heads)
    threshold: float = DEFAULT_THRESHOLD
    edge_effects: Tensor | None = None  # [i, s, j, r] = effect of the path s -> r; NaN unless layer i < layer j
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def head_effect(self) -> Tensor:
        """The larger absolute effect over the ablations, (layers, heads): the statistic the threshold applies to."""
        return torch.stack([e.abs() for e in self.effects.values()]).max(0).values

    @property
    def heads(self) -> Tensor:
        """Boolean (layers, heads): the true circuit's heads."""
        return self.head_effect >= self.threshold

    @property
    def edges(self) -> Tensor | None:
        """Boolean (layers, heads, layers, heads): the true circuit's edges (None without path patching)."""
        if self.edge_effects is None:
            return None
        return torch.nan_to_num(self.edge_effects.abs(), nan=0.0) >= self.edge_threshold


def _gap(clean: float, negative: float, task: str) -> float:
    gap = clean - negative
    if abs(gap) < 1e-6:
        raise DataError(f"{task}: the metric is the same on positive and negative prompts ({clean:.4g}); the model "
                        "does not do this task, so there is no circuit to find")
    return gap


def _position_mean(z: Tensor, mask: Tensor) -> Tensor:
    """Mean of z (n, seq, heads, d_head) over the prompts that have each position, (seq, heads, d_head)."""
    weight = mask.to(z.dtype)[:, :, None, None]
    return (z * weight).sum(0) / weight.sum(0).clamp_min(1)


@torch.no_grad()
def ablation_effects(model: nn.Module, task: CircuitTask, ablations: tuple[str, ...] = ABLATIONS,
                     progress: bool = False) -> tuple[float, float, dict[str, Tensor]]:
    """(clean metric, negative metric, {ablation: normalised effect of ablating each head alone})."""
    pairs = task.pairs
    clean_logits, z_clean = head_outputs_z(model, pairs.positive_ids, pairs.mask)
    negative_logits, z_negative = head_outputs_z(model, pairs.negative_ids, pairs.mask)
    clean = float(task.metric(clean_logits).mean())
    negative = float(task.metric(negative_logits).mean())
    gap = _gap(clean, negative, task.name)
    n_layers, n_heads = z_clean.shape[0], z_clean.shape[3]
    references = {"resample": lambda layer: z_negative[layer],
                  "mean": lambda layer: _position_mean(z_negative[layer], pairs.mask).expand_as(z_clean[layer])}
    effects = {}
    bar = tqdm(total=len(ablations) * n_layers * n_heads, desc=f"ablating heads ({task.name})", disable=not progress)
    for name in ablations:
        effect = torch.zeros(n_layers, n_heads)
        for layer in range(n_layers):
            reference = references[name](layer)
            for head in range(n_heads):
                def replace(at: int, z: Tensor, layer=layer, head=head, reference=reference) -> Tensor:
                    if at != layer:
                        return z
                    z = z.clone()
                    z[..., head, :] = reference[..., head, :].to(z.device, z.dtype)
                    return z

                with editing_heads(model, replace):
                    metric = float(task.metric(last_logits(model, pairs.positive_ids, pairs.mask)).mean())
                effect[layer, head] = (clean - metric) / gap
                bar.update()
        effects[name] = effect
    bar.close()
    return clean, negative, effects


@torch.no_grad()
def path_patching_effects(model: nn.Module, task: CircuitTask, progress: bool = False) -> Tensor:
    """Normalised effect of every sender -> receiver path, (layers, heads, layers, heads); NaN where the receiver
    is not in a later layer than the sender."""
    layout = model_layout(model)
    pairs = task.pairs
    clean_logits, z_clean = head_outputs_z(model, pairs.positive_ids, pairs.mask)
    negative_logits, z_negative = head_outputs_z(model, pairs.negative_ids, pairs.mask)
    clean = float(task.metric(clean_logits).mean())
    gap = _gap(clean, float(task.metric(negative_logits).mean()), task.name)
    n_layers, n_heads = layout.n_layers, layout.n_heads
    effects = torch.full((n_layers, n_heads, n_layers, n_heads), float("nan"))
    n_paths = sum(n_heads * n_heads * (n_layers - 1 - i) for i in range(n_layers))
    bar = tqdm(total=n_paths, desc=f"path patching ({task.name})", disable=not progress)
    for sender_layer in range(n_layers - 1):
        w_o = layout.w_o(sender_layer).detach()
        for sender in range(n_heads):
            change = z_negative[sender_layer, ..., sender, :] - z_clean[sender_layer, ..., sender, :]
            delta = change.to(w_o.dtype) @ w_o[sender]  # the sender's write on negatives minus on positives
            for receiver_layer in range(sender_layer + 1, n_layers):
                for receiver in range(n_heads):
                    logits = path_patched_logits(model, pairs.positive_ids, pairs.mask, (receiver_layer, receiver),
                                                 delta)
                    metric = float(task.metric(logits).mean())
                    effects[sender_layer, sender, receiver_layer, receiver] = (clean - metric) / gap
                    bar.update()
    bar.close()
    return effects


def ground_truth(model: nn.Module, task: CircuitTask, *, edges: bool = True, threshold: float = DEFAULT_THRESHOLD,
                 edge_threshold: float = DEFAULT_EDGE_THRESHOLD, progress: bool = False) -> GroundTruth:
    """Exhaustive head ablation (mean and resample) and, with `edges`, path patching of every head pair."""
    start = time.perf_counter()
    clean, negative, effects = ablation_effects(model, task, progress=progress)
    seconds = {"heads": time.perf_counter() - start}
    edge_effects = None
    if edges:
        start = time.perf_counter()
        edge_effects = path_patching_effects(model, task, progress=progress)
        seconds["edges"] = time.perf_counter() - start
    return GroundTruth(clean, negative, effects, threshold, edge_effects, edge_threshold, seconds)
