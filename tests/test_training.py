"""The training system: NaN guard, atomic checkpoints, resume, export, and bad checkpoints."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from vaekit.models import build_model
from vaekit.objectives import ELBO
from vaekit.run import OptimConfig, load, resolve_config
from vaekit.training import CheckpointError, VAESystem, train


def _cfg(**over):
    base = {"data": {"name": "digits", "batch_size": 64},
            "model": {"name": "vae", "hidden": [32], "latent_dim": 3, "likelihood": {"name": "dlogistic", "num_mixtures": 1}},
            "train": {"max_epochs": 2, "progress": False}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v)
    return resolve_config("vae", base)


class _Trainer:
    global_step = 0


def test_nan_batch_is_skipped_and_counted():
    model = build_model("vae", {"hidden": [8], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": 2})
    system = VAESystem(model, ELBO(), OptimConfig(schedule="constant"))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    system.optimizers = lambda: opt
    system.lr_schedulers = lambda: None
    system.log = lambda *a, **k: None
    system.manual_backward = lambda loss: loss.backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.bernoulli(torch.rand(4, 1, 4, 4))
    x[0, 0, 0, 0] = float("nan")
    system.training_step({"x": x}, 0)
    assert int(system.skipped_steps) == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    system.training_step({"x": torch.bernoulli(torch.rand(4, 1, 4, 4))}, 1)
    assert int(system.skipped_steps) == 1
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_exploding_gradient_is_skipped():
    model = build_model("vae", {"hidden": [8], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": 2})
    system = VAESystem(model, ELBO(), OptimConfig(schedule="constant", skip_threshold=1e-9))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    system.optimizers, system.lr_schedulers = (lambda: opt), (lambda: None)
    system.log = lambda *a, **k: None
    system.manual_backward = lambda loss: loss.backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    system.training_step({"x": torch.bernoulli(torch.rand(4, 1, 4, 4))}, 0)
    assert int(system.skipped_steps) == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def _ckpt(run):
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_train_resume_continues_exactly_where_it_stopped(tmp_path):
    """A run stopped after 2 epochs and resumed to 4 has the step count, optimiser state and weights of
    an uninterrupted 4-epoch run (same seed, CPU): a resume that restarted, or replayed epoch 1's
    shuffle or noise, would differ. The constant schedule keeps the learning rate independent of
    max_epochs (which the two attempts set differently)."""
    cfg = lambda epochs: _cfg(train={"max_epochs": epochs, "optim": {"schedule": "constant"}})  # noqa: E731
    whole = train(cfg(4), tmp_path / "whole")
    run = tmp_path / "run"
    res = train(cfg(2), run)
    assert res.epochs == 2 and (run / "checkpoints" / "last.ckpt").is_file()
    assert not list((run / "checkpoints").glob(".*tmp"))  # atomic: no temp file left
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg(2), run)
    res2 = train(cfg(4), run, resume=True)
    assert res2.epochs == 4
    a, b = _ckpt(tmp_path / "whole"), _ckpt(run)
    assert a["global_step"] == b["global_step"] == 4 * 20  # 1257 train digits / 64 per batch = 20 steps
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(), b["optimizer_states"][0]["state"].values()):
        assert int(sa["step"]) == int(sb["step"]) == 4 * 20
        torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    wa, wb = _weights(tmp_path / "whole"), _weights(run)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert {int(float(r["epoch"])) for r in rows if r.get("epoch")} == {0, 1, 2, 3}  # both attempts kept
    assert [r["step"] for r in rows] == [r["step"] for r in csv.DictReader(open(tmp_path / "whole" / "metrics.csv"))]
    assert load(run).sample(3).shape == (3, 1, 8, 8) and whole.epochs == 4


def _logged(path):
    return [(r["step"], r.get("train/loss", ""), r.get("val/elbo", "")) for r in csv.DictReader(open(path))]


def test_metrics_after_a_kill_hold_each_step_once_from_the_kept_attempt(tmp_path):
    """A kill after epoch 3's rows were logged but before its checkpoint landed: the resumed attempt redoes
    epoch 3, and metrics.csv keeps its rows, not the lost attempt's (each step once)."""
    import shutil

    cfg = lambda epochs: _cfg(train={"max_epochs": epochs, "optim": {"schedule": "constant"}},  # noqa: E731
                              data={"batch_size": 16})  # 79 steps an epoch; rows every 20th batch
    run = tmp_path / "run"
    train(cfg(2), run)
    saved = tmp_path / "epoch2.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", saved)
    train(cfg(3), run, resume=True)  # logs epoch 3 (attempt version_1) ...
    shutil.copy(saved, run / "checkpoints" / "last.ckpt")  # ... whose checkpoint is then lost
    train(cfg(4), run, resume=True)  # version_2 redoes epoch 3 from the epoch-2 checkpoint
    merged = _logged(run / "metrics.csv")
    steps = [s for s, loss, _ in merged if loss]  # training rows
    assert len(steps) == len(set(steps)) == 4 * 79 // 20  # at batches 19, 39, ..., 299 of 316
    lost = set(_logged(run / "logs" / "version_1" / "metrics.csv"))
    kept = set(_logged(run / "logs" / "version_2" / "metrics.csv"))
    assert lost and not (lost - kept) & set(merged)  # none of the lost attempt's own rows survive
    assert kept <= set(merged)


