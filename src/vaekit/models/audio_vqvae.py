"""The audio VQ-VAE (van den Oord et al. 2017, sec. 4.3; seed 000, section 2.4.2) with speaker conversion.

An encoder of strided convolutions maps a waveform ``x [B, 1, T]`` to ``z_e [B, D, T / 64]`` (6 layers of
stride 2 and window 4: 64x downsampling, 125 code frames per second at 8 kHz); a K x D codebook
quantises every frame (:class:`vaekit.quantize.VectorQuantizer`, with moving averages and restarts, and a
mask so that padded frames teach the codebook nothing); a decoder conditioned on the codes and on a
speaker embedding reconstructs the audio. The paper's decoder is a WaveNet; the codes, having to be
decoded by a speaker-conditioned decoder, carry the content, and "the speaker identity" can be changed
by decoding the same codes with another speaker (speaker conversion, the paper's fig. 5).

Two decoders, chosen by ``model.decoder`` (:data:`AUDIO_DECODERS`):

- ``mel``: a non-causal stack of dilated 1-D convolutions over the code frames to log-mel frames
  (``data.options.mel: true``; the frames' hop must equal the encoder's 64 samples), with a Gaussian of
  a learned scale per mel band as ``p(mel(x) | codes, speaker)``; a waveform comes from Griffin-Lim
  (:func:`vaekit.data.audio.mel_to_audio`). This is the defaults' decoder: it trains in minutes on a CPU,
  where a sample-level decoder needs days (docs/results/speech.md has both measured).
- ``wavenet``: the paper's WaveNet (:class:`vaekit.nn.wavenet.WaveNet`) over 8-bit mu-law samples,
  locally conditioned on the code vectors upsampled to the sample rate by learned transposed
  convolutions (eq. 6 of WaveNet) and globally on the speaker (eq. 5).

The bound is the VQ-VAE's: ``log p(y) >= log p(y | z_q) - sum_{real frames} log K`` with ``y`` the
reconstructed features (log-mel frames) or the mu-law waveform; the rate of the codes is
``(sample_rate / hop) * log2 K`` bits per second of audio (1125 bits/s for the defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Normal

from vaekit.config import ConfigError
from vaekit.dataspec import DataSpec
from vaekit.distributions import CodePointMass, uniform_codes
from vaekit.distributions.autoregressive import AutoregressiveLikelihood
from vaekit.distributions.frames import MaskedFrames
from vaekit.distributions.mulaw import mu_law_decode, mu_law_encode
from vaekit.errors import UsageError
from vaekit.models.base import BatchError, LatentLayer, ModelConfig, ModelOutput
from vaekit.models.vqvae import VQModel, _perplexity_per_example
from vaekit.nn.audio import FrameDecoder, FrameEncoder, StridedConvEncoder, pad_to_multiple, steps_valid
from vaekit.nn.wavenet import WaveNet
from vaekit.quantize import Quantized
from vaekit.registry import MODELS, Registry

#: Decoders of the audio VQ-VAE: entry.obj(model, config, spec) builds the decoder's modules on the model.
AUDIO_DECODERS: Registry = Registry("audio decoder")
#: Encoders: entry.obj(model, config, spec) builds the encoder; entry.extra["encode"](model, x, lengths, mel)
#: gives z_e [B, D, ceil(T / hop)].
AUDIO_ENCODERS: Registry = Registry("audio encoder")


@dataclass
class AudioWaveNetDecoderConfig:
    """The WaveNet decoder's size (``model.decoder: wavenet``); the paper's is 30 layers, 3 stacks."""

    layers: int = 20
    stacks: int = 2
    residual_channels: int = 32
    gate_channels: int = 64
    skip_channels: int = 32
    mu: int = 255

    def validate(self) -> None:
        if self.layers < 1 or self.stacks < 1 or self.layers % self.stacks:
            raise ConfigError(f"model.wavenet.layers ({self.layers}) must be a positive multiple of stacks "
                              f"({self.stacks})")


@dataclass
class AudioVQVAEConfig(ModelConfig):
    num_codes: int = 512  # K: the paper's 512 for speech
    code_dim: int = 64  # D
    ema: bool = True  # codebook by moving averages (appendix A.1)
    decay: float = 0.99  # EMA decay gamma
    restart_threshold: float = 1.0  # restart codes chosen by < this many frames per batch on average (0 = off)
    encoder: str = "wave"  # AUDIO_ENCODERS: "wave" (the paper's strided convs) or "mel" (log-mel frames)
    hidden: int = 64  # channels of the encoder (64: a quarter of the cost of 128 on a CPU)
    encoder_blocks: int = 4  # residual blocks of the mel encoder
    num_down: int = 6  # stride-2 window-4 convolutions: 2^6 = 64x downsampling (the paper's)
    decoder: str = "mel"  # AUDIO_DECODERS: "mel" (log-mel frames + Griffin-Lim) or "wavenet" (mu-law samples)
    decoder_hidden: int = 256  # channels of the mel decoder
    decoder_blocks: int = 6  # its residual blocks (dilations 1, 2, 4, repeated)
    global_condition: str | None = "speaker"  # the label condition the decoder is given (null: none)
    global_channels: int = 32  # size of its embedding
    upsample_factors: list[int] = field(default_factory=lambda: [4, 4, 4])  # WaveNet decoder: product = hop
    wavenet: AudioWaveNetDecoderConfig = field(default_factory=AudioWaveNetDecoderConfig)

    def validate(self) -> None:
        for name in ("num_codes", "code_dim", "hidden", "num_down", "decoder_hidden", "global_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.decoder_blocks < 0:
            raise ConfigError(f"model.decoder_blocks must be >= 0, got {self.decoder_blocks}")
        if self.encoder not in AUDIO_ENCODERS:
            raise ConfigError(f"model.encoder: unknown encoder {self.encoder!r}; known: {AUDIO_ENCODERS.names()}")
        if self.decoder not in AUDIO_DECODERS:
            raise ConfigError(f"model.decoder: unknown decoder {self.decoder!r}; known: {AUDIO_DECODERS.names()}")
        if not 0 <= self.decay < 1:
            raise ConfigError(f"model.decay must be in [0, 1), got {self.decay}")
        if self.restart_threshold < 0:
            raise ConfigError(f"model.restart_threshold must be >= 0, got {self.restart_threshold}")
        if self.data is not None:
            self.check_data(self.data)

    @property
    def hop(self) -> int:
        """Samples per code frame."""
        return 2 ** self.num_down

    def check_data(self, spec: DataSpec) -> None:
        if spec.modality != "audio" or spec.kind != "continuous":
            raise ConfigError(f"the audio VQ-VAE models audio waveforms in [-1, 1]; this data is {spec.describe()}")
        if self.global_condition is not None:
            cond = spec.condition(self.global_condition)
            if cond is None or cond.kind != "label":
                raise ConfigError(f"model.global_condition={self.global_condition!r} is not a label condition of "
                                  f"the data; set it to null or to one of "
                                  f"{[c.name for c in spec.conditions if c.kind == 'label']}")
        AUDIO_DECODERS.get(self.decoder).extra["check"](self, spec)
        AUDIO_ENCODERS.get(self.encoder).extra["check"](self, spec)


def _check_mel(cfg: AudioVQVAEConfig, spec: DataSpec) -> None:
    mel = spec.features.get("mel")
    if spec.condition("mel") is None or mel is None:
        raise ConfigError("the mel decoder and the mel encoder read log-mel frames: set data.options.mel=true")
    if mel.get("hop_length") != cfg.hop:
        raise ConfigError(f"the mel frames are {mel.get('hop_length')} samples apart but the encoder's code frames "
                          f"{cfg.hop} (2^num_down): set data.options.mel_settings.hop_length={cfg.hop} or "
                          f"model.num_down")


def _check_wavenet(cfg: AudioVQVAEConfig, spec: DataSpec) -> None:
    if math.prod(cfg.upsample_factors) != cfg.hop:
        raise ConfigError(f"model.upsample_factors {cfg.upsample_factors} multiply to "
                          f"{math.prod(cfg.upsample_factors)}, but a code frame is {cfg.hop} samples")


@MODELS.register("audio_vqvae", config=AudioVQVAEConfig, objective="vq",
                 description="audio VQ-VAE: strided conv encoder, codes, speaker-conditioned decoder "
                             "(van den Oord et al. 2017)")
class AudioVQVAE(VQModel):
    """One sequence of codes ``[B, T / hop]`` per utterance; speaker conversion by decoding them with
    another speaker."""

    code_prior_kind = "sequence"

    def __init__(self, config: AudioVQVAEConfig):
        super().__init__()
        spec = config.spec()
        config.check_data(spec)
        self.config = config
        self.hop = config.hop
        self._encoder_entry = AUDIO_ENCODERS.get(config.encoder)
        self._encoder_entry.obj(self, config, spec)
        self.quantizers = nn.ModuleList([self._quantizer(config)])
        g = spec.condition(config.global_condition) if config.global_condition else None
        self.num_speakers = None if g is None else g.size
        self._decoder_entry = AUDIO_DECODERS.get(config.decoder)
        self._decoder_entry.obj(self, config, spec)
        #: a WaveNet decoder generates through the compiled cached step (vaekit.nn.wavenet.compiled_step): the
        #: same draws as the eager step, several times faster on a CPU; off by default (it needs a C++ compiler)
        self.compile_generation = False

    # -- what the model needs from a batch -----------------------------------------------------
    @property
    def cond_keys(self) -> tuple[str, ...]:
        keys = (self.config.global_condition,) if self.config.global_condition else ()
        return keys + tuple(self._decoder_entry.extra["targets"])

    @property
    def code_rate(self) -> float:
        """Code frames per second of audio."""
        return float(self.config.spec().sample_rate) / self.hop

    @property
    def bits_per_second(self) -> float:
        """The rate of the codes under the uniform prior: ``code_rate * log2 K`` bits per second."""
        return self.code_rate * math.log2(self.config.num_codes)

    @property
    def code_shapes(self) -> list[tuple[int | None]]:
        return [(None,)]  # one sequence of variable length

    @property
    def likelihood_name(self) -> str:
        return self._decoder_entry.extra["likelihood_name"](self)

    def describe(self) -> dict[str, Any]:
        return {"code_rate_hz": self.code_rate, "bits_per_second": self.bits_per_second,
                "decoder": self.config.decoder}

    def check_data(self, spec: DataSpec, name: str) -> None:
        try:
            self.config.check_data(spec)
        except ConfigError as e:
            raise ConfigError(f"{name}: {e}") from None

    def _lengths(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            return torch.full((x.shape[0],), x.shape[-1], dtype=torch.long, device=x.device)
        return mask.sum(-1)

    def code_mask(self, mask: Tensor | None, length: int | None = None, batch: int | None = None) -> Tensor:
        """``[B, ceil(T / hop)]`` bool: the code frames holding real samples (``mask [B, T]``; without a mask,
        every frame of ``length`` samples for ``batch`` rows)."""
        if mask is None:
            if length is None or batch is None:
                raise ValueError("code_mask needs a mask, or the length and batch size")
            return torch.ones(batch, -(-length // self.hop), dtype=torch.bool, device=self.device)
        return steps_valid(mask.sum(-1), -(-mask.shape[-1] // self.hop), self.hop)

    def checked_speaker(self, speaker: Tensor | None) -> Tensor | None:
        """The global condition's ids ``[B]`` checked (type, range), or None for a model without one."""
        if self.num_speakers is None:
            if speaker is not None:
                raise UsageError("this audio VQ-VAE has no speaker condition (model.global_condition=null)")
            return None
        if speaker is None:
            raise BatchError(f"the decoder is conditioned on {self.config.global_condition!r}: pass it")
        if speaker.dtype != torch.long or speaker.dim() != 1:
            raise BatchError(f"{self.config.global_condition} must be int64 [B], got {speaker.dtype} {list(speaker.shape)}")
        if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= self.num_speakers):
            raise BatchError(f"{self.config.global_condition} ids must lie in [0, {self.num_speakers}), got "
                             f"{speaker.tolist()}")
        return speaker

    # -- encoding ------------------------------------------------------------------------------
    def quantize_masked(self, x: Tensor, mask: Tensor | None, mel: Tensor | None = None) -> tuple[Quantized, Tensor]:
        """Encode and quantise ``x [B, 1, T]`` (``mel``: its log-mel frames, when the batch has them): the
        quantiser's output over ``[B, D, ceil(T / hop)]`` frames and the frames' mask."""
        lengths = self._lengths(x, mask)
        xp = pad_to_multiple(x, self.hop) * steps_valid(lengths, pad_to_multiple(x, self.hop).shape[-1], 1)[:, None]
        z_e = self._encoder_entry.extra["encode"](self, xp, lengths, mel)  # [B, D, T']
        frames = steps_valid(lengths, z_e.shape[-1], self.hop)  # [B, T']
        return self.quantizers[0](z_e, frames), frames

    def quantize(self, x: Tensor) -> list[Quantized]:
        return [self.quantize_masked(x, None)[0]]

    @torch.no_grad()
    def codes(self, x: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """Code indices of waveforms ``x [B, 1, T]``: ``[[B, ceil(T / hop)]]`` int64 (padded frames hold the
        nearest code of silence; :meth:`code_mask` says which are real)."""
        batch = {"x": x} if mask is None else {"x": x, "mask": mask}
        self.config.spec().check(batch, (), owner=type(self).__name__)
        return [self.quantize_masked(x, mask)[0].indices]

    # -- decoding ------------------------------------------------------------------------------
    def decode_quantized_with(self, z_q: Tensor, frames: Tensor, speaker: Tensor | None,
                              length: int | None = None, sample_mask: Tensor | None = None) -> Distribution:
        """The decoder's likelihood given code vectors ``[B, D, T']`` with their frame mask (padded frames are
        zeroed first: they hold the code nearest to silence, which a convolution must not see)."""
        z_q = z_q * frames[:, None].to(z_q.dtype)
        return self._decoder_entry.extra["decode"](self, z_q, frames, self.checked_speaker(speaker), length,
                                                   sample_mask)

    def decode_codes_dist(self, codes: list[Tensor], speaker: Tensor | None = None,
                          code_mask: Tensor | None = None) -> Distribution:
        """``p(y | codes, speaker)`` for code sequences ``[[B, T']]`` (``code_mask [B, T']``)."""
        if len(codes) != 1 or codes[0].dim() != 2:
            raise BatchError(f"the audio VQ-VAE takes one code sequence [B, T'], got {[list(c.shape) for c in codes]}")
        c = codes[0]
        frames = code_mask if code_mask is not None else torch.ones_like(c, dtype=torch.bool)
        z_q = self.quantizers[0].lookup(c)  # [B, D, T']
        length = c.shape[1] * self.hop
        sample_mask = frames.repeat_interleave(self.hop, dim=1)
        return self.decode_quantized_with(z_q, frames, speaker, length, sample_mask)

    # -- the contract --------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:
        x, cond = self.check_batch(batch)
        mask = batch.get("mask")
        q, frames = self.quantize_masked(x, mask, batch.get("mel"))
        speaker = cond.get(self.config.global_condition) if self.config.global_condition else None
        px = self.decode_quantized_with(q.quantized, frames, speaker, x.shape[-1], mask)
        k = self.config.num_codes
        layer = LatentLayer(CodePointMass(q.indices, k), uniform_codes(k, tuple(q.indices.shape), x.device),
                            q.indices, name="codes_0", mask=frames)
        aux = {"codebook_loss": q.codebook_loss, "commitment_loss": q.commitment_loss,
               "perplexity/level_1": _perplexity_per_example(q.counts, x.shape[0]),
               "codes_used/level_1": (q.counts > 0).sum().float().expand(x.shape[0])}
        target = self._decoder_entry.extra["target"](self, batch)
        return ModelOutput(px, [layer], aux, target=target)

    def reconstruction(self, x: Tensor, **cond: Tensor) -> Distribution:
        mask = cond.get("mask")
        codes = self.codes(x, mask)
        return self.decode_codes_dist(codes, cond.get(self.config.global_condition or ""),
                                      self.code_mask(mask, x.shape[-1], x.shape[0]))

    # -- audio out -----------------------------------------------------------------------------
    @torch.no_grad()
    def decode_to_audio(self, codes: list[Tensor], speaker: Tensor | None = None, code_mask: Tensor | None = None,
                        *, seed: int = 0, temperature: float = 1.0) -> Tensor:
        """Waveforms ``[B, 1, T' * hop]`` in [-1, 1] from codes: the mel decoder's mean frames through
        Griffin-Lim, or the WaveNet decoder's ancestral samples. Samples of padded frames are 0."""
        wave = self._decoder_entry.extra["audio"](self, codes, speaker, code_mask, seed, temperature)
        if code_mask is not None:
            wave = wave * code_mask.repeat_interleave(self.hop, dim=1)[:, None].to(wave.dtype)
        return wave

    @torch.no_grad()
    def convert(self, x: Tensor, speaker: Tensor, mask: Tensor | None = None, *, seed: int = 0) -> dict[str, Tensor]:
        """Speaker conversion: the codes of ``x [B, 1, T]`` decoded with ``speaker [B]``.

        Returns ``{"codes": [B, T'], "code_mask": [B, T'], "audio": [B, 1, T]}`` (the audio trimmed to the
        input's length); the codes are those of the source utterance whatever the target speaker."""
        if self.num_speakers is None:
            raise UsageError("this audio VQ-VAE has no speaker condition (model.global_condition=null): it cannot "
                             "convert speakers")
        codes = self.codes(x, mask)
        frames = self.code_mask(mask, x.shape[-1], x.shape[0])
        audio = self.decode_to_audio(codes, speaker, frames, seed=seed)[..., : x.shape[-1]]
        if mask is not None:
            audio = audio * mask[:, None].to(audio.dtype)
        return {"codes": codes[0], "code_mask": frames, "audio": audio}

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, *, use_mean: bool = True, seconds: float | None = None,
               seed: int | None = None, **cond: Tensor) -> Tensor:
        """Codes from the fitted sequence prior (given the speaker and digit where it is conditioned on
        them), decoded to waveforms ``[n, 1, T]``; the prior ends each sequence itself (its EOS), at most
        ``seconds`` (default 2 s) long."""
        prior = self.code_prior
        if prior is None:
            raise UsageError("this audio VQ-VAE has no fitted prior over its codes (training uses a uniform one, "
                             "which gives noise): run `vaekit fit-prior RUN` first")
        max_length = max(1, round((2.0 if seconds is None else seconds) * self.code_rate))
        generator = None if seed is None else torch.Generator(device="cpu").manual_seed(seed)
        conds = {k: v for k, v in cond.items() if k in getattr(prior, "conditions", ())}
        codes, frames = prior.sample(n, max_length, temperature=temperature, generator=generator, **conds)
        speaker = cond.get(self.config.global_condition) if self.config.global_condition else None
        return self.decode_to_audio([codes], speaker, frames, seed=0 if seed is None else seed)


