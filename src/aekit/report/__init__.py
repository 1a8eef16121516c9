"""Reports: PNG plots (training curves, feature density), image grids and the self-contained HTML feature report."""

from .plots import plot_training

__all__ = ["plot_training"]
