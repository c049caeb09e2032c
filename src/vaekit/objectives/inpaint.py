"""The objective of latent inpainting (vaekit.models.inpaint, InpaintNet of Pati et al. 2019): the measure VAE's
negative ELBO plus the negative log-likelihood of the true missing bars under the decoder at the latents the
latent RNN predicted for them."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from vaekit.config import ConfigError
from vaekit.models.base import ModelOutput
from vaekit.objectives.elbo import ELBO
from vaekit.registry import OBJECTIVES


@dataclass
class InpaintObjective(ELBO):
    """The measure VAE's negative ELBO plus ``inpaint_weight`` x the inpainting NLL of the gap (the model's
    ``aux["inpaint_nll"]``, logged as ``inpaint_nll``)."""

    inpaint_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.inpaint_weight < 0:
            raise ConfigError(f"objective.inpaint_weight must be >= 0, got {self.inpaint_weight}")

    def report(self, output: ModelOutput, terms: dict[str, Tensor], weight: float | Tensor, step: int | Tensor) -> None:
        if "inpaint_nll" not in output.aux:
            raise ConfigError("the inpaint objective needs a model that predicts missing bars (inpaintnet)")
        terms["inpaint_nll"] = output.aux["inpaint_nll"]
        terms["loss"] = terms["loss"] + self.inpaint_weight * output.aux["inpaint_nll"]


OBJECTIVES.register("inpaint", config=InpaintObjective,
                    description="measure VAE ELBO + the NLL of the inpainted bars (InpaintNet)")(InpaintObjective)