# -- the encoders ------------------------------------------------------------------------------------------
def _build_wave_encoder(model: AudioVQVAE, cfg: AudioVQVAEConfig, spec: DataSpec) -> None:
    model.encoder = StridedConvEncoder(1, cfg.hidden, cfg.num_down, cfg.code_dim)


def _encode_wave(model: AudioVQVAE, x: Tensor, lengths: Tensor, mel: Tensor | None) -> Tensor:
    return model.encoder(x, lengths)


def _build_mel_encoder(model: AudioVQVAE, cfg: AudioVQVAEConfig, spec: DataSpec) -> None:
    from vaekit.data.audio import MelSettings

    model.mel_settings = MelSettings.from_dict(spec.features["mel"])
    model.encoder = FrameEncoder(spec.condition("mel").size, cfg.hidden, cfg.encoder_blocks, cfg.code_dim)


def _encode_mel(model: AudioVQVAE, x: Tensor, lengths: Tensor, mel: Tensor | None) -> Tensor:
    """Log-mel frames (the batch's, or computed from ``x`` with the data's settings: the same numbers), scaled
    from about [-11.5, 2] to about [-1, 1], one code per frame."""
    frames = x.shape[-1] // model.hop
    if mel is None or mel.shape[-1] != frames:
        from vaekit.data.audio import log_mel

        mel = torch.from_numpy(log_mel(x[:, 0], model.mel_settings, model.config.spec().sample_rate)).to(x.device)
    return model.encoder((mel.to(x.dtype) + 5.0) / 4.0, steps_valid(lengths, frames, model.hop))


