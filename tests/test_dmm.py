"""The sequential VAEs of piano rolls, the Deep Markov Model (Krishnan et al. 2017) and the SRNN (Fraccaro et al.
2016), and their data: the backward RNN reads only the future (the SRNN's forward RNN only the past), padding
changes no term at a fixed noise, one importance sample is the single-sample ELBO, the KL is the closed form
given the sampled past, samples are binary rolls, and the .mat and MIDI readers refuse bad files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from conftest import needs_shared
from vaekit.config import ConfigError, to_dict
from vaekit.data.music import read_mat
from vaekit.data.resolve import DataCorruptError
from vaekit.dataspec import DataSpec, random_batch
from vaekit.errors import DataError
from vaekit.models import build_model
from vaekit.models.dmm import reverse_within
from vaekit.objectives import ELBO

ROLLS = DataSpec("piano_roll", [None, 88], "binary", 2)
SMALL = {"latent_dim": 4, "transition_hidden": 8, "emission_hidden": 8, "rnn_hidden": 12, "data": to_dict(ROLLS)}
SMALL_SRNN = {"latent_dim": 4, "deterministic_hidden": 10, "inference_hidden": 12, "mlp_hidden": 8,
              "data": to_dict(ROLLS)}
MODELS = ("dmm", "srnn")


def _model(name="dmm", **kw):
    torch.manual_seed(0)
    return build_model(name, {**(SMALL if name == "dmm" else SMALL_SRNN), **kw}).eval()


def test_reverse_within_reverses_each_rolls_real_steps_only():
    x = torch.arange(10.0).view(2, 5, 1)
    out = reverse_within(x, torch.tensor([5, 3]))
    assert out[..., 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    assert torch.equal(reverse_within(out, torch.tensor([5, 3])), x)  # an involution


@pytest.mark.parametrize("rnn", ["rnn", "gru", "lstm"])
def test_the_backward_rnn_reads_the_future_and_never_the_padding(rnn):
    model = _model(rnn=rnn)
    batch = random_batch(ROLLS, 3, length=7)
    lengths = batch["lengths"]
    h = model.backward_states(batch["x"], lengths)
    changed = batch["x"].clone()
    changed[:, :3] = 1 - changed[:, :3]  # the past of step 3
    h2 = model.backward_states(changed, lengths)
    assert torch.allclose(h[:, 3:], h2[:, 3:]) and not torch.allclose(h[:, :3], h2[:, :3])
    n = int(lengths[1])
    alone = model.backward_states(batch["x"][1:2, :n], lengths[1:2])
    assert torch.allclose(h[1:2, :n], alone, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_padding_changes_no_term_at_a_fixed_noise(name):
    model = _model(name)
    batch = random_batch(ROLLS, 4, length=9)
    assert int(batch["lengths"].min()) < 9
    eps = torch.randn(4, 9, 4)
    out = model(batch, eps=eps)
    lik = out.likelihood.log_prob(batch["x"])
    kl = out.latents[0].kl_by_dim().sum(-1)
    for b in range(4):
        n = int(batch["lengths"][b])
        one = model({"x": batch["x"][b:b + 1, :n]}, eps=eps[b:b + 1, :n])
        assert torch.allclose(lik[b], one.likelihood.log_prob(batch["x"][b:b + 1, :n])[0], atol=1e-4)
        assert torch.allclose(kl[b], one.latents[0].kl_by_dim().sum(-1)[0], atol=1e-4)
    terms = ELBO()(model, batch, 0)  # the objective's per-example terms sum the real steps
    assert terms["elbo"].shape == (4,) and torch.isfinite(terms["elbo"]).all()


def test_the_kl_per_step_is_the_closed_form_given_the_sampled_past():
    model = _model()
    batch = random_batch(ROLLS, 2, length=6)
    torch.manual_seed(1)
    layer = model(batch).latents[0]
    z = layer.z
    q = layer.posterior
    prev = torch.cat([model.z_0.expand(2, 1, -1), z[:, :-1]], 1)
    loc, scale = model.transition(prev)  # p(z_t | z_{t-1}) at the sampled path
    want = kl_divergence(q, Normal(loc, scale)) * batch["mask"][..., None]
    assert torch.allclose(layer.kl_per_dim(), want, atol=1e-5)
    assert (layer.kl_per_dim()[~batch["mask"]] == 0).all()


def test_an_infinite_kl_at_a_padded_step_stays_out_of_every_term():
    """Padded steps are masked with where, not a product (inf * 0 would be nan)."""
    from vaekit.models.base import LatentLayer

    loc = torch.zeros(2, 3, 2)
    q = Normal(loc, torch.ones_like(loc))
    p = Normal(loc, torch.ones_like(loc).index_put((torch.tensor([1]), torch.tensor([2])), torch.tensor(0.0)),
               validate_args=False)  # a zero scale at the padded step: KL inf there
    mask = torch.tensor([[True, True, True], [True, True, False]])
    layer = LatentLayer(q, p, loc, steps=1, mask=mask)
    assert torch.isfinite(layer.kl_by_dim()).all() and (layer.kl_per_dim()[1, 2] == 0).all()


@pytest.mark.parametrize("name", MODELS)
def test_one_importance_sample_is_the_single_sample_elbo(name):
    """log w = log p(x|z) + sum_t [log p(z_t|z_{t-1}) - log q(z_t|z_{t-1}, x)] at the same z."""
    model = _model(name)
    batch = random_batch(ROLLS, 3, length=8)
    torch.manual_seed(5)
    log_w = model.log_importance_weights(batch, 1)[0]
    torch.manual_seed(5)  # the same draws: forward samples eps [B, T, D] exactly as k = 1 does
    out = model(batch)
    layer = out.latents[0]
    mc_kl = ((layer.posterior.log_prob(layer.z) - layer.prior.log_prob(layer.z)).sum(-1) * batch["mask"]).sum(1)
    elbo_1 = out.likelihood.log_prob(batch["x"]) - mc_kl
    assert torch.allclose(log_w, elbo_1, atol=1e-4)
    # and the chunked k-sample path gives k independent weights of the same distribution's mean
    many = model.log_importance_weights(batch, 64)
    assert many.shape == (64, 3) and many.std(0).min() > 0
    nll = -(torch.logsumexp(many, 0) - math.log(64))
    assert (nll <= -many.mean(0) + 1e-4).all()  # Jensen: the IS bound lies above the mean of the weights


def test_an_untrained_dmm_scores_about_88_coin_flips_per_step():
    """Known answer at initialisation: the emitter's logits are near 0, so log p(x_t | z_t) ~ -88 log 2."""
    model = _model()
    with torch.no_grad():
        model.emitter[-1].weight.zero_()
        model.emitter[-1].bias.zero_()
    batch = random_batch(ROLLS, 3, length=5)
    out = model(batch)
    assert torch.allclose(out.likelihood.log_prob(batch["x"]), -88 * math.log(2) * batch["mask"].sum(1), atol=1e-3)


