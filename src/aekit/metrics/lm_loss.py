"""Spliced-evaluation metrics from logits: next-token CE, KL to the clean model, CE loss recovered.

Conventions (shared with `aekit.analysis.splicing`):

* Next-token CE: the logits at position t predict token t+1. A pair (t, t+1) counts when both positions are
  real tokens (attention_mask 1). Position 0's token (usually BOS) is therefore never a target, while the
  prediction made *from* BOS (of token 1) is counted.
* KL: KL(P_clean || P_spliced) of the next-token distributions, summed over the vocabulary and averaged over
  the same positions t as the CE (the predicting position t must be real and have a real successor).
* CE loss recovered: (L_ablate - L_sae) / (L_ablate - L_clean); NaN when L_ablate == L_clean.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "METRIC_MODES",
    "loss_recovered",
    "metrics_from_sums",
    "next_token_mask",
    "spliced_metrics",
    "spliced_sums",
    "token_ce",
    "token_kl",
]

METRIC_MODES = ("sae", "zero", "mean")


def next_token_mask(input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
    """(batch, seq-1) bool: position t predicts a real token t+1 from a real token t."""
    if attention_mask is None:
        return torch.ones(input_ids.shape[0], input_ids.shape[1] - 1, dtype=torch.bool, device=input_ids.device)
    mask = attention_mask.to(input_ids.device).bool()
    return mask[:, :-1] & mask[:, 1:]


def token_ce(logits: Tensor, input_ids: Tensor) -> Tensor:
    """(batch, seq-1) cross-entropy of predicting token t+1 from the logits at t (no masking)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:].to(logits.device)
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def token_kl(clean_logits: Tensor, logits: Tensor) -> Tensor:
    """(batch, seq-1) KL(P_clean || P) of the next-token distributions at positions 0..seq-2."""
    logp_clean = torch.log_softmax(clean_logits[:, :-1].float(), dim=-1)
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return (logp_clean.exp() * (logp_clean - logp)).sum(-1)


def loss_recovered(l_clean: float, l_spliced: float, l_ablate: float) -> float:
    """(L_ablate - L_spliced) / (L_ablate - L_clean): 1 for a perfect splice, 0 for one as bad as ablation."""
    denominator = l_ablate - l_clean
    return float("nan") if denominator == 0 else (l_ablate - l_spliced) / denominator


def spliced_sums(
    clean_logits: Tensor, spliced_logits: dict[str, Tensor], input_ids: Tensor, attention_mask: Tensor | None = None
) -> dict[str, float]:
    """Summed CE and KL over the counted positions of one batch, plus the count `n_tokens` (to add up batches)."""
    mask = next_token_mask(input_ids, attention_mask).to(clean_logits.device)
    sums = {"n_tokens": float(mask.sum()), "ce_clean": float(token_ce(clean_logits, input_ids)[mask].double().sum())}
    for mode, logits in spliced_logits.items():
        sums[f"ce_{mode}"] = float(token_ce(logits, input_ids)[mask].double().sum())
        sums[f"kl_{mode}"] = float(token_kl(clean_logits, logits)[mask].double().sum())
    return sums


def metrics_from_sums(sums: dict[str, float]) -> dict[str, float]:
    """Turn (possibly accumulated) `spliced_sums` into means and the derived scores."""
    n = sums["n_tokens"]
    out: dict[str, float] = {"n_tokens": int(n)}
    for key, value in sums.items():
        if key != "n_tokens":
            out[key] = value / n if n else float("nan")
    clean = out["ce_clean"]
    if "ce_sae" in out:
        out["delta_loss"] = out["ce_sae"] - clean
        for ablation in ("zero", "mean"):
            if f"ce_{ablation}" in out:
                out[f"ce_recovered_{ablation}"] = loss_recovered(clean, out["ce_sae"], out[f"ce_{ablation}"])
    return {k: (v if isinstance(v, int) or math.isfinite(v) else float("nan")) for k, v in out.items()}


def spliced_metrics(
    clean_logits: Tensor,
    spliced_logits: dict[str, Tensor],
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
) -> dict[str, float]:
    """Metrics of one batch: `spliced_logits` maps a mode ('sae', 'zero', 'mean', ...) to its (batch, seq, vocab)
    logits. Returns ce_clean, ce_<mode>, kl_<mode>, n_tokens and, when 'sae' is present, delta_loss and
    ce_recovered_<ablation> for each of 'zero' and 'mean' given."""
    return metrics_from_sums(spliced_sums(clean_logits, spliced_logits, input_ids, attention_mask))
