"""A likelihood over feature frames with padding: ``p(y | .) = prod_{f real} prod_m p(y_{m,f} | .)``.

Decoders of log-mel frames (the audio VQ-VAE's mel decoder, the speech VAE) score ``[B, M, F]`` frames of
utterances of different lengths; the frames beyond an utterance add nothing. The base distribution is any
``torch.distributions`` object of batch shape ``[B, M, F]`` (a Gaussian with a learned scale per band);
its unit is nats per utterance, and ``per_frame`` gives the rate per real frame. Piano rolls are the same
with the steps first (``[B, T, 88]``, ``step_axis=1``), and so are video frames (``[B, T, C, H, W]``, each
frame's pixels summed).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints


class MaskedFrames(Distribution):
    """Batch shape ``[B]``: the sum over bands and real frames of ``base.log_prob``.

    Args:
        base: A distribution of batch shape ``[B, M, F]`` (or ``[B, F, M]`` with ``step_axis=1``).
        mask: ``[B, F]`` bool, True at real frames; None: every frame is real.
        step_axis: The axis of the base's batch shape that the frames (steps) run along: 2 for mel frames
            ``[B, M, F]``, 1 for piano rolls ``[B, T, 88]``.
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, base: Distribution, mask: Tensor | None = None, step_axis: int = 2):
        if len(base.batch_shape) != 3 and not (step_axis == 1 and len(base.batch_shape) > 3):
            raise ValueError(f"the base distribution must have batch shape [B, M, F] (or [B, T, ...] with "
                             f"step_axis=1), got {list(base.batch_shape)}")
        if step_axis not in (1, 2):
            raise ValueError(f"step_axis must be 1 or 2, got {step_axis}")
        b, f = base.batch_shape[0], base.batch_shape[step_axis]
        if mask is not None and tuple(mask.shape) != (b, f):
            raise ValueError(f"mask must be [B, F] = [{b}, {f}], got {list(mask.shape)}")
        self.base = base
        self.mask = mask
        self.step_axis = step_axis
        super().__init__(batch_shape=torch.Size([b]), validate_args=False)

    def frame_log_prob(self, y: Tensor) -> Tensor:
        """``[B, F]`` nats per frame (summed over bands), 0 at padded frames."""
        if tuple(y.shape) != tuple(self.base.batch_shape):
            raise ValueError(f"frames of shape {list(y.shape)} do not fit the likelihood's "
                             f"{list(self.base.batch_shape)}")
        lp = self.base.log_prob(y)
        lp = lp.sum(1) if self.step_axis == 2 else lp.flatten(2).sum(-1)  # [B, F]: bands (or a frame's pixels)
        return lp if self.mask is None else lp.masked_fill(~self.mask, 0.0)

    def log_prob(self, y: Tensor) -> Tensor:
        return self.frame_log_prob(y).sum(-1)  # [B]

    def real_frames(self) -> Tensor:
        """``[B]`` how many frames are scored."""
        b, f = self.base.batch_shape[0], self.base.batch_shape[self.step_axis]
        if self.mask is None:
            return torch.full((b,), f, device=self.base.mean.device)
        return self.mask.sum(-1)

    @property
    def mean(self) -> Tensor:
        return self.base.mean  # [B, M, F]

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        return self.base.sample(sample_shape)
