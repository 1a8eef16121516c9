"""A generated toy language with known concepts, an exact topic posterior and task families with known answers.

It is the ground truth for interpretability methods on language models: `LanguageWorld` writes prose from latent
concepts (topic, sentiment, formality, tense, entity types), `task_set` gives IOI, greater-than, docstring and
induction prompts with answers and corruptions, and `save_tokenizer` writes its word-level Hugging Face tokenizer.
"""

from .grammar import CATEGORIES, CONCEPTS, Document, LanguageConfig, LanguageWorld
from .tasks import TASK_FAMILIES, TaskExample, TaskSet, mixed_documents, task_document, task_set
from .tokenizer import build_tokenizer, encode_words, save_tokenizer, word_ids
from .vocab import BOS, PAD, UNK, VOCAB

__all__ = [
    "BOS",
    "CATEGORIES",
    "CONCEPTS",
    "PAD",
    "TASK_FAMILIES",
    "UNK",
    "VOCAB",
    "Document",
    "LanguageConfig",
    "LanguageWorld",
    "TaskExample",
    "TaskSet",
    "build_tokenizer",
    "encode_words",
    "mixed_documents",
    "save_tokenizer",
    "task_document",
    "task_set",
    "word_ids",
]
