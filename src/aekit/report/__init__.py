"""Reports: PNG plots (and, later, HTML dashboards)."""

from .plots import plot_training

__all__ = ["plot_training"]