@pytest.mark.parametrize("name", MODELS)
def test_samples_are_binary_rolls_and_a_seed_fixes_them(name):
    model = _model(name)
    x = model.sample(3, length=11, seed=4)
    assert x.shape == (3, 11, 88) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(model.sample(3, length=11, seed=4), x)
    p = model.sample(2, length=5, use_mean=True, seed=0)
    assert p.min() >= 0 and p.max() <= 1 and not set(p.unique().tolist()) <= {0.0, 1.0}
    assert model.sample(1, seed=0).shape[1] == 64  # model.sample_length


def test_the_srnns_deterministic_rnn_reads_only_the_past_and_its_inference_the_future():
    model = _model("srnn")
    batch = random_batch(ROLLS, 2, length=8)
    x = batch["x"]
    d = model.deterministic_states(x)
    later = x.clone()
    later[:, 4:] = 1 - later[:, 4:]
    d2 = model.deterministic_states(later)
    assert torch.allclose(d[:, :5], d2[:, :5]) and not torch.allclose(d[:, 5:], d2[:, 5:])  # d_t reads x_<t
    eps = torch.randn(2, 8, 4)
    q1 = model(batch, eps=eps).latents[0].posterior.loc
    q2 = model(dict(batch, x=later), eps=eps).latents[0].posterior.loc
    assert not torch.allclose(q1[:, :4], q2[:, :4])  # q(z_t | .) smooths: it reads the future


