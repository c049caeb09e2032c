"""The WaveNet prior over variable-length code sequences (phase II of the audio VQ-VAE): causality, the
end-of-sequence symbol and masking, cached sampling against a naive loop, conditions, save/load through
``load_code_prior``, and ``fit_prior``'s sequence path (on a stand-in VQ model and on the audio VQ-VAE)."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from vaekit.config import ConfigError, from_dict
from vaekit.errors import RunError
from vaekit.models.base import BatchError
from vaekit.models.code_prior import CODE_PRIORS, CodePrior, CodePriorConfig, load_code_prior
from vaekit.models.code_sequence_prior import CodeSequencePrior, CodeSequencePriorConfig
from vaekit.models.vqvae import VQModel
from vaekit.nn.wavenet import sample_logits
from vaekit.quantize import VectorQuantizer
from vaekit.run import OptimConfig, export_model
from vaekit.training.prior import (PRIOR_FITS, CodeSequenceNLL, PriorFitConfig, code_sequence_dataset, fit_prior,
                                   pad_code_sequences)

K = 6  # codes of the synthetic sequences
HOP = 4  # samples per code frame of the stand-in model


def tiny(**kw) -> CodeSequencePriorConfig:
    base = {"layers": 4, "stacks": 1, "residual_channels": 16, "gate_channels": 16, "skip_channels": 16,
            "condition_channels": 4}
    return CodeSequencePriorConfig(**{**base, **kw})


def conditioned(**kw) -> CodeSequencePrior:
    return CodeSequencePrior(tiny(**kw), K, {"speaker": 3, "y": 4})


# -- the likelihood ---------------------------------------------------------------------------------
def test_log_prob_of_a_step_does_not_depend_on_later_codes():
    prior = conditioned().eval()
    codes = torch.randint(0, K, (3, 12))
    labels = {"speaker": torch.tensor([0, 1, 2]), "y": torch.tensor([3, 0, 1])}
    steps = prior.log_prob_steps(codes, **labels)  # [3, 13]
    later = codes.clone()
    later[:, 6:] = (later[:, 6:] + 1) % K
    changed = prior.log_prob_steps(later, **labels)
    assert torch.equal(steps[:, :6], changed[:, :6])  # step t predicts c_t from c_<t only
    assert not torch.allclose(steps[:, 7:], changed[:, 7:])  # ... and does read them
    assert torch.allclose(prior.log_prob(codes, **labels), steps.sum(1))
    # the first code is predicted too (from the start symbol and the labels): another speaker changes it
    other = prior.log_prob_steps(codes, speaker=torch.tensor([1, 2, 0]), y=labels["y"])
    assert not torch.allclose(other[:, 0], steps[:, 0])


def test_padding_changes_nothing_and_the_end_symbol_is_scored_once():
    prior = conditioned().eval()
    lengths = [7, 3, 0, 5]
    rows = [torch.randint(0, K, (n,)) for n in lengths]
    labels = {"speaker": torch.tensor([0, 1, 2, 0]), "y": torch.tensor([1, 2, 3, 0])}
    alone = torch.stack([prior.log_prob(r[None], speaker=labels["speaker"][i:i + 1], y=labels["y"][i:i + 1])[0]
                         for i, r in enumerate(rows)])
    width = 10
    codes = torch.full((4, width), 999)  # padding that is no code at all: never read
    for i, r in enumerate(rows):
        codes[i, :len(r)] = r
    mask = torch.arange(width)[None] < torch.tensor(lengths)[:, None]
    assert torch.allclose(prior.log_prob(codes, mask, **labels), alone, atol=1e-5)
    steps = prior.log_prob_steps(codes, mask, **labels)  # [4, 11]
    for i, n in enumerate(lengths):  # L codes + EOS are scored, nothing after
        assert (steps[i, :n + 1] < 0).all() and (steps[i, n + 1:] == 0).all()
    # the EOS term is part of log p: a sequence is not the prefix of a longer one
    eos = prior.logits(codes, mask, **labels).log_softmax(1)[0, K, lengths[0]]
    assert torch.isclose(steps[0, lengths[0]], eos)
    # the objective: nats per sequence, and bits over the L codes + 1 EOS
    terms = CodeSequenceNLL()(prior, {"codes": codes.masked_fill(~mask, 0), "mask": mask, **labels}, 0)
    assert torch.allclose(terms["nll_nats"], -alone, atol=1e-5)
    assert torch.allclose(terms["bits_per_code"], -alone / (math.log(2) * (torch.tensor(lengths) + 1)), atol=1e-5)


def test_a_fitted_prior_learns_the_lengths_of_fixed_patterns():
    """y=0: always the 5-code pattern, y=1: always its 8-code continuation, y=2: either, half the time.
    The two share their first 5 codes, so only the EOS (and at y=2 nothing) tells them apart."""
    torch.manual_seed(0)
    short, long = [1, 2, 3, 0, 1], [1, 2, 3, 0, 1, 2, 3, 0]
    codes = torch.zeros(4, 8, dtype=torch.long)
    codes[0, :5], codes[1], codes[2, :5], codes[3] = torch.tensor(short), torch.tensor(long), \
        torch.tensor(short), torch.tensor(long)
    mask = torch.arange(8)[None] < torch.tensor([5, 8, 5, 8])[:, None]
    y = torch.tensor([0, 1, 2, 2])
    prior = CodeSequencePrior(tiny(conditions=["y"]), 4, {"y": 3})
    opt = torch.optim.Adam(prior.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        (-prior.log_prob(codes, mask, y=y).mean()).backward()
        opt.step()
    prior.eval()
    p = prior.log_prob(codes, mask, y=y).exp()
    assert p[0] > 0.95 and p[1] > 0.95  # a length that the label fixes
    assert abs(p[2] - 0.5) < 0.1 and abs(p[3] - 0.5) < 0.1  # two lengths, equally likely
    drawn, drawn_mask = prior.sample(64, 12, y=2, generator=torch.Generator().manual_seed(0))
    lengths = drawn_mask.sum(1)
    assert set(lengths.tolist()) == {5, 8}
    for row, n in zip(drawn, lengths.tolist()):
        assert row[:n].tolist() == (short if n == 5 else long) and (row[n:] == 0).all()
    drawn, drawn_mask = prior.sample(16, 12, y=torch.full((16,), 0), generator=torch.Generator().manual_seed(1))
    assert (drawn_mask.sum(1) == 5).all()


# -- sampling -----------------------------------------------------------------------------------------
def naive_sample(prior: CodeSequencePrior, n: int, max_length: int, uniforms: torch.Tensor, temperature: float,
                 **labels) -> tuple[torch.Tensor, torch.Tensor]:
    """One teacher-forced pass over the prefix per step (no cache), drawing with the same uniforms."""
    drawn = torch.zeros(n, 0, dtype=torch.long)
    alive = torch.ones(n, 0, dtype=torch.bool)
    for t in range(max_length):
        logits = prior.logits(drawn.masked_fill(~alive, 0), alive, **labels)[:, :, t]  # [n, K + 1]
        new = sample_logits(logits, uniforms[:, t], temperature)
        still = (alive[:, -1] if t else torch.ones(n, dtype=torch.bool)) & (new != prior.eos)
        drawn = torch.cat([drawn, new[:, None]], 1)
        alive = torch.cat([alive, still[:, None]], 1)
    return drawn.masked_fill(~alive, 0), alive


def test_cached_sampling_draws_what_the_teacher_forced_network_gives():
    torch.manual_seed(3)
    prior = conditioned().double().eval()
    with torch.no_grad():  # larger weights than at initialisation: every input and label moves the draws
        for p in prior.parameters():
            p.normal_(0.0, 0.5)
    n, max_length, temperature = 12, 15, 0.8
    labels = {"speaker": torch.arange(n) % 3, "y": torch.arange(n) % 4}
    codes, mask = prior.sample(n, max_length, temperature=temperature, generator=torch.Generator().manual_seed(7),
                               **labels)
    uniforms = torch.rand(n, max_length, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    expected_codes, expected_mask = naive_sample(prior, n, max_length, uniforms, temperature, **labels)
    assert torch.equal(mask, expected_mask) and torch.equal(codes, expected_codes)
    lengths = mask.sum(1)
    assert len(set(lengths.tolist())) > 1  # the draws end at different steps: the EOS handling is exercised
    assert mask.dtype == torch.bool and codes.dtype == torch.long and codes.shape == (n, max_length)
    assert ((codes == 0) | mask).all() and (codes < K).all()
    # temperature 0 is the most likely symbol at every step, whatever the uniforms
    greedy = [prior.sample(n, max_length, temperature=0, generator=torch.Generator().manual_seed(s), **labels)
              for s in (0, 1)]
    assert torch.equal(greedy[0][0], greedy[1][0]) and torch.equal(greedy[0][1], greedy[1][1])


# -- conditions and errors ------------------------------------------------------------------------------
def test_conditions_are_required_and_others_refused():
    prior = conditioned().eval()
    codes, s, y = torch.randint(0, K, (2, 4)), torch.tensor([0, 1]), torch.tensor([2, 3])
    with pytest.raises(BatchError, match=r"pass \['y'\]"):
        prior.log_prob(codes, speaker=s)
    with pytest.raises(BatchError, match=r"takes no \['mel'\]"):
        prior.log_prob(codes, speaker=s, y=y, mel=torch.zeros(2, 3, 4))
    with pytest.raises(BatchError, match=r"pass \['speaker', 'y'\]"):
        prior.sample(2, 5)
    with pytest.raises(BatchError, match=r"speaker must lie in \[0, 3\)"):
        prior.log_prob(codes, speaker=torch.tensor([0, 3]), y=y)
    with pytest.raises(BatchError, match="int64 of shape"):
        prior.log_prob(codes, speaker=s.float(), y=y)
    with pytest.raises(BatchError, match="int64 of shape"):
        prior.sample(3, 5, speaker=s, y=y)
    unconditional = CodeSequencePrior(tiny(conditions=[]), K)
    with pytest.raises(BatchError, match="unconditional"):
        unconditional.log_prob(codes, y=y)
    assert unconditional.log_prob(codes).shape == (2,)
    assert unconditional.sample(2, 5)[0].shape == (2, 5)
    # codes and masks
    with pytest.raises(BatchError, match="prefix"):
        prior.log_prob(codes, torch.tensor([[True, False, True, True]] * 2), speaker=s, y=y)
    with pytest.raises(BatchError, match=r"codes must lie in \[0, 6\)"):
        prior.log_prob(codes + K, speaker=s, y=y)
    with pytest.raises(BatchError, match="int64"):
        prior.log_prob(codes.float(), speaker=s, y=y)
    with pytest.raises(ValueError, match="max_length"):
        prior.sample(2, 0, speaker=s, y=y)
    # building: one size per condition
    with pytest.raises(ConfigError, match="one size each"):
        CodeSequencePrior(tiny(), K, {"speaker": 3})


def test_each_label_has_its_own_embedding_and_they_add():
    """h(speaker, y) = E_speaker + E_y (module docstring): 3 + 4 vectors, not 3 x 4."""
    prior = conditioned()
    emb = prior.net.global_embedding
    assert sum(p.numel() for p in emb.parameters()) == (3 + 4) * prior.config.condition_channels

    def h(s: int, y: int) -> torch.Tensor:
        return emb(emb.pack([torch.tensor([s]), torch.tensor([y])]))[0]

    assert torch.allclose(h(0, 1) + h(2, 3), h(0, 3) + h(2, 1), atol=1e-6)
    assert not torch.allclose(h(0, 1), h(2, 1)) and not torch.allclose(h(0, 1), h(0, 3))


def test_configs_refuse_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(CodeSequencePriorConfig, {"layer": 3})
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(PriorFitConfig, {"sequence_prior": {"channels": 8}})
    with pytest.raises(ConfigError, match="multiple of"):
        from_dict(CodeSequencePriorConfig, {"layers": 5, "stacks": 2})
    with pytest.raises(ConfigError, match="twice"):
        from_dict(CodeSequencePriorConfig, {"conditions": ["y", "y"]})
    cfg = from_dict(PriorFitConfig, {"sequence_prior": {"layers": 4, "stacks": 1, "conditions": []}})
    assert cfg.sequence_prior.conditions == [] and cfg.sequence_prior.receptive_field == 16
    assert cfg.prior == CodePriorConfig()  # the image section keeps its defaults


def test_every_prior_kind_can_be_loaded_and_fitted():
    assert CODE_PRIORS.names() == PRIOR_FITS.names() == ["pixelcnn", "sequence"]
    assert VQModel.code_prior_kind == "pixelcnn"
    for entry in CODE_PRIORS:
        assert entry.obj.kind == entry.name


# -- save / load ---------------------------------------------------------------------------------------
class RuleCodes(VQModel):
    """A stand-in audio VQ model: the code of a frame of ``HOP`` samples is its mean value times ``K``, rounded."""

    code_prior_kind = "sequence"

    def __init__(self, num_codes: int = K):
        super().__init__()
        self.hop = HOP
        self.quantizers = nn.ModuleList([VectorQuantizer(num_codes, 2)])

    @torch.no_grad()
    def codes(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        frames = x.shape[-1] // self.hop
        means = x[:, 0, :frames * self.hop].reshape(x.shape[0], frames, self.hop).mean(-1)  # [B, T']
        return [(means * self.quantizers[0].num_codes).round().long().clamp(0, self.quantizers[0].num_codes - 1)]

    def code_mask(self, mask: torch.Tensor) -> torch.Tensor:
        frames = mask.shape[-1] // self.hop
        return mask[:, :frames * self.hop].reshape(mask.shape[0], frames, self.hop).all(-1)


class ImageCodes(RuleCodes):
    code_prior_kind = "pixelcnn"
    code_shapes: ClassVar[list[tuple[int, int]]] = [(2, 2)]


def test_save_load_round_trip_through_load_code_prior(tmp_path):
    prior = conditioned().eval()
    export_model(tmp_path / "prior", "code_prior", prior)
    (tmp_path / "model.safetensors").write_bytes(b"weights of the VQ model")
    meta = json.loads((tmp_path / "prior" / "model.json").read_text())
    assert meta["kind"] == "sequence" and meta["condition_sizes"] == {"speaker": 3, "y": 4}
    loaded = load_code_prior(tmp_path, model=RuleCodes())
    assert isinstance(loaded, CodeSequencePrior) and not loaded.training
    codes, labels = torch.randint(0, K, (2, 9)), {"speaker": torch.tensor([2, 0]), "y": torch.tensor([1, 3])}
    assert torch.equal(loaded.log_prob(codes, **labels), prior.log_prob(codes, **labels))
    assert loaded.conditions == ["speaker", "y"] and loaded.condition_sizes == prior.condition_sizes
    with pytest.raises(RunError, match="needs a 'pixelcnn' one"):
        load_code_prior(tmp_path, model=ImageCodes())
    with pytest.raises(RunError, match="one sequence of 6 codes"):
        load_code_prior(tmp_path, model=RuleCodes(num_codes=8))
    (tmp_path / "prior" / "model.json").write_text(json.dumps({**meta, "kind": "transformer"}))
    with pytest.raises(RunError, match="corrupt prior.*unknown code prior kind 'transformer'"):
        load_code_prior(tmp_path)


def test_priors_saved_before_the_kinds_load_as_pixelcnn(tmp_path):
    prior = CodePrior(CodePriorConfig(channels=8, num_layers=2, out_hidden=8), [K], [(2, 2)])
    export_model(tmp_path / "prior", "code_prior", prior)
    meta_path = tmp_path / "prior" / "model.json"
    meta = json.loads(meta_path.read_text())
    assert meta["kind"] == "pixelcnn" and meta["shapes"] == [[2, 2]] and meta["num_codes"] == [K]
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "kind"}))
    loaded = load_code_prior(tmp_path, model=ImageCodes())
    assert isinstance(loaded, CodePrior)
    with pytest.raises(RunError, match="needs a 'sequence' one"):
        load_code_prior(tmp_path, model=RuleCodes())


# -- fit_prior's sequence path -------------------------------------------------------------------------
def pattern(speaker: int, digit: int) -> list[int]:
    """The codes of an utterance: its length is the digit's (5 or 8 frames), its values start at the speaker."""
    return [(speaker + f) % K for f in range(5 if digit == 0 else 8)]