AUDIO_ENCODERS.register("wave", description="the paper's strided convolutions over the waveform (stride 2, "
                        "window 4, num_down times)", check=lambda cfg, spec: None, encode=_encode_wave)(_build_wave_encoder)
AUDIO_ENCODERS.register("mel", description="a dilated conv stack over the log-mel frames (one code per frame); "
                        "faster to train on a CPU", check=_check_mel, encode=_encode_mel)(_build_mel_encoder)


# -- the decoders ------------------------------------------------------------------------------------------
def _build_mel(model: AudioVQVAE, cfg: AudioVQVAEConfig, spec: DataSpec) -> None:
    mel = spec.condition("mel")
    model.speaker_embedding = None if model.num_speakers is None else nn.Embedding(model.num_speakers,
                                                                                     cfg.global_channels)
    model.mel_decoder = FrameDecoder(cfg.code_dim, cfg.decoder_hidden, cfg.decoder_blocks, mel.size,
                                     None if model.num_speakers is None else cfg.global_channels)
    # log-mel values of speech lie between log(floor) = -11.5 and about 2: start the decoder's output in the
    # middle of that range, or Adam (steps of about lr) spends thousands of steps moving the bias there
    nn.init.constant_(model.mel_decoder.out.bias, -5.0)
    model.mel_log_scale = nn.Parameter(torch.zeros(mel.size, 1))  # log sigma per band, learned


