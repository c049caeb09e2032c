"""The audio VQ-VAE: padding changes nothing, masked codebook statistics, conversion keeps the codes, the
rate in bits per second, and the errors a user can cause."""

from __future__ import annotations

import math

import pytest
import torch

from vaekit.data.audio import AudioBatches, MelSettings, load_fsdd
from vaekit.errors import ConfigError, UsageError
from vaekit.models import build_model
from vaekit.objectives.vq import VQObjective
from vaekit.quantize import VectorQuantizer
from tests.conftest import SHARED_DATA  # noqa: F401  (the shared data folder, set for every test)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def fsdd():
    return load_fsdd(SHARED_DATA / "speech", mel=MelSettings())


def tiny(spec, **kw):
    torch.manual_seed(0)
    cfg = {"data": spec, "num_codes": 16, "code_dim": 8, "hidden": 8, "decoder_hidden": 16, "decoder_blocks": 2,
           "global_channels": 4, **kw}
    return build_model("audio_vqvae", cfg).eval()


def batch_of(fsdd, index):
    return AudioBatches(fsdd.test, crop=None, mel=MelSettings()).__getitems__(index)


@pytest.mark.parametrize("encoder,decoder", [("wave", "mel"), ("wave", "wavenet"), ("mel", "mel")])
def test_padding_changes_nothing(fsdd, encoder, decoder):
    """A padded batch gives every example the terms it has alone (distortion, rate, both VQ losses)."""
    extra = {"wavenet": {"layers": 4, "stacks": 2, "residual_channels": 8, "gate_channels": 8,
                         "skip_channels": 8}} if decoder == "wavenet" else {}
    model = tiny(fsdd.spec, encoder=encoder, decoder=decoder, **extra).double()  # float64: equal to rounding, not to 1e-5

    def double(b):
        return {k: v.double() if v.is_floating_point() else v for k, v in b.items()}

    lengths = fsdd.test.lengths
    short = int(lengths.argmin())
    long_ = int(abs(lengths - 4 * lengths[short]).argmin())  # a few times longer: padding of many frames
    both = VQObjective()(model, double(batch_of(fsdd, [short, long_])), 0)
    alone = VQObjective()(model, double(batch_of(fsdd, [short])), 0)
    assert batch_of(fsdd, [short])["x"].shape[-1] < batch_of(fsdd, [short, long_])["x"].shape[-1]
    for key in ("distortion", "rate", "codebook_loss", "commitment_loss"):
        assert torch.allclose(both[key][0], alone[key][0], rtol=1e-9, atol=1e-6), key
    frames = -(-int(lengths[short]) // model.hop)
    assert alone["rate"][0].item() == pytest.approx(frames * math.log(16))  # real frames x log K


def test_masked_frames_change_no_codebook_statistic():
    """The quantiser with a mask learns exactly what it learns from the real rows alone."""
    torch.manual_seed(0)
    z = torch.randn(3, 4, 10)  # [B, D, T]
    mask = torch.arange(10)[None] < torch.tensor([10, 6, 3])[:, None]
    a = VectorQuantizer(8, 4, ema=True, restart_threshold=0.0).train()
    init = {k: v.clone() for k, v in a.state_dict().items()}
    b = VectorQuantizer(8, 4, ema=True, restart_threshold=0.0).train()
    b.load_state_dict(init)
    garbage = z.clone()
    garbage[~mask[:, None].expand_as(z)] = 100.0  # what the padded frames hold must not matter
    with torch.enable_grad():
        qa = a(garbage.requires_grad_(), mask)
        real = torch.cat([z[i, :, : int(mask[i].sum())] for i in range(3)], dim=1)[None]  # [1, D, N]
        qb = b(real.requires_grad_())
    assert torch.equal(qa.counts, qb.counts)
    assert torch.allclose(a.codebook, b.codebook) and torch.allclose(a.ema_count, b.ema_count)
    assert torch.allclose(qa.commitment_loss.sum(), qb.commitment_loss.sum())
    # without the mask the padded values do move the codebook
    c = VectorQuantizer(8, 4, ema=True, restart_threshold=0.0).train()
    c.load_state_dict(init)
    with torch.enable_grad():
        c(garbage.detach().requires_grad_())
    assert not torch.allclose(c.codebook, a.codebook)


def test_the_mel_encoder_codes_the_batch_frames_and_the_waveform_alike(fsdd):
    """codes(x) computes the log-mel frames itself: the same codes as from the batch's frames."""
    model = tiny(fsdd.spec, encoder="mel")
    b = batch_of(fsdd, [0, 5, 9])
    from_batch = model.quantize_masked(b["x"], b["mask"], b["mel"])[0].indices
    assert torch.equal(model.codes(b["x"], b["mask"])[0], from_batch)


def test_conversion_keeps_the_codes_and_changes_the_voice(fsdd):
    model = tiny(fsdd.spec)
    torch.nn.init.normal_(model.speaker_embedding.weight, std=3.0)  # an untrained model: make speakers differ
    b = batch_of(fsdd, [0, 1, 2])
    own = model.convert(b["x"], b["speaker"], b["mask"])
    other = model.convert(b["x"], (b["speaker"] + 1) % 6, b["mask"])
    assert torch.equal(own["codes"], other["codes"])
    assert torch.equal(own["codes"], model.codes(b["x"], b["mask"])[0])
    mel_own = model.decode_codes_dist([own["codes"]], b["speaker"], own["code_mask"]).mean
    mel_other = model.decode_codes_dist([own["codes"]], (b["speaker"] + 1) % 6, own["code_mask"]).mean
    assert (mel_own - mel_other).abs().max() > 0.1
    assert own["audio"].shape == b["x"].shape
    assert (own["audio"][~b["mask"][:, None]] == 0).all()  # nothing beyond each utterance


def test_rate_in_bits_per_second_from_the_code_shape(fsdd):
    model = tiny(fsdd.spec, num_codes=512, num_down=6)
    assert model.code_rate == 8000 / 64
    assert model.bits_per_second == pytest.approx(125 * 9)
    x = torch.zeros(2, 1, 8000)
    assert model.codes(x)[0].shape == (2, 125)  # 8000 samples -> ceil(8000 / 64) code frames


def test_errors_a_user_can_cause(fsdd):
    no_mel = load_fsdd(SHARED_DATA / "speech").spec
    with pytest.raises(ConfigError, match="data.options.mel=true"):
        tiny(no_mel)
    with pytest.raises(ConfigError, match="hop_length=32"):
        tiny(fsdd.spec, num_down=5)
    with pytest.raises(ConfigError, match="unknown decoder"):
        tiny(fsdd.spec, decoder="griffin")
    with pytest.raises(ConfigError, match="upsample_factors"):
        tiny(no_mel, decoder="wavenet", upsample_factors=[4, 4])
    model = tiny(fsdd.spec, global_condition=None)
    b = batch_of(fsdd, [0])
    with pytest.raises(UsageError, match="cannot convert"):
        model.convert(b["x"], b["speaker"])
    with pytest.raises(UsageError, match="fit-prior"):
        tiny(fsdd.spec).sample(1)
