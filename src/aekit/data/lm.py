"""Load a Hugging Face causal LM and its tokenizer from a local directory or the hub, with one-line errors."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..errors import ConfigError, DataError

__all__ = ["load_lm", "resolve_device"]


def resolve_device(device: str | None) -> torch.device:
    """`None` means CUDA when available, else CPU; anything else must be a device torch understands."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device: {device!r} is not a device name; use e.g. cpu, cuda or cuda:1") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} asked for CUDA, but no CUDA device is available; use --device cpu")
    return resolved


def _dtype_kwarg() -> str:
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def load_lm(name_or_path: str | Path, *, dtype: torch.dtype | None = None, device: str | torch.device | None = None,
            progress: bool = True):
    """Return (model, tokenizer) for a local model directory or a hub name, model in eval mode on `device`.

    A directory is read with local_files_only; a hub name is looked up in the local cache first and only then
    on the hub. A tokenizer without a pad token pads with its EOS token; padding is on the right. With
    `progress=False` transformers' own download/loading bars are hidden.
    """
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        return _load_lm(str(name_or_path), dtype, device)
    finally:
        if bars_were_on and not progress:
            hf_logging.enable_progress_bar()


def _is_autoencoder_dir(path: Path) -> bool:
    """An aekit model directory (or a training run holding one) rather than a Hugging Face model."""
    for directory in (path, path / "model"):
        try:
            meta = json.loads((directory / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and "format_version" in meta and "kind" in meta:
            return True
    return False


def _load_lm(name: str, dtype: torch.dtype | None, device: str | torch.device | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_dir = Path(name).expanduser().is_dir()
    kwargs = {} if dtype is None else {_dtype_kwarg(): dtype}

    def load(local_only: bool):
        source = str(Path(name).expanduser()) if local_dir else name
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local_only, **kwargs)
        return model, tokenizer

    try:
        model, tokenizer = load(local_only=True)
    except (OSError, ValueError) as local_error:
        hub_allowed = not local_dir and not _path_like(name) and os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0")
        if local_dir and _is_autoencoder_dir(Path(name).expanduser()):
            raise DataError(f"{name}: is an aekit autoencoder, not a language model; give the Hugging Face model "
                            "directory or hub name of the language model") from None
        if local_dir:
            raise DataError(f"{name}: cannot load a causal LM and tokenizer from this local directory "
                            f"({_first_line(local_error)})") from None
        if not hub_allowed:
            raise DataError(f"{name}: model not found locally (no such directory, not in the Hugging Face cache) "
                            "and the Hugging Face hub was not tried (offline or not a hub name); "
                            "give a local model directory") from None
        if not _hub_reachable():  # fail in seconds, not after a minute of download retries
            raise DataError(f"{name}: model not found locally (no such directory, not in the Hugging Face cache) "
                            f"and the Hugging Face hub ({_hub_host()}) cannot be reached from this machine; "
                            "give a local model directory, or run where the network allows") from None
        try:
            model, tokenizer = load(local_only=False)
        except (OSError, ValueError) as hub_error:
            raise DataError(f"{name}: model not found locally (no such directory, not in the Hugging Face cache) "
                            f"and the Hugging Face hub could not be reached or has no such model "
                            f"({_first_line(hub_error)}); give a local model directory or check the name and "
                            "network") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise DataError(f"{name}: the tokenizer has neither a pad nor an EOS token, so batches cannot be padded")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # real tokens keep the positions they would have alone
    model.eval()
    model.to(resolve_device(device) if not isinstance(device, torch.device) else device)
    return model, tokenizer


def _hub_host() -> str:
    return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's HTTPS port opens within `timeout` seconds."""
    try:
        socket.create_connection((_hub_host(), 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _path_like(name: str) -> bool:
    """A name that can only be a filesystem path: absolute, relative with ./ or ~, or with more than one '/'."""
    return name.startswith((".", "/", "~", "\\")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__
