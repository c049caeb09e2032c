"""Vector quantisation, VQ-VAE and VQ-VAE-2: known answers for the quantiser, the model contract of VQ
models, the code prior, evaluation bounds and the phase-II commands."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from vaekit.config import ConfigError
from vaekit.distributions import CodePointMass, uniform_codes
from vaekit.evaluation.vq import evaluate_codes
from vaekit.models import build_model
from vaekit.models.code_prior import CodePrior, CodePriorConfig
from vaekit.objectives import VQObjective
from vaekit.quantize import VectorQuantizer, nearest_codes, perplexity
from vaekit.run import export_model, load, resolve_config
from vaekit.training.prior import CodePriorNLL

# Small configurations of every VQ model (tests/test_models.py checks that each registered discrete
# model has one here).
VQ_CASES: dict[str, list[dict]] = {
    "vqvae": [
        {"num_codes": 16, "code_dim": 4, "hidden": 8, "res_hidden": 4, "data_shape": [1, 12, 12], "levels": 2},
        {"num_codes": 8, "code_dim": 3, "hidden": 8, "res_hidden": 4, "res_blocks": 1, "num_down": 1,
         "data_shape": [3, 9, 7], "levels": 256, "ema": False, "restart_threshold": 0.0,
         "likelihood": {"name": "dlogistic", "num_mixtures": 2}},
    ],
    "vqvae2": [
        {"num_codes": 16, "code_dim": 4, "hidden": 8, "res_hidden": 4, "data_shape": [1, 28, 28], "levels": 2},
        {"num_codes": 8, "code_dim": 3, "hidden": 8, "res_hidden": 8, "num_down": 1, "data_shape": [1, 13, 10],
         "levels": 256, "likelihood": "categorical", "ema": False},
    ],
}
PARAMS = [(name, i) for name, cases in VQ_CASES.items() for i in range(len(cases))]


def _make(name, i, b=5):
    torch.manual_seed(0)
    model = build_model(name, VQ_CASES[name][i])
    cfg = model.config
    x = ((torch.rand(b, *cfg.data_shape) * (cfg.levels - 1)).round() / (cfg.levels - 1))
    return model, {"x": x}


# -- the quantiser ---------------------------------------------------------------------------------
def test_nearest_codes_equal_brute_force_in_any_chunking():
    torch.manual_seed(0)
    z, e = torch.randn(1000, 8), torch.randn(37, 8)
    brute = torch.cdist(z, e).argmin(1)
    for chunk in (7, 100, 5000):
        assert torch.equal(nearest_codes(z, e, chunk_size=chunk), brute)


def test_indices_reproduce_the_quantized_output_exactly():
    torch.manual_seed(0)
    vq = VectorQuantizer(32, 6)
    z_e = torch.randn(4, 6, 5, 3)
    out = vq(z_e)
    assert out.indices.shape == (4, 5, 3) and out.indices.dtype == torch.long
    assert torch.equal(vq.lookup(out.indices), out.quantized.detach()) or torch.allclose(
        vq.lookup(out.indices), out.quantized.detach(), atol=1e-6, rtol=0)
    assert torch.equal(vq.codes(z_e), out.indices)
    # each output vector is its nearest code: no other code is closer
    d = torch.cdist(z_e.movedim(1, -1).reshape(-1, 6), vq.codebook)
    assert torch.equal(d.argmin(1), out.indices.flatten())
    assert out.counts.sum() == 4 * 5 * 3


def test_straight_through_gradient_is_the_gradient_at_the_quantized_point():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4)
    w = torch.randn(4, 3, 3)

    def f(q):  # a nonlinear function of the quantised map
        return (torch.sin(q) * w).sum() + q.pow(3).sum()

    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    f(vq(z_e).quantized).backward()
    z_q = vq.lookup(vq.codes(z_e)).detach().requires_grad_(True)
    f(z_q).backward()
    assert torch.allclose(z_e.grad, z_q.grad, atol=1e-6)


def test_loss_terms_values_and_where_their_gradients_go():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3)
    z_e = torch.randn(2, 3, 4, requires_grad=True)
    out = vq(z_e)
    z_q = vq.lookup(out.indices)
    expected = (z_e - z_q).pow(2).sum((1, 2)).detach()
    assert torch.allclose(out.codebook_loss.detach(), expected) and torch.allclose(out.commitment_loss.detach(), expected)
    out.codebook_loss.sum().backward(retain_graph=True)
    assert z_e.grad is None and vq.codebook.grad.abs().sum() > 0  # the codebook term moves only codes
    vq.codebook.grad = None
    out.commitment_loss.sum().backward()
    assert vq.codebook.grad is None and z_e.grad.abs().sum() > 0  # the commitment term moves only z_e


def test_ema_update_moves_codes_to_the_mean_of_their_vectors():
    """Seed 004's k-means view: with decay 0 one EMA step is one k-means step."""
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, ema=True, decay=0.0, eps=1e-9).train()
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
    vq.codebook.copy_(centres * 0.9)
    z = (centres.repeat_interleave(50, 0) + 0.5 * torch.randn(200, 2)).T.unsqueeze(0).requires_grad_()  # [1, 2, 200]
    idx = vq.codes(z)[0]
    vq(z)
    for k in range(4):
        mean = z[0, :, idx == k].mean(1).detach()
        assert torch.allclose(vq.codebook[k], mean, atol=1e-5)


