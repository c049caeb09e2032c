"""Contract tests over every registered model: shapes, finite loss, gradients, save/load, samples."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.models import BatchError, build_model
from vaekit.nn import ImageSizeError
from vaekit.objectives import ELBO, IWAE
from vaekit.registry import MODELS
from vaekit.run import export_model, load

# One or more small configurations per registered model. A registered model without an entry here
# fails test_every_registered_model_has_a_contract_case.
CASES: dict[str, list[dict]] = {
    "vae": [
        {"hidden": [32], "latent_dim": 4, "data_shape": [1, 12, 12], "levels": 2},
        {"arch": "conv", "channels": [8, 16], "latent_dim": 3, "data_shape": [3, 16, 12], "levels": 256,
         "likelihood": {"name": "dlogistic", "num_mixtures": 2}, "prior": "learned"},
        {"arch": "conv", "channels": [8], "latent_dim": 2, "data_shape": [1, 8, 8], "levels": 17,
         "likelihood": "categorical"},
        {"hidden": [16, 8], "activation": "tanh", "latent_dim": 2, "data_shape": [1, 8, 8], "levels": None,
         "likelihood": {"name": "gaussian", "variance": "per_dim"}},
    ],
    "stacked_vae": [
        {"latent_dims": [6, 3], "hidden": [[16, 16], [8]], "data_shape": [1, 12, 12], "levels": 2},
        {"latent_dims": [5, 4, 2], "hidden": [[16], [8], [8]], "data_shape": [1, 8, 8], "levels": 17,
         "activation": "relu", "likelihood": {"name": "dlogistic", "num_mixtures": 1}, "batch_norm": True},
    ],
    "ladder_vae": [
        {"latent_dims": [6, 4, 2], "hidden": [[16], [8], [8]], "data_shape": [1, 12, 12], "levels": 2},
        {"latent_dims": [5, 3], "hidden": [[16], [8, 8]], "data_shape": [1, 16, 16], "levels": 256, "arch": "conv",
         "channels": [8, 16], "batch_norm": False, "likelihood": {"name": "dlogistic", "num_mixtures": 1}},
    ],
    "provlae": [
        {"latent_dims": [2, 2, 2], "hidden": 16, "arch": "mlp", "mlp_hidden": [32], "data_shape": [1, 12, 12],
         "levels": 2, "steps_per_stage": 0},
        {"latent_dims": [3, 2], "hidden": 16, "channels": [8, 16], "data_shape": [1, 16, 16], "levels": 2,
         "steps_per_stage": 0, "batch_norm": True},
    ],
    "cvae": [
        {"hidden": [32], "latent_dim": 4, "data_shape": [1, 12, 12], "levels": 2, "num_classes": 3},
        {"arch": "conv", "channels": [8, 16], "latent_dim": 3, "data_shape": [1, 16, 16], "levels": 256,
         "num_classes": 4, "prior": "conditional", "likelihood": "dlogistic"},
    ],
}
PARAMS = [(name, i) for name, cases in CASES.items() for i in range(len(cases))]


def test_every_registered_model_has_a_contract_case():
    from test_contract import SEQUENCE_CASES  # models of sequences: tests/test_contract.py (audio_vqvae)
    from test_vq import VQ_CASES  # discrete-latent models of images keep their own contract (tests/test_vq.py)

    discrete = {n for n in MODELS.names() if MODELS.get(n).obj.latent_kind == "discrete"}
    covered = set(VQ_CASES) | set(SEQUENCE_CASES)
    assert discrete <= covered, f"no VQ contract case for {discrete - covered}"
    latent = {n for n in set(MODELS.names()) - discrete if "latent_means" in MODELS.get(n).obj.capabilities}
    covered = set(CASES) | set(SEQUENCE_CASES)
    assert latent <= covered, f"no contract case for {latent - covered}"  # the rest: tests/test_contract.py


def _make(name, i):
    torch.manual_seed(0)
    model = build_model(name, CASES[name][i])
    cfg = model.config
    b = 5
    x = torch.rand(b, *cfg.data_shape)
    if cfg.levels is not None:
        x = (x * (cfg.levels - 1)).round() / (cfg.levels - 1)
    batch = {"x": x}
    if model.conditional:
        batch["y"] = torch.arange(b) % cfg.num_classes
    return model, batch


@pytest.mark.parametrize("name,i", PARAMS)
def test_forward_shapes_and_finite_loss(name, i):
    model, batch = _make(name, i)
    out = model(batch)
    b = batch["x"].shape[0]
    assert out.likelihood.batch_shape == (b,)
    assert tuple(out.likelihood.event_shape) == tuple(model.config.data_shape)
    for layer in out.latents:
        assert layer.z.shape[0] == b and layer.posterior.batch_shape == (b,)
    terms = ELBO()(model, batch, 0)
    for key in ("loss", "elbo", "rate", "distortion", "kl/layer_1"):
        assert terms[key].shape == (b,) and torch.isfinite(terms[key]).all(), key
    for i, layer in enumerate(out.latents, start=1):
        if layer.analytic_kl:  # a closed-form KL is never negative (Monte Carlo estimates may be)
            assert (terms[f"kl/layer_{i}"] >= -1e-5).all()
    assert model.log_importance_weights(batch, 3).shape == (3, b)


@pytest.mark.parametrize("name,i", PARAMS)
def test_gradients_reach_every_parameter(name, i):
    model, batch = _make(name, i)
    loss = ELBO()(model, batch, 0)["loss"].mean() + IWAE(k=2)(model, batch, 0)["loss"].mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name,i", PARAMS)
def test_save_load_round_trip_gives_identical_outputs(name, i, tmp_path):
    model, batch = _make(name, i)
    ELBO()(model, batch, 0)  # touch BN running stats
    model.eval()
    export_model(tmp_path, name, model)
    again = load(tmp_path)
    z = torch.randn(4, model.encode(batch["x"][:1], **{k: v[:1] for k, v in batch.items() if k == "y"}).mean.shape[-1])
    cond = {"y": torch.arange(4) % model.config.num_classes} if model.conditional else {}
    assert torch.equal(model.decode(z, **cond).mean, again.decode(z, **cond).mean)
    assert torch.equal(model.encode(batch["x"], **{k: v for k, v in batch.items() if k == "y"}).mean,
                       again.encode(batch["x"], **{k: v for k, v in batch.items() if k == "y"}).mean)


@pytest.mark.parametrize("name,i", PARAMS)
def test_samples_lie_in_the_data_space(name, i):
    model, _ = _make(name, i)
    model.eval()
    levels = model.config.levels
    for use_mean in (False, True):
        x = model.sample(6, temperature=0.7, use_mean=use_mean)
        assert x.shape == (6, *model.config.data_shape)
        assert x.min() >= 0 and x.max() <= 1
    if levels is not None and model.config.likelihood.name != "gaussian":
        drawn = model.sample(6) * (levels - 1)
        assert torch.allclose(drawn, drawn.round(), atol=1e-4)  # draws are data values


def test_bad_batches_get_clear_errors():
    model, batch = _make("vae", 0)
    with pytest.raises(BatchError, match=r"built for \[B, 1, 12, 12\]"):
        model({"x": torch.rand(2, 1, 28, 28)})
    with pytest.raises(BatchError, match="float"):
        model({"x": torch.zeros(2, 1, 12, 12, dtype=torch.uint8)})
    with pytest.raises(BatchError, match="dict"):
        model(torch.rand(2, 1, 12, 12))
    cmodel, _ = _make("cvae", 0)
    with pytest.raises(BatchError, match="labels"):
        cmodel({"x": torch.rand(2, 1, 12, 12)})


def test_image_too_small_for_the_conv_stack():
    with pytest.raises(ImageSizeError, match="too small"):
        build_model("vae", {"arch": "conv", "channels": [8, 16, 32, 64], "data_shape": [1, 8, 8]})


def test_conv_stack_handles_odd_sizes():
    for shape in ([1, 28, 28], [3, 7, 9], [1, 33, 20]):
        model = build_model("vae", {"arch": "conv", "channels": [4, 8], "data_shape": shape, "levels": 2})
        assert model.sample(2).shape == (2, *shape)


# -- evaluation of non-finite values ---------------------------------------------------------------


def _nan_for_example(model, example: int, where: str):
    """Make ``model`` give NaN for one example of a batch of 5: in its log importance weights (``"log_w"``, the
    IS-NLL's input) or in its decoder's output for that example (``"decoder"``, so in the ELBO)."""
    if where == "log_w":
        clean = model.log_importance_weights

        def log_w(batch, k):
            w = clean(batch, k).clone()
            w[:, example] = float("nan")
            return w

        model.log_importance_weights = log_w
    else:
        def poison(module, inputs, out):
            return out.index_fill(0, torch.tensor([example]), float("nan")) if out.shape[0] == 5 else out

        model.decoder.register_forward_hook(poison)
    return model


def test_importance_sampling_keeps_examples_apart():
    """The IS-NLL's log-sum-exp runs over each example's k samples, never across examples: one example whose
    log-weights are all 1e4 (a log-sum-exp stabilised by the batch's maximum would underflow every other
    example to -inf) gets -log p(x) = -log mean(e^1e4) = -1e4, and the other four are exactly what the clean model gives."""
    from vaekit.evaluation import per_example_nll

    model, batch = _make("vae", 0)
    clean = per_example_nll(model, [batch], num_samples=6, seed=1)
    assert torch.isfinite(clean).all()
    inner = model.log_importance_weights

    def log_w(b, k):
        w = inner(b, k).clone()
        w[:, 1] = 1e4
        return w

    model.log_importance_weights = log_w
    shifted = per_example_nll(model, [batch], num_samples=6, seed=1)
    keep = torch.tensor([0, 2, 3, 4])
    assert torch.equal(shifted[keep], clean[keep])
    assert math.isclose(shifted[1].item(), -1e4, abs_tol=1e-2)


def test_evaluation_refuses_data_with_nan():
    from vaekit.evaluation import evaluate_likelihood, per_example_nll

    model, batch = _make("vae", 0)
    x = batch["x"].clone()
    x[2, 0, 3, 3] = float("nan")
    for evaluate in (evaluate_likelihood, per_example_nll):
        with pytest.raises(ValueError, match="NaN or infinite"):
            evaluate(model, [{"x": x}], num_samples=2)
    x[2, 0, 3, 3] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate_likelihood(model, [{"x": x}], num_samples=0)


@pytest.mark.parametrize("where,num_samples", [("log_w", 4), ("decoder", 0)])
def test_evaluation_raises_when_the_model_gives_nan_for_an_example(where, num_samples):
    """A model whose ELBO or IS-NLL is NaN for one example is broken; the evaluation must say so (an error that
    names the non-finite values) rather than report NaN means as results."""
    from vaekit.evaluation import evaluate_likelihood, per_example_nll

    model, batch = _make("vae", 0)
    from vaekit.errors import NonFiniteError

    model = _nan_for_example(model, 1, where)
    with pytest.raises(NonFiniteError, match="non-finite .* for 1 of 5 examples"):
        evaluate_likelihood(model, [batch], num_samples=num_samples)
    if num_samples:
        with pytest.raises(NonFiniteError, match="non-finite .* for 1 of 5 examples"):
            per_example_nll(model, [batch], num_samples=num_samples)
