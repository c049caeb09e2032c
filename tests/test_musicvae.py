"""MusicVAE (Roberts et al. 2018) and its data, music21's Bach chorales as note events: the conductor's bar
boundaries (a bar's bottom decoder sees only its conductor embedding and its own past), causality of both
decoders, one importance sample is the single-sample ELBO, scheduled sampling at rate 0 is teacher forcing,
the event encoding round trip (events -> notes -> MIDI -> events), and the corpus reader's windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaekit.config import ConfigError, to_dict
from vaekit.data.chorales import (EVENTS, NO_EVENT, NOTE_OFF, ChoraleGrid, ChoraleEvents, decode_events,
                                  encode_window, event_of, midi_to_events, windows_of, write_events_midi)
from vaekit.dataspec import DataSpec, random_batch
from vaekit.models import build_model

BAR = 4


def _spec(bars=3, voices=2):
    return DataSpec("note_events", [bars * BAR, voices], "tokens", EVENTS,
                    features={"steps_per_bar": BAR, "bars": bars, "low_pitch": 36})


def _model(decoder="hierarchical", **kw):
    torch.manual_seed(0)
    cfg = {"decoder": decoder, "latent_dim": 3, "embed_dim": 4, "encoder_hidden": 6, "decoder_hidden": 7,
           "conductor_hidden": 5, "conductor_dim": 4, "data": to_dict(_spec()), **kw}
    return build_model("musicvae", cfg).eval()


def test_a_bar_sees_only_its_conductor_embedding_and_its_own_past():
    """Changing the events of bar 1 changes no logit of bars 0 and 2 (at a fixed z), and within bar 1 only the
    steps after the change: the bottom decoder restarts at every bar."""
    model = _model()
    x = random_batch(_spec(), 2)["x"]
    z = torch.randn(2, 3)
    base = model.logits(x, z)
    changed = x.clone()
    changed[:, BAR + 1] = (changed[:, BAR + 1] + 5) % EVENTS  # bar 1, its second step
    after = model.logits(changed, z)
    same = torch.isclose(base, after, atol=1e-6).flatten(2).all(-1)  # [B, T]
    assert same[:, :BAR + 2].all() and same[:, 2 * BAR:].all()  # bar 0, bar 1 up to the change, bar 2
    assert not same[:, BAR + 2:2 * BAR].any()  # the rest of bar 1 reads the change


def test_the_flat_decoder_is_causal_and_reads_across_bars():
    model = _model("flat")
    x = random_batch(_spec(), 2)["x"]
    z = torch.randn(2, 3)
    changed = x.clone()
    changed[:, BAR + 1] = (changed[:, BAR + 1] + 5) % EVENTS
    same = torch.isclose(model.logits(x, z), model.logits(changed, z), atol=1e-6).flatten(2).all(-1)
    assert same[:, :BAR + 2].all() and not same[:, BAR + 2:].any()  # every later step, the next bars too


@pytest.mark.parametrize("decoder", ["flat", "hierarchical"])
def test_one_importance_sample_is_the_single_sample_elbo(decoder):
    """``log w`` with k = 1 is ``log p(x|z) + log p(z) - log q(z|x)`` at the same z: the ELBO's estimator
    with the KL taken by Monte Carlo."""
    model = _model(decoder)
    batch = random_batch(_spec(), 3)
    torch.manual_seed(1)
    log_w = model.log_importance_weights(batch, 1)[0]
    torch.manual_seed(1)
    out = model(batch)
    layer = out.latents[0]
    mc = out.likelihood.log_prob(batch["x"]) + layer.prior.log_prob(layer.z) - layer.posterior.log_prob(layer.z)
    torch.testing.assert_close(log_w, mc, rtol=1e-5, atol=1e-4)
    generated = model.generate(layer.z, greedy=True)
    assert generated.shape == batch["x"].shape and generated.dtype == torch.long


@pytest.mark.parametrize("decoder", ["flat", "hierarchical"])
def test_greedy_generation_is_the_argmax_of_the_teacher_forced_logits_of_itself(decoder):
    """Decoding feeds back each step's argmax: the teacher-forced logits of the decoded sequence have it as
    their argmax at every step (the cached loop and the parallel pass are one model)."""
    model = _model(decoder)
    z = torch.randn(4, 3)
    y = model.generate(z, greedy=True)
    assert torch.equal(model.logits(y, z).argmax(-1), y)


def test_scheduled_sampling_at_rate_zero_is_teacher_forcing_and_above_it_feeds_draws():
    model = _model("flat", scheduled_sampling=0.0).train()
    x = random_batch(_spec(), 2)["x"]
    z = torch.randn(2, 3)
    torch.testing.assert_close(model.decoder.teacher_forced(x, z, 0.0), model.decoder.teacher_forced(x, z, 1e-9))
    torch.manual_seed(0)
    own = model.decoder.teacher_forced(x, z, 1.0)  # every input the model's own draw: x never read after step 0
    torch.manual_seed(0)
    own2 = model.decoder.teacher_forced((x + 1) % EVENTS, z, 1.0)
    torch.testing.assert_close(own, own2)


def test_bad_configs_and_data_are_refused():
    with pytest.raises(ConfigError, match="decoder"):
        _model("conductor")
    with pytest.raises(ConfigError, match="scheduled_sampling"):
        _model(scheduled_sampling=1.5)
    with pytest.raises(ConfigError, match="whole bars"):
        build_model("musicvae", {"data": to_dict(DataSpec("note_events", [10, 1], "tokens", EVENTS,
                                                          features={"steps_per_bar": 4}))})
    with pytest.raises(ConfigError, match="note events"):
        build_model("musicvae", {"data": to_dict(DataSpec("tokens", [None], "tokens", 10))})


# --- the encoding --------------------------------------------------------------------------------------------
def test_events_encode_onsets_holds_and_rests_and_decode_back_to_the_notes():
    # one voice: C4 for 2 steps, a repeated C4 for 1, a rest of 2, E4 tied over (no new onset) for 3
    pitch = np.array([[60], [60], [60], [-1], [-1], [64], [64], [64]])
    onset = np.array([[1], [0], [1], [0], [0], [1], [0], [0]], dtype=bool)
    ev = encode_window(pitch, onset)
    assert ev[:, 0].tolist() == [event_of(60), NO_EVENT, event_of(60), NOTE_OFF, NO_EVENT, event_of(64),
                                 NO_EVENT, NO_EVENT]
    assert decode_events(ev) == [[(60, 0, 2), (60, 2, 3), (64, 5, 8)]]
    # a window starting inside a note strikes it at its first step; one starting in silence says NOTE_OFF
    assert encode_window(pitch[1:], onset[1:])[0, 0] == event_of(60)
    assert encode_window(pitch[3:], onset[3:])[0, 0] == NOTE_OFF


def test_events_to_midi_and_back_keep_the_notes(tmp_path):
    rng = np.random.default_rng(0)
    pitch = np.repeat(rng.integers(55, 80, size=(16, 2)), 4, axis=0).astype(np.int16)  # quarter notes
    pitch[8:12, 1] = -1  # a rest in the second voice
    onset = np.zeros_like(pitch, dtype=bool)
    onset[::4] = True
    ev = encode_window(pitch, onset)
    path = write_events_midi(tmp_path / "x.mid", ev)
    back = midi_to_events(path, voices=2)
    assert decode_events(back[:len(ev)]) == decode_events(ev)


def test_windows_follow_the_downbeats_and_skip_a_run_broken_by_a_short_bar():
    g = ChoraleGrid("x", np.zeros((80, 4), np.int16), np.zeros((80, 4), bool),
                    np.array([4, 20, 36, 52, 60]), 16, "4/4")  # a short bar (8 steps) at 52
    assert windows_of(g, 2, 1) == [4, 20]  # 36 + 32 runs into the short bar
    assert windows_of(g, 3, 1) == [4]


def test_the_split_is_by_piece_and_transposition_only_augments_training():
    rng = np.random.default_rng(0)
    grids = [ChoraleGrid(f"bach/{i}", rng.integers(60, 70, (64, 4)).astype(np.int16), np.ones((64, 4), bool),
                         np.arange(0, 64, 16), 16, "4/4") for i in range(20)]
    plain = ChoraleEvents(grids, {}, voices="satb", bars=2, hop_bars=1, time_signature="4/4")
    moved = ChoraleEvents(grids, {}, voices="satb", bars=2, hop_bars=1, time_signature="4/4", transpose=2)
    assert not set(plain.train.pieces) & set(plain.test.pieces) and not set(plain.val.pieces) & set(plain.test.pieces)
    assert len(plain.test) == len(moved.test) and np.array_equal(plain.test.events, moved.test.events)
    assert len(moved.train) == 5 * len(plain.train)  # shifts -2 .. 2
    assert plain.spec.shape == [32, 4] and plain.spec.modality == "note_events"
    with pytest.raises(ConfigError, match="voices"):
        ChoraleEvents(grids, {}, voices="trio", bars=2, hop_bars=1, time_signature="4/4")


def test_note_scores_are_mir_evals_onset_matching():
    """Four quarter notes: the same events score 1; one wrong pitch costs one match of four (P = R = 3/4); a
    missing onset merges two notes into one (3 decoded notes, all matched by onset and pitch: P = 1, R = 3/4)."""
    from vaekit.evaluation.music import note_scores

    pitch = np.repeat(np.array([[60], [62], [64], [65]]), 4, axis=0)
    onset = np.zeros((16, 1), bool)
    onset[::4] = True
    ref = encode_window(pitch, onset)
    assert note_scores(ref, ref)[:3] == (1.0, 1.0, 1.0)
    wrong = pitch.copy()
    wrong[8:12] = 67
    p, r, f, n_ref, n_est = note_scores(ref, encode_window(wrong, onset))
    assert (p, r, n_ref, n_est) == (0.75, 0.75, 4, 4)
    merged = ref.copy()
    merged[12, 0] = NO_EVENT  # the last note's onset gone: the third note lasts to the end
    p, r, f, n_ref, n_est = note_scores(ref, merged)
    assert (n_est, p, r) == (3, 1.0, 0.75) and f == pytest.approx(2 * 0.75 / 1.75)


# --- latent inpainting (InpaintNet) ---------------------------------------------------------------------------
def _inpainter(**kw):
    torch.manual_seed(0)
    spec = DataSpec("note_events", [5 * BAR, 1], "tokens", EVENTS, features={"steps_per_bar": BAR, "bars": 5})
    cfg = {"past_bars": 2, "gap_bars": 2, "latent_dim": 3, "embed_dim": 4, "encoder_hidden": 6, "decoder_hidden": 7,
           "rnn_hidden": 5, "data": to_dict(spec), **kw}
    return build_model("inpaintnet", cfg).eval(), spec


def test_the_gap_is_predicted_from_the_context_alone_and_its_loss_is_the_gap_nll():
    model, spec = _inpainter()
    x = random_batch(spec, 3)["x"]
    other = x.clone()
    other[:, 2 * BAR:4 * BAR] = (other[:, 2 * BAR:4 * BAR] + 7) % EVENTS  # new gap bars, same context
    bars, bars2 = model.split_bars(x), model.split_bars(other)
    mu, mu2 = model.encode_bars(bars).mean, model.encode_bars(bars2).mean
    past, gap, future = model.layout()
    z_hat = model.predict_gap(mu[:, past], mu[:, future], 2)
    torch.testing.assert_close(z_hat, model.predict_gap(mu2[:, past], mu2[:, future], 2))
    torch.manual_seed(0)
    aux = model({"x": x}).aux["inpaint_nll"]
    torch.testing.assert_close(aux, -model.bar_log_prob(bars[:, gap], z_hat).sum(1))
    from vaekit.objectives import build_objective

    torch.manual_seed(0)
    terms = build_objective({"name": "inpaint", "inpaint_weight": 2.0})(model, {"x": x}, 10**6)
    torch.testing.assert_close(terms["loss"], -terms["elbo"] + 2.0 * terms["inpaint_nll"])


def test_the_windows_bound_is_the_sum_of_its_bars_bounds():
    """The bars are independent given their latents: one importance sample of the window is the sum of one per
    bar, and the window's ELBO the sum of the measure VAE's ELBOs of its bars (at the same noise)."""
    from vaekit.objectives import elbo_terms

    model, spec = _inpainter()
    x = random_batch(spec, 2)["x"]
    torch.manual_seed(3)
    log_w = model.log_importance_weights({"x": x}, 1)[0]
    torch.manual_seed(3)
    per_bar = model.measure.log_importance_weights({"x": model.split_bars(x).flatten(0, 1)}, 1)[0].view(2, 5).sum(1)
    torch.testing.assert_close(log_w, per_bar)
    torch.manual_seed(4)
    window = elbo_terms(model({"x": x}), x)[0]["elbo"]
    torch.manual_seed(4)
    q = model.measure.encode(model.split_bars(x).flatten(0, 1))
    z = q.rsample()
    bars = model.split_bars(x).flatten(0, 1)
    kl = torch.distributions.kl_divergence(q, model.measure.prior_dist(len(z))).view(2, 5).sum(1)
    log_px = model.measure._log_px(bars, z).sum(1).view(2, 5).sum(1)
    torch.testing.assert_close(window, log_px - kl, rtol=1e-5, atol=1e-4)


def test_inpaint_file_keeps_the_context_bars_and_refuses_bad_requests(tmp_path):
    from vaekit.api import inpaint_file
    from vaekit.errors import UsageError
    from vaekit.run import export_model

    model, spec = _inpainter()
    export_model(tmp_path / "run", "inpaintnet", model)
    rng = np.random.default_rng(0)
    pitch = np.repeat(rng.integers(60, 72, size=(14, 1)), 2, axis=0).astype(np.int16)  # 7 bars of 8th notes
    onset = np.zeros_like(pitch, dtype=bool)
    onset[::2] = True
    events = encode_window(pitch, onset)
    src = write_events_midi(tmp_path / "in.mid", events)
    res = inpaint_file(tmp_path / "run", src, "3-4", tmp_path / "out.mid")
    assert res["num_bars"] == 7 and res["past_bars"] == 2 and res["future_bars"] == 1
    back = midi_to_events(tmp_path / "out.mid")
    assert np.array_equal(back[:2 * BAR], events[:2 * BAR])  # the bars before the gap, untouched
    assert np.array_equal(back[4 * BAR:len(events)], events[4 * BAR:])  # and after it (each bar starts a note)
    for bad, match in (("0-2", "bars 1-7"), ("3-9", "bars 1-7"), ("1-7", "whole piece"), ("x", "range")):
        with pytest.raises(UsageError, match=match):
            inpaint_file(tmp_path / "run", src, bad, tmp_path / f"o{bad}.mid")
    with pytest.raises(UsageError, match="exists"):
        inpaint_file(tmp_path / "run", src, "3-4", tmp_path / "out.mid")


# --- SketchVAE --------------------------------------------------------------------------------------------------
def _sketch(**kw):
    torch.manual_seed(0)
    spec = DataSpec("note_events", [8, 1], "tokens", EVENTS, features={"steps_per_bar": 8, "bars": 1})
    cfg = {"pitch_dim": 3, "rhythm_dim": 2, "embed_dim": 4, "encoder_hidden": 5, "beat_hidden": 6, "beat_dim": 4,
           "tick_hidden": 6, "steps_per_beat": 4, "data": to_dict(spec), **kw}
    return build_model("sketchvae", cfg).eval(), spec


def test_rhythm_and_pitch_tokens_split_a_bar_into_when_and_what():
    from vaekit.models.sketchvae import HOLD, ONSET, REST, pitch_tokens_of, rhythm_of

    x = torch.tensor([[event_of(60), NO_EVENT, NOTE_OFF, NO_EVENT, event_of(62), event_of(62), NO_EVENT, NOTE_OFF]])
    assert rhythm_of(x).tolist() == [[ONSET, HOLD, REST, REST, ONSET, ONSET, HOLD, REST]]
    assert pitch_tokens_of(x, 99).tolist() == [[event_of(60), event_of(62), event_of(62)] + [99] * 5]


def test_the_rhythm_latent_ignores_pitch_and_the_pitch_latent_ignores_timing():
    """The factorisation by construction: a transposed bar has the same q(z_rhythm), a re-timed bar (the same
    pitches in the same order, other onsets and lengths) the same q(z_pitch); and the other posterior moves."""
    model, _ = _sketch()
    bar = torch.tensor([[event_of(60), NO_EVENT, event_of(64), NO_EVENT, event_of(67), NOTE_OFF, NO_EVENT, NO_EVENT]])
    up = torch.where(bar >= 2, bar + 5, bar)
    retimed = torch.tensor([[event_of(60), event_of(64), NO_EVENT, NO_EVENT, NO_EVENT, event_of(67), NO_EVENT,
                             NOTE_OFF]])
    (qp, qr), (qp_up, qr_up), (qp_rt, qr_rt) = (model.encode_factors(v[..., None]) for v in (bar, up, retimed))
    torch.testing.assert_close(qr.mean, qr_up.mean)
    torch.testing.assert_close(qp.mean, qp_rt.mean)
    assert not torch.allclose(qp.mean, qp_up.mean) and not torch.allclose(qr.mean, qr_rt.mean)


def test_sketch_importance_sample_is_the_elbo_and_beats_restart_the_tick_decoder():
    model, spec = _sketch()
    batch = random_batch(spec, 3)
    torch.manual_seed(1)
    log_w = model.log_importance_weights(batch, 1)[0]
    torch.manual_seed(1)
    out = model(batch)
    mc = out.likelihood.log_prob(batch["x"]) + sum(l.prior.log_prob(l.z) - l.posterior.log_prob(l.z) for l in out.latents)
    torch.testing.assert_close(log_w, mc, rtol=1e-5, atol=1e-4)
    x, z = batch["x"], torch.randn(3, 5)
    changed = x.clone()
    changed[:, 1] = (changed[:, 1] + 3) % EVENTS  # beat 0, its second step
    same = torch.isclose(model.logits(x, z), model.logits(changed, z), atol=1e-6).flatten(2).all(-1)
    assert same[:, :2].all() and not same[:, 2:4].any() and same[:, 4:].all()  # beat 1 restarts
    assert torch.equal(model.logits(model.generate(z, greedy=True), z).argmax(-1), model.generate(z, greedy=True))


def test_sketch_scores_count_a_perfect_swap_as_a_transfer():
    """With a stand-in model whose decoding of a swap is exactly "pitches of a, in the rhythm of b", rhythm transfer
    and pitch kept are 1 (a known answer for the metric itself)."""
    from vaekit.evaluation.music import sketch_scores
    from vaekit.models.sketchvae import rhythm_of

    class Oracle:
        def eval(self):
            return self

        def swap(self, pitch_from, rhythm_from):
            out = []
            for pa, rb in zip(pitch_from[..., 0], rhythm_from[..., 0]):
                pitches = [int(e) for e in pa.tolist() if e >= 2] or [event_of(60)]
                row, k = [], 0
                for tok in rhythm_of(rb[None])[0].tolist():
                    row.append(pitches[min(k, len(pitches) - 1)] if tok == 0 else (NO_EVENT if tok == 1 else NOTE_OFF))
                    k += tok == 0
                out.append(row)
            return torch.tensor(out)[..., None]

    rng = np.random.default_rng(0)
    bars = []
    for _ in range(6):
        pitch = rng.integers(60, 72, 8).repeat(2)
        onset = np.zeros(16, bool)
        onset[::2] = rng.random(8) < 0.7
        onset[0] = True
        bars.append(encode_window(np.where(onset.cumsum() > 0, pitch, -1)[:, None], onset[:, None])[:, 0])
    res = sketch_scores(Oracle(), [{"x": torch.tensor(np.array(bars))[..., None]}])
    assert res["pitch_kept"] == 1.0 and res["num_pairs"] == 6
    assert res["rhythm_transfer"] == 1.0 and res["rhythm_of_pitch_source"] < 1.0


# --- PianoTree -------------------------------------------------------------------------------------------------
def _tree(decoder="tree", steps=8):
    torch.manual_seed(0)
    spec = DataSpec("note_events", [steps, 4], "tokens", EVENTS, features={"steps_per_bar": 4, "bars": steps // 4})
    cfg = {"decoder": decoder, "latent_dim": 3, "pitch_embed": 4, "duration_embed": 3, "note_hidden": 5,
           "time_hidden": 6, "data": to_dict(spec)}
    return build_model("pianotree", cfg).eval(), spec


def _chorale_like(b=3, t=8, seed=0):
    """Four voices of random notes (each voice a run of notes and rests) as events [b, t, 4]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(b):
        pitch = np.full((t, 4), -1, np.int16)
        onset = np.zeros((t, 4), bool)
        for v, base in enumerate((72, 65, 58, 48)):
            s = 0
            while s < t:
                d = int(rng.integers(1, 4))
                if rng.random() < 0.8:
                    pitch[s:s + d, v] = base + int(rng.integers(0, 6))
                    onset[s, v] = True
                s += d
        out.append(encode_window(pitch, onset))
    return torch.from_numpy(np.stack(out))


