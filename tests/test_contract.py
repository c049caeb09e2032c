"""The modality-general contract, over every registered model of every modality, with batches from one
factory built from the data description (:func:`vaekit.dataspec.random_batch`).

Image models also keep their latent-space contract (tests/test_models.py, tests/test_vq.py); this file
checks what every model must do whatever its data: score a batch with named per-example terms, keep
padding out of every term, survive a save/load round trip, and draw samples in the data's space.
"""

from __future__ import annotations

import pytest
import torch

from test_models import CASES as IMAGE_CASES
from test_vq import VQ_CASES
from vaekit.dataspec import Condition, DataSpec, image_spec, random_batch
from vaekit.config import to_dict
from vaekit.models import build_model
from vaekit.objectives import build_objective
from vaekit.registry import MODELS
from vaekit.run import export_model, load

AUDIO = DataSpec("audio", [1, None], "continuous", None, 8000,
                 conditions=[Condition("speaker", "label", 3, names=["a", "b", "c"]), Condition("y", "label", 10)])
AUDIO_MEL = DataSpec("audio", [1, None], "continuous", None, 8000,
                     conditions=[Condition("speaker", "label", 2), Condition("mel", "sequence", 5, rate=500.0)],
                     features={"mel": {"hop_length": 16}})
SPEECH = DataSpec("audio", [1, None], "continuous", None, 8000,
                  conditions=[Condition("speaker", "label", 2), Condition("y", "label", 10),
                              Condition("mel", "sequence", 8, rate=500.0)],
                  features={"mel": {"hop_length": 16, "n_mels": 8, "n_fft": 128, "win_length": 32}})
TOKENS = DataSpec("tokens", [None], "tokens", 12, special_tokens={"pad": 0, "bos": 1, "eos": 2, "unk": 3},
                  features={"vocabulary": {"tokens": ["<pad>", "<bos>", "<eos>", "<unk>", *"abcdefgh"]}})
