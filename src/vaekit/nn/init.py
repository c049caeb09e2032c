"""Weight initialisation schemes a run can ask for (``train.init``, ``train.init_output_bias``).

- ``default``: PyTorch's own (``nn.Linear``: U(+-1/sqrt(fan_in)) for weights and biases).
- ``glorot``: Glorot & Bengio (2010) uniform weights, U(+-sqrt(6 / (fan_in + fan_out))), zero biases,
  on every linear and convolution layer; the IWAE paper's "heuristic of Glorot & Bengio" (Burda et al.
  2015, sec. 5) for its tanh networks. Normalisation layers keep their (1, 0) start.
- ``init_output_bias``: set the bias of the decoder's last layer to the logit of the training pixels'
  mean, so that p(x|z) starts at the data's marginal instead of at p = 0.5 everywhere (Burda et al.'s
  released code does this for its Bernoulli decoders). Bernoulli likelihoods only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaekit.distributions.likelihoods import BernoulliHead

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def glorot_(module: nn.Module) -> int:
    """Glorot-uniform weights and zero biases for every linear and convolution layer in ``module``;
    returns how many layers were set."""
    n = 0
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            n += 1
    return n


INITS = {"default": lambda module: 0, "glorot": glorot_}


def output_layer(model: nn.Module) -> nn.Module:
    """The last linear or convolution layer of ``model.decoder``: the one whose outputs are the
    likelihood's raw parameters."""
    decoder = getattr(model, "decoder", None)
    layers = [m for m in decoder.modules() if isinstance(m, _WEIGHTED)] if isinstance(decoder, nn.Module) else []
    if not layers:
        raise ValueError(f"{type(model).__name__} has no decoder with a linear or convolution output layer")
    return layers[-1]


@torch.no_grad()
def init_output_bias_(model: nn.Module, pixel_mean: Tensor, eps: float = 1e-3) -> Tensor:
    """Set the Bernoulli decoder's output bias to ``logit(clip(pixel_mean, eps, 1 - eps))``.

    Args:
        model: A model whose ``likelihood`` is Bernoulli and whose ``decoder`` ends in a layer with a bias.
        pixel_mean: ``[C, H, W]`` mean of the training images in [0, 1] (the Bernoulli means of
            dynamically binarized data).
        eps: Clip so that always-black pixels get a finite logit (the released IWAE code uses 1e-3).

    Returns:
        The bias that was set.
    """
    if not isinstance(getattr(model, "likelihood", None), BernoulliHead):
        raise ValueError("train.init_output_bias needs a Bernoulli likelihood (it sets p(x|z)'s logits)")
    layer = output_layer(model)
    if layer.bias is None:
        raise ValueError(f"the decoder's output layer {layer} has no bias to set")
    logit = torch.logit(pixel_mean.float().clamp(eps, 1 - eps))  # [C, H, W]
    n = layer.bias.numel()
    if n == logit.numel():  # a fully connected output: one bias per pixel
        value = logit.reshape(-1)
    elif n == logit.shape[0]:  # a convolution output: one bias per channel
        value = torch.logit(pixel_mean.float().mean(dim=(1, 2)).clamp(eps, 1 - eps))
    else:
        raise ValueError(f"the decoder's output bias has {n} entries; expected one per pixel "
                         f"({logit.numel()}) or per channel ({logit.shape[0]})")
    layer.bias.copy_(value.to(layer.bias))
    return layer.bias.detach().clone()
