"""The likelihood evaluations that ``vaekit evaluate`` can run, each registered with what it applies to.

:func:`vaekit.api.evaluate_run` runs the first registered protocol whose ``applies(model)`` holds (read
from the model's declared ``capabilities``), so a new family needs an entry here, not a branch there:

- ``stream``: character language models (``stream_state``): the split read as one text, bits per character;
- ``exact``: models whose ``log p(x)`` is exact (WaveNet, code priors): one masked teacher-forced pass;
- ``audio_codes``: audio VQ models: the distortion of the decoder's target, the codes' bits per second;
- ``rate_distortion``: VQ models (a point-mass posterior): ``-log p(x) <= distortion + rate``;
- ``importance_sampled``: latent-variable models with ``log_importance_weights``: the test ELBO and the
  IS-NLL with k samples (Burda et al. 2015), plus active units.

Each takes ``(model, data, part, *, num_samples, seed, batch_size, device, max_rows)`` and returns
``(result, latent_usage, num_samples_used, tag)``; ``tag`` names the result file (``test_<tag>_*.json``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vaekit.registry import EVALUATIONS


@EVALUATIONS.register("stream", description="character streams: the split read as one text, state carried across "
                      "chunks (bits per character)", applies=lambda m: "stream_state" in m.capabilities, order=-1,
                      summary=("window_nll_bits_per_token", "stream_rows", "stream_chunk"),
                      note=("exact log-likelihood of the split read as one text: 32 contiguous pieces, the model's state "
                            "carried across chunks of 200 symbols (vaekit.evaluation.stream); nll_bits_per_token is "
                            "bits per character"))
def _stream(model: Any, data: Any, part: Any, *, num_samples: int, seed: int, batch_size: int,
            device: torch.device, max_rows: int | None) -> tuple[dict, dict, int, str]:
    from vaekit.evaluation.likelihood import evaluate_exact_likelihood
    from vaekit.evaluation.stream import stream_nll

    stream = part.stream[part.starts[0]:part.starts[-1] + part.lengths[-1]] if len(part) else part.stream[:0]
    result = stream_nll(model, stream, device=device, seed=seed)
    windows = evaluate_exact_likelihood(model, data.batches(part, batch_size, device, seed=seed), seed=seed)
    result.update({"perplexity": math.exp(result["nll_nats_per_token"]), "exact": True,
                   "window_nll_bits_per_token": windows["nll_bits_per_token"],  # each window from a fresh state
                   "nll_nats": windows["nll_nats"], "nll_stderr_nats": windows["nll_stderr_nats"],
                   "neg_elbo_nats": windows["nll_nats"], "num_examples": windows["num_examples"]})
    return result, {}, 0, "stream"


@EVALUATIONS.register("exact", description="exact log-likelihood (one teacher-forced pass, no sampling)",
                      applies=lambda m: "exact_likelihood" in m.capabilities, order=0,
                      note="exact log-likelihood: the model computes log p(x) itself, no importance sampling")
def _exact(model: Any, data: Any, part: Any, *, num_samples: int, seed: int, batch_size: int,
           device: torch.device, max_rows: int | None) -> tuple[dict, dict, int, str]:
    from vaekit.evaluation.likelihood import evaluate_exact_likelihood

    result = evaluate_exact_likelihood(model, data.batches(part, batch_size, device, seed=seed), seed=seed)
    return result, {}, 0, "exact"


@EVALUATIONS.register("audio_codes", description="audio VQ models: distortion, code rate in bits/s, codebook use",
                      applies=lambda m: "codes" in m.capabilities and m.config.spec().modality == "audio",
                      order=0.5, summary=("distortion_nats_per_frame", "mel_mse", "mel_mae",
                                          "distortion_bits_per_sample", "rate_uniform_bits_per_second",
                                          "rate_prior_bits_per_second", "neg_elbo_uniform_nats"),
                      note=("audio VQ model: distortion of the decoder's target (log-mel frames or "
                                       "mu-law samples) given the codes and the speaker, on whole utterances; "
                                       "the codes' rate in bits per second; no importance sampling"))
def _audio_codes(model: Any, data: Any, part: Any, *, num_samples: int, seed: int, batch_size: int,
                 device: torch.device, max_rows: int | None) -> tuple[dict, dict, int, str]:
    from vaekit.evaluation.vq import evaluate_audio_codes

    torch.manual_seed(seed)
    res = evaluate_audio_codes(model, data.batches(part, batch_size, device, seed=seed))
    return res, {"codebook": res.pop("codebook")}, 0, "codes"


@EVALUATIONS.register("rate_distortion", description="VQ models: -log p(x) <= distortion + rate",
                      applies=lambda m: "codes" in m.capabilities, order=1,
                      note=("VQ model: -log p(x) <= distortion + rate, with the rate under the uniform training "
                            "prior and, if fitted, the code prior (bound_*_bpd); no importance sampling"))
def _rate_distortion(model: Any, data: Any, part: Any, *, num_samples: int, seed: int, batch_size: int,
                     device: torch.device, max_rows: int | None) -> tuple[dict, dict, int, str]:
    from vaekit.evaluation.vq import evaluate_codes

    torch.manual_seed(seed)
    lik = evaluate_codes(model, data.batches(part, batch_size, device, seed=seed), levels=data.spec.levels)
    return lik, {"codebook": lik.pop("codebook")}, 0, "codes"


@EVALUATIONS.register("importance_sampled", description="test ELBO and importance-sampled NLL, active units",
                      applies=lambda m: "importance_weights" in m.capabilities, order=2, note=None)
def _importance_sampled(model: Any, data: Any, part: Any, *, num_samples: int, seed: int, batch_size: int,
                        device: torch.device, max_rows: int | None) -> tuple[dict, dict, int, str]:
    from vaekit.evaluation.latents import latent_usage
    from vaekit.evaluation.likelihood import evaluate_likelihood

    lik = evaluate_likelihood(model, data.batches(part, batch_size, device), num_samples=num_samples, seed=seed,
                              max_rows=max_rows)
    usage = latent_usage(model, data.batches(part, batch_size, device), seed=seed)
    return lik, usage, num_samples, f"k{num_samples}"


def likelihood_protocol(model: Any):
    """The registry entry of the likelihood evaluation that applies to ``model`` (the lowest ``order``)."""
    from vaekit.errors import UsageError

    entries = sorted((e for e in EVALUATIONS if e.extra["applies"](model)), key=lambda e: e.extra["order"])
    if not entries:
        raise UsageError(f"no likelihood evaluation applies to {type(model).__name__} "
                         f"(capabilities {sorted(model.capabilities)})")
    return entries[0]