ROLLS = DataSpec("piano_roll", [None, 88], "binary", 2, features={"lowest_pitch": 21, "step": "quarter note"})
VIDEO = DataSpec("video", [None, 1, 8, 8], "binary", 2)
EVENTS = DataSpec("note_events", [12, 2], "tokens", 55, features={"steps_per_bar": 4, "bars": 3, "low_pitch": 36})
SEQUENCE_CASES: dict[str, list[dict]] = {
    "inpaintnet": [{"past_bars": 1, "gap_bars": 1, "latent_dim": 3, "embed_dim": 4, "encoder_hidden": 6,
                    "decoder_hidden": 6, "rnn_hidden": 5, "data": to_dict(EVENTS)}],
    "sketchvae": [{"pitch_dim": 3, "rhythm_dim": 2, "embed_dim": 4, "encoder_hidden": 5, "beat_hidden": 6,
                   "beat_dim": 4, "tick_hidden": 6, "steps_per_beat": 2,
                   "data": to_dict(DataSpec("note_events", [4, 1], "tokens", 55,
                                            features={"steps_per_bar": 4, "bars": 1, "low_pitch": 36}))}],
    "pianotree": [{"latent_dim": 3, "pitch_embed": 4, "duration_embed": 3, "note_hidden": 5, "time_hidden": 6,
                   "data": to_dict(DataSpec("note_events", [8, 4], "tokens", 55,
                                            features={"steps_per_bar": 4, "bars": 2, "low_pitch": 36}))},
                  {"decoder": "flat", "latent_dim": 3, "pitch_embed": 4, "duration_embed": 3, "note_hidden": 5,
                   "time_hidden": 6, "data": to_dict(DataSpec("note_events", [8, 4], "tokens", 55,
                                                              features={"steps_per_bar": 4, "bars": 2}))}],
    "musicvae": [
        {"latent_dim": 3, "embed_dim": 4, "encoder_hidden": 6, "decoder_hidden": 6, "conductor_hidden": 5,
         "conductor_dim": 4, "data": to_dict(EVENTS)},
        {"decoder": "flat", "latent_dim": 3, "embed_dim": 4, "encoder_hidden": 6, "decoder_hidden": 6,
         "scheduled_sampling": 0.5, "data": to_dict(EVENTS)},
    ],
    "dmm": [
        {"latent_dim": 4, "transition_hidden": 8, "emission_hidden": 8, "rnn_hidden": 8, "data": to_dict(ROLLS)},
        {"latent_dim": 3, "transition_hidden": 6, "emission_hidden": 6, "rnn_hidden": 6, "rnn": "gru",
         "data": to_dict(ROLLS)},
    ],
    "cwvae": [{"num_levels": 3, "factor": 3, "stoch": 3, "deter": 5, "hidden": 6, "embed": 4, "embed_hidden": 6,
               "channels": [4, 4], "data": to_dict(VIDEO)},
              {"num_levels": 1, "stoch": 3, "deter": 5, "hidden": 6, "embed": 4, "embed_hidden": 6, "channels": [4],
               "likelihood": "normal", "data": to_dict(DataSpec("video", [None, 3, 8, 8], "levels", 256))}],
    "tdvae": [{"latent_dim": 3, "belief_dim": 5, "hidden": 6, "max_jump": 3, "data": to_dict(VIDEO)},
              {"latent_dim": 2, "belief_dim": 4, "hidden": 5, "likelihood": "normal",
               "data": to_dict(DataSpec("vector", [None, 2], "continuous", None))}],
    "vta": [{"abs_stoch": 3, "abs_deter": 5, "obs_stoch": 3, "obs_deter": 6, "hidden": 7, "embed": 4, "channels": [4],
             "max_segment_length": 3, "max_segments": 4, "data": to_dict(DataSpec("video", [None, 3, 8, 8], "levels", 256))}],
    "frame_rnn": [{"hidden": 6, "embed_dim": 4, "channels": [4], "data": to_dict(DataSpec("video", [None, 3, 8, 8], "levels", 256))}],
    "srnn": [{"latent_dim": 3, "deterministic_hidden": 6, "inference_hidden": 5, "mlp_hidden": 4, "data": to_dict(ROLLS)}],
    "text_vae": [
        {"embed_dim": 8, "hidden": 8, "encoder_hidden": 8, "latent_dim": 3, "data": to_dict(TOKENS)},
        {"embed_dim": 8, "hidden": 8, "encoder_hidden": 8, "latent_dim": 3, "rnn": "gru", "z_every_step": False,
         "word_dropout": 0.3, "data": to_dict(TOKENS)},
    ],
    "text_lm": [{"embed_dim": 8, "hidden": 8, "data": to_dict(TOKENS)}],
    "char_rnn": [{"cell": "lstm", "embed_dim": 4, "hidden": 6, "layers": 2, "data": to_dict(TOKENS)},
                 {"cell": "cwrnn", "embed_dim": 4, "hidden": 8, "modules": 4, "data": to_dict(TOKENS)},
                 {"cell": "hmlstm", "embed_dim": 4, "hidden": 6, "layers": 3, "data": to_dict(TOKENS)}],
    "ml_text_vae": [{"embed_dim": 8, "hidden": 8, "encoder_hidden": 8, "sentence_hidden": 6, "latent_dim": 3,
                     "top_latent_dim": 2, "sentences": 2, "max_length": 6, "word_dropout": 0.2,
                     "data": to_dict(TOKENS)}],
    "wavenet": [
        {"layers": 4, "stacks": 2, "residual_channels": 8, "gate_channels": 16, "skip_channels": 8,
         "data": to_dict(AUDIO)},
        {"layers": 3, "stacks": 1, "kernel_size": 3, "residual_channels": 8, "gate_channels": 8, "skip_channels": 8,
         "global_condition": None, "data": to_dict(AUDIO)},
        {"layers": 4, "stacks": 2, "residual_channels": 8, "gate_channels": 16, "skip_channels": 8,
         "local_condition": "mel", "upsample_factors": [4, 4], "data": to_dict(AUDIO_MEL)},
        {"layers": 4, "stacks": 2, "residual_channels": 8, "gate_channels": 16, "skip_channels": 8,
         "output": "logistic_mixture", "mixtures": 3, "quantization": "linear", "bits": 16, "data": to_dict(AUDIO)},
    ],
    "audio_vqvae": [
        {"num_codes": 8, "code_dim": 4, "hidden": 8, "num_down": 4, "decoder_hidden": 8, "decoder_blocks": 2,
         "global_channels": 4, "data": to_dict(AUDIO_MEL)},
        {"num_codes": 8, "code_dim": 4, "hidden": 8, "num_down": 4, "decoder": "wavenet", "upsample_factors": [4, 4],
         "wavenet": {"layers": 2, "stacks": 1, "residual_channels": 4, "gate_channels": 8, "skip_channels": 4},
         "data": to_dict(AUDIO)},
    ],
    "speech_vae": [
        {"latent_dim": 3, "content_dim": 4, "ref_channels": [4, 4], "ref_gru": 8, "prenet": [8], "decoder_gru": 8,
         "data": to_dict(SPEECH)},
    ],
}
MIXTURE_CASES: dict[str, list[dict]] = {
    "mixture": [{"components": 3, "encoder_hidden": [5], "data": to_dict(image_spec((1, 4, 4), 2))},
                {"components": 2, "component": "gaussian", "encoder_hidden": [], "data": to_dict(image_spec((1, 3, 3), None))}],
    "colorizer": [{"segments": 3, "hidden": 4, "dilations": [1, 2], "data": to_dict(image_spec((3, 5, 4), 256))},
                  {"segments": 2, "hidden": 4, "dilations": [1], "colour_context": "local", "context_size": 3,
                   "context_hidden": 4, "data": to_dict(image_spec((3, 4, 4), 256))}],
}
ALL_CASES = {**IMAGE_CASES, **VQ_CASES, **SEQUENCE_CASES, **MIXTURE_CASES}
PARAMS = [(name, i) for name, cases in ALL_CASES.items() for i in range(len(cases))]