def test_the_notes_of_a_step_are_its_onsets_from_the_top_with_durations_and_unisons_merged():
    from vaekit.models.pianotree import events_of_notes, notes_of_events

    x = torch.tensor([[[event_of(72), event_of(64), event_of(64), event_of(48)],
                       [NO_EVENT, NO_EVENT, event_of(60), NO_EVENT],
                       [event_of(71), NOTE_OFF, NO_EVENT, NO_EVENT],
                       [NO_EVENT] * 4]])
    p, d, c = notes_of_events(x, 4)
    assert c[0].tolist() == [3, 1, 1, 0]
    assert (p[0, 0, :3] + 36).tolist() == [72, 64, 48] and d[0, 0, :3].tolist() == [2, 2, 4]  # the 64s merged
    assert (p[0, 1, 0] + 36, d[0, 1, 0]) == (60, 3) and (p[0, 2, 0] + 36, d[0, 2, 0]) == (71, 2)
    xs = _chorale_like(4, 12)
    p, d, c = notes_of_events(xs, 4)
    for i in range(4):  # notes -> events -> notes is the identity (four voices never need a fifth)
        back = torch.from_numpy(events_of_notes(p[i].numpy(), d[i].numpy(), c[i].numpy()))[None]
        p2, d2, c2 = notes_of_events(back, 4)
        assert torch.equal(c2[0], c[i]) and torch.equal(p2[0], p[i]) and torch.equal(d2[0], d[i])


