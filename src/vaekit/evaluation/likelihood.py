"""Test ELBO, importance-sampled log-likelihood and bits/dim.

The importance-sampled estimate (Burda et al. 2015, sec. 5; Rezende et al. 2014, App. E) is

``log p(x) ~= log (1/k) sum_i p(x, z_i) / q(z_i|x)``,  ``z_i ~ q(z|x)``,

a stochastic lower bound that tightens as k grows. It is computed for a whole batch of data points at
once, with the k samples split into chunks so that ``chunk * B`` decoder rows fit in memory, and the
chunks combined with a running log-sum-exp; there is no Python loop over data points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from vaekit.evaluation.mode import evaluating
from vaekit.errors import ConfigError, DataError, NonFiniteError
from vaekit.models.base import LatentVariableModel
from vaekit.objectives import elbo_terms


def _check_finite(x: Tensor) -> None:
    if not torch.isfinite(x).all():
        raise DataError("evaluation data contains NaN or infinite values")


def _check_model_finite(what: str, bad: int, n: int) -> None:
    """A broken model's NaN must not become a reported mean (or a bare NaN in a result's JSON)."""
    if bad:
        raise NonFiniteError(f"the model's {what} is non-finite (NaN or infinite) for {bad} of {n} examples: "
                             f"the model is broken (a diverged run?), so there is no result to report")


@torch.no_grad()
def importance_sampled_log_likelihood(
    model: LatentVariableModel,
    batch: dict[str, Tensor],
    num_samples: int = 1000,
    max_rows: int | None = None,
) -> Tensor:
    """``[B]`` estimates of ``log p(x)`` in nats from ``num_samples`` importance samples per example.

    Args:
        model: any model implementing ``log_importance_weights(batch, k) -> [k, B]``.
        batch: ``{"x": [B, ...], ...}``.
        num_samples: k.
        max_rows: at most ``chunk * B`` latent samples are decoded at once (bounds memory). None:
            4096 on CPU, where larger decoder activations fall out of cache (1.8x slower at 16384,
            benchmarks/results/nll.md), 65536 on a GPU.
    """
    b = batch["x"].shape[0]
    if max_rows is None:
        max_rows = 4096 if batch["x"].device.type == "cpu" else 65536
    chunk = max(1, min(num_samples, max_rows // max(b, 1)))
    acc = torch.full((b,), -math.inf, device=batch["x"].device)
    done = 0
    while done < num_samples:
        kc = min(chunk, num_samples - done)
        log_w = model.log_importance_weights(batch, kc).float()  # [kc, B]
        acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))
        done += kc
    return acc - math.log(num_samples)


def evaluate_likelihood(
    model: LatentVariableModel,
    batches: Iterable[dict[str, Tensor]],
    *,
    num_samples: int = 1000,
    seed: int = 0,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Test ELBO (one sample per example), rate, distortion and the importance-sampled NLL.

    Returns means over all examples in nats, the NLL's standard error over examples, and bits/dim
    (``nll / (D ln 2)``) when the likelihood is over discrete values. ``num_samples=0`` skips the
    importance-sampled estimate.
    """
    from vaekit.dataspec import num_elements

    sums: dict[str, float] = {}
    nll_values: list[Tensor] = []
    n = bad = 0
    elements = 0.0  # modelled elements (tokens of variable-length data, padding excluded)
    posteriors: dict[int, list[tuple[Tensor, Tensor]]] = {}  # global Gaussian layers: (mean, std) per batch
    spec = model.config.spec() if hasattr(getattr(model, "config", None), "spec") else None
    with evaluating(model, seed):
        for batch in batches:
            x = batch["x"]
            _check_finite(x)
            if spec is not None and (spec.variable or spec.element_unit != "dim"):
                elements += float(num_elements(batch, spec).double().sum())
            output = model(batch)
            terms, _ = elbo_terms(output, x)
            _collect_posteriors(output, posteriors)
            bad += int((~torch.isfinite(terms["elbo"])).sum())
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.double().sum().item()
            if num_samples > 0:
                nll_values.append(-importance_sampled_log_likelihood(model, batch, num_samples, max_rows).cpu())
            n += x.shape[0]
    if n == 0:
        raise DataError("no evaluation data")
    _check_model_finite("ELBO", bad, n)
    if nll_values:
        _check_model_finite("importance-sampled log-likelihood", int((~torch.isfinite(torch.cat(nll_values))).sum()), n)
    out: dict[str, Any] = {f"{name.replace('/', '_')}_nats": s / n for name, s in sums.items()}
    out["neg_elbo_nats"] = -out.pop("elbo_nats")
    out["num_examples"] = n
    out.update(_mutual_information(posteriors, seed))
    if nll_values:
        nll = torch.cat(nll_values).double()
        out["nll_nats"] = nll.mean().item()
        out["nll_stderr_nats"] = (nll.std() / math.sqrt(len(nll))).item() if len(nll) > 1 else 0.0
        out["num_importance_samples"] = num_samples
    if spec is not None and spec.element_unit != "dim":  # note events: nats per event (a voice's step)
        return _per_element(out, elements, spec)
    try:
        dim = math.prod(model.data_shape)
    except ConfigError:  # variable-length data (sentences): rates per modelled element, not per dimension
        return _per_element(out, elements, spec)
    discrete = getattr(model.likelihood, "kind", "discrete") == "discrete"
    if nll_values:
        if discrete:
            out["nll_bpd"] = out["nll_nats"] / (dim * math.log(2))
    if discrete:
        out["neg_elbo_bpd"] = out["neg_elbo_nats"] / (dim * math.log(2))
    out["data_dim"] = dim
    return out