def synthetic_audio(per_split: int = 24, sample_rate: int = 8000):
    """Audio whose frames are constant at ``code / K`` (so RuleCodes recovers the pattern), whole utterances
    of two lengths, 2 speakers x 2 digits."""
    from vaekit.data.audio import AudioData, AudioSplit
    from vaekit.data.load import AudioOptions, AudioSet

    def split(n: int) -> AudioSplit:
        speaker, digit = np.arange(n) % 2, (np.arange(n) // 2) % 2
        waves = [np.repeat(np.array(pattern(s, d), dtype=np.float32) / K, HOP) for s, d in zip(speaker, digit)]
        offsets = np.concatenate([[0], np.cumsum([len(w) for w in waves])]).astype(np.int64)
        return AudioSplit(np.concatenate(waves), offsets, speaker.astype(np.int64), digit.astype(np.int64),
                          [f"{i}.wav" for i in range(n)], sample_rate)

    audio = AudioData("synthetic", split(per_split), split(8), split(8), sample_rate, ["a", "b"], 2, "memory",
                      "synthetic patterns")
    return AudioSet(audio, AudioOptions(crop=None))


def test_fit_prior_fits_a_sequence_prior_to_the_codes_of_whole_utterances(tmp_path, monkeypatch):
    data = synthetic_audio()
    model = RuleCodes()
    sequences = code_sequence_dataset(model, data, "train", conditions=["speaker", "y"], batch_size=5)
    assert len(sequences) == 24
    for i in range(len(sequences)):
        item = sequences[i]
        assert item["codes"].tolist() == pattern(int(item["speaker"]), int(item["y"]))
    batch = pad_code_sequences([sequences[i] for i in range(4)])
    assert batch["codes"].shape == (4, 8) and batch["mask"].sum(1).tolist() == [5, 5, 8, 8]
    assert batch["speaker"].tolist() == [0, 1, 0, 1] and batch["y"].tolist() == [0, 0, 1, 1]

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"the stand-in's weights")  # what the prior's fingerprint reads
    monkeypatch.setattr("vaekit.training.prior.load", lambda run_dir: RuleCodes())
    cfg = PriorFitConfig(sequence_prior=tiny(), max_epochs=25, batch_size=8, progress=False,
                         optim=OptimConfig(lr=1e-2))
    with pytest.raises(ConfigError, match=r"sequence_prior.conditions \['mel'\]"):
        fit_prior(run, PriorFitConfig(sequence_prior=tiny(conditions=["mel"])), data=data, accelerator="cpu")
    result = fit_prior(run, cfg, data=data, accelerator="cpu")
    meta = json.loads((run / "prior" / "model.json").read_text())
    assert meta["kind"] == "sequence" and meta["num_codes"] == K
    assert meta["condition_sizes"] == {"speaker": 2, "y": 2} and meta["data"] == "synthetic"
    # the patterns are fixed by the labels: far below the uniform log2(K + 1) bits per symbol
    assert result.val_bits_per_code < 0.25 * math.log2(K + 1), result.val_bits_per_code
    prior = load_code_prior(run, model=RuleCodes())
    codes, mask = prior.sample(4, 12, temperature=0, speaker=torch.tensor([0, 1, 0, 1]), y=torch.tensor([0, 0, 1, 1]))
    assert [row[:n].tolist() for row, n in zip(codes, mask.sum(1).tolist())] == \
        [pattern(0, 0), pattern(1, 0), pattern(0, 1), pattern(1, 1)]
    changed = PriorFitConfig(sequence_prior=tiny(layers=2), progress=False)
    with pytest.raises(ConfigError, match="architecture cannot change"):
        fit_prior(run, changed, resume=True, data=data, accelerator="cpu")