def test_the_srnns_posterior_mean_is_a_residual_on_its_priors():
    model = _model("srnn")
    with torch.no_grad():
        model.posterior_net[-1].weight.zero_()
        model.posterior_net[-1].bias.zero_()
    layer = model(random_batch(ROLLS, 2, length=5)).latents[0]
    assert torch.allclose(layer.posterior.loc, layer.prior.loc)  # Resq with a zero residual


def test_the_dmm_refuses_data_that_is_not_piano_rolls():
    with pytest.raises(ConfigError, match="piano rolls"):
        build_model("dmm", {**SMALL, "data": to_dict(DataSpec("audio", [1, None], "continuous", None, 8000))})
    with pytest.raises(ConfigError, match="model.rnn"):
        build_model("dmm", {**SMALL, "rnn": "transformer"})
    with pytest.raises(ConfigError, match="unknown"):
        build_model("dmm", {**SMALL, "z_dim": 3})


# -- the .mat reader ---------------------------------------------------------------------------------------
def _write_mat(path, **splits):
    from scipy.io import savemat

    cells = {}
    for key, rolls in splits.items():
        c = np.empty((1, len(rolls)), dtype=object)
        for i, r in enumerate(rolls):
            c[0, i] = r
        cells[key] = c
    savemat(path, cells)
    return path


def _roll(t, seed=0):
    r = np.zeros((t, 88), np.uint8)
    rng = np.random.default_rng(seed)
    for row in r:
        row[rng.choice(88, 4, replace=False)] = 1
    return r


def test_a_mat_file_of_rolls_loads_as_a_data_set(tmp_path):
    from vaekit.data import load_data
    from vaekit.run import DataConfig

    rolls = {"traindata": [_roll(5, 0), _roll(9, 1)], "validdata": [_roll(3, 2)], "testdata": [_roll(4, 3)]}
    path = _write_mat(tmp_path / "mine.mat", **rolls)
    data = load_data(DataConfig(name=str(path)))
    assert data.spec.modality == "piano_roll" and data.spec.shape == [None, 88]
    assert [len(data.train), len(data.val), len(data.test)] == [2, 1, 1]
    batch = next(data.batches(data.train, 2))
    assert batch["x"].shape == (2, 9, 88) and batch["lengths"].tolist() == [5, 9]
    assert np.array_equal(batch["x"][0, :5].numpy(), rolls["traindata"][0]) and not batch["x"][0, 5:].any()
    cut = read_mat(path, max_length=4)
    assert cut["train"].lengths.tolist() == [4, 4] and cut["train"].truncated == 2


