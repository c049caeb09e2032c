"""The speech VAE with a style latent (Zhang et al. 2019) and the KL-every-K objective: padding changes no
term, the frame decoder is causal, the ELBO identities, transfer uses the reference's z, the objective's
off steps, clear errors for unusable data, and one short real run on FSDD that must beat a threshold."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import needs_shared
from vaekit.config import ConfigError, to_dict
from vaekit.dataspec import BatchError, Condition, DataSpec, random_batch
from vaekit.errors import UsageError


@pytest.fixture(scope="module")
def sv():
    """The modules, imported here rather than at the top: importing registers ``speech_vae`` and
    ``periodic_kl``, which tests/test_contract.py's coverage check would see in a full run before the
    model has a contract case there."""
    import vaekit.models.speech_vae as module
    import vaekit.objectives.speech as objective

    return module, objective


CONFIG = Path(__file__).resolve().parents[1] / "configs" / "fsdd_speech_vae.yaml"
HOP, MELS = 16, 8
SPEC = DataSpec("audio", [1, None], "continuous", None, 8000,
                conditions=[Condition("speaker", "label", 3), Condition("y", "label", 10),
                            Condition("mel", "sequence", MELS, rate=8000 / HOP)],
                features={"mel": {"n_mels": MELS, "n_fft": 128, "win_length": 32, "hop_length": HOP}})
SMALL = {"latent_dim": 3, "content_dim": 4, "ref_channels": [4, 4], "ref_gru": 8, "prenet": [8], "decoder_gru": 12,
         "frames_per_step": 2}


def _model(sv, **over):
    from vaekit.models import build_model

    torch.manual_seed(0)
    return build_model("speech_vae", {**SMALL, **over, "data": to_dict(SPEC)})


def _batch(n=4, length=100, seed=0):
    """Ragged random audio with realistic log-mel levels (about N(-6, 2^2)); lengths not multiples of the hop."""
    b = random_batch(SPEC, n, length=length, frames=-(-length // HOP), generator=torch.Generator().manual_seed(seed))
    b["mel"] = -6.0 + 2.0 * b["mel"]
    return b


def _alone(batch, b):
    """Example ``b`` cut to its own length, without mask or lengths (as if it had come alone)."""
    n = int(batch["lengths"][b])
    out = {k: v[b:b + 1] for k, v in batch.items() if k not in ("mask", "lengths", "x", "mel")}
    out["x"] = batch["x"][b:b + 1, :, :n]
    out["mel"] = batch["mel"][b:b + 1, :, : -(-n // HOP)]
    return out


# -- padding ------------------------------------------------------------------------------------------
def test_padding_changes_no_term(sv):
    """A padded batch and its examples alone: the same posterior, KL, and log p(mel | z, y) at a shared z;
    and other padding content (samples, frames, extra padded frames) changes no term of the batch."""
    _, objective = sv
    model = _model(sv).eval()
    obj = objective.PeriodicKL()
    batch = _batch()
    assert len(set(batch["lengths"].tolist())) == 4 and (batch["lengths"] % HOP != 0).any()
    frame_mask = model.frame_mask(batch)
    q = model.posterior(batch["mel"], frame_mask)
    z = q.mean  # a shared z: a sampled one differs between a row of a batch and a batch of one
    lp = model.decode(z, y=batch["y"], mask=frame_mask).log_prob(batch["mel"])  # [B]
    for b in range(4):
        one = _alone(batch, b)
        q1 = model.posterior(one["mel"])
        assert torch.allclose(q.mean[b], q1.mean[0], atol=1e-6)
        assert torch.allclose(q.stddev[b], q1.stddev[0], atol=1e-6)
        lp1 = model.decode(z[b:b + 1], y=one["y"]).log_prob(one["mel"])
        assert torch.allclose(lp[b], lp1[0], rtol=1e-5, atol=1e-4), b
        torch.manual_seed(1)
        t1 = obj(model, one, 0)
        torch.manual_seed(1)
        t = obj(model, {**one, "x": torch.nn.functional.pad(one["x"], (0, 2 * HOP)),
                        "mel": torch.nn.functional.pad(one["mel"], (0, 2), value=3.0),
                        "mask": torch.arange(one["x"].shape[-1] + 2 * HOP)[None] < one["x"].shape[-1]}, 0)
        for key in ("elbo", "distortion", "rate", "frame_mse", "nats_per_frame", "frames"):
            assert torch.allclose(t[key], t1[key], rtol=1e-5, atol=1e-4), (key, b)
    other = dict(batch, x=torch.where(batch["mask"][:, None], batch["x"], torch.rand_like(batch["x"])),
                 mel=torch.where(frame_mask[:, None], batch["mel"], torch.randn_like(batch["mel"]) * 5))
    torch.manual_seed(2)
    a = obj(model, batch, 0)
    torch.manual_seed(2)
    c = obj(model, other, 0)
    for key in a:
        assert torch.allclose(a[key], c[key], rtol=1e-5, atol=1e-4), key


def test_the_frame_mask_follows_the_sample_mask(sv):
    model = _model(sv)
    batch = _batch()
    mask = model.frame_mask(batch)
    assert torch.equal(mask.sum(1), -(-batch["lengths"] // HOP))  # a frame is real when its first sample is
    assert model.frame_mask({k: v for k, v in batch.items() if k not in ("mask", "lengths")}).all()
    with pytest.raises(BatchError, match="frames"):
        model.frame_mask(dict(batch, mel=torch.nn.functional.pad(batch["mel"], (0, 3))))


# -- the decoder ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("r", [1, 2, 3])
def test_the_decoder_is_causal_over_frames(sv, r):
    """Frame t's log-likelihood (mel and stop token) is unchanged when any later frame changes, and it does
    change when an earlier one does (the decoder does use its past)."""
    model = _model(sv, frames_per_step=r).eval()
    batch = _batch(2, length=160)  # 10 frames
    z = torch.randn(2, 3)
    px = model.decode(z, y=batch["y"])
    mel = batch["mel"][:1].expand(2, -1, -1).clone()
    base = px.step_log_prob(mel)  # [2, F]
    f = mel.shape[-1]
    for t in range(f - 1):
        later = mel.clone()
        later[:, :, t + 1:] += torch.randn_like(later[:, :, t + 1:]) * 3
        assert torch.allclose(px.step_log_prob(later)[:, : t + 1], base[:, : t + 1], atol=1e-5), t
    fed = r - 1  # the last frame of the first step is what the second step is fed (Tacotron's choice)
    earlier = mel.clone()
    earlier[:, :, fed] += 3.0
    changed = (px.step_log_prob(earlier) - base).abs().amax(0) > 1e-4  # [F]
    assert not changed[:fed].any() and changed[fed]  # its own likelihood changes, not the earlier ones' ...
    assert changed[r:].all()  # ... and every later frame's does: the decoder uses its past


def test_the_likelihood_is_the_masked_sum_of_frame_and_stop_terms(sv):
    """Known answer: ``log p = sum_{t real} [sum_m log N(m_t,m; mu, sigma_m) + log Bern(stop_t)]`` with the
    stop target 1 at the last real frame only."""
    model = _model(sv).eval()
    batch = _batch()
    mask = model.frame_mask(batch)
    z = torch.randn(4, 3)
    params, stop = model._teacher_forced(batch["mel"], batch["y"], z)
    mean = model.config.mel_mean + model.config.mel_std * params  # [B, F, M]
    sigma = model.likelihood.log_scale.clamp(min=model.likelihood.cfg.min_log_scale).exp()
    frame = torch.distributions.Normal(mean, sigma).log_prob(batch["mel"].transpose(1, 2)).sum(-1)
    last = torch.zeros_like(stop)
    last[torch.arange(4), mask.sum(1) - 1] = 1
    want = ((frame + torch.distributions.Bernoulli(logits=stop).log_prob(last)) * mask).sum(1)
    got = model.decode(z, y=batch["y"], mask=mask).log_prob(batch["mel"])
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-3)
    with pytest.raises(UsageError, match="log-mel frames"):
        model.decode(z, y=batch["y"], mask=mask).log_prob(batch["mel"][:, :3])


def test_stop_tokens_end_the_generated_utterances(sv):
    """Known answers with a constant stop probability p: the mean decoding ends at the median of the stop
    time (the first t with 1 - (1 - p)^t >= 1/2), a given length overrides it, and draws end near 1/p."""
    model = _model(sv).eval()
    y, z = torch.tensor([1, 2]), torch.zeros(2, 3)
    r, width = model.config.frames_per_step, model.decoder.out.out_features // model.config.frames_per_step
    weight, bias = model.decoder.out.weight.view(r, width, -1)[:, -1], model.decoder.out.bias.view(r, width)[:, -1]

    def constant_stop(p):
        with torch.no_grad():
            weight.zero_()
            bias.fill_(math.log(p / (1 - p)))

    with torch.no_grad():
        constant_stop(1 - 1e-9)  # fires at once
        mel, lengths = model.generate(y, z, use_mean=True)
        assert lengths.tolist() == [1, 1] and mel.shape == (2, MELS, 1)
        constant_stop(0.2)  # survival 0.8^t: 0.512 at t = 3, 0.41 at t = 4
        assert model.generate(y, z, use_mean=True)[1].tolist() == [4, 4]
        constant_stop(0.5)
        assert model.generate(y, z, use_mean=True)[1].tolist() == [1, 1]
        constant_stop(1e-9)  # never fires: the cap
        mel, lengths = model.generate(y, z, use_mean=True, max_frames=7)
        assert lengths.tolist() == [7, 7] and mel.shape == (2, MELS, 7)
        mel, lengths = model.generate(y, z, frames=torch.tensor([3, 5]), use_mean=True)  # a given length
        assert lengths.tolist() == [3, 5] and mel.shape == (2, MELS, 5)
        assert (mel[0, :, 3:] == math.log(1e-5)).all()  # past a row's end: the log floor, as the data pads
        constant_stop(0.1)
        drawn = model.generate(y.repeat(200), z.repeat(200, 1), max_frames=100, seed=0)[1].float()
        assert abs(drawn.mean().item() - 10.0) < 1.0  # geometric stop times: mean 1 / p


# -- ELBO identities ------------------------------------------------------------------------------------
def test_elbo_identities_and_k1_weights(sv):
    """``elbo = -(distortion + rate)``; with ``k = 1`` and the same draw of z, the importance weight is
    ``log p(x|z) + log p(z) - log q(z|x)``; ``kl_every = 1`` is the ELBO objective exactly."""
    _, objective = sv
    from vaekit.objectives import ELBO, elbo_terms

    model = _model(sv).eval()
    batch = _batch()
    torch.manual_seed(3)
    out = model(batch)
    terms, _ = elbo_terms(out, batch["x"])
    assert torch.allclose(terms["elbo"], -(terms["distortion"] + terms["rate"]))
    layer = out.latents[0]
    assert torch.allclose(terms["rate"], torch.distributions.kl_divergence(layer.posterior, layer.prior), atol=1e-5)
    assert torch.allclose(terms["distortion"], -out.likelihood.log_prob(batch["mel"]))  # x stands for its frames
    torch.manual_seed(3)
    log_w = model.log_importance_weights(batch, 1)
    assert log_w.shape == (1, 4)
    want = -terms["distortion"] + layer.prior.log_prob(layer.z) - layer.posterior.log_prob(layer.z)
    assert torch.allclose(log_w[0], want, rtol=1e-5, atol=1e-3)
    assert model.log_importance_weights(batch, 5).shape == (5, 4)
    for step in (0, 7):
        torch.manual_seed(4)
        a = ELBO(beta=0.5, warmup_steps=10, free_bits=0.1)(model, batch, step)
        torch.manual_seed(4)
        b = objective.PeriodicKL(beta=0.5, warmup_steps=10, free_bits=0.1, kl_every=1)(model, batch, step)
        for key in a:
            assert torch.equal(a[key], b[key]), (key, step)


# -- style transfer -------------------------------------------------------------------------------------
def test_transfer_uses_the_reference_z(sv):
    model = _model(sv).eval()
    batch = _batch()
    mask = model.frame_mask(batch)
    y = torch.tensor([7, 7, 3, 3])
    mel, lengths = model.transfer(batch["mel"], mask, y, frames=6)
    z = model.posterior(batch["mel"], mask).mean
    same, same_len = model.generate(y, z, frames=6, use_mean=True)
    assert torch.equal(mel, same) and torch.equal(lengths, same_len)
    again, _ = model.transfer(batch["mel"], mask, y, frames=6)
    assert torch.equal(mel, again)  # the same reference reproduces it
    swapped, _ = model.transfer(batch["mel"].flip(0), mask.flip(0), y, frames=6)  # other references' styles
    assert not torch.allclose(mel, swapped)
    other_content, _ = model.transfer(batch["mel"], mask, torch.tensor([1, 2, 4, 5]), frames=6)
    assert not torch.allclose(mel, other_content)
    drawn_a, _ = model.transfer(batch["mel"], mask, y, frames=6, use_mean=False, seed=5)
    drawn_b, _ = model.transfer(batch["mel"], mask, y, frames=6, use_mean=False, seed=5)
    assert torch.equal(drawn_a, drawn_b)  # a seed fixes the draws
    wave = model.to_audio(mel[:2], lengths[:2], n_iter=4)  # Griffin-Lim
    assert wave.shape == (2, 1, 6 * HOP) and wave.abs().max() <= 1
    x = model.sample(2, length=50, seed=0)
    assert x.shape == (2, 1, 50) and torch.isfinite(x).all()


# -- the KL-every-K objective ---------------------------------------------------------------------------
def test_kl_every_k_zeroes_the_weight_on_off_steps_and_reports_the_true_elbo(sv):
    _, objective = sv
    model = _model(sv).eval()
    batch = _batch()
    obj = objective.PeriodicKL(kl_every=3, warmup_steps=12)
    for step in range(8):
        torch.manual_seed(0)
        t = obj(model, batch, step)
        on = step % 3 == 0
        weight = step / 12 if on else 0.0
        assert torch.allclose(t["kl_weight"], torch.full((4,), weight)), step
        assert torch.allclose(t["kl_weight_per_step"], torch.full((4,), step / 12 / 3)), step  # beta warmup / K
        assert torch.allclose(t["loss"], t["distortion"] + weight * t["rate"]), step
        assert torch.allclose(t["elbo"], -(t["distortion"] + t["rate"])) and (t["rate"] > 0).all()  # weight 1
        assert torch.equal(t["kl/layer_1"], t["rate"])
        tensor_step = torch.tensor(float(step))  # a compiled training step passes a 0-dim tensor
        assert math.isclose(float(obj.kl_weight(tensor_step)), weight, abs_tol=1e-7)
    assert obj.kl_weight(300) == 1.0 and obj.kl_weight(301) == 0.0
    assert objective.PeriodicKL(kl_every=1).kl_weight(5) == 1.0
    from vaekit.objectives import build_objective

    assert build_objective({"name": "periodic_kl", "kl_every": 4}).kl_every == 4
    with pytest.raises(ConfigError, match="kl_every"):
        build_objective({"name": "periodic_kl", "kl_every": 0})


# -- bad input ------------------------------------------------------------------------------------------
def test_unusable_data_and_inputs_get_clear_errors(sv):
    from vaekit.distributions import LikelihoodDataError
    from vaekit.models import build_model

    no_mel = DataSpec("audio", [1, None], "continuous", None, 8000, conditions=[Condition("y", "label", 10)])
    with pytest.raises(ConfigError, match=r"data\.options\.mel=true"):
        build_model("speech_vae", {**SMALL, "data": to_dict(no_mel)})
    no_y = DataSpec("audio", [1, None], "continuous", None, 8000, conditions=[Condition("mel", "sequence", MELS)],
                    features=SPEC.features)
    with pytest.raises(ConfigError, match="'y'"):
        build_model("speech_vae", {**SMALL, "data": to_dict(no_y)})
    no_hop = DataSpec("audio", [1, None], "continuous", None, 8000, conditions=SPEC.conditions)
    with pytest.raises(ConfigError, match="hop_length"):
        build_model("speech_vae", {**SMALL, "data": to_dict(no_hop)})
    with pytest.raises(ConfigError, match="no data description"):
        build_model("speech_vae", SMALL)
    with pytest.raises(LikelihoodDataError):
        build_model("speech_vae", {**SMALL, "likelihood": "bernoulli", "data": to_dict(SPEC)})
    with pytest.raises(ConfigError, match="frames_per_step"):
        build_model("speech_vae", {**SMALL, "frames_per_step": 0, "data": to_dict(SPEC)})
    model = _model(sv)
    batch = _batch()
    with pytest.raises(BatchError, match="'mel'"):
        model({k: v for k, v in batch.items() if k != "mel"})
    with pytest.raises(UsageError, match="y must be"):
        model.generate(torch.tensor([10]), torch.zeros(1, 3))
    with pytest.raises(UsageError, match="mel="):
        model.encode(batch["x"])


@needs_shared
def test_a_run_config_without_mel_frames_is_refused_naming_the_option(sv):
    from vaekit.config import parse_overrides
    from vaekit.run import resolve_config
    from vaekit.training.loop import prepare

    cfg = resolve_config(str(CONFIG), parse_overrides(["data.options.mel=false", "data.subset=8"]))
    with pytest.raises(ConfigError, match=r"data\.options\.mel=true"):
        prepare(cfg)


# -- a short real run -----------------------------------------------------------------------------------
# Measured on the 2-core CPU (2026-12-01, with other jobs sharing it; ~45 s): after these 75 updates on 240 FSDD
# utterances the first 48 val utterances score 104-107 nats per frame (the log-mel density of 80 bands plus the
# stop token), with 28-31 nats of KL in z. A Gaussian per mel band fitted to the same 240 training utterances
# with a constant stop probability (what a decoder that ignores the past, the digit and z can do at best)
# scores 163.1 on them. The threshold sits between, well clear of the measured values.
THRESHOLD_NATS_PER_FRAME = 125.0


@pytest.mark.slow
@needs_shared
def test_a_short_fsdd_run_beats_the_threshold(sv, tmp_path):
    from vaekit.config import parse_overrides
    from vaekit.evaluation.mode import evaluating
    from vaekit.run import resolve_config
    from vaekit.training import train

    cfg = resolve_config(str(CONFIG), parse_overrides([
        "data.subset=240", "train.max_epochs=5", "train.optim.lr=0.003", "train.optim.warmup_steps=10",
        "objective.warmup_steps=40", "train.val_every=100", "train.max_time=null"]))
    res = train(cfg, tmp_path / "run")
    model, data = res.model, res.data
    frames, nats, rate = 0.0, 0.0, 0.0
    with evaluating(model, seed=0):
        for batch in data.batches(data.part("val", 48), 16):
            out = model(batch)
            nats -= float(out.likelihood.log_prob(batch["x"]).sum())
            frames += float(model.frame_mask(batch).sum())
            rate += float(out.latents[0].kl_by_dim().sum())
    per_frame = nats / frames
    print(f"val nats per frame after {res.epochs} epochs: {per_frame:.2f}; KL of z {rate / 48:.2f} nats")
    assert per_frame < THRESHOLD_NATS_PER_FRAME, per_frame
    assert rate / 48 > 0.1  # the style latent is in use
    batch = next(iter(data.batches(data.part("test", 2), 2)))  # what the audio figures call: Griffin-Lim audio
    heard = model.teacher_forced(batch)
    assert heard.shape == batch["x"].shape and heard.abs().max() <= 1 and (heard[~batch["mask"][:, None]] == 0).all()
    drawn = model.sample(2, seconds=0.25, seed=0, y=batch["y"])
    assert drawn.shape == (2, 1, 2000) and torch.isfinite(drawn).all()
