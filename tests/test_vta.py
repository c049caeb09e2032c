"""Variational Temporal Abstraction (issue 19): the segment constraints, COPY / UPDATE of the abstract level, the
restart of the observation level, the segment-bounded backward embedding, the ELBO's masks, and boundary scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.config import ConfigError, to_dict
from vaekit.dataspec import DataSpec
from vaekit.evaluation.boundaries import boundary_scores, match_events, prf, score_rows
from vaekit.models import build_model
from vaekit.models.vta import BoundaryClock
from vaekit.objectives import build_objective

VIDEO = DataSpec("video", [None, 3, 8, 8], "levels", 256)


def vta(**kw):
    torch.manual_seed(0)
    base = {"abs_stoch": 3, "abs_deter": 5, "obs_stoch": 3, "obs_deter": 6, "hidden": 7, "embed": 4, "channels": [4],
            "max_segment_length": 4, "data": to_dict(VIDEO)}
    return build_model("vta", {**base, **kw}).eval()


def clip(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, t, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_the_clock_forces_a_boundary_at_the_longest_segment_and_refuses_one_past_the_most_segments():
    clock = BoundaryClock(2, torch.device("cpu"), max_length=3, max_segments=2)
    starts = torch.tensor([True, True])
    seen = []
    for t in range(7):
        clock.begin(starts)
        m, forced = clock.apply(torch.tensor([0.0, 1.0]))  # row 0 never asks; row 1 always asks
        seen.append((m.tolist(), forced.tolist()))
        starts = m > 0.5
    # row 0: forced at every 3rd frame of a segment; row 1: its second segment begins at t = 1, then no more
    assert [s[0][0] for s in seen] == [0, 0, 1, 0, 0, 1, 0]
    assert [s[1][0] for s in seen] == [False, False, True, True, True, True, True]  # 2 segments begun at t = 3
    assert [s[0][1] for s in seen] == [1, 0, 0, 1, 0, 0, 1]  # after 2 segments: refused until l_max forces one
    assert [s[1][1] for s in seen] == [False, True, True, True, True, True, True]


def test_the_abstract_state_copies_inside_a_segment_and_the_observation_level_restarts():
    model = vta()
    x = clip(3, 12)
    mask = torch.ones(3, 12, dtype=torch.bool)
    r = model.run(x, mask, mask)
    start = r["start"]
    assert start[:, 0].all() and start.any(1).all()
    lengths = []
    for b in range(3):
        run = 0
        for t in range(12):
            run = 1 if start[b, t] else run + 1
            lengths.append(run)
            if not start[b, t]:  # COPY: z and c exactly as at the step before
                assert torch.equal(r["z"][b, t], r["z"][b, t - 1]) and torch.equal(r["c"][b, t], r["c"][b, t - 1])
            else:  # UPDATE of c, and h restarted from z alone
                h0 = model.obs_cell(torch.cat([torch.zeros(1, 3), r["z"][b, t][None]], -1), torch.zeros(1, 6))
                assert torch.allclose(r["h"][b, t], h0[0], atol=1e-6)
    assert max(lengths) <= model.config.max_segment_length


def test_the_segment_embedding_reads_only_its_own_segment():
    model = vta()
    e = torch.randn(1, 8, 4)
    m = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])  # segments [0, 2], [3, 6], [7]
    b = model.segment_embeddings(e, m)
    e2 = e.clone()
    e2[:, 3:] += 5.0  # change every frame of the later segments
    b2 = model.segment_embeddings(e2, m)
    assert torch.equal(b[:, :3], b2[:, :3]) and not torch.allclose(b[:, 3:7], b2[:, 3:7])
    e3 = e.clone()
    e3[:, 1] += 5.0  # a frame of the first segment changes b_0 and b_1, not b_2
    b3 = model.segment_embeddings(e3, m)
    assert torch.equal(b[:, 2:], b3[:, 2:]) and not torch.allclose(b[:, :2], b3[:, :2])


def test_the_elbo_counts_z_at_segment_beginnings_and_m_only_where_it_was_free():
    model = vta(max_segments=3)
    x = clip(2, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    torch.manual_seed(1)
    out = model({"x": x, "mask": mask})
    s, z, m = out.latents
    assert [l.name for l in out.latents] == ["s", "z", "m"]
    assert torch.equal(s.mask, mask)
    assert (z.mask <= mask).all() and z.mask[:, 0].all()
    kl_z = z.kl_per_dim().sum(-1)
    assert (kl_z[~z.mask] == 0).all() and (kl_z[z.mask] > 0).all()
    assert not m.mask[0, 9] and not m.mask[1, 6:].any()  # the last real step's boundary has no next frame
    # a forced boundary (at the 4th frame of a segment) is never free
    r = model.run(x, mask, mask)
    assert not (r["free_m"] & r["forced"]).any()
    terms = build_objective("elbo")(model, {"x": x, "mask": mask}, step=0)
    assert torch.isfinite(terms["loss"]).all()


def test_prior_constraints_leave_q_free_and_make_a_silent_posterior_pay_at_the_longest_segment():
    """``constraints: prior`` (the authors' code): the longest segment forces the prior's logit to
    log(0.999 / 0.001), q is never forced, and a posterior that never fires pays KL(m) there, about 6.9 nats."""
    from vaekit.models.vta import FORCED_LOGIT

    model = vta(constraints="prior")
    with torch.no_grad():
        model.boundary_net[-1].bias.fill_(-30.0)  # q(m_t = 1) ~ 0 everywhere
    x = clip(2, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    r = model.run(x, mask, mask)
    assert not r["forced"].any() and not (r["m"][:, :9] > 0.5).any()  # the last step's m is the prior's
    assert torch.equal(r["free_m"][:, :9], mask[:, :9]) and not r["free_m"][:, 9].any()
    # with no boundary the segment starting at frame 0 reaches 4 frames at t = 3: forced on from there
    assert torch.allclose(r["pm_logit"][:, 3:], torch.full_like(r["pm_logit"][:, 3:], FORCED_LOGIT))
    assert (r["pm_logit"][:, :3] != FORCED_LOGIT).all()
    kl_m = model({"x": x, "mask": mask}).latents[2].kl_per_dim()[..., 0]  # [B, T]
    assert kl_m[:, 3:9].min() > 6.8 and kl_m[:, 3:9].max() < 7.0
    # under "posterior" the same silent q gets the boundary for free: forced, and its KL not counted
    model.config.constraints = "posterior"
    r = model.run(x, mask, mask)
    assert r["forced"][:, 3].all() and (r["m"][:, 3] > 0.5).all() and not r["free_m"][:, 3].any()


def test_the_gumbel_temperature_anneals_as_the_authors_code():
    model = vta(temperature_start=1.0, boundary_temperature=0.1, temperature_anneal=100.0)
    assert model.temperature == 1.0
    model.set_step(100)
    assert model.temperature == pytest.approx(0.9 * 0.999 + 0.1)
    model.set_step(10 ** 7)
    assert model.temperature == pytest.approx(0.1)
    fixed = vta()
    fixed.set_step(10 ** 5)
    assert fixed.temperature == 0.5


def test_padded_frames_change_no_boundary_and_add_no_term():
    model = vta()
    x = clip(1, 9)
    padded = torch.cat([x, torch.rand(1, 4, 3, 8, 8)], 1)
    mask = torch.zeros(1, 13, dtype=torch.bool)
    mask[:, :9] = True
    assert torch.equal(model.boundaries(x), model.boundaries(padded, mask)[:, :9])
    assert not model.boundaries(padded, mask)[:, 9:].any()
    out = model({"x": padded, "mask": mask})
    for layer in out.latents:
        assert (layer.kl_per_dim()[:, 9:] == 0).all()


def test_prediction_shapes_and_imagination_per_segment():
    model = vta()
    x = clip(2, 6)
    assert model.predict(x, 5, seed=0).shape == (2, 11, 3, 8, 8)
    assert torch.equal(model.predict(x, 5, seed=3), model.predict(x, 5, seed=3))
    y = model.imagine(x, 4, seed=0)
    assert y.shape == (2, 4, 3, 8, 8) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert model.sample(2, length=7).shape == (2, 7, 3, 8, 8)


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="boundary_kernel must be odd"):
        vta(boundary_kernel=4)
    with pytest.raises(ConfigError, match="constraints must be one of"):
        vta(constraints="both")
    with pytest.raises(ConfigError, match="temperature_start must be 0"):
        vta(temperature_start=0.2, boundary_temperature=0.5)
    with pytest.raises(ConfigError, match="Bernoulli likelihood is for binary"):
        vta(likelihood="bernoulli").check_data(VIDEO, "data")


# -- boundary scores -----------------------------------------------------------------------------------------
def test_events_match_one_to_one_within_the_tolerance():
    pred, true = np.array([2, 5, 9]), np.array([3, 9, 20])
    assert match_events(pred, true, 1) == 2 and match_events(pred, true, 0) == 1 and match_events(pred, true, 2) == 2
    assert match_events(np.array([3, 4]), np.array([3]), 1) == 1  # one true event is matched once
    r = prf(2, 3, 4)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 0.5 and r["f1"] == pytest.approx(4 / 7)
    rows = np.zeros((1, 10), bool)
    rows[0, [0, 4]] = True  # frame 0 is left out of both sets
    assert score_rows(rows, rows, np.ones((1, 10), bool), 0)["f1"] == 1.0
    assert score_rows(rows, rows, np.ones((1, 10), bool), 0)["true"] == 1


class Oracle:
    """Boundaries at the true events: precision and recall 1."""

    def boundaries(self, x, mask):
        return self.truth


def test_an_oracle_scores_one_and_the_references_are_at_its_rate():
    true = torch.zeros(4, 30, dtype=torch.bool)
    true[:, [7, 15, 22]] = True
    oracle = Oracle()
    oracle.truth = true.clone()
    oracle.truth[:, 0] = True
    batch = {"x": torch.zeros(4, 30, 1), "mask": torch.ones(4, 30, dtype=torch.bool), "bounce": true}
    res = boundary_scores(oracle, [batch], tolerance=0)
    assert res["scores"]["model"]["precision"] == res["scores"]["model"]["recall"] == 1.0
    assert res["model_boundary_rate"] == pytest.approx(3 / 29) and res["protocol"]["periodic_every"] == 10
    assert res["scores"]["periodic"]["predicted"] == 8 and res["scores"]["random"]["f1"] < 1.0


def test_a_short_real_run_beats_the_black_frame_on_held_out_clips(balls_clips):
    """100 updates on 16 generated bouncing-ball clips (16 x 16, one ball): the held-out ELBO per frame must beat
    the log-likelihood of a black frame under the same Normal (std 0.1) by 100 nats, i.e. the model has to draw
    the ball, not only the background."""
    from torch.distributions import Normal

    spec = DataSpec("video", [None, 3, 16, 16], "levels", 256)
    torch.manual_seed(0)
    model = build_model("vta", {"abs_stoch": 4, "abs_deter": 16, "obs_stoch": 4, "obs_deter": 32, "hidden": 32,
                                "embed": 16, "channels": [8, 16], "max_segment_length": 6, "data": to_dict(spec)})
    objective = build_objective("elbo")
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
        elbo = float(objective(model, {"x": test, "mask": torch.ones(8, 12, dtype=torch.bool)}, step=0)["elbo"].mean()) / 12
    black = float(Normal(torch.zeros_like(test), 0.1).log_prob(test).sum((2, 3, 4)).mean())
    assert elbo > black + 100, (elbo, black)
