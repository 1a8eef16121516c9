"""Data: in-memory arrays, the sharded activation store, file readers, Hugging Face activation hooks."""

from .hooks import ActivationCapture, capture, token_rows
from .readers import read_array
from .sources import ArraySource, Source, open_source, read_dataset
from .store import ActivationStore, ActivationStoreWriter, StoreSource, is_store, write_store

__all__ = [
    "ActivationCapture",
    "ActivationStore",
    "ActivationStoreWriter",
    "ArraySource",
    "Source",
    "StoreSource",
    "capture",
    "is_store",
    "open_source",
    "read_array",
    "read_dataset",
    "token_rows",
    "write_store",
]