def test_ema_with_decay_follows_the_moving_average_formula():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 1, ema=True, decay=0.5, eps=0.0).train()
    vq.codebook.copy_(torch.tensor([[0.0], [10.0]]))
    vq.ema_sum.copy_(vq.codebook * 1.0)  # N_i = 1 initially
    z = torch.tensor([[[1.0, 2.0, 9.0]]]).requires_grad_()  # codes 0, 0, 1
    vq(z)
    # N = 0.5*1 + 0.5*[2, 1] = [1.5, 1]; m = 0.5*[0, 10] + 0.5*[3, 9] = [1.5, 9.5]; e = m / N
    assert torch.allclose(vq.ema_count, torch.tensor([1.5, 1.0]))
    assert torch.allclose(vq.codebook.squeeze(1), torch.tensor([1.0, 9.5]))


def test_soft_em_responsibilities_are_the_unit_variance_gaussian_posterior():
    """Roy et al. (2018) eq. 7: tau_ij = softmax_j(-||z_i - e_j||^2), against torch.cdist."""
    torch.manual_seed(0)
    vq = VectorQuantizer(5, 3, ema=True, soft_em_samples=4)
    vq.codebook.copy_(torch.randn(5, 3))
    z = torch.randn(7, 3)
    expected = torch.softmax(-torch.cdist(z, vq.codebook).pow(2), dim=1)
    assert torch.allclose(vq.responsibilities(z), expected, atol=1e-6)


def test_soft_em_step_moves_codes_to_the_responsibility_weighted_mean():
    """With decay 0 one soft EM step is one EM step of the Gaussian mixture: e_j = sum_i tau_ij z_i / sum_i
    tau_ij (eq. 8-9), up to the Monte Carlo error of m draws; the hard EMA step lands elsewhere (the mean of
    the nearest vectors), so this tells the two apart."""
    torch.manual_seed(0)
    centres = torch.tensor([[0.0], [1.0]])
    z = torch.tensor([[[-0.5, 0.2, 0.4, 0.6, 0.9, 1.6]]])  # [1, 1, 6]: overlapping clusters
    flat = z[0].T
    tau = torch.softmax(-torch.cdist(flat, centres).pow(2), dim=1)  # [6, 2]
    soft = (tau * flat).sum(0) / tau.sum(0)
    hard = torch.stack([flat[flat[:, 0] < 0.5].mean(), flat[flat[:, 0] >= 0.5].mean()])
    vq = VectorQuantizer(2, 1, ema=True, decay=0.0, eps=1e-9, soft_em_samples=20000).train()
    vq.codebook.copy_(centres)
    out = vq(z.clone().requires_grad_())
    assert torch.allclose(vq.codebook.squeeze(1), soft, atol=0.01)
    assert (soft - hard).abs().min() > 0.05
    # the decoder read the mean of the drawn codes: the old codes weighted by tau, not the nearest code
    assert torch.allclose(out.quantized[0, 0].detach(), tau @ centres.squeeze(1), atol=0.01)
    # outside training the lookup is the nearest code, as in hard VQ
    vq.eval()
    with torch.no_grad():
        out = vq(z)
    assert torch.equal(out.quantized, vq.codebook[out.indices].movedim(-1, 1))


