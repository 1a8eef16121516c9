"""Tiny randomly initialised Hugging Face causal LMs of every supported family, built locally (no download)."""

from __future__ import annotations

import torch
import transformers

SMALL = dict(vocab_size=100, max_position_embeddings=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2)
KINDS = ["gpt2", "neox-seq", "neox-par", "llama", "qwen2", "mistral"]


def tiny_config(kind: str):
    if kind == "gpt2":
        return transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=100, n_positions=64,
                                       bos_token_id=1, eos_token_id=1)
    if kind.startswith("neox"):
        return transformers.GPTNeoXConfig(**SMALL, num_attention_heads=4, use_parallel_residual=kind == "neox-par",
                                          bos_token_id=1, eos_token_id=1)
    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
           "mistral": transformers.MistralConfig}[kind]
    return cls(**SMALL, num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=1)


_MODELS: dict[str, torch.nn.Module] = {}


def tiny_lm(kind: str) -> torch.nn.Module:
    """One shared eval-mode model per kind (seeded); Llama gets an o_proj bias so bias terms are exercised."""
    if kind not in _MODELS:
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(tiny_config(kind), attn_implementation="eager")
        if kind == "llama":
            model.config.attention_bias = True
            for block in model.model.layers:
                o_proj = block.self_attn.o_proj
                o_proj.bias = torch.nn.Parameter(torch.randn(o_proj.out_features) * 0.1)
        _MODELS[kind] = model.eval()
    return _MODELS[kind]


WORD_SPECIALS = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]


def save_word_level_lm(path, documents, *, n_embd: int = 16, n_layer: int = 2, n_head: int = 2, seed: int = 0):
    """A tiny random GPT-2 with a word-level fast tokenizer (BOS prepended, no pad token) saved to `path`."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from tokenizers.processors import TemplateProcessing

    words = sorted({w for doc in documents for w in doc.split()})
    vocab = {tok: i for i, tok in enumerate(WORD_SPECIALS + words)}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", vocab["[BOS]"])])
    # no pad token on purpose: load_lm must pad with EOS
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]",
                                                eos_token="[EOS]")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=len(vocab),
                                     n_positions=64, bos_token_id=vocab["[BOS]"], eos_token_id=vocab["[EOS]"])
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path
