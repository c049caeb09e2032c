"""Objectives: functions of (model, batch, step) returning named per-example terms in nats."""

from __future__ import annotations

from typing import Any

from vaekit.config import Choice, from_dict
from vaekit.objectives.elbo import ELBO, BetaVAE, CapacityVAE, Terms, elbo_terms, linear_warmup
from vaekit.objectives.iwae import IWAE, MultiSampleELBO, iwae_bound
from vaekit.objectives.nll import ExactNLL
from vaekit.objectives.speech import PeriodicKL
from vaekit.objectives.inpaint import InpaintObjective
from vaekit.objectives.tdvae import JumpyBound
from vaekit.objectives.vq import VQObjective
from vaekit.objectives.mixture import EM
from vaekit.objectives.colorize import Colorize
from vaekit.registry import OBJECTIVES


def build_objective(choice: Choice | str | dict[str, Any]) -> Any:
    """The objective object for a registry choice (``"iwae"``, ``{"name": "beta", "beta": 4}``, ...)."""
    if isinstance(choice, Choice) and choice.params is not None:
        return choice.params
    if isinstance(choice, Choice):
        choice = choice.to_dict()
    if isinstance(choice, str):
        choice = {"name": choice}
    choice = dict(choice)
    entry = OBJECTIVES.get(choice.pop("name"))
    return from_dict(entry.config_cls, choice, where="objective")


__all__ = ["ELBO", "BetaVAE", "CapacityVAE", "IWAE", "MultiSampleELBO", "Terms", "elbo_terms", "iwae_bound",
           "linear_warmup", "build_objective", "VQObjective", "ExactNLL", "InpaintObjective"]
