"""A small SAE on the bundled toy GPT-2's residual stream, trained once per test process, for the data-analysis
tests: its latents fire on the toy language's words, so document-level concepts are recoverable from it."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from aekit import SparseCoder
from aekit.analysis.concept_recovery import concept_activations
from aekit.data.lm import load_lm
from aekit.worlds.language import LanguageConfig, LanguageWorld
from aekit.worlds.toy_lm import ToyLMConfig, bundled_toy_lm_path

HOOK = "blocks.1.hook_resid_post"


@dataclass
class DocSAE:
    sae: torch.nn.Module
    model: torch.nn.Module
    tokenizer: object
    world: LanguageWorld
    hook: str = HOOK


@functools.lru_cache(maxsize=1)
def toy_doc_sae() -> DocSAE:
    world = LanguageWorld(LanguageConfig(seed=ToyLMConfig().world_seed))
    model, tokenizer = load_lm(bundled_toy_lm_path(), progress=False)
    data = concept_activations(model, tokenizer, HOOK, world, 300, seed=7)
    coder = SparseCoder(n_latents=256, architecture="topk", k=16, steps=600, random_state=0).fit(data.activations)
    return DocSAE(coder.model_.eval(), model, tokenizer, world)
