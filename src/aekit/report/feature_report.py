"""Assemble the feature report of an SAE on a language model's hook from a list of documents."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..analysis.attention import head_attribution
from ..analysis.features import choose_features, collect_token_codes, feature_contexts, output_effects
from ..data.hooks import model_layout, parse_hook_name
from .html import FeatureCard, ReportData

__all__ = ["build_report"]


def _token_list(tokenizer, ids: torch.Tensor, values: torch.Tensor) -> list[tuple[str, float]]:
    return [(tokenizer.decode([int(i)]), float(v)) for i, v in zip(ids, values, strict=True)]


def build_report(sae: nn.Module, model: nn.Module, tokenizer, hook: str, documents: Sequence[str], *,
                 features: Sequence[int] | None = None, n_features: int = 32, n_contexts: int = 10,
                 n_tokens: int = 8, max_tokens: int = 50_000, max_length: int = 128, batch_size: int = 8,
                 meta: dict[str, str] | None = None, progress: bool = True) -> ReportData:
    """Encode the documents, pick the features to show (given, or spread over the density ranking) and describe each."""
    codes = collect_token_codes(sae, model, tokenizer, hook, documents, max_tokens=max_tokens,
                                max_length=max_length, batch_size=batch_size, progress=progress)
    chosen = list(features) if features is not None else choose_features(codes, n_features)
    density, peak = codes.density(), codes.max_activation()
    cards = [FeatureCard(f, float(density[f]), float(peak[f]), feature_contexts(codes, f, n_contexts),
                         codes.activations(f)[1]) for f in chosen]
    if chosen:
        effects = output_effects(sae, model, hook, chosen)
        top = effects.topk(min(n_tokens, effects.shape[1]), dim=1)
        bottom = (-effects).topk(min(n_tokens, effects.shape[1]), dim=1)
        _, point = parse_hook_name(hook)
        shares = head_attribution(sae, model_layout(model).n_heads)[chosen] if point == "attn.hook_z" else None
        for row, card in enumerate(cards):
            card.promoted = _token_list(tokenizer, top.indices[row], top.values[row])
            card.suppressed = _token_list(tokenizer, bottom.indices[row], -bottom.values[row])
            if shares is not None:
                card.heads = shares[row].tolist()
    info = {"hook": hook, "tokens": str(codes.n_tokens), "documents": str(len(codes.texts)), **(meta or {})}
    return ReportData(f"Feature report — {hook}", info, density, peak, cards)
