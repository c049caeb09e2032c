"""WaveNet's output distributions over the ``classes`` quantisation levels of a sample, and the input
layer that goes with each.

- ``softmax`` (van den Oord et al. 2016, sec. 2.2): a ``classes``-way softmax (256 for 8-bit mu-law), with
  the previous sample's id embedded (a 1x1 convolution of its one-hot code). The head has ``classes``
  outputs; the classes are unordered, so 65,536 levels of 16-bit audio would need 65,536 logits.
- ``logistic_mixture``: a mixture of ``M`` discretized logistics over the ordered levels (PixelCNN++,
  Salimans et al. 2017, eq. 2; used for 16-bit audio by Parallel WaveNet, van den Oord et al. 2018, sec. 2,
  and by r9y9's wavenet_vocoder). The head has ``3 M`` outputs per sample whatever ``classes`` is, which
  makes 16-bit audio affordable, and neighbouring levels share probability. The input is the previous
  sample's *value* ``v_k = 2k / (classes - 1) - 1`` through a 1x1 convolution (wavenet_vocoder's scalar
  input), so nearby values have nearby inputs.

The likelihood of a level is the mixture's mass on its bin
(:class:`~vaekit.distributions.discrete.DiscretizedLogisticMixture`, which the image likelihood
``dlogistic`` uses too), its log-scales floored at ``log(1 / (classes - 1)) - 1.5``
(:func:`~vaekit.distributions.discrete.min_log_scale_for`: PixelCNN++'s -7 at 256 levels, -12.6 at 65,536,
where -7 would keep every component wider than ~30 levels). A draw at a uniform ``u`` is exact for both: the softmax by its inverse CDF; the
mixture by picking the component whose CDF interval holds ``u``, then a logistic draw at ``u``'s place
within that interval (``v = (u - F_{k-1}) / pi_k`` is uniform on [0, 1) and independent of the choice),
rounded to the nearest level, the edge levels taking the tails, which is exactly the bin's mass. One
uniform per sample keeps the naive and the cached generation comparable draw for draw.

The draws are plain functions of tensors (no data-dependent Python branches), so that the compiled
cached step (:func:`vaekit.nn.wavenet.cached_step`) traces them into its one graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaekit.distributions.discrete import DiscretizedLogisticMixture, min_log_scale_for
from vaekit.errors import ConfigError
from vaekit.registry import Registry

WAVENET_OUTPUTS: Registry = Registry("WaveNet output")


class ScalarInput(nn.Module):
    """The input layer of the mixture output: a 1x1 convolution of the previous sample's value
    ``v_k = 2k / (classes - 1) - 1`` (``[B, T]`` ids -> ``[B, T, C]``, as ``nn.Embedding``).

    ``weight`` is the equivalent ``[classes, C]`` embedding table (``w v_k + b``), which the cached
    generator looks rows up in, as it does for the softmax's embedding.
    """

    def __init__(self, classes: int, channels: int):
        super().__init__()
        self.classes = classes
        self.proj = nn.Linear(1, channels)

    def values(self, ids: Tensor) -> Tensor:
        return ids.to(self.proj.weight.dtype) * (2.0 / (self.classes - 1)) - 1.0

    def forward(self, ids: Tensor) -> Tensor:  # [B, T] -> [B, T, C]
        return self.proj(self.values(ids)[..., None])

    @property
    def weight(self) -> Tensor:  # [classes, C]
        grid = self.values(torch.arange(self.classes, device=self.proj.weight.device))
        return grid[:, None] * self.proj.weight[:, 0] + self.proj.bias


class SoftmaxOutput:
    """A ``classes``-way softmax per sample; the input is an embedding of the previous id."""

    def __init__(self, classes: int, mixtures: int):
        self.classes = classes
        self.channels = classes  # the head's outputs per sample

    def make_input(self, channels: int) -> nn.Module:
        return nn.Embedding(self.classes, channels)  # = 1x1 conv on one-hot ids

    def log_prob(self, out: Tensor, ids: Tensor) -> Tensor:
        """``out [B, classes, T]`` logits, ``ids [B, T]`` -> ``[B, T]`` log-probabilities (nats)."""
        return -nn.functional.cross_entropy(out, ids, reduction="none")

    def describe(self, quantization: str) -> str:
        return f"{self.classes}-way {quantization} softmax"


class LogisticMixtureOutput:
    """A mixture of ``mixtures`` discretized logistics over the ``classes`` ordered levels; scalar input."""

    def __init__(self, classes: int, mixtures: int):
        if not isinstance(mixtures, int) or isinstance(mixtures, bool) or mixtures < 1:
            raise ConfigError(f"mixtures must be a positive integer, got {mixtures!r}")
        self.classes = classes
        self.mixtures = mixtures
        self.channels = 3 * mixtures  # logits, means, log-scales of each component

    def make_input(self, channels: int) -> nn.Module:
        return ScalarInput(self.classes, channels)

    def distribution(self, out: Tensor) -> DiscretizedLogisticMixture:
        """``out [B, 3 M, T]`` -> the mixture over ``[B, T]`` levels (in the [-1, 1] scale of the levels)."""
        m = self.mixtures
        params = out.transpose(1, 2)  # [B, T, 3 M]
        return DiscretizedLogisticMixture(params[..., :m], params[..., m:2 * m], params[..., 2 * m:],
                                          levels=self.classes, min_log_scale=min_log_scale_for(self.classes))

    def log_prob(self, out: Tensor, ids: Tensor) -> Tensor:
        """``out [B, 3 M, T]``, ``ids [B, T]`` -> ``[B, T]`` log-masses of the ids' bins (nats)."""
        return self.distribution(out).log_prob(ids.to(out.dtype) / (self.classes - 1))

    def interval_log_prob(self, out: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        """``log P(lo <= level <= hi)`` per position (``out [B, 3 M, T]``, ``lo, hi [B, T]`` inclusive level
        ids) -> ``[B, T]`` nats: the mixture's CDF between the outer edges of the two bins, the edge levels
        taking the tails, so that one level (``lo = hi``) is :meth:`log_prob` and the bins of a coarser
        quantisation (e.g. mu-law) partition the mass. Scores this model as a model of coarser audio."""
        d = self.distribution(out)
        scale = 2.0 / (self.classes - 1)
        half = 1.0 / (self.classes - 1)
        inv_s = torch.exp(-d.log_scales)  # [B, T, M]
        upper = inv_s * (hi.to(out.dtype)[..., None] * scale - 1 + half - d.means)
        lower = inv_s * (lo.to(out.dtype)[..., None] * scale - 1 - half - d.means)
        log_cdf_upper = torch.where(hi[..., None] == self.classes - 1, torch.zeros_like(upper),
                                    nn.functional.logsigmoid(upper))
        log_cdf_lower = torch.where(lo[..., None] == 0, torch.full_like(lower, -torch.inf),
                                    nn.functional.logsigmoid(lower))
        log_sf_lower = torch.where(lo[..., None] == 0, torch.zeros_like(lower), -nn.functional.softplus(lower))
        log_sf_upper = torch.where(hi[..., None] == self.classes - 1, torch.full_like(upper, -torch.inf),
                                   -nn.functional.softplus(upper))
        # log(F(u) - F(l)) from whichever side is accurate: the CDFs below the median, the tails above it
        from_cdf = log_cdf_upper + torch.log(-torch.expm1((log_cdf_lower - log_cdf_upper).clamp(max=-1e-30)))
        from_sf = log_sf_lower + torch.log(-torch.expm1((log_sf_upper - log_sf_lower).clamp(max=-1e-30)))
        lp = torch.where(upper + lower < 0, from_cdf, from_sf)  # [B, T, M]
        return torch.logsumexp(lp + nn.functional.log_softmax(d.logit_probs, dim=-1), dim=-1)

    def describe(self, quantization: str) -> str:
        return f"mixture of {self.mixtures} discretized logistics over {self.classes} {quantization} levels"


def draw_softmax(out: Tensor, u: Tensor, temperature: float, classes: int, mixtures: int) -> Tensor:
    """Inverse-CDF draw from ``softmax(out / temperature)``: ``out [B, K]``, ``u [B]`` -> ids ``[B]``.

    The id is the number of cumulative probabilities below ``u`` (= searchsorted, which inductor may not
    lower), clamped to ``K - 1`` for a total that rounds below ``u``. Temperature 0 is the argmax."""
    if temperature == 0:
        return out.argmax(dim=1)
    cdf = torch.softmax(out / temperature, dim=1).cumsum(dim=1)  # [B, K]
    return (cdf < u.to(cdf.dtype)[:, None]).sum(dim=1).clamp(max=classes - 1)


def draw_logistic_mixture(out: Tensor, u: Tensor, temperature: float, classes: int, mixtures: int) -> Tensor:
    """An exact draw from the discretized logistic mixture ``out [B, 3 M]`` at ``u [B]`` -> ids ``[B]``.

    Temperature ``tau`` divides the mixture logits and multiplies the scales; 0 takes the mean of the most
    probable component."""
    m = mixtures
    logits, means = out[:, :m], out[:, m:2 * m]
    log_scales = out[:, 2 * m:3 * m].clamp(min=min_log_scale_for(classes))  # as the likelihood's floor
    if temperature == 0:
        k = logits.argmax(dim=1, keepdim=True)  # [B, 1]
        x = means.gather(1, k)[:, 0]
    else:
        u = u.to(out.dtype)
        pi = torch.softmax(logits / temperature, dim=1)  # [B, M]
        cdf = pi.cumsum(dim=1)
        k = (cdf < u[:, None]).sum(dim=1, keepdim=True).clamp(max=m - 1)  # the component holding u
        p_k = pi.gather(1, k)[:, 0]
        v = ((u - (cdf.gather(1, k)[:, 0] - p_k)) / p_k).clamp(1e-5, 1 - 1e-5)  # uniform within it
        scale = torch.exp(log_scales.gather(1, k)[:, 0]) * temperature
        x = means.gather(1, k)[:, 0] + scale * (torch.log(v) - torch.log1p(-v))  # logistic inverse CDF
    # the nearest level; the clamp gives the edge levels the tails
    return torch.round((x.clamp(-1.0, 1.0) + 1.0) * ((classes - 1) / 2.0)).long()


#: name -> draw function, for the cached step (a plain dict: traced by torch.compile without the registry)
DRAWS = {"softmax": draw_softmax, "logistic_mixture": draw_logistic_mixture}

WAVENET_OUTPUTS.register("softmax", description="a softmax over the levels (the paper's 256-way mu-law)")(
    SoftmaxOutput)
WAVENET_OUTPUTS.register("logistic_mixture", description="a mixture of discretized logistics over ordered "
                         "levels (PixelCNN++; Parallel WaveNet's 16-bit output)")(LogisticMixtureOutput)

__all__ = ["WAVENET_OUTPUTS", "DRAWS", "ScalarInput", "SoftmaxOutput", "LogisticMixtureOutput", "draw_softmax",
           "draw_logistic_mixture"]