def test_a_fresh_run_replaces_an_attempt_killed_before_its_first_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(_cfg(train={"max_epochs": 1}), run)
    for name in ("checkpoints", "model.safetensors", "model.json", "metrics.csv"):  # as if killed in epoch 1
        p = run / name
        shutil_rm = __import__("shutil").rmtree if p.is_dir() else p.unlink
        shutil_rm(p)
    train(_cfg(train={"max_epochs": 2}), run)
    assert _logged(run / "metrics.csv") == _logged(run / "logs" / "version_1" / "metrics.csv")


def test_ema_weights_are_exported_not_the_raw_ones(tmp_path):
    """The export holds the EMA copy (``ema.module.*`` in the checkpoint), which differs from the raw
    weights (``model.*``); with EMA off it holds the raw weights."""
    run = tmp_path / "ema"
    train(_cfg(train={"max_epochs": 1, "optim": {"ema": 0.9}}), run)
    exported, state = _weights(run), _ckpt(run)["state_dict"]
    assert exported.keys() == {k[len("model."):] for k in state if k.startswith("model.")}
    for k, v in exported.items():
        assert torch.equal(v, state[f"ema.module.{k}"]), k
    assert any(not torch.equal(v, state[f"model.{k}"]) for k, v in exported.items() if v.is_floating_point())
    train(_cfg(train={"max_epochs": 1}), tmp_path / "raw")
    exported, state = _weights(tmp_path / "raw"), _ckpt(tmp_path / "raw")["state_dict"]
    assert all(torch.equal(v, state[f"model.{k}"]) for k, v in exported.items())


class _NaNAt:
    """The ELBO, with the loss made NaN at the given training batches (counted from 0)."""

    def __init__(self, batches):
        self.inner, self.batches, self.seen = ELBO(), set(batches), 0

    def __call__(self, model, batch, step):
        terms = self.inner(model, batch, step)
        if model.training:
            if self.seen in self.batches:
                terms = {**terms, "loss": terms["loss"] * float("nan")}
            self.seen += 1
        return terms


def test_nan_batches_mid_run_are_skipped_and_logged_through_lightning(tmp_path, monkeypatch):
    """A real Lightning fit with NaN losses injected partway (the first after steps were logged): no
    error from Lightning's logger (the key's arguments never change), metrics.csv's skipped count is the
    true count at each logged batch, a skipped logged batch shows its NaN loss rather than an old value."""
    import vaekit.training.loop as loop

    nan_at = [25, 39, 40, 41, 60]  # 79 batches of 16; rows at batches 19 (no skip yet), 39 (itself NaN), 59
    monkeypatch.setattr(loop, "build_objective", lambda cfg: _NaNAt(nan_at))
    res = train(_cfg(train={"max_epochs": 1, "optim": {"schedule": "constant"}}, data={"batch_size": 16}),
                tmp_path / "run")
    assert res.skipped_steps == len(nan_at)
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv")) if r["train/loss"]]
    assert [int(r["step"]) for r in rows] == [19, 39, 59]
    assert [float(r["train/skipped_steps"]) for r in rows] == [sum(b <= s for b in nan_at) for s in (19, 39, 59)]
    assert rows[1]["train/loss"] == "nan" and "nan" not in (rows[0]["train/loss"], rows[2]["train/loss"])
    assert _ckpt(tmp_path / "run")["global_step"] == 79 - len(nan_at)


