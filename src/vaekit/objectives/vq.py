"""The VQ-VAE objective (van den Oord et al. 2017, eq. 3), with the two codebook terms weighted apart:

    loss = -log p(x | z_q(x)) + codebook_weight ||sg[z_e(x)] - e||^2 + commitment_weight ||z_e(x) - sg[e]||^2

The first term trains the decoder, and the encoder through the straight-through estimator; the second
moves the codes towards the encoder outputs (it has no effect when the codebook follows moving averages
instead); the third keeps the encoder outputs near their codes (beta = 0.25 in the paper, "robust to
values from 0.1 to 2.0"). The true ELBO under the uniform training prior is reported beside it:
``elbo = log p(x|z_q) - sum_positions log K``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from vaekit.config import ConfigError
from vaekit.models.base import LatentVariableModel
from vaekit.objectives.elbo import Terms, elbo_terms
from vaekit.registry import OBJECTIVES


@dataclass
class VQObjective:
    """Distortion + weighted codebook and commitment losses, all per example."""

    commitment_weight: float = 0.25  # beta of eq. 3 (the paper's value)
    codebook_weight: float = 1.0  # the codebook term's weight (no effect with EMA codebooks)

    def validate(self) -> None:
        if self.commitment_weight < 0 or self.codebook_weight < 0:
            raise ConfigError("objective.commitment_weight and objective.codebook_weight must be >= 0")

    def __call__(self, model: LatentVariableModel, batch: dict[str, Tensor], step: int) -> Terms:
        output = model(batch)
        if "commitment_loss" not in output.aux:
            raise ConfigError(f"objective 'vq' needs a vector-quantised model (vqvae, vqvae2), got "
                              f"{type(model).__name__}")
        terms, _ = elbo_terms(output, batch["x"])
        terms.update(output.aux)
        terms["loss"] = (terms["distortion"] + self.codebook_weight * terms["codebook_loss"]
                         + self.commitment_weight * terms["commitment_loss"])
        return terms


OBJECTIVES.register("vq", config=VQObjective,
                    description="VQ-VAE: distortion + codebook + beta * commitment (van den Oord et al. 2017)")(VQObjective)
