"""WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio") with the cached
generation of Paine et al. (2016, "Fast Wavenet Generation Algorithm").

A waveform of mu-law ids (:mod:`vaekit.distributions.mulaw`) is factorised as
``p(x | h) = prod_t p(x_t | x_<t, h)`` (eq. 1 and 4), each factor a softmax over ``classes`` values. The network:

* **first layer**: an ``nn.Embedding(classes, residual_channels)`` of the input ids, which is a 1x1
  convolution of their one-hot codes. The caller shifts the ids (the input at ``t`` is ``x_{t-1}``), so a
  1x1 first layer is causal and the receptive field is that of the dilated stack alone,
  ``(kernel_size - 1) * sum(dilations) + 1`` (3070 for 30 layers in 3 stacks, kernel 2), as in r9y9's
  wavenet_vocoder (whose first layer is also 1x1).
* **residual layers** (fig. 4): a dilated causal convolution (zero padding on the left only) to
  ``gate_channels``, split in halves for the gated unit of eq. 3,
  ``z = tanh(W_f * x + V_f h) . sigmoid(W_g * x + V_g h)``; the ``V h`` terms are the global condition of eq. 5
  (a learned embedding of ``g``, e.g. a speaker id, projected per layer and broadcast over time) and the
  local condition of eq. 6 (``V * y``, a 1x1 convolution of ``y``, the condition ``c`` upsampled to the sample
  rate by learned transposed convolutions). A 1x1 convolution of ``z`` gives the residual, added to the
  layer input, and the skip output. The sum is scaled by ``sqrt(0.5)`` and the skips' total by
  ``sqrt(1 / layers)``, as in wavenet_vocoder, so that activations keep their scale through 30 layers.
  The last layer has no residual output (nothing would read it).
* **head** (fig. 4): ReLU, 1x1 conv, ReLU, 1x1 conv to ``classes`` logits.

Dilations double within a stack, ``1, 2, ..., 2^(layers/stacks - 1)``, and restart in every stack.

Generation draws ``x_t`` by the inverse CDF of the softmax at a given uniform ``u_t`` (so that the naive and
the cached algorithms can be compared draw for draw). The cached algorithm keeps, for every layer, a queue
of its last ``dilation * (kernel_size - 1)`` inputs (a ring buffer), so that each new sample costs one
position of every layer instead of a forward pass over the receptive field. :func:`cached_step` is that
one position for all layers as a function of preallocated tensors (the step index too), so that
``torch.compile`` turns it into one graph without graph breaks, compiled once for every step and length:
each layer's ``k`` taps are one matrix product on their concatenation, the residual and skip 1x1 convs
another, the global condition's projections are a bias computed once per utterance, and the local
condition is upsampled once and projected for all layers one chunk of steps at a time. At small batches
the compiled step is a single C++ loop nest (see :data:`MATVEC_BATCH`); on the 2-core CPU the 30-layer
model generates ~2,100-2,500 samples/s at batch 1, ~10x the eager step, and ~8,500-9,400 in all at batch 32
(``benchmarks/profile_wavenet_generation.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaekit.distributions.mulaw import mu_law_encode
from vaekit.errors import ConfigError, UsageError
from vaekit.nn.wavenet_output import DRAWS, WAVENET_OUTPUTS, draw_softmax

#: Steps per refill of the cached generator's time-indexed buffers (uniforms, local-condition biases, ids):
#: one eager GEMM per chunk for the local condition, and the compiled step's shapes never depend on the length.
CHUNK = 256
#: Largest batch whose compiled step computes its products as multiply + sum loops rather than GEMM calls.
#: Measured on the 2-core CPU (30 layers): at batch 1 the loops take ~0.4x the time of 62 GEMM calls; at 32
#: they are within ~20% of single-threaded GEMMs and 3-10x faster than two-threaded ones on a busy machine.
MATVEC_BATCH = 32


def stack_dilations(layers: int, stacks: int) -> list[int]:
    """``[1, 2, ..., 2^(layers/stacks - 1)]`` repeated ``stacks`` times (raises ConfigError if not divisible)."""
    if layers % stacks:
        raise ConfigError(f"layers ({layers}) must be divisible by stacks ({stacks})")
    return [2**i for i in range(layers // stacks)] * stacks


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
    """Inputs that reach one output: ``(kernel_size - 1) * sum(dilations) + 1`` (1x1 first layer)."""
    return (kernel_size - 1) * sum(dilations) + 1


def sample_logits(logits: Tensor, u: Tensor, temperature: float = 1.0) -> Tensor:
    """Inverse-CDF draw from ``softmax(logits / temperature)``: ``logits [B, K]``, ``u [B]`` in [0, 1) -> ``[B]``
    (:func:`vaekit.nn.wavenet_output.draw_softmax`, the draw both generation algorithms use). Temperature 0
    is the argmax (``u`` is ignored)."""
    return draw_softmax(logits, u, temperature, logits.shape[1], 0)


def _check_positive(**sizes: int | None) -> None:
    for name, value in sizes.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


class ResidualLayer(nn.Module):
    """One gated residual layer (fig. 4, eq. 3, 5, 6): ``x [B, C, T]`` -> ``(x_next [B, C, T], skip [B, S, T])``.

    ``x_next`` is None for the last layer (``last=True``), which has only a skip output.
    """

    def __init__(self, residual_channels: int, gate_channels: int, skip_channels: int, kernel_size: int,
                 dilation: int, global_channels: int | None, local_channels: int | None, last: bool):
        super().__init__()
        self.dilation = dilation
        self.kernel_size = kernel_size
        self.residual_channels = None if last else residual_channels
        self.conv = nn.Conv1d(residual_channels, gate_channels, kernel_size, dilation=dilation)  # W_f, W_g
        self.global_proj = (nn.Linear(global_channels, gate_channels, bias=False)
                            if global_channels is not None else None)  # V_f, V_g of eq. 5
        self.local_proj = (nn.Conv1d(local_channels, gate_channels, 1, bias=False)
                           if local_channels is not None else None)  # V_f *, V_g * of eq. 6
        self.out = nn.Conv1d(gate_channels // 2, (0 if last else residual_channels) + skip_channels, 1)

    def forward(self, x: Tensor, h: Tensor | None = None, y: Tensor | None = None
                ) -> tuple[Tensor | None, Tensor]:
        """``x [B, C, T]``, ``h [B, global_channels]`` (eq. 5), ``y [B, local_channels, T]`` (eq. 6)."""
        pre = self.conv(F.pad(x, ((self.kernel_size - 1) * self.dilation, 0)))  # [B, G, T], causal: left pad
        if self.global_proj is not None:
            pre = pre + self.global_proj(h)[:, :, None]  # [B, G, 1], broadcast over time
        if self.local_proj is not None:
            pre = pre + self.local_proj(y)  # [B, G, T]
        a, b = pre.chunk(2, dim=1)
        out = self.out(torch.tanh(a) * torch.sigmoid(b))  # [B, C + S, T] (or [B, S, T] for the last layer)
        if self.residual_channels is None:
            return None, out
        res, skip = out.split([self.residual_channels, out.shape[1] - self.residual_channels], dim=1)
        return (x + res) * math.sqrt(0.5), skip


class WaveNet(nn.Module):
    """Autoregressive network ``p(x_t | x_<t, g, c)`` over mu-law ids; returns logits, computes no loss.

    Args:
        layers: residual layers in all (30 in the paper's TTS setting).
        stacks: dilation cycles; ``layers`` must be divisible by it.
        kernel_size: width of the dilated causal convolutions (2 in the paper).
        residual_channels: channels ``C`` of the residual stream and of the input embedding.
        gate_channels: outputs of each dilated convolution; the first half feeds tanh, the second sigmoid
            (wavenet_vocoder's convention), so it must be even.
        skip_channels: channels ``S`` of the skip outputs and of the head's hidden layer.
        classes: quantisation levels of a sample (256 for 8-bit mu-law, 65536 for 16-bit linear).
        output: the distribution over them (:data:`vaekit.nn.wavenet_output.WAVENET_OUTPUTS`): ``"softmax"``
            (the paper's; the input is an embedding of the previous id) or ``"logistic_mixture"``
            (``mixtures`` discretized logistics over the ordered levels; the input is the previous value).
        mixtures: components of the logistic mixture.
        global_classes: if set, ``g [B]`` (e.g. speaker ids in ``[0, global_classes)``) is required (eq. 5).
        global_channels: size of the learned embedding of ``g``.
        local_channels: if set, ``c [B, local_channels, frames]`` is required (eq. 6), e.g. a mel spectrogram.
        upsample_factors: strides of the transposed convolutions that bring ``c`` to the sample rate; their
            product is the hop length (``()``: ``c`` is already at the sample rate).
        dropout: dropout probability on each layer's input while training (never in :meth:`generate`).
    """

    def __init__(self, *, layers: int = 30, stacks: int = 3, kernel_size: int = 2, residual_channels: int = 64,
                 gate_channels: int = 128, skip_channels: int = 64, classes: int = 256,
                 global_classes: int | None = None, global_channels: int = 16, local_channels: int | None = None,
                 upsample_factors: tuple[int, ...] = (), dropout: float = 0.0, output: str = "softmax",
                 mixtures: int = 10):
        super().__init__()
        _check_positive(layers=layers, stacks=stacks, kernel_size=kernel_size, residual_channels=residual_channels,
                        gate_channels=gate_channels, skip_channels=skip_channels, global_classes=global_classes,
                        global_channels=global_channels, local_channels=local_channels)
        _check_positive(**{f"upsample_factors[{i}]": s for i, s in enumerate(upsample_factors)})
        if not isinstance(classes, int) or classes < 2:
            raise ConfigError(f"classes must be an integer >= 2, got {classes!r}")
        if gate_channels % 2:
            raise ConfigError(f"gate_channels must be even (tanh half, sigmoid half), got {gate_channels}")
        if upsample_factors and local_channels is None:
            raise ConfigError("upsample_factors were given but local_channels is None (no local condition)")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must lie in [0, 1), got {dropout}")
        self.dilations = stack_dilations(layers, stacks)
        self.kernel_size = kernel_size
        self.residual_channels = residual_channels
        self.gate_channels = gate_channels
        self.skip_channels = skip_channels
        self.classes = classes
        self.global_classes = global_classes
        self.local_channels = local_channels
        self.upsample_factors = tuple(upsample_factors)
        self.hop = math.prod(self.upsample_factors)
        self.dropout = dropout
        self.output_name = output
        self.output = WAVENET_OUTPUTS.get(output).obj(classes, mixtures)

        self.embedding = self.output.make_input(residual_channels)  # ids [B, T] -> [B, T, C]
        self.global_embedding = nn.Embedding(global_classes, global_channels) if global_classes else None
        # kernel = stride: frame f covers samples [f * hop, (f + 1) * hop) exactly, so frames * hop samples.
        self.upsampler = nn.ModuleList(nn.ConvTranspose1d(local_channels, local_channels, s, stride=s)
                                       for s in self.upsample_factors)
        self.layers = nn.ModuleList(
            ResidualLayer(residual_channels, gate_channels, skip_channels, kernel_size, d,
                          global_channels if global_classes else None, local_channels, last=i == layers - 1)
            for i, d in enumerate(self.dilations))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(skip_channels, self.output.channels, 1))

    @property
    def receptive_field(self) -> int:
        """Number of input ids that reach one output: ``(kernel_size - 1) * sum(dilations) + 1``."""
        return receptive_field(self.kernel_size, self.dilations)

    def flops_per_sample(self) -> int:
        """Multiply-adds x 2 of one generated sample with the cached algorithm (biases and gates not counted).

        Per layer: the dilated conv ``k C G``, the local condition's projection ``local_channels G`` and the
        residual/skip 1x1 ``G/2 (C + S)`` (``G/2 S`` for the last); the head ``S S + S O`` (``O`` outputs:
        ``K`` logits or ``3 M`` mixture parameters). The embedding is a
        lookup and the global condition's projection is done once per utterance.
        """
        k, c, g, s = self.kernel_size, self.residual_channels, self.gate_channels, self.skip_channels
        n = len(self.dilations)
        macs = n * (k * c * g + (self.local_channels or 0) * g) + (n - 1) * g // 2 * (c + s) + g // 2 * s
        return 2 * (macs + s * s + s * self.output.channels)

    # ----------------------------------------------------------------------------------------------------
    # teacher-forced pass

    def forward(self, ids: Tensor, g: Tensor | None = None, c: Tensor | None = None) -> Tensor:
        """The head's outputs for ``p(x_t | x_<t, g, c)`` at every ``t`` in one pass: the softmax's logits or
        the mixture's parameters (:meth:`log_prob` scores them).

        Args:
            ids: ``[B, T]`` int64 in ``[0, classes)``: the *previous* samples (the input at ``t`` is ``x_{t-1}``).
            g: ``[B]`` int64 global condition; required iff built with ``global_classes``.
            c: ``[B, local_channels, frames]`` float local condition with ``frames * hop >= T`` (cropped to
                ``T``); required iff built with ``local_channels``.

        Returns:
            ``[B, O, T]`` (``O = classes`` logits, or ``3 mixtures`` parameters); those at ``t`` depend on ``ids[:, t - receptive_field + 1 : t + 1]``
            and on the upsampled condition at positions ``<= t`` only.
        """
        self._check_ids(ids)
        batch, length = ids.shape
        self._check_conditions(batch, g, c)
        y = self.upsample(c, length) if self.local_channels is not None else None
        return self._logits(ids, self._global(g), y, self.training)

    def log_prob(self, ids: Tensor, targets: Tensor, g: Tensor | None = None, c: Tensor | None = None) -> Tensor:
        """``log p(x_t = targets_t | x_<t, g, c)`` in nats, ``[B, T]``, from one teacher-forced pass over the
        shifted inputs ``ids [B, T]`` (the input at ``t`` is ``x_{t-1}``)."""
        return self.output.log_prob(self(ids, g, c), targets)

    def draw(self, out: Tensor, u: Tensor, temperature: float = 1.0) -> Tensor:
        """Ids ``[N]`` drawn from the head's outputs ``out [N, O]`` at uniforms ``u [N]`` (exact inverse-CDF
        draws, :mod:`vaekit.nn.wavenet_output`)."""
        return DRAWS[self.output_name](out, u, temperature, self.classes, getattr(self.output, "mixtures", 0))

    def upsample(self, c: Tensor, length: int) -> Tensor:
        """``c [B, local_channels, frames]`` -> ``y [B, local_channels, length]`` at the sample rate (eq. 6's y).

        Transposed convolutions with kernel = stride = each factor (LeakyReLU(0.4) between them), then the
        first ``length`` samples are kept. Raises UsageError when ``frames * hop < length``.
        """
        if self.local_channels is None:
            raise UsageError("upsample: the model was built without local_channels")
        self._check_local(c, c.shape[0] if c.ndim == 3 else 0)
        frames = c.shape[2]
        if frames * self.hop < length:
            raise UsageError(f"local condition (e.g. mel) has {frames} frames x hop {self.hop} = "
                             f"{frames * self.hop} samples, need {length}")
        y = c
        for i, conv in enumerate(self.upsampler):
            y = conv(y)  # [B, L, frames * prod(factors[: i + 1])]
            if i < len(self.upsampler) - 1:
                y = F.leaky_relu(y, 0.4)
        return y[:, :, :length]

    def _global(self, g: Tensor | None) -> Tensor | None:
        return self.global_embedding(g) if self.global_embedding is not None else None  # [B, global_channels]

    def _logits(self, ids: Tensor, h: Tensor | None, y: Tensor | None, train: bool) -> Tensor:
        """The network on checked inputs: ``ids [B, T]``, ``h [B, Gc]``, ``y [B, Lc, T]`` -> ``[B, O, T]``."""
        x = self.embedding(ids).transpose(1, 2)  # [B, T, C] -> [B, C, T]
        skips = 0
        for layer in self.layers:
            x, skip = layer(F.dropout(x, self.dropout, train), h, y)
            skips = skips + skip  # [B, S, T]
        return self.head(skips * math.sqrt(1.0 / len(self.layers)))  # [B, O, T]

    # ----------------------------------------------------------------------------------------------------
    # generation

    @torch.no_grad()
    def generate(self, length: int, *, batch: int | None = None, g: Tensor | None = None, c: Tensor | None = None,
                 uniforms: Tensor | None = None, seed: int | Sequence[int] = 0, temperature: float = 1.0,
                 fast: bool = True, compile: bool = False, first: Tensor | None = None,
                 return_logits: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Ancestral sampling of ``length`` ids, one at a time, each fed back as the next input.

        Args:
            length: samples per utterance.
            batch: utterances; by default taken from ``g``, ``c``, ``uniforms``, ``first`` or a list ``seed``,
                else 1.
            g: ``[B]`` int64 global condition, as in :meth:`forward`.
            c: ``[B, local_channels, frames]`` local condition with ``frames * hop >= length``.
            uniforms: ``[B, length]`` the ``u_t`` of the inverse-CDF draws, in ``[0, 1)``. If None, utterance
                ``i`` draws its own from a ``torch.Generator`` seeded with ``seed + i`` (or ``seed[i]`` for a
                list), so an utterance's samples do not depend on the batch it is generated in.
            seed: base seed, or one seed per utterance.
            temperature: the logits are divided by it (the mixture's scales multiplied by it); 0 takes the
                argmax (the mixture: the mean of its most probable component).
            fast: the cached algorithm (Paine et al. 2016, O(layers) per sample); False: one forward pass over
                the last ``receptive_field`` inputs per sample (the naive algorithm).
            compile: run the cached step through ``torch.compile`` (:func:`compiled_step`): the first call for
                a batch size and dtype compiles for up to a minute (30 layers, 2 cores), later calls of any
                length reuse it and run several times faster than eager. Only with ``fast``.
            first: ``[B]`` int64 input of the first step; default the id of the sample 0.0 (128 for 256 classes).
            return_logits: also return the ``[B, O, length]`` head outputs the draws were made from.

        Returns:
            ``[B, length]`` int64 ids, or ``(ids, logits)`` if ``return_logits``.
        """
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise UsageError(f"length must be a positive integer, got {length!r}")
        if not temperature >= 0:
            raise UsageError(f"temperature must be >= 0, got {temperature}")
        if compile and not fast:
            raise UsageError("compile=True needs fast=True (it compiles the cached step)")
        batch = self._infer_batch(batch, g, c, uniforms, first, seed)
        self._check_conditions(batch, g, c)
        param = self.embedding.weight
        if uniforms is None:
            uniforms = draw_uniforms(batch, length, seed)
        elif uniforms.shape != (batch, length) or not uniforms.is_floating_point():
            raise UsageError(f"uniforms must be a float tensor of shape [{batch}, {length}], "
                             f"got {uniforms.dtype} of shape {list(uniforms.shape)}")
        uniforms = uniforms.to(device=param.device, dtype=param.dtype)
        if first is None:
            first = mu_law_encode(torch.zeros(batch, device=param.device), self.classes - 1)
        elif first.shape != (batch,) or first.dtype != torch.long:
            raise UsageError(f"first must be int64 of shape [{batch}], got {first.dtype} of shape {list(first.shape)}")
        else:
            self._check_ids(first[:, None], name="first")
        h = self._global(g)
        y = self.upsample(c, length) if self.local_channels is not None else None  # [B, Lc, length], once
        run = self._generate_cached if fast else self._generate_naive
        ids, logits = run(length, first.to(param.device), h, y, uniforms, float(temperature), compile, return_logits)
        return (ids, logits) if return_logits else ids

    def _generate_naive(self, length, first, h, y, uniforms, temperature, compile, return_logits):
        batch, rf = first.shape[0], self.receptive_field
        inputs = torch.empty(batch, length + 1, dtype=torch.long, device=first.device)  # [first, x_0, x_1, ...]
        inputs[:, 0] = first
        logits_out = (torch.empty(batch, self.output.channels, length, dtype=uniforms.dtype, device=first.device)
                      if return_logits else None)
        for t in range(length):
            # The last receptive_field inputs; near the start fewer, where the convolutions' zero padding
            # stands in for the samples before the first, exactly as the cached queues, which start at zero.
            lo = max(0, t + 1 - rf)
            window_y = y[:, :, lo:t + 1] if y is not None else None
            logits = self._logits(inputs[:, lo:t + 1], h, window_y, train=False)[:, :, -1]  # [B, O]
            inputs[:, t + 1] = self.draw(logits, uniforms[:, t], temperature)
            if logits_out is not None:
                logits_out[:, :, t] = logits
        return inputs[:, 1:], logits_out

    def _generate_cached(self, length, first, h, y, uniforms, temperature, compile, return_logits):
        cache = CachedGenerator(self, first.shape[0], h, temperature=temperature, store_logits=return_logits,
                                compile=compile)
        return cache.run(length, first, y, uniforms)

    # ----------------------------------------------------------------------------------------------------
    # input checks

    def _infer_batch(self, batch, g, c, uniforms, first, seed) -> int:
        sizes = {name: t.shape[0] for name, t in (("g", g), ("c", c), ("uniforms", uniforms), ("first", first))
                 if t is not None and t.ndim > 0}
        if not isinstance(seed, int):
            sizes["seed"] = len(seed)
        if batch is None:
            batch = next(iter(sizes.values()), 1)
        _check_positive(batch=batch)
        for name, size in sizes.items():
            if size != batch:
                raise UsageError(f"{name} holds {size} utterances but batch is {batch}")
        return batch

    def _check_ids(self, ids: Tensor, name: str = "ids") -> None:
        if ids.dtype != torch.long:
            raise UsageError(f"{name} must be int64 (torch.long) class ids, got {ids.dtype}")
        if ids.ndim != 2:
            raise UsageError(f"{name} must be [B, T], got shape {list(ids.shape)}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.classes):
            raise UsageError(f"{name} must lie in [0, {self.classes}), got values in "
                             f"[{ids.min().item()}, {ids.max().item()}]")

    def _check_conditions(self, batch: int, g: Tensor | None, c: Tensor | None) -> None:
        if self.global_classes is None:
            if g is not None:
                raise UsageError("g was given but the model was built without global_classes")
        else:
            if g is None:
                raise UsageError(f"g is required: the model was built with global_classes={self.global_classes}")
            if g.dtype != torch.long or g.shape != (batch,):
                raise UsageError(f"g must be int64 of shape [{batch}], got {g.dtype} of shape {list(g.shape)}")
            if g.min() < 0 or g.max() >= self.global_classes:
                raise UsageError(f"g must lie in [0, {self.global_classes}), got values in "
                                 f"[{g.min().item()}, {g.max().item()}]")
        if self.local_channels is None:
            if c is not None:
                raise UsageError("c was given but the model was built without local_channels")
        else:
            if c is None:
                raise UsageError(f"c is required: the model was built with local_channels={self.local_channels}")
            self._check_local(c, batch)

    def _check_local(self, c: Tensor, batch: int) -> None:
        if not c.is_floating_point():
            raise UsageError(f"c must be a float tensor, got {c.dtype}")
        if c.ndim != 3 or c.shape[0] != batch or c.shape[1] != self.local_channels:
            raise UsageError(f"c must be [{batch}, {self.local_channels}, frames], got {list(c.shape)}")


def draw_uniforms(batch: int, length: int, seed: int | Sequence[int]) -> Tensor:
    """``[batch, length]`` float64 uniforms in [0, 1); row ``i`` from its own generator seeded ``seed + i``
    (or ``seed[i]``), so a row is the same whatever the batch."""
    seeds = [seed + i for i in range(batch)] if isinstance(seed, int) else list(seed)
    rows = [torch.rand(length, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
            for s in seeds]
    return torch.stack(rows)


# --------------------------------------------------------------------------------------------------------
# cached generation (Paine et al. 2016)


@dataclass(frozen=True)
class StepShape:
    """The static sizes of :func:`cached_step` (Python ints: constants of a compiled graph)."""

    layers: int
    kernel_size: int
    residual_channels: int
    gate_channels: int
    classes: int
    output: str  # the name of the output distribution (its draw in wavenet_output.DRAWS)
    out_channels: int  # the head's outputs: classes logits or 3 mixtures parameters
    mixtures: int
    bias_period: int  # CHUNK when a local condition varies per step, else 1
    temperature: float
    store_logits: bool
    matvec: bool  # products as multiply + sum, which inductor fuses into its C++ loops (small batches only)


def cached_step(shape: StepShape, weights: tuple[Tensor, ...], state: tuple[Tensor, ...]) -> None:
    """One sample of every utterance, all layers at one position, updating ``state`` in place.

    ``weights = (embedding [K, C], taps [L, G, k C], out_w [L, C + S, G/2], out_b [L, C + S], head1_w [S, S],
    head1_b [S], head2_w [K, S], head2_b [K], back, tap_len, tap_start [L (k-1)], ring_len, ring_start [L])``,
    matrices in ``nn.Linear``'s ``[out, in]`` layout; ``back`` says how many steps ago each past tap is, and
    ``tap_len``, ``tap_start`` are its layer's ring.

    ``state = (t [1] int64, prev [B] int64, queue [B, slots, C], bias [B, bias_period, L, G], u [B, CHUNK],
    ids [B, CHUNK] int64, logits [B, CHUNK, K])``: ``t`` is the step, ``prev`` the last id (the input), ``queue``
    holds every layer's ring of its last ``d (k - 1)`` inputs (layer ``l`` at slots ``ring_start[l] ..
    + ring_len[l]``, ``x_s`` at slot ``s mod ring_len[l]``; zeros before the first sample, as the forward
    pass's zero padding), ``bias`` the gates' biases (conv bias + eq. 5 + eq. 6 at the step), and ``u``, ``ids``
    and ``logits`` the time-indexed buffers at position ``t mod CHUNK``.

    Layer ``l``'s dilated conv needs its inputs at ``t - j d`` for ``j = k-1 .. 1``, all from earlier steps, so
    they are gathered for all layers first and the new inputs scattered at the end; the ``k`` taps are one
    matmul on their concatenation, and the residual and skip 1x1 convs another (the last layer's matrix is
    zero-padded to ``C + S`` rows). ``t`` is a tensor, so a compiled step is one graph for every step.
    """
    emb, taps, out_w, out_b, head1_w, head1_b, head2_w, head2_b = weights[:8]
    back, tap_len, tap_start, ring_len, ring_start = weights[8:]
    t, prev, queue, bias, u, ids, logits_buf = state
    n, k, c, half = shape.layers, shape.kernel_size, shape.residual_channels, shape.gate_channels // 2
    batch = prev.shape[0]
    pos = t % CHUNK
    x = emb[prev]  # [B, C]
    past = queue[:, tap_start + torch.remainder(t - back, tap_len)]  # [B, L (k-1), C]
    b = bias.index_select(1, t % shape.bias_period)[:, 0]  # [B, L, G]
    inputs = []
    skip = None
    for i in range(n):
        inputs.append(x)
        x_taps = torch.cat([past[:, i * (k - 1):(i + 1) * (k - 1)].reshape(batch, (k - 1) * c), x], dim=1)
        pre = _affine(b[:, i], x_taps, taps[i], shape.matvec)  # [B, G]
        z = torch.tanh(pre[:, :half]) * torch.sigmoid(pre[:, half:])  # [B, G/2]
        out = _affine(out_b[i], z, out_w[i], shape.matvec)  # [B, C + S]
        skip = out[:, c:] if skip is None else skip + out[:, c:]
        if i < n - 1:
            x = (x + out[:, :c]) * math.sqrt(0.5)
    queue[:, ring_start + t % ring_len] = torch.stack(inputs, dim=1)  # [B, L, C]
    hidden = torch.relu(_affine(head1_b, torch.relu(skip * math.sqrt(1.0 / n)), head1_w, shape.matvec))  # [B, S]
    logit = _affine(head2_b, hidden, head2_w, shape.matvec)  # [B, O]
    new = DRAWS[shape.output](logit, u.index_select(1, pos)[:, 0], shape.temperature, shape.classes, shape.mixtures)
    ids.index_copy_(1, pos, new[:, None])
    if shape.store_logits:
        logits_buf.index_copy_(1, pos, logit[:, None])
    prev.copy_(new)
    t.add_(1)


def _affine(bias: Tensor, x: Tensor, w: Tensor, matvec: bool) -> Tensor:
    """``bias + x w^T`` for ``x [B, I]`` and ``w [O, I]`` (``nn.Linear``'s layout).

    ``matvec``: as a broadcast product summed over its last axis, which inductor compiles into a vectorised
    loop inside the step's one C++ kernel instead of a call to a GEMM library, whose per-call cost dominates
    at batch 1 (summing over the contiguous axis measured ~1.5x faster than over the other one).
    """
    if matvec:
        return (x[:, None, :] * w).sum(dim=-1) + bias
    return torch.addmm(bias, x, w.t())


_compiled_steps: dict[bool, object] = {}


def compiled_step(matvec: bool):
    """:func:`cached_step` through ``torch.compile`` (inductor, C++ wrapper, no graph break, static shapes).

    With ``matvec`` (small batches) the kernels are generated single-threaded: the step is ~100 small loops,
    and an OpenMP fork/join around each costs more than it saves (on a busy 2-core machine, 10-100x more).
    """
    if matvec not in _compiled_steps:
        options = {"cpp_wrapper": True, "cpp.threads": 1}
        _compiled_steps[matvec] = torch.compile(cached_step, fullgraph=True, dynamic=False, options=options)
    return _compiled_steps[matvec]


class CachedGenerator:
    """The cached algorithm's weights and preallocated state for one batch: :meth:`run` draws ``length`` ids.

    Args:
        model: the network (its weights are packed once, in its dtype and device).
        batch: utterances.
        h: ``[B, global_channels]`` embedded global condition, or None.
        temperature: as in :meth:`WaveNet.generate`.
        store_logits: keep the logits of every step.
        compile: run :func:`cached_step` through ``torch.compile``.
    """

    def __init__(self, model: WaveNet, batch: int, h: Tensor | None, *, temperature: float = 1.0,
                 store_logits: bool = False, compile: bool = False):
        self.model = model
        p = model.embedding.weight
        layers = list(model.layers)
        n, k, c, s = len(layers), model.kernel_size, model.residual_channels, model.skip_channels
        taps, out_w, out_b = [], [], []
        for layer in layers:
            taps.append(layer.conv.weight.permute(0, 2, 1).reshape(-1, k * c))  # [G, C, k] -> [G, k C], tap-major
            w, bias = layer.out.weight[:, :, 0], layer.out.bias  # [C + S, G/2]
            if w.shape[0] == s:  # last layer: no residual output
                w = torch.cat([w.new_zeros(c, w.shape[1]), w], dim=0)
                bias = torch.cat([bias.new_zeros(c), bias])
            out_w.append(w)
            out_b.append(bias)
        dil = torch.tensor(model.dilations, device=p.device)
        ring_len = dil * (k - 1)
        ring_start = torch.cumsum(ring_len, 0) - ring_len
        # tap j (of k - 1 past ones) of layer l reads x at t - (k - 1 - j) d_l, matching the conv weight's order
        back = (dil[:, None] * torch.arange(k - 1, 0, -1, device=p.device)[None, :]).reshape(-1)
        h1, h2 = model.head[1], model.head[3]
        self.weights = tuple(w.detach().contiguous() for w in (
            model.embedding.weight, torch.stack(taps), torch.stack(out_w), torch.stack(out_b),
            h1.weight[:, :, 0], h1.bias, h2.weight[:, :, 0], h2.bias)) + (
            back, ring_len.repeat_interleave(k - 1), ring_start.repeat_interleave(k - 1), ring_len, ring_start)

        bias = torch.stack([layer.conv.bias for layer in layers])[None].expand(batch, n, -1)  # [B, L, G]
        if h is not None:
            bias = bias + torch.stack([layer.global_proj(h) for layer in layers], dim=1)  # eq. 5, once
        self.base_bias = bias.detach()
        self.local = (torch.stack([layer.local_proj.weight[:, :, 0] for layer in layers]).detach()
                      if model.local_channels is not None else None)  # [L, G, Lc]
        period = CHUNK if self.local is not None else 1
        self.shape = StepShape(n, k, c, model.gate_channels, model.classes, model.output_name,
                               model.output.channels, getattr(model.output, "mixtures", 0), period, temperature,
                               store_logits, matvec=compile and batch <= MATVEC_BATCH)
        self.state = (torch.zeros(1, dtype=torch.long, device=p.device),  # t (a tensor: no recompile per step)
                      torch.zeros(batch, dtype=torch.long, device=p.device),  # prev
                      p.new_zeros(batch, int(ring_len.sum()), c),  # queue
                      self.base_bias.clone()[:, None].expand(-1, period, -1, -1).contiguous(),  # bias
                      p.new_zeros(batch, CHUNK),  # u
                      torch.zeros(batch, CHUNK, dtype=torch.long, device=p.device),  # ids
                      p.new_zeros(batch, CHUNK if store_logits else 1, model.output.channels))  # logits
        self.step = compiled_step(self.shape.matvec) if compile else cached_step

    def run(self, length: int, first: Tensor, y: Tensor | None, uniforms: Tensor) -> tuple[Tensor, Tensor | None]:
        """``length`` steps from input ``first [B]``; ``y [B, Lc, length]`` upsampled local condition or None;
        ``uniforms [B, length]``. Returns ``ids [B, length]`` and the ``[B, K, length]`` logits or None."""
        t, prev, queue, bias, u, ids_buf, logits_buf = self.state
        t.zero_()
        queue.zero_()
        prev.copy_(first)
        batch = prev.shape[0]
        ids = torch.empty(batch, length, dtype=torch.long, device=prev.device)
        logits = (torch.empty(batch, length, self.model.output.channels, dtype=u.dtype, device=prev.device)
                  if self.shape.store_logits else None)
        for start in range(0, length, CHUNK):
            stop = min(start + CHUNK, length)
            u[:, :stop - start] = uniforms[:, start:stop]
            if y is not None:  # eq. 6 for the whole chunk: one GEMM, [B, Lc, T'] x [L, G, Lc] -> [B, T', L, G]
                proj = torch.einsum("bct,lgc->btlg", y[:, :, start:stop], self.local)
                bias[:, :stop - start] = self.base_bias[:, None] + proj
            for _ in range(stop - start):
                self.step(self.shape, self.weights, self.state)
            ids[:, start:stop] = ids_buf[:, :stop - start]
            if logits is not None:
                logits[:, start:stop] = logits_buf[:, :stop - start]
        return ids, (logits.transpose(1, 2) if logits is not None else None)
