"""Maximum likelihood for models that compute ``log p(x)`` exactly (WaveNet, code priors).

The terms are those of every objective (``elbo``, ``rate``, ``distortion`` per example in nats; with no
latent layer the ELBO *is* the log-likelihood and the rate is 0), and the loss is the NLL per modelled
element (nats per audio sample, per token): the usual cross-entropy of autoregressive models, whose size
does not depend on the crop length, so one learning rate and gradient clip fit any length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vaekit.dataspec import num_elements
from vaekit.models.base import LatentVariableModel
from vaekit.objectives.elbo import Terms, elbo_terms
from vaekit.registry import OBJECTIVES


@dataclass
class ExactNLL:
    """``loss = -log p(x) / n(x)`` with ``n(x)`` the example's modelled elements (padding excluded)."""

    def __call__(self, model: LatentVariableModel, batch: dict, step: int) -> Terms:
        output = model(batch)
        terms, _ = elbo_terms(output, batch["x"])
        spec = model.config.spec()
        n = num_elements(batch, spec).clamp(min=1.0)
        unit = spec.element_unit
        per = terms["distortion"] / n
        terms["loss"] = per
        terms[f"nll_bits_per_{unit}"] = per / math.log(2)
        return terms


OBJECTIVES.register("exact_nll", config=ExactNLL,
                    description="maximum likelihood of exact-likelihood models (WaveNet): loss in nats per element")(ExactNLL)