def _collect_posteriors(output: Any, store: dict[int, list[tuple[Tensor, Tensor]]]) -> None:
    """Keep the ``(mean, std)`` of every global diagonal-Gaussian posterior layer, up to MI_MAX_EXAMPLES."""
    from torch.distributions import Independent, Normal

    from vaekit.evaluation.latents import MI_MAX_EXAMPLES

    for i, layer in enumerate(output.latents, start=1):
        q = layer.posterior
        base = q.base_dist if isinstance(q, Independent) else q
        if layer.steps != 0 or not isinstance(base, Normal) or base.loc.dim() != 2:
            continue
        kept = sum(len(m) for m, _ in store.get(i, []))
        if kept < MI_MAX_EXAMPLES:
            store.setdefault(i, []).append((base.loc[:MI_MAX_EXAMPLES - kept].detach().cpu(),
                                            base.scale[:MI_MAX_EXAMPLES - kept].detach().cpu()))


def _mutual_information(posteriors: dict[int, list[tuple[Tensor, Tensor]]], seed: int) -> dict[str, float]:
    """``mutual_info_layer_<i>_nats``: I_q(x; z_i) of each global Gaussian layer over the first
    MI_MAX_EXAMPLES evaluated examples (He et al. 2019; :func:`gaussian_mutual_information`)."""
    from vaekit.evaluation.latents import gaussian_mutual_information

    out = {}
    for i, parts in posteriors.items():
        mean, std = torch.cat([m for m, _ in parts]), torch.cat([s for _, s in parts])
        if len(mean) > 1:
            out[f"mutual_info_layer_{i}_nats"] = gaussian_mutual_information(
                mean, std, generator=torch.Generator().manual_seed(seed))
            out[f"mutual_info_layer_{i}_examples"] = len(mean)
    return out


def _per_element(out: dict[str, Any], elements: float, spec: Any) -> dict[str, Any]:
    """Variable-length data and data whose unit is not a dimension (note events): the corpus rates ``sum_i nll_i / sum_i n_i`` (the mean per example times the
    examples over the elements) in nats and bits per element, and for tokens the perplexity
    ``exp(nll per token)``, every ``<eos>`` counted as a token (as language-model papers count it)."""
    unit = spec.element_unit
    n = out["num_examples"]
    for key, name in (("nll_nats", "nll"), ("neg_elbo_nats", "neg_elbo")):
        if key in out:
            per = out[key] * n / elements
            out[f"{name}_nats_per_{unit}"] = per
            out[f"{name}_bits_per_{unit}"] = per / math.log(2)
            if spec.modality == "tokens":
                out[f"{name}_perplexity" if name != "nll" else "perplexity"] = math.exp(per)
    out["num_elements"] = int(elements)
    out["data_dim"] = elements / n
    return out


