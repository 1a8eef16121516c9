"""Circuit discovery at head level: the discrete-code method, its ground truth by patching, and baselines."""

from .baselines import acdc_heads, attribution_patching, head_importance
from .discrete_codes import CodeCircuit, DiscreteCodeSettings, discrete_code_circuit, head_vectors
from .ground_truth import GroundTruth, ablation_effects, ground_truth, path_patching_effects
from .tasks import CircuitTask, PromptPairs, task_from_file, toy_task

__all__ = [
    "CircuitTask",
    "CodeCircuit",
    "DiscreteCodeSettings",
    "GroundTruth",
    "PromptPairs",
    "ablation_effects",
    "acdc_heads",
    "attribution_patching",
    "discrete_code_circuit",
    "ground_truth",
    "head_importance",
    "head_vectors",
    "path_patching_effects",
    "task_from_file",
    "toy_task",
]
