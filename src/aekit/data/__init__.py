"""Data sources and stores: in-memory arrays, the sharded activation store, file readers."""

from .readers import read_array
from .sources import ArraySource, Source, open_source, read_dataset
from .store import ActivationStore, ActivationStoreWriter, StoreSource, is_store, write_store

__all__ = [
    "ActivationStore",
    "ActivationStoreWriter",
    "ArraySource",
    "Source",
    "StoreSource",
    "is_store",
    "open_source",
    "read_array",
    "read_dataset",
    "write_store",
]