def test_dead_codes_restart_on_data_and_nothing_changes_outside_training_steps():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 2, restart_threshold=1.0)
    vq.codebook.data.fill_(100.0)  # every code far from the data: one code takes all vectors
    vq.codebook.data[0] = 0.0
    z = torch.randn(1, 2, 500)
    before = vq.codebook.detach().clone()
    vq.eval()
    vq(z)
    with torch.no_grad():
        vq.train()(z)
    assert torch.equal(vq.codebook, before) and vq.restarts == 0
    vq.train()(z.requires_grad_())
    assert vq.restarts == 15  # all but the used code, onto encoder outputs of the batch
    assert (vq.codebook[1:].abs() < 10).all()
    assert len(vq.codes(z).unique()) > 8


def test_quantized_output_uses_the_codes_chosen_before_this_steps_update():
    """A restart or EMA step moves codes after the lookup; the step's output must be the codes it chose."""
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 2, ema=True, restart_threshold=3.0).train()
    z = torch.randn(1, 2, 300, requires_grad=True)
    before = vq.codebook.clone()
    out = vq(z)
    assert vq.restarts > 0 and not torch.equal(vq.codebook, before)
    assert torch.allclose(out.quantized.detach(), before[out.indices].movedim(-1, 1), atol=1e-6)
    assert torch.equal(out.indices[0], torch.cdist(z[0].T.detach(), before).argmin(1))


def test_quantizer_under_bf16_autocast_searches_and_updates_in_fp32():
    torch.manual_seed(0)
    vq = VectorQuantizer(64, 8, ema=True, restart_threshold=1.0).train()
    z = torch.randn(4, 8, 7, 7)
    expected = nearest_codes(z.movedim(1, -1).reshape(-1, 8).bfloat16().float(), vq.codebook)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vq(z.bfloat16().requires_grad_())
    assert torch.equal(out.indices.flatten(), expected)
    assert vq.codebook.dtype == torch.float32 and vq.ema_count.dtype == torch.float32
    assert torch.isfinite(out.codebook_loss).all() and out.counts.sum() == 4 * 49


def test_perplexity_known_values():
    assert math.isclose(float(perplexity(torch.tensor([5, 5, 5, 5]))), 4.0, rel_tol=1e-6)
    assert math.isclose(float(perplexity(torch.tensor([7, 0, 0]))), 1.0, rel_tol=1e-6)


def test_quantizer_errors():
    vq = VectorQuantizer(4, 3)
    with pytest.raises(ValueError, match=r"channel-first input \[B, 3"):
        vq(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="int64"):
        vq.lookup(torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        vq.lookup(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="decay"):
        VectorQuantizer(4, 3, decay=1.0)


def test_point_mass_kl_is_log_k_under_the_uniform_prior_and_minus_log_p_otherwise():
    c = torch.tensor([[0, 3], [2, 1]])
    q = CodePointMass(c, 4)
    assert torch.allclose(kl_divergence(q, uniform_codes(4, (2, 2))), torch.full((2, 2), math.log(4)))
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert torch.allclose(kl_divergence(q, Categorical(probs=probs).expand((2, 2))), -probs.log()[c])


# -- the VQ model contract -------------------------------------------------------------------------
@pytest.mark.parametrize("name,i", PARAMS)
def test_vq_terms_rate_is_positions_times_log_k(name, i):
    model, batch = _make(name, i)
    terms = VQObjective()(model, batch, 0)
    b = batch["x"].shape[0]
    positions = sum(h * w for h, w in model.code_shapes)
    for key in ("loss", "elbo", "rate", "distortion", "codebook_loss", "commitment_loss"):
        assert terms[key].shape == (b,) and torch.isfinite(terms[key]).all(), key
    assert torch.allclose(terms["rate"], torch.full((b,), positions * math.log(model.config.num_codes)))
    assert torch.allclose(terms["elbo"], -(terms["distortion"] + terms["rate"]))


@pytest.mark.parametrize("name,i", PARAMS)
def test_vq_gradients_reach_every_parameter(name, i):
    model, batch = _make(name, i)
    VQObjective()(model, batch, 0)["loss"].mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name,i", PARAMS)
def test_codes_decode_to_the_reconstruction_and_survive_save_load(name, i, tmp_path):
    model, batch = _make(name, i)
    model.eval()
    codes = model.codes(batch["x"])
    assert [tuple(c.shape[1:]) for c in codes] == [tuple(s) for s in model.code_shapes]
    out = model(batch)
    assert torch.allclose(model.decode_codes_dist(codes).mean, out.likelihood.mean, atol=1e-6)
    imgs = model.decode_codes(codes)
    assert imgs.shape == batch["x"].shape and imgs.min() >= 0 and imgs.max() <= 1
    export_model(tmp_path, name, model)
    again = load(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(again.codes(batch["x"]), codes))
    assert torch.equal(again.decode_codes(codes), imgs)


def test_sampling_needs_a_fitted_prior_and_then_uses_it(tmp_path):
    model, batch = _make("vqvae2", 0)
    with pytest.raises(ValueError, match="fit-prior"):
        model.sample(2)
    prior = CodePrior(CodePriorConfig(channels=8, num_layers=2, out_hidden=8, cond_channels=4),
                      [16, 16], model.code_shapes, num_classes=3)
    model.set_code_prior(prior)
    assert "_code_prior" not in dict(model.named_modules()) and not any("prior" in k for k in model.state_dict())
    x = model.sample(4, y=torch.tensor([0, 1, 2, 0]))
    assert x.shape == (4, 1, 28, 28) and x.min() >= 0 and x.max() <= 1


def test_unconditional_prior_refuses_labels():
    model, _ = _make("vqvae", 0)
    model.set_code_prior(CodePrior(CodePriorConfig(channels=8, num_layers=2, out_hidden=8), [16],
                                   model.code_shapes))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, y=torch.tensor([0, 1]))
    assert model.sample(2).shape == (2, 1, 12, 12)


