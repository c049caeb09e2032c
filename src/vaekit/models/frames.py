"""What vaekit's video models share (issue 19): the data check, the frame likelihood and its mean, the frame
mask and the decoder call over a sequence of states. The Clockwork VAE, VTA and the next-frame RNN read clips
``[B, T, C, H, W]`` and score them under the same per-pixel likelihood, so their nats per clip are one quantity
(their ELBOs and the exact NLL bound or equal the same ``log p(x)``).

The likelihood is a ``bernoulli`` over pixels (binary frames: Moving MNIST with ``binary: true``) or a ``normal``
with a fixed standard deviation ``decoder_std`` (the Clockwork VAE paper's, 1.0 in its Moving MNIST config).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Normal

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions.frames import MaskedFrames
from vaekit.models.base import SequenceModel

FRAME_LIKELIHOODS = ("bernoulli", "normal")


def check_frames(spec: DataSpec) -> None:
    if spec.modality != "video" or len(spec.shape) != 4 or spec.shape[0] is not None:
        raise ConfigError(f"this model reads video [T, C, H, W] (moving_mnist, bouncing_balls, shifted_digits, "
                          f".npy clips); this data is {spec.describe()}")


def check_frame_config(config: Any) -> None:
    """The frame likelihood's fields of a video model's config (``likelihood``, ``decoder_std``) and its data."""
    if config.likelihood not in FRAME_LIKELIHOODS:
        raise ConfigError(f"model.likelihood must be one of {', '.join(FRAME_LIKELIHOODS)}, got {config.likelihood!r}")
    if config.decoder_std <= 0:
        raise ConfigError("model.decoder_std must be > 0")
    if config.data is not None:
        check_frames(config.data)


class FrameModel(SequenceModel):
    """A :class:`SequenceModel` over frames: subclasses set ``frame_shape`` (= ``step_shape``, ``(C, H, W)``) and
    ``decoder`` (states ``[N, D]`` -> raw frame parameters ``[N, C, H, W]``)."""

    check_spec = staticmethod(check_frames)
    frame_shape: tuple[int, ...]

    @property
    def likelihood_name(self) -> str:
        return ("Bernoulli per pixel" if self.config.likelihood == "bernoulli"  # type: ignore[attr-defined]
                else f"Normal per pixel, std {self.config.decoder_std:g}") + " (nats per frame)"  # type: ignore[attr-defined]

    def decode_states(self, states: Tensor) -> Tensor:
        """``states [B, T, D]`` -> the decoder's raw output ``[B, T, C, H, W]``, every frame in one batch."""
        b, t = states.shape[:2]
        return self.decoder(states.reshape(b * t, -1)).view(b, t, *self.frame_shape)  # type: ignore[attr-defined]

    def likelihood_of(self, params: Tensor, mask: Tensor | None) -> MaskedFrames:
        """``p(x_t | .)`` per pixel from the raw parameters ``[B, T, C, H, W]``, summed over the real frames."""
        if self.config.likelihood == "bernoulli":  # type: ignore[attr-defined]
            base = Bernoulli(logits=params, validate_args=False)
        else:
            base = Normal(params, self.config.decoder_std, validate_args=False)  # type: ignore[attr-defined]
        return MaskedFrames(base, mask, step_axis=1)

    def mean_frames(self, params: Tensor) -> Tensor:
        """The likelihood's mean in [0, 1] (a Normal's clamped to the pixel range)."""
        return torch.sigmoid(params) if self.config.likelihood == "bernoulli" else params.clamp(0, 1)  # type: ignore[attr-defined]

    @staticmethod
    def frame_mask(batch: dict[str, Tensor]) -> Tensor:
        """The batch's ``mask [B, T]`` (real frames), all true when it has none."""
        x = batch["x"]
        mask = batch.get("mask")
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