def test_every_registered_model_has_a_case_here():
    assert set(MODELS.names()) <= set(ALL_CASES), f"no contract case for {set(MODELS.names()) - set(ALL_CASES)}"


def _make(name: str, i: int):
    torch.manual_seed(0)
    model = build_model(name, ALL_CASES[name][i])
    objective = build_objective(MODELS.get(name).extra.get("objective") or "elbo")
    return model, objective, random_batch(model.config.spec(), 4, length=40)


@pytest.mark.parametrize("name,i", PARAMS)
def test_terms_are_named_finite_and_per_example(name, i):
    model, objective, batch = _make(name, i)
    from vaekit.registry import OBJECTIVES

    if OBJECTIVES.get(MODELS.get(name).extra.get("objective") or "elbo").extra.get("elbo_in_eval_only"):
        model.eval()  # TD-VAE's jumpy bound: the true ELBO is reported outside training (validation, test)
    terms = objective(model, batch, 0)
    for key in ("loss", "elbo", "rate", "distortion"):
        assert terms[key].shape == (4,) and torch.isfinite(terms[key]).all(), key
    assert torch.allclose(terms["elbo"], -(terms["distortion"] + terms["rate"]), atol=1e-3)


STOCHASTIC = {"speech_vae", "text_vae", "ml_text_vae", "dmm", "srnn", "cwvae", "tdvae", "vta"}  # terms depend on a sampled z: their own tests compare padded and alone at one z


@pytest.mark.parametrize("name,i", [p for p in PARAMS if ALL_CASES[p[0]][p[1]].get("data", {}).get("shape", [0])[-1:] == [None]
                                    and p[0] not in STOCHASTIC])
