"""The aekit error hierarchy.

Every error a user can cause is an `AekitError`; its message is one sentence that names the file or field,
says what is wrong and what to do. The CLI prints it on one line and exits with code 2.
"""


class AekitError(Exception):
    """Base class of every error aekit raises on purpose."""

    exit_code = 2


class ConfigError(AekitError, ValueError):
    """A configuration value or flag is invalid (unknown architecture, negative learning rate, ...)."""


class DataError(AekitError, ValueError):
    """Input data is unusable: missing, empty, wrong shape, NaN/Inf, unsupported format."""


class StoreError(DataError):
    """An activation store is incomplete or corrupt (missing or truncated shard, checksum mismatch)."""


class FormatError(AekitError, ValueError):
    """A model or checkpoint directory cannot be loaded (unknown version, wrong shapes, not safetensors)."""


class ShapeError(DataError):
    """Data and model disagree on a dimension."""