def test_bad_roll_files_are_refused_clearly(tmp_path):
    good = {"validdata": [_roll(3)], "testdata": [_roll(3)]}
    with pytest.raises(DataCorruptError, match="lacks traindata"):
        read_mat(_write_mat(tmp_path / "a.mat", **good))
    with pytest.raises(DataCorruptError, match=r"shape \(5, 87\)"):
        read_mat(_write_mat(tmp_path / "b.mat", traindata=[np.zeros((5, 87), np.uint8)], **good))
    with pytest.raises(DataCorruptError, match="other than 0 and 1"):
        read_mat(_write_mat(tmp_path / "c.mat", traindata=[np.full((5, 88), 3, np.uint8)], **good))
    (tmp_path / "d.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataCorruptError, match="not a readable MATLAB"):
        read_mat(tmp_path / "d.mat")
    import pickle

    evil = tmp_path / "rolls.pickle"
    evil.write_bytes(pickle.dumps({"train": [[60, 64, 67]]}))
    with pytest.raises(DataError, match="never unpickles"):
        read_mat(evil)
    from vaekit.data import load_data
    from vaekit.run import DataConfig

    with pytest.raises(DataError, match="never unpickles"):
        load_data(DataConfig(name=str(evil)))


# -- JSB, MIDI in and out, the writer ------------------------------------------------------------------------
@needs_shared
def test_jsb_loads_with_its_split_and_pitches():
    from vaekit.data import load_data
    from vaekit.run import DataConfig

    data = load_data(DataConfig(name="jsb"))
    assert [len(data.train), len(data.val), len(data.test)] == [229, 76, 77]
    assert data.describe()["steps"] == {"train": 13807, "val": 4602, "test": 4725}
    first = data.train.roll(0)
    # the first chords of the pickle's first training chorale, read with pickletools (opcodes, nothing run)
    assert [list(np.flatnonzero(first[i]) + 21) for i in range(3)] == [[60, 72, 79, 88], [72, 79, 88],
                                                                       [67, 70, 76, 84]]


def test_a_roll_survives_midi_and_back(tmp_path):
    from vaekit.data.music import midi_to_roll, write_midi

    roll = np.zeros((12, 88), np.uint8)
    roll[0:4, 39] = 1  # middle C held four steps
    roll[4:6, 39] = 1  # ... and its run continues: one note of six steps
    roll[2, 43] = roll[3, 46] = 1
    roll[7:12, 0] = roll[11, 87] = 1  # the lowest and highest keys, the last step
    back = midi_to_roll(write_midi(tmp_path / "r.mid", roll))
    assert np.array_equal(back, roll)
    import pretty_midi

    notes = sorted((n.pitch, n.start, n.end) for n in pretty_midi.PrettyMIDI(str(tmp_path / "r.mid")).instruments[0].notes)
    assert (60, 0.0, 3.0) in notes and len(notes) == 5  # six steps of 0.5 s: one held note


def test_midi_files_a_roll_cannot_hold_are_refused(tmp_path):
    import pretty_midi

    from vaekit.data.music import midi_to_roll

    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(0))
    empty.write(str(tmp_path / "empty.mid"))
    with pytest.raises(DataError, match="no pitched notes"):
        midi_to_roll(tmp_path / "empty.mid")
    drums = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(0, is_drum=True)
    kit.notes.append(pretty_midi.Note(100, 36, 0.0, 0.5))
    drums.instruments.append(kit)
    drums.write(str(tmp_path / "drums.mid"))
    with pytest.raises(DataError, match="only 1 drum notes"):
        midi_to_roll(tmp_path / "drums.mid")
    (tmp_path / "bad.mid").write_bytes(b"MThd garbage")
    with pytest.raises(DataCorruptError, match="not a readable MIDI"):
        midi_to_roll(tmp_path / "bad.mid")
    # a time-signature change keeps one step per beat: 2 bars of 4/4 then 2 of 3/4 at 120 bpm
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    pm.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0.0), pretty_midi.TimeSignature(3, 4, 4.0)]
    piano = pretty_midi.Instrument(0)
    piano.notes += [pretty_midi.Note(90, 60, 0.0, 4.0), pretty_midi.Note(90, 64, 4.0, 7.0)]
    pm.instruments.append(piano)
    pm.write(str(tmp_path / "meter.mid"))
    roll = midi_to_roll(tmp_path / "meter.mid")
    assert roll.shape == (14, 88) and roll[:8, 39].all() and roll[8:, 43].all() and roll.sum() == 14


def test_the_piano_roll_writer_writes_midi_wav_and_a_figure(tmp_path):
    import soundfile as sf

    from vaekit.writers import write_piano_rolls

    model = _model()
    paths = write_piano_rolls(lambda b: model.sample(b, length=8, seed=1), 3, tmp_path / "s.png", spec=ROLLS,
                              title="t")
    assert sorted(p.name for p in paths) == ["s.png", "s_0.mid", "s_0.wav", "s_1.mid", "s_1.wav", "s_2.mid", "s_2.wav"]
    from vaekit.data.music import midi_to_roll

    again = model.sample(3, length=8, seed=1).numpy()
    got = midi_to_roll(tmp_path / "s_0.mid")
    assert np.array_equal(got, again[0][:len(got)]) and not again[0][len(got):].any()  # trailing silence is not kept
    assert sf.info(str(tmp_path / "s_1.wav")).samplerate == 16000
