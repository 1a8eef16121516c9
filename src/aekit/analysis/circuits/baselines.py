"""Ablation- and gradient-based head rankings to compare the discrete-code method against.

* `acdc_heads` — greedy pruning in the style of ACDC (Conmy et al. 2023) at head level: heads are visited from
  the last layer to the first; each is resample-ablated (its output taken from the negative prompt) on top of the
  heads already pruned, and stays pruned when the KL divergence of the last-token distribution from the clean
  model's grows by less than `threshold`. A head's score is the KL increase measured when it was visited.
* `attribution_patching` — (Nanda 2023; Syed et al. 2023) first-order estimate of resample ablation:
  |mean over prompts of Σ_positions (z_negative − z_clean) · ∂m/∂z| at the clean run.
* `head_importance` — HISP (Michel et al. 2019): a mask ξ_h = 1 multiplies each head's output, and the importance
  is the mean over prompts of |∂m/∂ξ_h|.
Every function returns a (layers, heads) score tensor, larger = more important.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...data.hooks import model_layout
from .patching import editing_heads, head_outputs_z, last_logits
from .tasks import CircuitTask

__all__ = ["acdc_heads", "attribution_patching", "head_importance"]


def _kl_from(clean_log_probs: Tensor, logits: Tensor) -> float:
    """Mean over prompts of KL(clean ‖ patched) of the last-token distributions."""
    log_probs = torch.log_softmax(logits.float(), -1)
    return float((clean_log_probs.exp() * (clean_log_probs - log_probs)).sum(-1).mean())


@torch.no_grad()
def acdc_heads(model: nn.Module, task: CircuitTask, threshold: float = 0.05,
               progress: bool = False) -> tuple[Tensor, Tensor]:
    """(scores, kept): the KL increase each head caused when visited, and the boolean circuit left at the end."""
    pairs = task.pairs
    clean_logits, _ = head_outputs_z(model, pairs.positive_ids, pairs.mask)
    _, z_negative = head_outputs_z(model, pairs.negative_ids, pairs.mask)
    clean_log_probs = torch.log_softmax(clean_logits.float(), -1)
    n_layers, n_heads = z_negative.shape[0], z_negative.shape[3]
    pruned = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    scores = torch.zeros(n_layers, n_heads)

    def ablate(layer: int, z: Tensor) -> Tensor:
        if not pruned[layer].any():
            return z
        z = z.clone()
        z[..., pruned[layer], :] = z_negative[layer][..., pruned[layer], :].to(z.device, z.dtype)
        return z

    current = 0.0  # KL of the current (partly pruned) model; 0 with nothing pruned
    bar = tqdm(total=n_layers * n_heads, desc=f"ACDC ({task.name})", disable=not progress)
    with editing_heads(model, ablate):
        for layer in reversed(range(n_layers)):
            for head in reversed(range(n_heads)):
                pruned[layer, head] = True
                trial = _kl_from(clean_log_probs, last_logits(model, pairs.positive_ids, pairs.mask))
                scores[layer, head] = trial - current
                if trial - current < threshold:
                    current = trial
                else:
                    pruned[layer, head] = False
                bar.update()
    bar.close()
    return scores, ~pruned


def _gradients_at_clean(model: nn.Module, task: CircuitTask) -> tuple[Tensor, Tensor]:
    """z on the clean run and ∂(Σ_prompts m)/∂z, both (layers, prompts, seq, heads, d_head)."""
    pairs = task.pairs
    recorded: dict[int, Tensor] = {}

    def keep(layer: int, z: Tensor) -> Tensor:
        recorded[layer] = z  # not detached: ∂m/∂z must include the paths through later heads
        return z

    with torch.enable_grad(), editing_heads(model, keep) as layout:
        metric = task.metric(last_logits(model, pairs.positive_ids, pairs.mask)).sum()
        zs = [recorded[layer] for layer in range(layout.n_layers)]
        grads = torch.autograd.grad(metric, zs)
    mask = pairs.mask.to(zs[0].device, zs[0].dtype)[None, :, :, None, None]  # padding never contributes
    return torch.stack([z.detach() for z in zs]), torch.stack(grads) * mask


def attribution_patching(model: nn.Module, task: CircuitTask) -> Tensor:
    """|mean over prompts of the first-order change in m when each head takes its negative-prompt output|."""
    z_clean, grad = _gradients_at_clean(model, task)
    _, z_negative = head_outputs_z(model, task.pairs.negative_ids, task.pairs.mask)
    per_prompt = ((z_negative - z_clean) * grad).sum(dim=(2, 4))  # (layers, prompts, heads)
    return per_prompt.mean(1).abs().float().cpu()


def head_importance(model: nn.Module, task: CircuitTask) -> Tensor:
    """HISP: mean over prompts of |∂m/∂ξ_h| at ξ = 1, where ξ_h scales head h's output."""
    model_layout(model)  # fail early, with aekit's message, on an unsupported architecture
    z_clean, grad = _gradients_at_clean(model, task)
    per_prompt = (z_clean * grad).sum(dim=(2, 4))  # ∂m_p/∂ξ_h = Σ_positions z · ∂m_p/∂z
    return per_prompt.abs().mean(1).float().cpu()
