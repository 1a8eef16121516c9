"""Reports: PNG plots (training curves, feature density, circuits), image grids and the self-contained HTML feature
report."""

from .circuit_plot import plot_circuit
from .plots import plot_training

__all__ = ["plot_circuit", "plot_training"]