def test_padding_changes_no_term(name, i):
    """A padded batch and its examples on their own give the same per-example terms."""
    model, objective, batch = _make(name, i)
    model.eval()
    torch.manual_seed(1)
    padded = objective(model, batch, 0)
    for b in range(4):
        n = int(batch["lengths"][b])
        alone = {k: (v[b:b + 1, ..., :n] if k == "x" else v[b:b + 1]) for k, v in batch.items()
                 if k not in ("mask", "lengths")}
        if "mel" in alone:
            hop = model.config.spec().features["mel"]["hop_length"]
            alone["mel"] = batch["mel"][b:b + 1, :, :-(-n // hop)]
        torch.manual_seed(1)
        one = objective(model, alone, 0)
        for key in ("elbo", "distortion", "rate"):
            assert torch.allclose(padded[key][b], one[key][0], rtol=1e-5, atol=1e-4), (key, b)


@pytest.mark.parametrize("name,i", PARAMS)
def test_save_load_round_trip_scores_the_same(name, i, tmp_path):
    model, objective, batch = _make(name, i)
    model.eval()
    export_model(tmp_path, name, model)
    again = load(tmp_path)
    assert again.config == model.config
    torch.manual_seed(2)
    a = objective(model, batch, 0)["elbo"]
    torch.manual_seed(2)
    b = objective(again, batch, 0)["elbo"]
    assert torch.equal(a, b)


@pytest.mark.parametrize("name,i", [p for p in PARAMS if p[0] in SEQUENCE_CASES])
def test_samples_lie_in_the_data_space(name, i):
    model, _, batch = _make(name, i)
    model.eval()
    if "codes" in model.capabilities:  # a VQ model samples through its fitted prior (tests of its own)
        pytest.skip("VQ models sample through a fitted code prior")
    spec = model.config.spec()
    if spec.modality == "tokens":  # examples of ids then <pad>s, at most max_length long
        x = model.sample(2, max_length=48, seed=0)
        assert x.dtype == torch.long and x.shape[0] == 2 and 1 <= x.shape[1] <= 48
        assert x.min() >= 0 and x.max() < spec.levels and not (x == spec.special_tokens["bos"]).any()
        sentences = getattr(model.config, "sentences", 1)  # a paragraph model writes several
        if "stream_state" in model.capabilities:  # a character stream: <eos> ends a line, not the sample
            sentences = x.shape[1]
        for row in x:
            real = row != spec.special_tokens["pad"]
            assert real[0] and (real[1:] <= real[:-1]).all()  # the <pad>s are a suffix
            ends = (row == spec.special_tokens["eos"]).nonzero()
            assert len(ends) <= sentences
            if len(ends) == sentences:
                assert not real[int(ends[-1]) + 1:].any()  # nothing after the last sentence's <eos>
        assert torch.equal(model.sample(2, max_length=48, seed=0), x)  # a seed fixes the draws
        return
    if spec.modality == "note_events":  # events of the data's shape and classes, fixed by a seed
        x = model.sample(2, seed=0)
        assert x.dtype == torch.long and x.shape == (2, *spec.shape) and 0 <= x.min() and x.max() < spec.levels
        assert torch.equal(model.sample(2, seed=0), x)
        return
    if spec.modality == "piano_roll":  # binary rolls of the asked length
        x = model.sample(2, length=48, seed=0)
        assert x.shape == (2, 48, spec.shape[1]) and set(x.unique().tolist()) <= {0.0, 1.0}
        return
    if spec.modality in ("video", "vector"):  # sequences of the asked length (frames in [0, 1]), fixed by a seed
        x = model.sample(2, length=7, seed=0)
        assert x.shape == (2, 7, *spec.shape[1:]) and torch.isfinite(x).all()
        if spec.modality == "video":
            assert 0 <= x.min() and x.max() <= 1
        assert torch.equal(model.sample(2, length=7, seed=0), x)
        return
    cond = {k: batch[k][:2] for k in model.cond_keys}
    if "mel" in cond:
        cond["mel"] = cond["mel"][:, :, :3]  # 3 frames x hop 16 = 48 samples
    x = model.sample(2, length=48, **cond)
    assert x.shape == (2, 1, 48) and x.min() >= -1 and x.max() <= 1


def test_a_model_without_data_is_an_error():
    from vaekit.errors import ConfigError

    with pytest.raises(ConfigError, match="no data description"):
        build_model("vae", {"hidden": [8], "latent_dim": 2})
    with pytest.raises(ConfigError, match="no data description"):
        build_model("wavenet", {"layers": 2, "stacks": 1})
