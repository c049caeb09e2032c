"""TD-VAE's training objective: the jumpy bound ``J_{t1, t2}`` of Gregor et al. (2019, eq. 8) at sampled pairs
(:mod:`vaekit.models.tdvae`). It is not the sequence ELBO and is never reported as one: the terms are
``jumpy_bound`` (nats per step: the mean over pairs of J, which bounds ``log p(x_t2 | x_<=t1)`` only as far as the
belief is the true filtering distribution) and its parts; outside training (validation, test) the model's true
sequence ELBO is added as ``elbo`` / ``rate`` / ``distortion``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from vaekit.config import ConfigError
from vaekit.registry import OBJECTIVES


@dataclass
class JumpyBound:
    """``loss = -T_b x mean over pairs of J_{t1, t2}`` per sequence (a sequence's worth of nats, so that the
    gradient scale matches an ELBO's); ``pairs``: pairs per sequence (default: the model's ``pairs``)."""

    pairs: int | None = None

    def validate(self) -> None:
        if self.pairs is not None and self.pairs < 1:
            raise ConfigError(f"objective.pairs must be >= 1, got {self.pairs}")

    def __call__(self, model, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        from vaekit.objectives.elbo import elbo_terms

        if not hasattr(model, "jumpy_terms"):
            raise ConfigError("the tdvae objective needs a TD-VAE (a model with jumpy_terms)")
        x, _ = model.check_batch(batch)
        _, lengths = model._lengths(batch)
        t1, dt = model.sample_pairs(lengths, self.pairs or model.config.pairs)
        parts = model.jumpy_terms(x, t1, dt)
        per_step = parts["bound"].mean(1)  # [B] nats per step
        terms = {"loss": -per_step * lengths.to(per_step.dtype), "jumpy_bound": per_step,
                 "jumpy/decoder": parts["decoder"].mean(1), "jumpy/smoothing_kl": parts["smoothing_kl"].mean(1),
                 "jumpy/transition": parts["transition"].mean(1), "jumpy/belief_entropy": parts["belief_entropy"].mean(1)}
        if not model.training:
            elbo, _ = elbo_terms(model(batch), x)
            terms.update(elbo)
        return terms


OBJECTIVES.register("tdvae", config=JumpyBound, elbo_in_eval_only=True,  # training skips the ELBO's extra pass
                    description="TD-VAE's jumpy bound J_{t1,t2} at sampled pairs (Gregor et al. 2019); not an ELBO")(JumpyBound)
