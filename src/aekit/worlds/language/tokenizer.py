"""The word-level tokenizer of the toy language, in the Hugging Face `tokenizers` format.

One token per word of `vocab.VOCAB`. Pre-tokenisation splits on whitespace, isolates every punctuation mark
(except that a docstring quote `\"\"\"` stays one token) and splits digit runs into pairs, so "1732" reads as the
two year tokens "17" "32". The post-processor prepends "<|endoftext|>" to every text, the BOS every training
document starts with, so `tokenizer(doc.text)` gives exactly the ids of `doc.tokens`. Decoding joins words with
single spaces, which round-trips the language's canonical text.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors

from ...fileio import atomic_write_bytes, atomic_write_json
from .vocab import BOS, PAD, SPECIAL_TOKENS, UNK, VOCAB

__all__ = ["TOKENIZER_FILES", "build_tokenizer", "encode_words", "save_tokenizer", "word_ids"]

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def word_ids() -> dict[str, int]:
    """The word -> id map shared by the tokenizer and the training pipeline (ids follow `VOCAB` order)."""
    return {word: i for i, word in enumerate(VOCAB)}


def build_tokenizer() -> Tokenizer:
    """A `tokenizers.Tokenizer` (WordLevel) over the whole toy vocabulary, adding BOS at the start of a text."""
    tokenizer = Tokenizer(models.WordLevel(word_ids(), unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(r'"""|\d\d|[^\w\s]'), behavior="isolated"),
    ])
    bos_id = VOCAB.index(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


_WORD_IDS = word_ids()


def encode_words(words: list[str]) -> list[int]:
    """Ids of already split words (BOS included if it is in `words`); unknown words raise KeyError."""
    return [_WORD_IDS[w] for w in words]


def save_tokenizer(directory: str | Path, max_length: int = 128) -> None:
    """Write tokenizer.json plus the config files `AutoTokenizer.from_pretrained(directory)` needs.

    `max_length` is the model's context; transformers warns about (and with truncation=True cuts) longer texts.
    """
    directory = Path(directory)
    tokenizer = build_tokenizer()
    atomic_write_bytes(directory / "tokenizer.json", tokenizer.to_str(pretty=True).encode())
    specials = {"bos_token": BOS, "eos_token": BOS, "unk_token": UNK, "pad_token": PAD}
    atomic_write_json(directory / "special_tokens_map.json", specials)
    atomic_write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": False,  # the language is space-separated; decoding must not merge
        "padding_side": "right",
        **specials,
    })