@pytest.mark.parametrize("decoder", ["tree", "flat"])
def test_pianotree_is_causal_over_steps_and_one_importance_sample_is_the_elbo(decoder):
    model, spec = _tree(decoder)
    # two halves of four steps, each starting with an event in every voice, so that a note of the first half ends
    # by step 4 whatever follows (a note's duration is an attribute of its onset)
    first = _chorale_like(3, 4)
    x = torch.cat([first, _chorale_like(3, 4, seed=1)], 1)
    changed = torch.cat([first, _chorale_like(3, 4, seed=5)], 1)
    z = torch.randn(3, 3)
    base = model.step_log_prob(x, z)
    after = model.step_log_prob(changed, z)
    assert not torch.allclose(base[:, 4:], after[:, 4:])
    torch.testing.assert_close(base[:, :4], after[:, :4])  # the past never reads the future
    torch.manual_seed(1)
    log_w = model.log_importance_weights({"x": x}, 1)[0]
    torch.manual_seed(1)
    out = model({"x": x})
    layer = out.latents[0]
    mc = out.likelihood.log_prob(x) + layer.prior.log_prob(layer.z) - layer.posterior.log_prob(layer.z)
    torch.testing.assert_close(log_w, mc, rtol=1e-5, atol=1e-4)
    y = model.generate(z, greedy=True)
    assert y.shape == x.shape and y.dtype == torch.long


