"""Concept recovery on the toy language: score SAE latents against the concepts that generated the text.

`concept_activations` runs prose documents of a `LanguageWorld` through a language model and returns, for every
real token (BOS dropped, as in training), the activation at a hook, every per-token concept label and the exact
log p(topic | words so far). `concept_recovery` then compares single SAE latents with a supervised linear probe
on the very same activations: per concept the mean best-F1 of a latent detector vs the probe's held-out F1, and for
the topic posterior the Hungarian-matched latent correlation vs the ridge probe's held-out correlation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.hooks import ActivationCapture
from ..errors import DataError
from ..metrics.concept_scores import concept_best_f1, matched_correlation, probe_correlation, probe_f1
from ..worlds.language import LanguageWorld

__all__ = ["ConceptData", "concept_activations", "concept_recovery"]

# Concepts scored by default: each is a per-token label with -1 where it does not apply.
SCORED_CONCEPTS = ("topic_word", "sentiment", "formality", "tense", "entity", "category")


@dataclass
class ConceptData:
    activations: np.ndarray  # (n_tokens, d)
    labels: dict[str, np.ndarray]  # concept -> (n_tokens,)
    topic_log_posterior: np.ndarray  # (n_tokens, n_topics)


@torch.no_grad()
def concept_activations(model: nn.Module, tokenizer, hook: str, world: LanguageWorld, n_documents: int, *,
                        seed: int = 0, max_length: int = 128, batch_size: int = 16) -> ConceptData:
    """Activations, concept labels and exact topic posteriors of every non-BOS token of fresh prose documents."""
    documents = world.documents(n_documents, seed=seed)
    capture = ActivationCapture(model, [hook])
    acts, labels, posteriors = [], {}, []
    for start in range(0, len(documents), batch_size):
        batch = documents[start:start + batch_size]
        encoded = tokenizer([doc.text for doc in batch], return_tensors="pt", padding=True, truncation=True,
                            max_length=max_length)
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        out = capture.run(ids, mask)[hook].float().cpu()
        for row, doc in enumerate(batch):
            length = int(mask[row].sum())
            if ids[row, 0] != tokenizer.bos_token_id or length > len(doc.tokens):
                raise DataError("tokenizer: its tokens do not line up with the language world's words (BOS first)")
            acts.append(out[row, 1:length].reshape(length - 1, -1).numpy())
            for name, values in doc.token_labels.items():
                labels.setdefault(name, []).append(values[1:length])
            posteriors.append(world.topic_log_posterior(doc.tokens)[1:length])
    return ConceptData(np.concatenate(acts), {k: np.concatenate(v) for k, v in labels.items()},
                       np.concatenate(posteriors))


def concept_recovery(sae: nn.Module, data: ConceptData, *, concepts: tuple[str, ...] = SCORED_CONCEPTS,
                     seed: int = 0) -> dict[str, Any]:
    """Per concept: SAE best-F1 and probe F1 (means over values) and their ratio; the same for the topic posterior."""
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(data.activations)).to_dense().numpy()
    result: dict[str, Any] = {"tokens": len(codes), "concepts": {}}
    for name in concepts:
        labels = data.labels[name]
        if (labels >= 0).sum() == 0:
            continue
        sae_f1 = concept_best_f1(codes, labels)
        probe = probe_f1(data.activations, labels, seed=seed)
        sae_mean = float(np.mean([f1 for _, f1 in sae_f1.values()]))
        probe_mean = float(np.mean(list(probe.values())))
        result["concepts"][name] = {
            "values": len(sae_f1), "sae_best_f1": sae_mean, "probe_f1": probe_mean,
            "ratio": sae_mean / probe_mean if probe_mean > 0 else None,
            "best_latents": {str(v): latent for v, (latent, _) in sae_f1.items()},
        }
    matched, latents, _ = matched_correlation(codes, data.topic_log_posterior)
    probe = float(probe_correlation(data.activations, data.topic_log_posterior, seed=seed).mean())
    result["topic_posterior"] = {"sae_matched_correlation": matched, "probe_correlation": probe,
                                 "ratio": matched / probe if probe > 0 else None, "latents": latents.tolist()}
    return result
