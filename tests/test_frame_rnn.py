"""The next-frame HM-RNN of video (issue 19): causality of the frame likelihood, the exact log-likelihood by hand,
boundaries aligned with the detector, padding that changes nothing, open-loop prediction equal to feeding the
model's own frames, and a short real run."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal

from vaekit.config import ConfigError, to_dict
from vaekit.dataspec import DataSpec
from vaekit.errors import UsageError
from vaekit.models import build_model
from vaekit.objectives import build_objective

VIDEO = DataSpec("video", [None, 3, 8, 8], "levels", 256)


def frame_rnn(**kw):
    torch.manual_seed(0)
    base = {"hidden": 6, "embed_dim": 5, "channels": [4], "data": to_dict(VIDEO)}
    return build_model("frame_rnn", {**base, **kw}).eval()


def clip(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cell", ["hmlstm", "lstm", "cwrnn"])
def test_frame_t_is_predicted_from_earlier_frames_only(cell):
    model = frame_rnn(cell=cell, modules=2)
    x = clip(2, 7)
    y = x.clone()
    y[:, 4] = 0.0
    with torch.no_grad():
        a, b = model.run(x[:, :-1])[0], model.run(y[:, :-1])[0]
    diff = (a - b).flatten(2).abs().amax(-1)  # [B, T]: row t predicts frame t
    assert diff[:, :5].max() == 0 and diff[:, 5:].min() > 0


def test_the_log_likelihood_is_the_sum_of_each_frames_normal_given_the_past():
    model = frame_rnn()
    x = clip(2, 5)
    with torch.no_grad():
        lp = model({"x": x}).likelihood.log_prob(x)
        by_hand = torch.zeros(2)
        for t in range(5):  # frame t from a fresh run over frames < t: the last row
            mean = model.run(x[:, :t])[0][:, -1]
            by_hand += Normal(mean, 0.1).log_prob(x[:, t]).sum((1, 2, 3))
    assert torch.allclose(lp, by_hand, rtol=1e-5, atol=1e-2)


def test_padded_frames_change_nothing_real():
    model = frame_rnn()
    with torch.no_grad():  # the first layer's detector fires at every step: padded frames must still begin nothing
        model.core.layers[0].norm.bias[4 * 6:] = 10.0
    x = clip(2, 6)
    padded = torch.cat([x, torch.rand(2, 3, 3, 8, 8)], 1)
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[:, :6] = True
    with torch.no_grad():
        alone = model({"x": x}).likelihood.log_prob(x)
        pad = model({"x": padded, "mask": mask}).likelihood.log_prob(padded)
        b_alone, b_pad = model.boundaries(x), model.boundaries(padded, mask)
    assert torch.allclose(alone, pad, atol=1e-3)
    assert b_alone.all()
    assert torch.equal(b_pad[:, :6], b_alone) and not b_pad[:, 6:].any()


def test_boundaries_are_the_first_layers_detector_one_frame_later():
    model = frame_rnn(layers=3)
    x = clip(3, 8)
    with torch.no_grad():
        model.core.layers[0].bottom_up.weight[4 * 6:] *= 30  # a detector that reads the frames: z varies in time
        z = model.run(x)[2]["boundaries"]  # [B, 9, 2]: row t + 1 after reading frame t
        begins = model.boundaries(x)
    assert (z[:, 1:, 0] != z[:, :-1, 0]).any(1).all()  # otherwise a shifted alignment would pass unseen
    assert begins[:, 0].all()
    assert torch.equal(begins[:, 1:], z[:, 1:-1, 0] > 0.5)
    with pytest.raises(UsageError, match="no boundaries"):
        frame_rnn(cell="lstm").boundaries(x)


def test_open_loop_prediction_feeds_back_its_own_frames():
    model = frame_rnn()
    x = clip(2, 3)
    with torch.no_grad():
        pred = model.predict(x, 4)
        assert pred.shape == (2, 7, 3, 8, 8)
        frames = x
        for _ in range(4):  # naive: rerun the whole sequence each step, append the mean of the next frame
            nxt = model.mean_frames(model.run(frames)[0][:, -1])
            frames = torch.cat([frames, nxt[:, None]], 1)
    assert torch.allclose(pred[:, 3:], frames[:, 3:], atol=1e-5)
    assert torch.allclose(pred[:, :3], model.mean_frames(model.run(x)[0][:, :-1]), atol=1e-6)


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="layers >= 2"):
        frame_rnn(layers=1)
    with pytest.raises(ConfigError, match="likelihood"):
        frame_rnn(likelihood="laplace")
    with pytest.raises(ConfigError, match="reads video"):
        build_model("frame_rnn", {"data": to_dict(DataSpec("tokens", [None], "tokens", 50))})


def test_a_short_real_run_beats_the_black_frame_on_held_out_clips(balls_clips):
    """100 updates on 16 generated bouncing-ball clips (16 x 16, one ball): the held-out log-likelihood per frame
    must beat a black frame under the same Normal (std 0.1) by 100 nats (the model has to draw the ball)."""
    spec = DataSpec("video", [None, 3, 16, 16], "levels", 256)
    torch.manual_seed(0)
    model = build_model("frame_rnn", {"hidden": 32, "embed_dim": 16, "channels": [8, 16], "data": to_dict(spec)})
    objective = build_objective("exact_nll")
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    train = {"x": balls_clips(range(16)), "mask": torch.ones(16, 12, dtype=torch.bool)}
    for step in range(100):
        loss = objective(model, train, step=step)["loss"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = balls_clips(range(100, 108))
    model.eval()
    with torch.no_grad():
        ll = float(model({"x": test}).likelihood.log_prob(test).mean()) / 12
    black = float(Normal(torch.zeros_like(test), 0.1).log_prob(test).sum((2, 3, 4)).mean())
    assert ll > black + 100, (ll, black)
