"""Evaluation: functions over (model, data) returning dicts with units in their names."""

from vaekit.evaluation.disentanglement import (
    beta_vae_score,
    dci,
    disentanglement_metrics,
    factor_information,
    factor_vae_score,
    mig,
    mig_sup,
    sap,
)
from vaekit.evaluation.latents import active_units_from_means, latent_usage
from vaekit.evaluation.likelihood import (
    evaluate_likelihood,
    importance_sampled_log_likelihood,
    paired_difference,
    per_example_nll,
)

__all__ = [
    "beta_vae_score", "dci", "disentanglement_metrics", "factor_information", "factor_vae_score", "mig", "mig_sup",
    "sap", "active_units_from_means", "latent_usage", "evaluate_likelihood", "importance_sampled_log_likelihood",
    "paired_difference", "per_example_nll"]
