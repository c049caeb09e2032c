"""Evaluation: functions over (model, data) returning dicts with units in their names."""

from vaekit.evaluation.latents import active_units_from_means, latent_usage
from vaekit.evaluation.likelihood import evaluate_likelihood, importance_sampled_log_likelihood

__all__ = ["active_units_from_means", "latent_usage", "evaluate_likelihood", "importance_sampled_log_likelihood"]