def per_example_nll(
    model: LatentVariableModel,
    batches: Iterable[dict[str, Tensor]],
    *,
    num_samples: int = 1000,
    seed: int = 0,
    max_rows: int | None = None,
) -> Tensor:
    """``[N]`` importance-sampled ``-log p(x)`` in nats, one per example, in the batches' order (float64)."""
    out = []
    with evaluating(model, seed):
        for batch in batches:
            _check_finite(batch["x"])
            out.append(-importance_sampled_log_likelihood(model, batch, num_samples, max_rows).double().cpu())
    if not out:
        raise DataError("no evaluation data")
    nll = torch.cat(out)
    _check_model_finite("importance-sampled log-likelihood", int((~torch.isfinite(nll)).sum()), len(nll))
    return nll


def paired_difference(nll_a: Tensor, nll_b: Tensor) -> dict[str, float]:
    """Compare two models on the same examples: the mean of ``nll_a - nll_b`` and its standard error.

    Each model's own standard error is dominated by how much the examples differ from each other; the
    per-example difference cancels that, so two models a few tenths of a nat apart can be told apart
    (or shown to tie) where their separate error bars overlap.

    Returns:
        ``nll_a``, ``nll_b`` (means), ``stderr_a``, ``stderr_b``, ``a_minus_b``, ``stderr_difference``
        (all nats), ``fraction_a_better`` (share of examples with ``nll_a < nll_b``), ``num_examples``.
    """
    if nll_a.shape != nll_b.shape or nll_a.dim() != 1:
        raise ValueError(f"need two [N] tensors over the same examples, got {list(nll_a.shape)} and {list(nll_b.shape)}")
    n = nll_a.numel()
    if n < 2:
        raise ValueError("need at least two examples for a standard error")
    a, b = nll_a.double(), nll_b.double()
    d = a - b
    se = lambda t: (t.std() / math.sqrt(n)).item()  # noqa: E731
    return {"nll_a": a.mean().item(), "nll_b": b.mean().item(), "stderr_a": se(a), "stderr_b": se(b),
            "a_minus_b": d.mean().item(), "stderr_difference": se(d),
            "fraction_a_better": (d < 0).double().mean().item(), "num_examples": n}


def evaluate_exact_likelihood(
    model: LatentVariableModel,
    batches: Iterable[dict[str, Tensor]],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The exact test log-likelihood of a model that computes ``log p(x)`` itself (WaveNet, code priors):
    one teacher-forced, masked pass per batch, no importance sampling.

    Returns the mean NLL per example in nats with its standard error over examples, and per modelled
    element (padding excluded: :func:`vaekit.dataspec.num_elements`) over the whole split, in nats and in
    bits (``nll_bits_per_<unit>``, e.g. bits per audio sample): ``sum_i nll_i / sum_i n_i``, so long and
    short examples weigh by their length, as a corpus-level rate should.
    """
    from vaekit.dataspec import num_elements

    spec = model.config.spec()
    nlls: list[Tensor] = []
    elements: list[Tensor] = []
    coarser: dict[str, list[Tensor]] = {}  # the same audio at a coarser quantisation (model.coarser_log_probs)
    with evaluating(model, seed):
        for batch in batches:
            x = batch["x"]
            if x.is_floating_point():
                _check_finite(x)
            nlls.append(-model(batch).likelihood.log_prob(x).double().cpu())  # [B]
            elements.append(num_elements(batch, spec).double().cpu())
            for name, lp in getattr(model, "coarser_log_probs", lambda b: {})(batch).items():
                coarser.setdefault(name, []).append(-lp.double().cpu())
    if not nlls:
        raise DataError("no evaluation data")
    nll, count = torch.cat(nlls), torch.cat(elements)
    n = len(nll)
    _check_model_finite("log-likelihood", int((~torch.isfinite(nll)).sum()), n)
    unit = spec.element_unit
    per_element = (nll.sum() / count.sum()).item()
    extra = {f"nll_bits_per_{name}": (torch.cat(v).sum() / count.sum()).item() / math.log(2)
             for name, v in coarser.items()}
    return {
        **extra,
        "nll_nats": nll.mean().item(),
        "nll_stderr_nats": (nll.std() / math.sqrt(n)).item() if n > 1 else 0.0,
        f"nll_nats_per_{unit}": per_element,
        f"nll_bits_per_{unit}": per_element / math.log(2),
        **({"perplexity": math.exp(per_element)} if spec.modality == "tokens" else {}),  # <eos> counted
        "neg_elbo_nats": nll.mean().item(),  # no latents: the bound is the likelihood itself
        "num_examples": n,
        "num_elements": int(count.sum().item()),
        "data_dim": (count.sum() / n).item(),
        "exact": True,
    }