def _decode_mel(model: AudioVQVAE, z_q: Tensor, frames: Tensor, speaker: Tensor | None, length: int | None,
                sample_mask: Tensor | None) -> Distribution:
    g = None if speaker is None else model.speaker_embedding(speaker)  # [B, G]
    mean = model.mel_decoder(z_q, frames, g)  # [B, M, T']
    scale = model.mel_log_scale.clamp(-7.0, 5.0).exp().expand_as(mean)
    return MaskedFrames(Normal(mean, scale, validate_args=False), frames)


def _mel_target(model: AudioVQVAE, batch: dict[str, Tensor]) -> Tensor:
    mel = batch["mel"]  # [B, M, T // hop]
    frames = -(-batch["x"].shape[-1] // model.hop)
    if mel.shape[-1] != frames:
        raise BatchError(f"batch['mel'] has {mel.shape[-1]} frames, but {batch['x'].shape[-1]} samples make "
                         f"{frames} code frames of {model.hop}")
    return mel


def _mel_audio(model: AudioVQVAE, codes: list[Tensor], speaker: Tensor | None, code_mask: Tensor | None,
               seed: int, temperature: float) -> Tensor:
    from vaekit.data.audio import MelSettings, mel_to_audio

    spec = model.config.spec()
    frames = model.decode_codes_dist(codes, speaker, code_mask).mean  # [B, M, T']
    settings = MelSettings.from_dict(spec.features["mel"])
    wave = mel_to_audio(frames, settings, spec.sample_rate)  # [B, T' * hop]
    return torch.from_numpy(wave).to(frames.device)[:, None]


def _build_wavenet(model: AudioVQVAE, cfg: AudioVQVAEConfig, spec: DataSpec) -> None:
    w = cfg.wavenet
    model.wavenet_decoder = WaveNet(  # the speaker: WaveNet's own global embedding (eq. 5)
        layers=w.layers, stacks=w.stacks, kernel_size=2, residual_channels=w.residual_channels,
        gate_channels=w.gate_channels, skip_channels=w.skip_channels, classes=w.mu + 1,
        global_classes=model.num_speakers, global_channels=cfg.global_channels,
        local_channels=cfg.code_dim, upsample_factors=tuple(cfg.upsample_factors))


def _decode_wavenet(model: AudioVQVAE, z_q: Tensor, frames: Tensor, speaker: Tensor | None, length: int | None,
                    sample_mask: Tensor | None) -> Distribution:
    net, mu = model.wavenet_decoder, model.config.wavenet.mu
    b = z_q.shape[0]
    length = z_q.shape[-1] * model.hop if length is None else length
    first = mu_law_encode(torch.zeros(b, device=z_q.device), mu)

    def log_prob(x: Tensor) -> Tensor:  # [B, 1, T] -> [B, T]
        ids = mu_law_encode(x[:, 0], mu)
        inputs = torch.cat([first[:, None], ids[:, :-1]], dim=1)
        return net.log_prob(inputs, ids, speaker, z_q)  # [B, T]

    def sample() -> Tensor:
        ids = net.generate(length, batch=b, g=speaker, c=z_q, seed=0, first=first)
        return mu_law_decode(ids, mu)[:, None]

    return AutoregressiveLikelihood(log_prob, sample, b, mask=sample_mask, exact=True)


def _wavenet_audio(model: AudioVQVAE, codes: list[Tensor], speaker: Tensor | None, code_mask: Tensor | None,
                   seed: int, temperature: float) -> Tensor:
    c = codes[0]
    frames = code_mask if code_mask is not None else torch.ones_like(c, dtype=torch.bool)
    z_q = model.quantizers[0].lookup(c) * frames[:, None]
    mu = model.config.wavenet.mu
    first = mu_law_encode(torch.zeros(c.shape[0], device=c.device), mu)
    ids = model.wavenet_decoder.generate(c.shape[1] * model.hop, batch=c.shape[0], g=model.checked_speaker(speaker),
                                         c=z_q, seed=seed, temperature=temperature, first=first,
                                         compile=model.compile_generation)
    return mu_law_decode(ids, mu)[:, None]


AUDIO_DECODERS.register("mel", description="log-mel frames (Gaussian per band) from a dilated conv stack; "
                        "Griffin-Lim for the waveform", check=_check_mel, decode=_decode_mel, target=_mel_target,
                        likelihood_name=lambda m: f"Gaussian over {m.mel_decoder.out.out_channels} log-mel bands "
                                                  f"per frame (learned scale per band)",
                        targets=("mel",), audio=_mel_audio)(_build_mel)
AUDIO_DECODERS.register("wavenet", description="WaveNet over mu-law samples, locally conditioned on the "
                        "upsampled codes (the paper's)", check=_check_wavenet, decode=_decode_wavenet,
                        likelihood_name=lambda m: f"{m.config.wavenet.mu + 1}-way mu-law softmax",
                        target=lambda model, batch: None, targets=(), audio=_wavenet_audio)(_build_wavenet)
