"""A speech VAE with a global style latent (Zhang, Pan, He & Ling, ICASSP 2019, "Learning latent
representations for style control and transfer in end-to-end speech synthesis"; arXiv:1812.04342).

The paper puts a VAE "recognition network" (a reference encoder: a conv stack and a GRU over log-mel
frames, its final state mapped to ``mu`` and ``log sigma^2``) in front of Tacotron 2, so that a global
``z ~ q(z | mel)`` carries what the text does not: the speaking style. Here the text is the spoken digit
``y`` of FSDD, embedded, and the decoder is a Tacotron-style autoregressive GRU over log-mel frames
without attention (one content vector needs no alignment):

- ``q(z | mel) = N(mu, diag sigma^2)`` from 2-D convolutions (3x3, stride 2, ReLU) over (time, mel band)
  and a GRU over the downsampled time axis, read at each utterance's last real step;
- ``p(z)`` from the ``PRIORS`` registry (``N(0, I)`` as in the paper);
- ``p(mel, T | z, y) = prod_t p(m_t | m_<t, y, z) * p(stop_t | m_<t, y, z)``: at every decoder step the
  previous frame goes through a prenet with dropout and is joined by ``[embed(y), z]``; the step emits
  ``frames_per_step`` frames (Tacotron's reduction factor ``r``) whose log-mel values have a registered
  likelihood (``LIKELIHOODS``: a Gaussian with a fixed, shared or per-band scale) and a Bernoulli stop
  token per frame that is 1 at the utterance's last frame.

Why a stop token rather than the reference's length: the length is part of the data (FSDD's utterances
last 0.16 to 2.3 s), so with the stop token ``p(x | z, y)`` is a distribution over utterances of any
length, the style latent can carry the speaking rate (one of the factors the paper finds in z), and
generation from ``(y, z)`` needs no reference at all. A length can still be imposed (``frames=`` in
:meth:`SpeechVAE.generate` and :meth:`SpeechVAE.transfer`), which is how a transfer keeps the reference's
duration when that is wanted.

The modelled data are the batch's log-mel frames (``data.options.mel=true``), a deterministic feature of
the waveform ``x``: ``likelihood.log_prob(batch["x"])`` scores ``mel(x)`` (the batch's frames), so the
generic ELBO objectives work unchanged; the numbers are log-densities of natural-log mel values in nats
(``unit``), not probabilities of the 16-bit waveform, and there are no bits per sample. Waveforms come
from frames through Griffin-Lim (:func:`vaekit.data.audio.mel_to_audio`).

Padding is never seen: the reference encoder zeroes padded frames before and after every convolution and
reads its GRU at the last real step, and the decoder is causal and masked, so a padded batch gives each
example the terms it has alone (tests/test_speech_vae.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from vaekit.config import Choice, ConfigError, choice_field
from vaekit.dataspec import BatchError, DataSpec, element_mask
from vaekit.distributions import build_likelihood, build_prior, diag_gaussian
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.errors import UsageError
from vaekit.models.base import LatentLayer, LatentVariableModel, ModelConfig, ModelOutput
from vaekit.registry import MODELS


def _per_band_gaussian() -> Choice:
    from vaekit.distributions.likelihoods import GaussianConfig

    return Choice("gaussian", GaussianConfig(variance="per_dim"))


@dataclass
class SpeechVAEConfig(ModelConfig):
    latent_dim: int = 16  # the style z; the paper uses 32 for 105 h of audiobooks, FSDD has 6 speakers
    content_dim: int = 32  # embedding of the spoken digit y (the stand-in for the text encoder)
    ref_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])  # 3x3 stride-2 convs; the paper
    # (after Skerry-Ryan et al. 2018) has six, 32-32-64-64-128-128, for 80 fps audiobook sentences; four
    # keep 3-7 GRU steps of a 0.4 s digit at 125 fps
    ref_gru: int = 128  # the paper's 128-unit reference GRU
    prenet: list[int] = field(default_factory=lambda: [128, 128])  # Tacotron's prenet is 256-256
    prenet_dropout: float = 0.5  # Tacotron's 0.5; applied in training only, so evaluation is deterministic
    decoder_gru: int = 256  # Tacotron 2 has two 1024-unit LSTMs: sized for a 2-core CPU
    frames_per_step: int = 2  # Tacotron's reduction factor r: frames emitted per decoder step
    mel_mean: float = -6.0  # fixed input/output normalisation: FSDD train log-mel mean is -6.14
    mel_std: float = 2.0  # ... and its standard deviation 2.03 (data.options.mel defaults)
    max_frames: int = 300  # generation cap without a given length: 2.4 s at 125 frames/s (FSDD's longest: 2.3 s)
    likelihood: Choice = field(default_factory=_per_band_gaussian,
                               metadata={"registry": "LIKELIHOODS", "doc": "p(frame | past, y, z) per log-mel band",
                                         "default": "gaussian"})
    prior: Choice = choice_field("PRIORS", "standard", "p(z): N(0, I) as in the paper")

    def validate(self) -> None:
        sizes = {"latent_dim": self.latent_dim, "content_dim": self.content_dim, "ref_gru": self.ref_gru,
                 "decoder_gru": self.decoder_gru, "frames_per_step": self.frames_per_step,
                 "max_frames": self.max_frames}
        bad = {k: v for k, v in sizes.items() if v < 1}
        if bad:
            raise ConfigError(f"model.{', model.'.join(bad)} must be >= 1, got {bad}")
        for name in ("ref_channels", "prenet"):
            widths = getattr(self, name)
            if not widths or min(widths) < 1:
                raise ConfigError(f"model.{name} must be a non-empty list of positive widths, got {widths}")
        if not 0 <= self.prenet_dropout < 1:
            raise ConfigError(f"model.prenet_dropout must be in [0, 1), got {self.prenet_dropout}")
        if not self.mel_std > 0:
            raise ConfigError(f"model.mel_std must be > 0, got {self.mel_std}")
        if self.data is not None:
            self.check_spec(self.data)

    def check_spec(self, spec: DataSpec) -> None:
        """The data must be audio with log-mel frames (the modelled data) and digit labels (the content)."""
        have = ", ".join(f"{c.name} ({c.kind})" for c in spec.conditions) or "none"
        mel = spec.condition("mel")
        if spec.modality != "audio" or mel is None or mel.kind != "sequence":
            raise ConfigError(f"the speech VAE models log-mel frames of audio: its data needs the 'mel' sequence "
                              f"condition (set data.options.mel=true); this data is {spec.describe()} "
                              f"(conditions: {have})")
        y = spec.condition("y")
        if y is None or y.kind != "label":
            raise ConfigError(f"the speech VAE decodes from the content label 'y' (FSDD's spoken digit), which this "
                              f"data lacks (conditions: {have}); use labelled data (file names "
                              f"{{digit}}_{{speaker}}_{{take}}.wav)")
        hop_of(spec)

    @property
    def n_mels(self) -> int:
        return self.spec().condition("mel").size


def hop_of(spec: DataSpec) -> int:
    """Samples per log-mel frame, from the data's feature settings (``hop_length``; ``hop`` is accepted as
    its alias, the name :func:`vaekit.dataspec.random_batch` reads)."""
    settings = spec.features.get("mel") or {}
    hop = settings.get("hop_length", settings.get("hop"))
    if not isinstance(hop, int) or isinstance(hop, bool) or hop < 1:
        raise ConfigError(f"the data description's features.mel must give the frames' hop_length (samples per "
                          f"frame), got {settings or 'nothing'}")
    return hop


def mel_settings_of(spec: DataSpec):
    """The :class:`~vaekit.data.audio.MelSettings` that made the frames (to turn frames back into audio)."""
    from vaekit.data.audio import MelSettings

    d = dict(spec.features.get("mel") or {})
    if "hop" in d:
        d.setdefault("hop_length", d.pop("hop"))
    try:
        return MelSettings.from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"the data description's log-mel settings cannot rebuild audio from frames: {e}") from None


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator seeded ``seed`` (from torch's global generator when None, so ``torch.manual_seed`` fixes it)."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    return torch.Generator(device=device).manual_seed(seed)


# -- networks ----------------------------------------------------------------------------------------
def _halve(n: int) -> int:
    return -(-n // 2)  # a 3x3 stride-2 convolution with padding 1 keeps ceil(n / 2) positions


class ReferenceEncoder(nn.Module):
    """Log-mel frames ``[B, T, n_mels]`` (normalised, True in ``mask [B, T]`` at real frames) -> the GRU's
    state at each utterance's last real (downsampled) step, ``[B, hidden]``.

    Padded positions are set to 0 before every convolution, which is what the convolution's own zero
    padding puts past the end of an utterance on its own; so no output at a real position depends on
    the padding. There is no batch norm (the paper's has it): its batch statistics would make every
    example's posterior depend on the rest of the batch and on its padding.
    """

    def __init__(self, n_mels: int, channels: list[int], hidden: int):
        super().__init__()
        widths = [1, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        bands = n_mels
        for _ in channels:
            bands = _halve(bands)
        self.gru = nn.GRU(channels[-1] * bands, hidden, batch_first=True)
        self.out_features = hidden

    def forward(self, frames: Tensor, mask: Tensor) -> Tensor:
        h = (frames * mask[..., None])[:, None]  # [B, 1, T, n_mels]
        lengths = mask.sum(1)  # [B] real frames (masks are prefixes)
        for conv in self.convs:
            h = F.relu(conv(h))  # [B, C, ceil(T/2), ceil(bands/2)]
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
            real = torch.arange(h.shape[2], device=h.device) < lengths[:, None]  # [B, T']
            h = h * real[:, None, :, None]
        seq = h.permute(0, 2, 1, 3).flatten(2)  # [B, T', C * bands]
        out, _ = self.gru(seq)  # [B, T', hidden]; causal, so step l-1 has not seen the padding after it
        last = (lengths.clamp(min=1) - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1])
        return out.gather(1, last)[:, 0]


class FrameDecoder(nn.Module):
    """One GRU over decoder steps: input = prenet(previous frame) joined with the condition ``[embed(y), z]``;
    output = ``r`` frames of likelihood parameters and ``r`` stop logits (the condition also feeds the
    output layer, so the style reaches every frame directly)."""

    def __init__(self, n_mels: int, cond_dim: int, prenet: list[int], dropout: float, hidden: int,
                 frames_per_step: int, params_per_frame: int):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip([n_mels, *prenet[:-1]], prenet):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.prenet = nn.Sequential(*layers)
        self.gru = nn.GRU(prenet[-1] + cond_dim, hidden, batch_first=True)
        self.r, self.params_per_frame = frames_per_step, params_per_frame
        self.out = nn.Linear(hidden + cond_dim, frames_per_step * (params_per_frame + 1))

    def forward(self, inputs: Tensor, cond: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``inputs [B, S, n_mels]`` (normalised frames fed back), ``cond [B, C]`` -> params
        ``[B, S * r, params_per_frame]``, stop logits ``[B, S * r]`` and the GRU state ``[1, B, hidden]``."""
        c = cond[:, None].expand(-1, inputs.shape[1], -1)  # [B, S, C]
        h, state = self.gru(torch.cat([self.prenet(inputs), c], -1), state)  # [B, S, H]
        out = self.out(torch.cat([h, c], -1)).unflatten(-1, (self.r, self.params_per_frame + 1))  # [B, S, r, P+1]
        params = out[..., :-1].flatten(1, 2)  # [B, S * r, P]
        return params, out[..., -1].flatten(1, 2), state


# -- the likelihood ----------------------------------------------------------------------------------
class MelFrameLikelihood(AutoregressiveLikelihood):
    """``p(mel, T | z, y)`` over log-mel frames, batch shape ``[B]``, in nats (:attr:`unit`).

    ``log_prob(value)`` takes the frames ``[B, n_mels, F]``, or the batch's waveform ``x`` the frames were
    computed from (then it scores the batch's frames: the ELBO objectives pass ``batch["x"]``); padded
    frames (False in ``frame_mask [B, F]``) add nothing, and the stop token's target is 1 at each row's
    last real frame. ``sample()`` runs the generation loop. No ``mean``: decode with :meth:`sample` or
    :meth:`SpeechVAE.generate`.
    """

    unit = "nats"  # a log-density of natural-log mel values (continuous): not a discrete log-likelihood
    element = "frame"

    def __init__(self, score, sample_fn, batch: int, *, n_mels: int, frame_mask: Tensor | None,
                 waveform: Tensor | None = None, frames: Tensor | None = None, scored: Tensor | None = None):
        super().__init__(self._score, sample_fn, batch, mask=frame_mask, exact=False)
        self._score_frames, self.n_mels = score, n_mels
        self._waveform, self._frames, self._scored = waveform, frames, scored

    def frames_of(self, value: Tensor) -> Tensor:
        """The log-mel frames ``[B, n_mels, F]`` that ``value`` stands for."""
        if self._waveform is not None and (value is self._waveform or (
                value.shape == self._waveform.shape and torch.equal(value, self._waveform))):
            return self._frames
        if value.dim() == 3 and value.shape[1] == self.n_mels and value.shape[0] == self.batch_shape[0]:
            return value
        raise UsageError(f"this likelihood scores log-mel frames [B={self.batch_shape[0]}, {self.n_mels}, F] or "
                         f"the waveform of the batch it was made for; got a tensor of shape {list(value.shape)}")

    def _score(self, value: Tensor) -> Tensor:
        frames = self.frames_of(value)
        if self._scored is not None and frames is self._frames:
            return self._scored  # the batch's frames, scored by the forward pass that made this likelihood
        if self.mask is not None and self.mask.shape[-1] != frames.shape[-1]:
            raise BatchError(f"{frames.shape[-1]} frames but a frame mask of {self.mask.shape[-1]}")
        return self._score_frames(frames)  # [B, F]


# -- the model ---------------------------------------------------------------------------------------
@MODELS.register("speech_vae", config=SpeechVAEConfig,
                 description="speech VAE: reference-encoder style latent z, autoregressive log-mel decoder "
                             "conditioned on the digit (Zhang et al. 2019)")
class SpeechVAE(LatentVariableModel):
    """Global style latent ``z`` over log-mel frames, decoded autoregressively with the digit ``y``."""

    conditional = True
    capabilities = frozenset({"importance_weights", "latent_means", "autoregressive"})

    def __init__(self, config: SpeechVAEConfig):
        super().__init__()
        spec = config.spec()
        config.check_spec(spec)
        self.config = config
        self.hop = hop_of(spec)
        n_mels = config.n_mels
        # the per-frame head of the registry: [*, n_mels] raw parameters -> a distribution over one frame
        self.likelihood = build_likelihood(config.likelihood, (n_mels,), None)
        self.likelihood.check_data(None, "log-mel frames (continuous values)")
        if self.likelihood.params_per_channel != 1:
            raise ConfigError(f"model.likelihood {config.likelihood.name!r} has {self.likelihood.params_per_channel} "
                              "parameters per value; the speech VAE's frame heads have one (gaussian)")
        self.prior = build_prior(config.prior, config.latent_dim, spec.num_classes)
        self.content = nn.Embedding(spec.num_classes, config.content_dim)
        self.reference = ReferenceEncoder(n_mels, config.ref_channels, config.ref_gru)
        self.posterior_head = nn.Linear(config.ref_gru, 2 * config.latent_dim)
        self.decoder = FrameDecoder(n_mels, config.content_dim + config.latent_dim, config.prenet,
                                    config.prenet_dropout, config.decoder_gru, config.frames_per_step,
                                    self.likelihood.num_params)

    # -- what the model needs -------------------------------------------------------------------
    @property
    def cond_keys(self) -> tuple[str, ...]:
        return ("y", "mel")

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    @property
    def data_shape(self) -> tuple[int, ...]:
        """The shape of one modelled frame (examples are sequences of them; the waveform has no fixed shape)."""
        return (self.n_mels,)

    @property
    def likelihood_name(self) -> str:
        return f"{self.config.likelihood.name} over {self.n_mels} log-mel bands per frame, with a stop token"

    def describe(self) -> dict[str, Any]:
        rate = self.config.spec().sample_rate
        return {"frames_per_second": rate / self.hop if rate else None, "hop_length": self.hop,
                "frames_per_step": self.config.frames_per_step, "likelihood_unit": "nats per utterance "
                "(log-density of log-mel frames and the stop token)"}

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            self.config.check_spec(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None

    def frame_mask(self, batch: dict[str, Tensor]) -> Tensor:
        """``[B, F]`` bool: frame ``f`` is real when its first sample ``f * hop`` is (all True unpadded)."""
        mel = batch["mel"]
        samples = element_mask(batch, self.config.spec())
        if samples is None:
            return torch.ones(mel.shape[0], mel.shape[-1], dtype=torch.bool, device=mel.device)
        mask = samples[:, :: self.hop][:, : mel.shape[-1]]
        if mask.shape[1] < mel.shape[-1]:
            raise BatchError(f"batch['mel'] has {mel.shape[-1]} frames, more than the {mask.shape[1]} that "
                             f"{samples.shape[1]} samples at hop {self.hop} give")
        return mask

    def _normalise(self, frames: Tensor) -> Tensor:
        return (frames - self.config.mel_mean) / self.config.mel_std

    def _condition(self, y: Tensor, z: Tensor) -> Tensor:
        return torch.cat([self.content(y), z], -1)  # [B, content_dim + latent_dim]

    # -- inference --------------------------------------------------------------------------------
    def posterior(self, mel: Tensor, mask: Tensor | None = None) -> Distribution:
        """``q(z | mel)``: ``mel [B, n_mels, F]`` log-mel frames, ``mask [B, F]`` True at real frames."""
        if mask is None:
            mask = torch.ones(mel.shape[0], mel.shape[-1], dtype=torch.bool, device=mel.device)
        h = self.reference(self._normalise(mel.transpose(1, 2)), mask)  # [B, ref_gru]
        mean, log_var = self.posterior_head(h).chunk(2, -1)
        return diag_gaussian(mean, log_var)

    def encode(self, x: Tensor, *, mel: Tensor | None = None, mask: Tensor | None = None,
               **cond: Tensor) -> Distribution:
        """``q(z | mel(x))`` with batch shape ``[B]``: the log-mel frames are ``mel`` (``[B, n_mels, F]``, as
        batches carry them); ``mask`` is the waveform's sample mask ``[B, T]`` (None: every frame is real)."""
        if mel is None:
            raise UsageError("the speech VAE encodes log-mel frames: pass mel=batch['mel'] (data.options.mel=true)")
        frames = self.frame_mask({"x": x, "mel": mel, **({"mask": mask} if mask is not None else {})})
        return self.posterior(mel, frames)

    def prior_dist(self, batch_size: int, y: Tensor | None = None) -> Distribution:
        return self.prior(batch_size, y)

    # -- the decoder's likelihood -----------------------------------------------------------------
    def _teacher_forced(self, mel: Tensor, y: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """One teacher-forced pass: likelihood parameters ``[B, F, P]`` and stop logits ``[B, F]`` of every
        frame of ``mel [B, n_mels, F]``; step ``s`` sees the frames before ``s * r`` only."""
        r, (b, _, f) = self.config.frames_per_step, mel.shape
        steps = -(-f // r)
        frames = self._normalise(mel.transpose(1, 2))  # [B, F, n_mels]
        fed = frames[:, r - 1: (steps - 1) * r: r]  # the last frame of each earlier step: [B, steps - 1, n_mels]
        go = frames.new_zeros(b, 1, frames.shape[-1])  # Tacotron's all-zero <GO> frame
        params, stop, _ = self.decoder(torch.cat([go, fed], 1), self._condition(y, z))
        return params[:, :f], stop[:, :f]

    def _frame_log_prob(self, params: Tensor, stop: Tensor, mel: Tensor, mask: Tensor) -> Tensor:
        """``[B, F]`` nats: ``log p(m_t | .) + log p(stop_t | .)``, 0 at padded frames."""
        target = mel.transpose(1, 2)  # [B, F, n_mels]
        lp = self.frame_distribution(params).log_prob(target)  # [B, F]
        lengths = mask.sum(1, keepdim=True)  # [B, 1]
        is_last = (torch.arange(mel.shape[-1], device=mel.device) == lengths - 1).to(stop.dtype)
        lp = lp - F.binary_cross_entropy_with_logits(stop.float(), is_last, reduction="none")
        return lp.masked_fill(~mask, 0.0)

    def frame_distribution(self, params: Tensor) -> Distribution:
        """The registered head over one frame's bands, batch shape ``[*]``: the network's normalised output
        ``params [*, n_mels]`` mapped back to log-mel units is the head's parameter (the Gaussian's mean)."""
        return self.likelihood(self.config.mel_mean + self.config.mel_std * params)

    def _de_normalised_mean(self, params: Tensor) -> Tensor:
        return self.frame_distribution(params).mean

    def likelihood_of(self, y: Tensor, z: Tensor, frame_mask: Tensor | None = None, *,
                      waveform: Tensor | None = None, mel: Tensor | None = None, scored: Tensor | None = None,
                      max_frames: int | None = None) -> MelFrameLikelihood:
        """``p(mel, T | z, y)`` as a distribution; with ``waveform`` and its ``mel``, ``log_prob(waveform)``
        scores those frames (``scored``: their ``[B, F]`` log-probabilities, already computed)."""
        def score(frames: Tensor) -> Tensor:
            mask = frame_mask if frame_mask is not None else torch.ones(
                frames.shape[0], frames.shape[-1], dtype=torch.bool, device=frames.device)
            params, stop = self._teacher_forced(frames, y, z)
            return self._frame_log_prob(params, stop, frames, mask)

        def sample() -> Tensor:
            return self.generate(y, z, max_frames=max_frames)[0]

        return MelFrameLikelihood(score, sample, y.shape[0], n_mels=self.n_mels, frame_mask=frame_mask,
                                  waveform=waveform, frames=mel, scored=scored)

    def decode(self, z: Tensor, *, y: Tensor | None = None, mask: Tensor | None = None, **cond: Tensor) -> Distribution:
        """``p(mel, T | z, y)`` for ``z [B, D]``: ``log_prob(frames [B, n_mels, F])`` with ``mask [B, F]`` True
        at real frames (None: all), ``sample()`` the generated frames."""
        if y is None:
            raise UsageError("the speech VAE decodes the content of a digit: pass y=... (int64 [B])")
        return self.likelihood_of(y, z, mask)

    # -- the contract -----------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        """The ELBO's parts: ``q(z | mel)``, ``p(z)``, ``z`` and ``p(mel, T | z, y)``; ``aux`` holds
        reconstruction diagnostics per example (``frame_mse``: squared error of the teacher-forced mean per
        log-mel value; ``nats_per_frame``; ``frames``)."""
        x, cond = self.check_batch(batch)
        y, mel = cond["y"], cond["mel"]
        mask = self.frame_mask(batch)
        q = self.posterior(mel, mask)
        z = q.rsample()  # [B, D]
        params, stop = self._teacher_forced(mel, y, z)
        step_lp = self._frame_log_prob(params, stop, mel, mask)  # [B, F], computed once for the batch
        lik = self.likelihood_of(y, z, mask, waveform=x, mel=mel, scored=step_lp)
        frames = mask.sum(1).to(step_lp.dtype)
        err = (self._de_normalised_mean(params) - mel.transpose(1, 2)).pow(2).mean(-1)  # [B, F]
        aux = {"frame_mse": (err * mask).sum(1) / frames, "nats_per_frame": step_lp.sum(1) / -frames,
               "frames": frames}
        return ModelOutput(lik, [LatentLayer(q, self.prior_dist(x.shape[0], y), z)], aux)

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        """``log p(mel, T | z_i, y) + log p(z_i) - log q(z_i | mel)`` for ``z_i ~ q``, ``[k, B]``."""
        x, cond = self.check_batch(batch)
        y, mel = cond["y"], cond["mel"]
        mask = self.frame_mask(batch)
        q = self.posterior(mel, mask)
        z = q.rsample(torch.Size([k]))  # [k, B, D]
        b = x.shape[0]
        def rep(t: Tensor) -> Tensor:  # [B, ...] -> [k * B, ...], sample-major like z
            return t.expand(k, *t.shape).reshape(k * b, *t.shape[1:])

        params, stop = self._teacher_forced(rep(mel), rep(y), z.reshape(k * b, -1))
        log_px = self._frame_log_prob(params, stop, rep(mel), rep(mask)).sum(1).view(k, b)
        return log_px + self.prior_dist(b, y).log_prob(z) - q.log_prob(z)

    # -- generation -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, y: Tensor, z: Tensor, *, frames: int | Tensor | None = None, max_frames: int | None = None,
                 temperature: float = 1.0, use_mean: bool = False, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """Log-mel frames from ``(y, z)`` by the autoregressive loop: ``(mel [B, n_mels, F], lengths [B])``.

        Each step feeds back its last frame (a draw ``mean + temperature * sigma * eps``, or the mean with
        ``use_mean``). The length of row ``b`` is ``frames`` (an int or ``[B]``: the stop token is then not
        consulted) or ends at the first frame whose stop token fires: a Bernoulli draw of
        ``p_t = sigmoid(stop_t)``, or with ``use_mean`` the median of the stop time along the generated
        frames, the first ``t`` with ``P(stopped by t) = 1 - prod_{s <= t} (1 - p_s) >= 1/2`` (a threshold
        on ``p_t`` alone would wait for one frame to be more likely last than not, which a hazard spread
        over an utterance's trailing silence never is); at most ``max_frames`` (``model.max_frames``).
        Frames after a row's end hold the log floor (silence, as the data pads) and are not part of it.
        """
        self._check_generation(y, z)
        b, r, dev = y.shape[0], self.config.frames_per_step, z.device
        fixed = None if frames is None else torch.as_tensor(frames, device=dev).long().expand(b)
        cap = int(fixed.max()) if fixed is not None else (max_frames or self.config.max_frames)
        if cap < 1:
            raise UsageError(f"a generated utterance needs at least one frame, got {cap}")
        gen = _generator(seed, dev)
        cond, state = self._condition(y, z), None
        inp = z.new_zeros(b, 1, self.n_mels)
        out, stops = [], []
        survival = z.new_ones(b)  # P(not stopped yet) along the generated frames (use_mean)
        for _ in range(-(-cap // r)):
            params, stop, state = self.decoder(inp, cond, state)  # [B, r, P], [B, r]
            dist = self.frame_distribution(params)
            mean = dist.mean  # [B, r, n_mels]
            if use_mean:
                frame = mean
                survival = survival[:, None] * torch.cumprod(1 - torch.sigmoid(stop), 1)  # [B, r]
                fired, survival = survival <= 0.5, survival[:, -1]
            else:
                noise = torch.randn(mean.shape, generator=gen, device=dev)
                frame = mean + temperature * dist.stddev * noise
                fired = torch.rand(stop.shape, generator=gen, device=dev) < torch.sigmoid(stop)
            out.append(frame)
            stops.append(fired)
            inp = self._normalise(frame[:, -1:])
            ended = torch.cat(stops, 1).any(1)
            if fixed is None and bool(ended.all()):
                break
        mel = torch.cat(out, 1)[:, :cap]  # [B, F, n_mels]
        if fixed is not None:
            lengths = fixed
        else:
            fired = torch.cat(stops, 1)[:, :cap]
            first = fired.float().argmax(1) + 1  # the first frame whose stop token fired ends the row
            lengths = torch.where(fired.any(1), first, torch.full_like(first, mel.shape[1]))
        mel = mel[:, : int(lengths.max())]
        past = torch.arange(mel.shape[1], device=dev) >= lengths[:, None]
        silence = math.log((self.config.spec().features.get("mel") or {}).get("log_floor", 1e-5))
        return mel.masked_fill(past[..., None], silence).transpose(1, 2), lengths

    def _check_generation(self, y: Tensor, z: Tensor) -> None:
        classes = self.config.spec().num_classes
        if y.dim() != 1 or y.dtype != torch.long or (y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes)):
            raise UsageError(f"y must be int64 [B] digits in [0, {classes}), got {y.dtype} {list(y.shape)}")
        if z.shape != (y.shape[0], self.config.latent_dim):
            raise UsageError(f"z must be [B={y.shape[0]}, {self.config.latent_dim}], got {list(z.shape)}")

    @torch.no_grad()
    def transfer(self, ref_mel: Tensor, ref_mask: Tensor | None, y: Tensor, *, sample_z: bool = False,
                 frames: int | Tensor | None = None, use_mean: bool = True, seed: int | None = None,
                 max_frames: int | None = None) -> tuple[Tensor, Tensor]:
        """Style transfer: the content ``y`` spoken in the style of the reference utterances.

        ``z`` is the posterior mean of ``q(z | ref_mel)`` (a draw with ``sample_z``); ``ref_mel [B, n_mels, F]``
        with ``ref_mask [B, F]`` True at real frames (None: all). Returns :meth:`generate`'s
        ``(mel, lengths)``; ``frames`` imposes a length (e.g. the reference's ``ref_mask.sum(1)``).
        A reconstruction is the transfer of an utterance's own digit."""
        q = self.posterior(ref_mel, ref_mask)
        z = q.sample() if sample_z else q.mean
        return self.generate(y, z, frames=frames, use_mean=use_mean, seed=seed, max_frames=max_frames)

    def to_audio(self, mel: Tensor, lengths: Tensor | None = None, *, n_iter: int = 32) -> Tensor:
        """Waveforms ``[B, 1, F * hop]`` in [-1, 1] from log-mel frames by Griffin-Lim
        (:func:`vaekit.data.audio.mel_to_audio`); samples after row ``b``'s ``lengths[b]`` frames are 0."""
        from vaekit.data.audio import mel_to_audio

        settings = mel_settings_of(self.config.spec())
        rate = self.config.spec().sample_rate or 8000
        b, _, f = mel.shape
        lengths = torch.full((b,), f) if lengths is None else lengths.cpu()
        wave = torch.zeros(b, 1, f * self.hop)
        for i in range(b):
            n = int(lengths[i])
            if n:
                wave[i, 0, : n * self.hop] = torch.from_numpy(
                    mel_to_audio(mel[i, :, :n], settings, rate, n_iter=n_iter).copy())
        return wave.to(mel.device)

    @torch.no_grad()
    def teacher_forced(self, batch: dict[str, Tensor], seed: int = 0) -> Tensor:
        """``[B, 1, T]`` audio of the teacher-forced frame means at ``z`` = the posterior mean (what the
        decoder predicts one step ahead; the audio figures show it), 0 at padded samples."""
        _, cond = self.check_batch(batch)
        mask = self.frame_mask(batch)
        z = self.posterior(cond["mel"], mask).mean
        params, _ = self._teacher_forced(cond["mel"], cond["y"], z)
        mean = self._de_normalised_mean(params).transpose(1, 2)  # [B, n_mels, F]
        wave = self.to_audio(mean, mask.sum(1))
        t = batch["x"].shape[-1]
        wave = F.pad(wave, (0, max(0, t - wave.shape[-1])))[..., :t]
        samples = element_mask(batch, self.config.spec())
        return wave if samples is None else wave * samples[:, None]

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = False, length: int | None = None,
               seconds: float | None = None, seed: int | None = None, y: Tensor | None = None,
               **cond: Tensor) -> Tensor:
        """``n`` waveforms ``[n, 1, T]``: ``z ~ p(z)`` (spread scaled by ``temperature``), frames from
        :meth:`generate`, audio by Griffin-Lim. ``y`` defaults to the digits ``0, 1, ..., 9, 0, ...``;
        ``length`` samples or ``seconds`` fix the length (the stop token is not consulted), otherwise
        each draw ends at its stop token and ``T`` is the longest (shorter ones are 0 after their end).
        Other conditions (a batch's ``mel``) are not used: the style comes from the prior."""
        if y is None:
            y = torch.arange(n, device=self.device) % self.config.spec().num_classes
        y = y.to(self.device)
        rate = self.config.spec().sample_rate or 8000
        if length is None and seconds is not None:
            length = max(1, round(seconds * rate))
        gen = _generator(seed, self.device)
        p = self.prior_dist(n, y)
        eps = torch.randn(p.mean.shape, generator=gen, device=self.device)
        z = p.mean + temperature * p.stddev * eps
        frames = None if length is None else -(-length // self.hop)
        mel, lengths = self.generate(y, z, frames=frames, temperature=temperature, use_mean=use_mean,
                                     seed=None if seed is None else seed + 1)
        wave = self.to_audio(mel, lengths)
        return wave if length is None else wave[..., :length]
