"""Evaluation with few labels: data-efficiency grids, few-shot episodes, baselines under one protocol."""

from edgenas.evaluate.fewshot import episode, mean_ci95, run_episodes
from edgenas.evaluate.protocol import EvalPlan, run_evaluation

__all__ = ["EvalPlan", "episode", "mean_ci95", "run_episodes", "run_evaluation"]