def test_fit_prior_on_the_audio_vqvae_and_vaekit_load_attaches_it(tmp_path):
    from vaekit.models import build_model
    from vaekit.run import load

    data = synthetic_audio(per_split=8)
    model = build_model("audio_vqvae", {
        "data": data.spec, "num_codes": 8, "code_dim": 4, "hidden": 8, "num_down": 2, "decoder": "wavenet",
        "global_channels": 4, "upsample_factors": [2, 2],
        "wavenet": {"layers": 2, "stacks": 1, "residual_channels": 4, "gate_channels": 4, "skip_channels": 4}})
    export_model(tmp_path, "audio_vqvae", model)
    cfg = PriorFitConfig(sequence_prior=tiny(), max_epochs=1, batch_size=4, progress=False)
    fit_prior(tmp_path, cfg, data=data, accelerator="cpu")
    loaded = load(tmp_path)
    assert isinstance(loaded.code_prior, CodeSequencePrior) and loaded.code_prior.num_codes == 8
    x = next(iter(data.batches(data.part("val"), 8)))
    codes = loaded.codes(x["x"], x["mask"])[0]
    mask = loaded.code_mask(x["mask"])
    assert torch.isfinite(loaded.code_prior.log_prob(codes, mask, speaker=x["speaker"], y=x["y"])).all()
