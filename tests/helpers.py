"""Small shared builders for tests."""

from __future__ import annotations

import contextlib
import io

import torch

from aekit.cli import main
from aekit.worlds import FeatureWorld, FeatureWorldConfig


def small_world(seed: int = 0, d: int = 16, n_features: int = 32, mean_active: float = 3.0) -> FeatureWorld:
    return FeatureWorld(FeatureWorldConfig(d=d, n_features=n_features, mean_active=mean_active, seed=seed))


def small_data(n: int = 4096, seed: int = 0) -> torch.Tensor:
    return small_world(seed).sample(n, seed=1, with_magnitudes=False).x


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run `aekit ...` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