def test_a_run_whose_updates_are_mostly_skipped_fails_and_is_marked(tmp_path, monkeypatch):
    import json

    import vaekit.training.loop as loop
    from vaekit.errors import TrainingFailedError

    monkeypatch.setattr(loop, "build_objective", lambda cfg: _NaNAt(range(1, 19)))
    with pytest.raises(TrainingFailedError, match="18 of 20 updates were skipped"):
        train(_cfg(train={"max_epochs": 1}), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["status"] == "failed" and meta["skipped_steps"] == 18 and "18 of 20" in meta["problems"][0]
    monkeypatch.setattr(loop, "build_objective", lambda cfg: _NaNAt(range(1, 9)))  # 8 of 20: below one half
    assert train(_cfg(train={"max_epochs": 1}), tmp_path / "ok").skipped_steps == 8
    assert json.loads((tmp_path / "ok" / "model.json").read_text())["status"] == "ok"


def test_truncated_checkpoint_gives_a_clear_error_and_is_kept(tmp_path):
    run = tmp_path / "run"
    train(_cfg(train={"max_epochs": 1}), run)
    ckpt = run / "checkpoints" / "last.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(_cfg(train={"max_epochs": 2}), run, resume=True)
    assert ckpt.stat().st_size == len(data) // 2  # nothing overwritten


def test_corrupt_export_gives_a_clear_error(tmp_path):
    run = tmp_path / "run"
    train(_cfg(train={"max_epochs": 1}), run)
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load(run)
    with pytest.raises(FileNotFoundError, match="not an exported vaekit run"):
        load(tmp_path / "nothing")


def test_trainer_drops_lightnings_advertisement_and_keeps_its_other_messages(tmp_path):
    import logging
    import warnings

    from vaekit.training.loop import build_trainer, quiet_lightning

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    handler, level = Keep(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        build_trainer(tmp_path, max_epochs=1, max_time=None, progress=False, logger=False)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert seen and not any("litlogger" in m for m in seen)
    assert any("GPU available" in m for m in seen)  # the filter is not a blanket mute
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_lightning():
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning)
            warnings.warn("a real problem", UserWarning)
    assert [str(w.message) for w in caught] == ["a real problem"]


def _lr_curve(optim: OptimConfig, total_steps: int, steps_per_epoch: int, steps: list[int]) -> list[float]:
    model = build_model("vae", {"hidden": [8], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": 2})
    out = VAESystem(model, ELBO(), optim, total_steps=total_steps, steps_per_epoch=steps_per_epoch).configure_optimizers()
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    lrs, done = [], 0
    for s in steps:
        for _ in range(s - done):
            opt.step()
            sched.step()
        done = s
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_burda_schedule_is_the_iwae_papers_stepped_decay():
    """Burda et al. 2015 sec. 5: lr 1e-3 * 10^(-i/7) over 3^i epochs; stages start at epochs 0, 1, 4, 13, 40, ..., 1093."""
    from vaekit.training.schedules import burda_stage

    starts = [0, 1, 4, 13, 40, 121, 364, 1093]
    assert starts == [sum(3 ** j for j in range(i)) for i in range(8)]
    for i, s in enumerate(starts):
        assert burda_stage(s) == i and (s == 0 or burda_stage(s - 1) == i - 1)
    assert burda_stage(3279) == 7 and burda_stage(10_000) == 7  # stays at the last stage after 3280 epochs
    per_epoch = 3
    lrs = _lr_curve(OptimConfig(lr=1e-3, eps=1e-4, schedule="burda"), 10**6, per_epoch,
                    [0, per_epoch - 1, per_epoch, 4 * per_epoch - 1, 4 * per_epoch, 13 * per_epoch])
    want = [1e-3, 1e-3, 1e-3 * 10 ** (-1 / 7), 1e-3 * 10 ** (-1 / 7), 1e-3 * 10 ** (-2 / 7), 1e-3 * 10 ** (-3 / 7)]
    assert lrs == pytest.approx(want, rel=1e-9)


def test_cosine_schedule_ends_at_min_lr_and_eps_reaches_adam():
    optim = OptimConfig(lr=1e-3, eps=1e-4, schedule="warmup_cosine", warmup_steps=10, min_lr_ratio=0.1)
    lrs = _lr_curve(optim, 110, 11, [0, 9, 10, 60, 110, 200])
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-3, 0.55e-3, 1e-4, 1e-4], rel=1e-9)
    model = build_model("vae", {"hidden": [8], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": 2})
    opt = VAESystem(model, ELBO(), optim).configure_optimizers()["optimizer"]
    assert opt.param_groups[0]["eps"] == 1e-4
    assert VAESystem(model, ELBO(), OptimConfig(schedule="constant")).configure_optimizers().param_groups[0]["eps"] == 1e-8


def test_every_schedule_the_config_allows_is_registered_and_bad_eps_is_refused():
    import typing

    from vaekit.run import ConfigError
    from vaekit.training.schedules import SCHEDULES

    allowed = typing.get_args(typing.get_type_hints(OptimConfig)["schedule"])
    assert sorted(allowed) == SCHEDULES.names()
    for eps in (0.0, -1e-8, 1.0):
        with pytest.raises(ConfigError, match="eps"):
            OptimConfig(eps=eps).validate()


def test_glorot_init_has_the_papers_bounds_and_zero_biases():
    from vaekit.nn.init import glorot_

    torch.manual_seed(0)
    model = build_model("stacked_vae", {"latent_dims": [100, 50], "hidden": [[200, 200], [100, 100]],
                                        "activation": "tanh", "data_shape": [1, 28, 28], "levels": 2})
    n = glorot_(model)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert n == len(linears) == 12  # q: 3 + 3 (x->200->200->z1 head, z1->100->100->z2 head); p: the same
    for m in linears:
        bound = (6 / (m.in_features + m.out_features)) ** 0.5
        w = m.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound  # uniform on [-bound, bound]
        assert abs(w.var().item() - bound ** 2 / 3) < 0.15 * bound ** 2 / 3
        assert torch.count_nonzero(m.bias) == 0


def test_output_bias_starts_the_decoder_at_the_data_marginal():
    from vaekit.nn.init import init_output_bias_

    model = build_model("vae", {"hidden": [16], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": 2})
    mean = torch.linspace(0, 1, 16).view(1, 4, 4)
    bias = init_output_bias_(model, mean)
    assert torch.allclose(torch.sigmoid(bias), mean.reshape(-1).clamp(1e-3, 1 - 1e-3), atol=1e-6)
    with torch.no_grad():  # zero the last layer's weights: p(x|z) is then exactly the marginal for every z
        model.decoder.net[-1].weight.zero_()
        probs = model.decode(torch.randn(5, 2)).base_dist.probs
    assert torch.allclose(probs, mean.clamp(1e-3, 1 - 1e-3).expand(5, 1, 4, 4), atol=1e-6)
    gauss = build_model("vae", {"hidden": [16], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": None,
                                "likelihood": {"name": "gaussian"}})
    with pytest.raises(ValueError, match="Bernoulli"):
        init_output_bias_(gauss, mean)


def test_train_applies_init_and_refuses_output_bias_without_bernoulli(tmp_path):
    from vaekit.run import ConfigError

    from vaekit.nn.init import output_layer
    from vaekit.training.loop import initialise, prepare

    bern = _cfg(data={"binarize": "dynamic", "subset": 64}, model={"likelihood": {"name": "bernoulli"}},
                train={"max_epochs": 1, "init": "glorot", "init_output_bias": True})
    data, model = prepare(bern)
    initialise(model, data, bern.train)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    out = output_layer(model)  # the decoder's last layer: its bias is the data's logit, every other bias is 0
    assert out is model.decoder.net[-1]
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears if m is not out)
    mean = data.to_float(data.train.x, data.train_levels).mean(0).reshape(-1)
    assert torch.allclose(out.bias, torch.logit(mean.clamp(1e-3, 1 - 1e-3)), atol=1e-5)
    assert out.bias.std() > 1  # digits: dark borders and bright middles, far from the default's ~0
    res = train(bern, tmp_path / "a")
    assert res.epochs == 1
    with pytest.raises(ConfigError, match="init_output_bias.*Bernoulli"):
        train(_cfg(data={"subset": 64}, train={"max_epochs": 1, "init_output_bias": True}), tmp_path / "b")
    assert not (tmp_path / "b" / "checkpoints").exists()  # refused before anything was written


def test_schedule_steps_count_each_process_share_under_ddp(tmp_path):
    import json

    from vaekit.training.loop import schedule_steps

    assert schedule_steps(55_000, 128, 1, max_epochs=10) == (430, 4300)
    assert schedule_steps(55_000, 64, 2, max_epochs=10) == (430, 4300)  # 2 x 64: the same steps as 1 x 128
    assert schedule_steps(101, 10, 2, max_epochs=3) == (6, 18)  # shards of ceil(101 / 2) = 51 examples
    assert schedule_steps(101, 10, 2, max_epochs=3, max_steps=7) == (6, 7)
    assert schedule_steps(55_000, 128, 1, max_epochs=10, max_steps=50_000) == (430, 4300)  # the epochs end it first
    assert schedule_steps(55_000, 128, 1, max_epochs=-1, max_steps=50_000) == (430, 50_000)
    # one real process: the schedule's total is the number of steps training took
    res = train(_cfg(data={"subset": 150}, train={"max_epochs": 2}), tmp_path / "run")
    info = json.loads((res.run_dir / "model.json").read_text())
    assert info["global_step"] == schedule_steps(len(res.data.train), 64, 1, max_epochs=2)[1]


def test_compiled_objective_matches_eager_and_skips_nan():
    """train.compile: the compiled training objective gives the eager terms (inductor told to draw its random
    numbers as eager does), keeps the model's state-dict keys, still skips a non-finite batch; bad modes fail."""
    import torch._inductor.config as inductor_config

    model = build_model("vae", {"hidden": [8], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": 2})
    eager = VAESystem(model, ELBO(), OptimConfig(schedule="constant"))
    compiled = VAESystem(model, ELBO(), OptimConfig(schedule="constant"), compile="default")
    assert set(compiled.state_dict()) == set(eager.state_dict())
    x = torch.bernoulli(torch.rand(4, 1, 4, 4))
    with inductor_config.patch(fallback_random=True):
        torch.manual_seed(3)
        got = compiled._train_terms({"x": x}, 0)
        torch.manual_seed(3)
        want = eager._train_terms({"x": x}, 0)
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    compiled.optimizers, compiled.lr_schedulers = (lambda: opt), (lambda: None)
    compiled.log = lambda *a, **k: None
    compiled.manual_backward = lambda loss: loss.backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x[0, 0, 0, 0] = float("nan")
    compiled.training_step({"x": x}, 0)
    assert int(compiled.skipped_steps) == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="compile must be one of"):
        VAESystem(model, ELBO(), OptimConfig(), compile="fast")
    with pytest.raises(Exception, match="compile"):
        _cfg(train={"compile": "fast"})


def test_compiled_warmup_is_computed_in_the_graph_not_recompiled():
    """A KL warm-up reads the step: compiled, it gets the step as a tensor, so the loss follows the warm-up
    (equal to eager's at each step, gradients too) with no recompilation after the first step."""
    import torch._inductor.config as inductor_config
    from torch._dynamo.utils import counters

    model = build_model("vae", {"hidden": [8], "latent_dim": 2, "data_shape": [1, 4, 4], "levels": 2})
    objective = ELBO(warmup_steps=10)
    eager = VAESystem(model, objective, OptimConfig(schedule="constant"))
    compiled = VAESystem(model, objective, OptimConfig(schedule="constant"), compile="reduce-overhead")
    x = torch.bernoulli(torch.rand(4, 1, 4, 4))
    with inductor_config.patch(fallback_random=True):
        for step in range(4):
            torch.manual_seed(step)
            got = compiled._train_terms({"x": x}, step)
            got["loss"].mean().backward()
            g_got = [p.grad.clone() for p in model.parameters()]
            model.zero_grad(set_to_none=True)
            torch.manual_seed(step)
            want = eager._train_terms({"x": x}, step)
            want["loss"].mean().backward()
            g_want = [p.grad.clone() for p in model.parameters()]
            model.zero_grad(set_to_none=True)
            torch.testing.assert_close(got["loss"], want["loss"], rtol=1e-5, atol=1e-5)
            # the warm-up itself: loss = distortion + (step / 10) * rate
            torch.testing.assert_close(got["loss"], got["distortion"] + step / 10 * got["rate"], rtol=1e-5, atol=1e-5)
            for a, b in zip(g_got, g_want):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
            if step == 1:
                graphs = counters["stats"]["unique_graphs"]
    assert counters["stats"]["unique_graphs"] == graphs  # steps 2 and 3 reused the graph


def test_compiled_provlae_fade_in_is_read_on_the_device_not_recompiled():
    """pro-VLAE's schedule (levels added every 2 steps, faded in over 2) is computed from its step buffer with
    tensor ops: compiled, the terms equal eager's at every step across the stages, and no graph is added after
    the first step (before, each new fade-in value was a Python float that recompiled the objective)."""
    import torch._inductor.config as inductor_config
    from torch._dynamo.utils import counters

    model = build_model("provlae", {"latent_dims": [2, 2, 2], "hidden": 8, "arch": "mlp", "mlp_hidden": [8],
                                    "data_shape": [1, 4, 4], "steps_per_stage": 2, "fade_in_steps": 2})
    eager = VAESystem(model, ELBO(), OptimConfig(schedule="constant"))
    compiled = VAESystem(model, ELBO(), OptimConfig(schedule="constant"), compile="default")
    x = torch.bernoulli(torch.rand(4, 1, 4, 4))
    seen = []
    with inductor_config.patch(fallback_random=True):
        for step in range(7):
            model.set_step(step)
            seen.append(model.alphas().tolist())
            torch.manual_seed(step)
            got = compiled._train_terms({"x": x}, step)
            torch.manual_seed(step)
            want = eager._train_terms({"x": x}, step)
            for key in ("loss", "elbo", "kl/layer_1"):
                torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5)
            if step == 0:
                graphs = counters["stats"]["unique_graphs"]
    assert seen[3] == [0.0, 0.5, 1.0] and seen[5] == [0.5, 1.0, 1.0] and seen[6] == [1.0, 1.0, 1.0]
    assert counters["stats"]["unique_graphs"] == graphs  # steps 1..6 reused the first step's graph


@pytest.mark.parametrize("name,cfg", [
    ("vae", {"arch": "conv", "latent_dim": 4, "data_shape": [1, 28, 28]}),
    ("ladder_vae", {"latent_dims": [4, 2], "hidden": [[16], [8]], "data_shape": [1, 28, 28]}),
    ("stacked_vae", {"latent_dims": [4, 2], "hidden": [[16], [8]], "data_shape": [1, 28, 28]}),
    ("provlae", {"latent_dims": [2, 2], "hidden": 16, "arch": "mlp", "mlp_hidden": [16], "data_shape": [1, 28, 28]}),
])
def test_training_objective_compiles_to_one_graph(name, cfg):
    """train.compile captures each continuous-latent model's ELBO whole (no graph break), the step given as a
    tensor as the training step gives it. (The VQ models' dead-code restarts read the host and break.)"""
    import torch._dynamo as dynamo

    model = build_model(name, cfg)
    x = torch.bernoulli(torch.rand(4, 1, 28, 28))
    explained = dynamo.explain(lambda b, s: ELBO()(model, b, s))({"x": x}, torch.tensor(3.0))
    dynamo.reset()
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_compiled_training_run_learns(tmp_path):
    eager = train(_cfg(train={"max_epochs": 3}), tmp_path / "eager")
    comp = train(_cfg(train={"max_epochs": 3, "compile": "default"}), tmp_path / "compiled")
    with open(tmp_path / "compiled" / "metrics.csv") as f:
        val = [float(r["val/elbo"]) for r in csv.DictReader(f) if r.get("val/elbo")]
    with open(tmp_path / "eager" / "metrics.csv") as f:
        val_eager = [float(r["val/elbo"]) for r in csv.DictReader(f) if r.get("val/elbo")]
    assert comp.epochs == 3 and comp.skipped_steps == 0
    assert val[-1] > val[0]  # it learns
    assert abs(val[-1] - val_eager[-1]) < 0.05 * abs(val_eager[-1])  # as well as eager (other random draws)
    assert load(tmp_path / "compiled").sample(2).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("objective", [{"name": "elbo", "warmup_steps": 100}, {"name": "iwae", "k": 3}])
def test_training_objectives_compile_to_one_graph(objective):
    """No graph breaks in the MLP VAE's ELBO (with warm-up) or IWAE: a break splits a reduce-overhead step
    into separate CUDA graphs with eager code between them (torch's KL registry lookup made three)."""
    from vaekit.objectives import build_objective

    model = build_model("vae", {"hidden": [16], "latent_dim": 3, "data_shape": [1, 8, 8], "levels": 2})
    obj = build_objective(objective)
    x = torch.bernoulli(torch.rand(4, 1, 8, 8))
    explained = torch._dynamo.explain(lambda b, s: obj(model, b, s))({"x": x}, torch.tensor(5.0))
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]


def test_the_logged_rows_are_on_disk_when_a_checkpoint_lands(tmp_path, monkeypatch):
    """merge_metrics relies on this: a resumed attempt starts after the checkpoint's step, so a row logged
    before the checkpoint but still in a buffer when the process is killed would be lost for good.
    Lightning's logger connector saves the CSV after every log call (its fabric writer alone would buffer
    100 steps); this fails if that changes."""
    import vaekit.training.loop as loop

    on_disk = []
    real = loop.AtomicCheckpoint.on_train_epoch_end

    def spy(self, trainer, module):
        real(self, trainer, module)
        path = tmp_path / "run" / "logs" / "version_0" / "metrics.csv"
        on_disk.append([r["step"] for r in csv.DictReader(open(path))] if path.is_file() else [])

    monkeypatch.setattr(loop.AtomicCheckpoint, "on_train_epoch_end", spy)
    train(_cfg(train={"max_epochs": 2}, data={"batch_size": 16}), tmp_path / "run")  # 79 batches an epoch
    assert on_disk[0] == ["19", "39", "59", "78"]  # epoch 1's three training rows and its validation row


def test_resume_refuses_switching_ema_and_a_half_written_first_checkpoint_is_a_leftover(tmp_path):
    from vaekit.config import ConfigError

    run = tmp_path / "run"
    train(_cfg(train={"max_epochs": 1}), run)
    before = (run / "config.yaml").read_bytes()
    with pytest.raises(ConfigError, match="train.optim.ema"):  # the checkpoint holds no EMA copy to resume
        train(_cfg(train={"max_epochs": 2, "optim": {"ema": 0.99}}), run, resume=True)
    assert (run / "config.yaml").read_bytes() == before
    for name in ("model.safetensors", "model.json", "metrics.csv"):  # killed while the first checkpoint was
        (run / name).unlink()                                        # written: only its temp file is left
    (run / "checkpoints" / "last.ckpt").rename(run / "checkpoints" / ".last.ckpt.tmp")
    assert train(_cfg(train={"max_epochs": 1}), run).epochs == 1


def test_latent_diagnostics_are_logged_and_leave_the_training_stream_alone(tmp_path):
    """``train.diagnostics_every``: KL, active units and I_q(x; z) of the first N validation examples every
    few updates (issue 17's collapse-over-training figure). The callback forks the random stream, so the
    trained weights are those of a run without it; its last row is the KL of the exported model on the
    same examples (closed form per dimension, so no draw enters it)."""
    from vaekit.data import DataModule
    from vaekit.evaluation.latents import training_diagnostics
    from vaekit.training.loop import prepare

    train(_cfg(train={"max_epochs": 1}), tmp_path / "plain")
    cfg = _cfg(train={"max_epochs": 1, "diagnostics_every": 5, "diagnostics_examples": 50})
    train(cfg, tmp_path / "diag")
    wa, wb = _weights(tmp_path / "plain"), _weights(tmp_path / "diag")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)
    rows = [r for r in csv.DictReader(open(tmp_path / "diag" / "metrics.csv")) if r.get("diag/kl_layer_1")]
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20]  # before the first update, then every 5
    assert all(0 <= float(r["diag/active_units_layer_1"]) <= 3 for r in rows)
    assert all(-0.5 < float(r["diag/mutual_info_layer_1"]) <= math.log(50) for r in rows)  # I <= log N
    data, _ = prepare(cfg)
    dm = DataModule(data, batch_size=64, eval_batch_size=cfg.data.eval_batch_size)
    val = [{k: v[:50] for k, v in next(iter(dm.val_dataloader())).items()}]
    expect = training_diagnostics(load(tmp_path / "diag"), val)
    assert float(rows[-1]["diag/kl_layer_1"]) == pytest.approx(expect["kl_layer_1"], rel=1e-5)
    assert float(rows[0]["diag/kl_layer_1"]) != pytest.approx(expect["kl_layer_1"], rel=1e-2)  # it moved


class _WorseEachValidation:
    """The ELBO, with validation's ELBO lowered by 1,000 nats per update taken: the first validation pass is
    the best, whatever the model learns."""

    def __init__(self):
        self.inner = ELBO()

    def __call__(self, model, batch, step):
        terms = self.inner(model, batch, step)
        if not model.training:
            terms = {**terms, "elbo": terms["elbo"] - 1000.0 * float(step)}
        return terms


def test_keep_best_val_exports_the_best_validation_pass_and_survives_a_resume(tmp_path, monkeypatch):
    """With ``train.keep: best_val`` the export holds the weights of the validation pass with the highest ELBO
    (here the first, after epoch 1: they equal a 1-epoch run's, not the 3-epoch run's last weights);
    model.json names the pass; a resumed run still knows the best pass of the attempt before it."""
    import json

    import vaekit.training.loop as loop

    monkeypatch.setattr(loop, "build_objective", lambda cfg: _WorseEachValidation())
    cfg = lambda epochs, keep: _cfg(train={"max_epochs": epochs, "keep": keep,  # noqa: E731
                                           "optim": {"schedule": "constant"}})
    train(cfg(1, "last"), tmp_path / "one")
    train(cfg(3, "best_val"), tmp_path / "best")
    train(cfg(3, "last"), tmp_path / "last")
    one, best, last = _weights(tmp_path / "one"), _weights(tmp_path / "best"), _weights(tmp_path / "last")
    for k in one:
        torch.testing.assert_close(best[k], one[k], rtol=1e-5, atol=1e-6, msg=k)
    assert any(not torch.allclose(last[k], one[k]) for k in one if one[k].is_floating_point())
    meta = json.loads((tmp_path / "best" / "model.json").read_text())
    rows = [r for r in csv.DictReader(open(tmp_path / "best" / "metrics.csv")) if r.get("val/elbo")]
    top = max(rows, key=lambda r: float(r["val/elbo"]))
    assert meta["keep"] == "best_val" and meta["kept_step"] == 20 and len(rows) == 3
    assert int(top["epoch"]) == 0  # the first pass, after the 20 updates of epoch 1
    assert meta["kept_val_elbo"] == pytest.approx(float(top["val/elbo"]), rel=1e-6)
    assert json.loads((tmp_path / "last" / "model.json").read_text())["keep"] == "last"
    run = tmp_path / "resumed"
    train(cfg(1, "best_val"), run)
    train(cfg(3, "best_val"), run, resume=True)
    resumed = _weights(run)
    for k in one:
        torch.testing.assert_close(resumed[k], one[k], rtol=1e-5, atol=1e-6, msg=k)
    assert json.loads((run / "model.json").read_text())["kept_step"] == 20