def test_decode_codes_refuses_wrong_maps():
    model, batch = _make("vqvae", 0)
    with pytest.raises(ValueError, match="code levels"):
        model.decode_codes_dist([torch.zeros(1, 3, 3, dtype=torch.long)] * 2)
    with pytest.raises(ValueError, match="does not fit"):
        model.decode_codes_dist([torch.zeros(1, 4, 4, dtype=torch.long)])


def test_vq_models_train_only_with_the_vq_objective():
    assert resolve_config("vqvae").objective.name == "vq"
    with pytest.raises(ConfigError, match="trains with objective 'vq'"):
        resolve_config("vqvae", {"objective": {"name": "elbo"}})
    with pytest.raises(ConfigError, match="vector-quantised"):
        VQObjective()(build_model("vae", {"hidden": [8], "latent_dim": 2, "data_shape": [1, 4, 4]}),
                      {"x": torch.rand(2, 1, 4, 4).round()}, 0)


def test_bad_vq_configs_get_clear_errors():
    with pytest.raises(ConfigError, match="num_codes"):
        build_model("vqvae", {"num_codes": 0})
    with pytest.raises(ConfigError, match="decay"):
        build_model("vqvae", {"decay": 1.5})
    with pytest.raises(ConfigError, match="top_down"):
        build_model("vqvae2", {"top_down": 0})
    with pytest.raises(ConfigError, match="needs model.ema=true"):
        build_model("vqvae", {"ema": False, "soft_em_samples": 4})
    with pytest.raises(ConfigError, match="soft_em_samples must be >= 0"):
        build_model("vqvae", {"soft_em_samples": -1})


# -- the code prior and the evaluation bound -------------------------------------------------------
def test_code_prior_levels_sum_and_bottom_level_depends_on_the_top():
    torch.manual_seed(0)
    prior = CodePrior(CodePriorConfig(channels=8, num_layers=2, out_hidden=8, cond_channels=4),
                      [5, 3], [(4, 4), (2, 2)])
    bottom, top = torch.randint(0, 5, (2, 4, 4)), torch.randint(0, 3, (2, 2, 2))
    levels = prior.log_prob_levels([bottom, top])
    assert torch.allclose(prior.log_prob([bottom, top]), levels[0] + levels[1])
    other_top = (top + 1) % 3
    assert not torch.allclose(prior.log_prob_levels([bottom, other_top])[0], levels[0])
    terms = CodePriorNLL()(prior, {"codes_0": bottom, "codes_1": top}, 0)
    assert torch.allclose(terms["bits_per_code"], -(levels[0] + levels[1]) / (math.log(2) * 20))
    samples = prior.sample(3)
    assert [tuple(s.shape) for s in samples] == [(3, 4, 4), (3, 2, 2)]