def test_the_flat_decoder_scores_each_pitch_as_no_onset_or_a_duration():
    """A step with one note of pitch index 5 and duration 2, the rest silent: the flat decoder's log-probability
    is that class at pitch 5 plus class 0 at every other pitch, read off its logits by hand."""
    import torch.nn.functional as F

    from vaekit.data.chorales import PITCHES

    model, spec = _tree("flat", steps=4)
    x = torch.full((1, 4, 4), NO_EVENT)
    x[0, 0] = NOTE_OFF
    x[0, 0, 0] = 2 + 5
    x[0, 2, 0] = NOTE_OFF
    z = torch.randn(1, 3)
    h, _ = model._time_states(z, torch.zeros(1, 1, model.dec_time.input_size))
    logp = F.log_softmax(model.roll_out(h[:, 0]).view(PITCHES, 5), -1)
    want = logp[:, 0].sum() - logp[5, 0] + logp[5, 2]
    torch.testing.assert_close(model.step_log_prob(x, z)[0, 0], want)


def test_the_tree_decoders_first_step_is_a_distribution_over_note_sets():
    """With at most one note per step the first step's sets can be enumerated (silence, or one of 53 pitches with
    a duration of 1 to 4 steps): their probabilities sum to 1. A decoder that read the step's own notes, or
    scored an <end> after a full step, would not sum to 1."""
    from vaekit.data.chorales import PITCHES

    torch.manual_seed(0)
    spec = DataSpec("note_events", [4, 1], "tokens", EVENTS, features={"steps_per_bar": 4, "bars": 1})
    model = build_model("pianotree", {"latent_dim": 3, "pitch_embed": 4, "duration_embed": 3, "note_hidden": 5,
                                      "time_hidden": 6, "max_notes": 1, "data": to_dict(spec)}).eval()
    windows = [torch.tensor([NOTE_OFF, NO_EVENT, NO_EVENT, NO_EVENT])]
    for p in range(PITCHES):
        for d in range(1, 5):
            w = torch.full((4,), NO_EVENT)
            w[0] = 2 + p
            if d < 4:
                w[d] = NOTE_OFF
            windows.append(w)
    x = torch.stack(windows)[..., None]  # [1 + 53 * 4, 4, 1]
    z = torch.randn(1, 3).expand(len(x), -1)
    with torch.no_grad():
        total = model.step_log_prob(x, z)[:, 0].exp().sum()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_a_folder_of_midi_files_is_note_event_data_split_by_file(tmp_path):
    """Ten 8-bar melodies written as MIDI, one corrupt file and one of drums only: the folder loads as note
    events (2-bar windows every bar: 7 per file), split by file, the two bad files skipped and counted; a lone
    MIDI file is refused as a data set."""
    import pretty_midi

    from vaekit.data.load import load_data, modality_of
    from vaekit.run import DataConfig

    rng = np.random.default_rng(0)
    originals = {}
    for i in range(10):
        pitch = np.repeat(rng.integers(60, 72, size=(32, 1)), 4, axis=0).astype(np.int16)  # 8 bars of quarters
        onset = np.zeros_like(pitch, dtype=bool)
        onset[::4] = True
        originals[f"m{i}"] = encode_window(pitch, onset)
        write_events_midi(tmp_path / "songs" / f"m{i}.mid", originals[f"m{i}"])
    (tmp_path / "songs" / "broken.mid").write_bytes(b"MThd not really")
    drums = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(0, is_drum=True)
    kit.notes.append(pretty_midi.Note(90, 36, 0.0, 0.5))
    drums.instruments.append(kit)
    drums.write(str(tmp_path / "songs" / "drums.mid"))
    folder = str(tmp_path / "songs")
    assert modality_of(folder) == "note_events"
    with pytest.warns(UserWarning, match="2 of 12 MIDI files skipped"):
        data = load_data(DataConfig(name=folder, options={"bars": 2}))
    sizes = {s: len(data.part(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 56, "val": 7, "test": 7}  # 8 / 1 / 1 files x 7 windows
    assert not set(data.train.pieces) & set(data.test.pieces)
    name = data.test.pieces[0].split("/")[-1][:-4]
    first = data.test.events[0]
    assert np.array_equal(first, originals[name][:32])  # the file's first two bars, as written
    with pytest.raises(ConfigError, match="one MIDI file"):
        modality_of(str(tmp_path / "songs" / "m0.mid"))


def test_a_midi_file_whose_time_signature_changes_is_refused_for_bars(tmp_path):
    import pretty_midi

    from vaekit.data.chorales import midi_grid
    from vaekit.errors import DataError

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(90, 60 + k, 0.5 * k, 0.5 * k + 0.5) for k in range(16)]
    pm.instruments.append(inst)
    pm.time_signature_changes += [pretty_midi.TimeSignature(4, 4, 0.0), pretty_midi.TimeSignature(3, 4, 4.0)]
    pm.write(str(tmp_path / "x.mid"))
    with pytest.raises(DataError, match="time signature changes"):
        midi_grid(tmp_path / "x.mid")
    pm.time_signature_changes = [pretty_midi.TimeSignature(3, 4, 0.0)]
    pm.write(str(tmp_path / "y.mid"))
    g = midi_grid(tmp_path / "y.mid")
    assert g.time_signature == "3/4" and g.steps_per_bar == 12 and list(g.bars[:3]) == [0, 12, 24]