@torch.no_grad()
def test_evaluation_bound_is_distortion_plus_rate():
    model, batch = _make("vqvae", 0, b=6)
    model.eval()
    res = evaluate_codes(model, [batch, batch], levels=2)
    dim = 144
    positions = 9  # 12 -> 6 -> 3
    distortion = float(-model.decode_codes_dist(model.codes(batch["x"])).log_prob(batch["x"]).mean())
    assert math.isclose(res["distortion_nats"], distortion, rel_tol=1e-5)
    assert res["rate_uniform_bits"] == positions * 4
    assert math.isclose(res["bound_uniform_bpd"], (distortion / math.log(2) + 36) / dim, rel_tol=1e-5)
    assert res["compression_uniform"] == dim / 36
    assert res["num_examples"] == 12 and sum(res["codebook"][0]["counts"]) == 12 * positions
    prior = CodePrior(CodePriorConfig(channels=8, num_layers=2, out_hidden=8), [16], model.code_shapes)
    model.set_code_prior(prior)
    res = evaluate_codes(model, [batch])
    rate = float(-prior.log_prob(model.codes(batch["x"])).mean()) / math.log(2)
    assert math.isclose(res["rate_prior_bits"], rate, rel_tol=1e-5)
    assert math.isclose(res["bound_prior_bpd"], (distortion / math.log(2) + rate) / dim, rel_tol=1e-5)


# -- phase II from the command line ----------------------------------------------------------------
def test_fit_prior_sample_evaluate_and_cas_from_the_cli(tmp_path):
    import json

    from typer.testing import CliRunner

    from vaekit.cli import app

    runner = CliRunner()

    def ok(args):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return result.stdout

    out = tmp_path / "vq"
    ok(["train", "vqvae2", "--data", "digits", "--set", "model.likelihood=dlogistic", "--set", "model.num_down=1",
        "--set", "model.hidden=16", "--set", "model.num_codes=32", "--set", "train.max_epochs=2",
        "--set", "train.progress=false", "--no-figures", "--out", str(out)])
    result = runner.invoke(app, ["sample", str(out)])
    assert result.exit_code == 2 and "fit-prior" in result.output
    text = ok(["fit-prior", str(out), "--epochs", "1", "--set", "prior.num_layers=2", "--set", "prior.channels=8",
               "--set", "progress=false"])
    text = " ".join(text.split())  # the console wraps long lines
    assert "bits per code" in text and "bound_prior_bpd" in text
    for name in ("model.safetensors", "model.json", "metrics.csv", "checkpoints/last.ckpt"):
        assert (out / "prior" / name).is_file(), name
    assert {"samples.png", "class_samples.png", "codebook_usage.png"} <= {p.name for p in (out / "figures").glob("*.png")}
    assert "figure:" in ok(["sample", str(out), "-n", "8", "--label", "3"])
    res = json.loads(ok(["evaluate", str(out), "--json"]))
    assert res["bound_prior_bpd"] < res["bound_uniform_bpd"]  # the fitted prior codes more cheaply than uniform
    assert res["rate_uniform_bits"] == (16 + 4) * 5  # 4x4 bottom + 2x2 top codes, log2 32 = 5 bits each
    cas = json.loads(ok(["evaluate", str(out), "--metrics", "cas", "--cas-per-class", "20", "--cas-epochs", "1",
                         "--json"]))
    assert 0 <= cas["cas_accuracy"] <= 1 and 0 <= cas["real_accuracy"] <= 1 and cas["num_train_images"] == 200
    again = runner.invoke(app, ["fit-prior", str(out)])
    assert again.exit_code == 2 and "already holds a fitted prior" in again.output
    # --resume keeps the saved architecture (prior.num_layers=2) and refuses to change it
    ok(["fit-prior", str(out), "--resume", "--epochs", "2", "--no-figures"])
    changed = runner.invoke(app, ["fit-prior", str(out), "--resume", "--epochs", "3", "--set", "prior.num_layers=3"])
    assert changed.exit_code == 2 and "architecture cannot change" in changed.output
    # a prior that no longer fits its model, or whose files are damaged, is refused with what to do
    meta_path = out / "prior" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "vq_model_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="fitted to other weights"):
        load(out)
    meta_path.write_text(json.dumps({**meta, "shapes": [[2, 2], [1, 1]]}))
    with pytest.raises(ValueError, match="does not match|models codes"):
        load(out)
    meta_path.write_text("{}")
    with pytest.raises(ValueError, match="corrupt prior"):
        load(out)
    broken = runner.invoke(app, ["sample", str(out)])
    assert broken.exit_code == 2 and "fit-prior" in broken.output
