"""The data description: validation, batch checks, element counts, the random-batch factory, and the
migration of configs and run directories written before it (``data_shape``/``levels``/``num_classes``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vaekit.config import from_dict, to_dict
from vaekit.dataspec import (BatchError, Condition, DataSpec, element_mask, image_spec, migrate_legacy_fields,
                             num_elements, random_batch)
from vaekit.errors import ConfigError
from vaekit.models import build_model
from vaekit.run import RunConfig, export_model, load, load_config_file

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "docs" / "results").rglob("*.config.yaml"))

AUDIO = DataSpec("audio", [1, None], "continuous", None, 8000, conditions=[Condition("speaker", "label", 3)])
TOKENS = DataSpec("tokens", [None], "tokens", 100, special_tokens={"pad": 0, "bos": 1, "eos": 2})
ROLLS = DataSpec("piano_roll", [None, 88], "binary", 2, sample_rate=4.0)
VIDEO = DataSpec("video", [None, 1, 8, 8], "continuous", None)
SPECS = [image_spec([1, 8, 8], 2, 10), image_spec([3, 4, 4], 256), AUDIO, TOKENS, ROLLS, VIDEO]


def test_the_committed_issue4_configs_load_and_migrate():
    legacy = [p for p in COMMITTED if "data_shape" in load_config_file(p)["model"]]
    assert any("issue4" in str(p) for p in legacy)  # written before the data description
    for path in COMMITTED:
        raw = load_config_file(path)
        cfg = from_dict(RunConfig, raw)  # every committed config still reads
        if path not in legacy:
            continue
        old = raw["model"]
        spec = cfg.model.params.data
        assert spec == image_spec(old["data_shape"], old.get("levels", 2), old.get("num_classes")), path
        assert cfg.model.params.data_shape == list(old["data_shape"])
        model = build_model(cfg.model.name, cfg.model.params)
        assert model.config.spec().modality == "image"


def test_an_old_run_directory_loads_with_the_same_outputs(tmp_path):
    model = build_model("vae", {"hidden": [8], "latent_dim": 2, "data": to_dict(image_spec([1, 4, 4], 2))}).eval()
    export_model(tmp_path, "vae", model)
    meta = json.loads((tmp_path / "model.json").read_text())
    cfg = meta["config"]
    del cfg["data"]
    cfg.update(data_shape=[1, 4, 4], levels=2, num_classes=None)  # as the first releases wrote it
    (tmp_path / "model.json").write_text(json.dumps(meta))
    again = load(tmp_path)
    assert again.config.data == model.config.data
    z = torch.randn(3, 2)
    assert torch.equal(again.decode(z).mean, model.decode(z).mean)


def test_migration_fills_the_old_defaults_and_refuses_both_forms():
    assert migrate_legacy_fields({"latent_dim": 3, "data_shape": [1, 8, 8]})["data"] == to_dict(image_spec([1, 8, 8], 2))
    assert migrate_legacy_fields({"latent_dim": 3}) == {"latent_dim": 3}
    with pytest.raises(ConfigError, match="both 'data' and the old data_shape"):
        migrate_legacy_fields({"data_shape": [1, 8, 8], "data": to_dict(image_spec([1, 8, 8], 2))})
    with pytest.raises(ConfigError, match="data_shape must be a list"):
        migrate_legacy_fields({"data_shape": 28})


@pytest.mark.parametrize("bad,match", [
    (dict(modality="sound"), "modality"), (dict(kind="floats"), "kind"), (dict(shape=[]), "shape"),
    (dict(shape=[1, 0]), "shape"), (dict(kind="continuous", levels=2), "no levels"),
    (dict(kind="levels", levels=None), "levels >= 2"), (dict(kind="binary", levels=3), "binary data has levels 2"),
    (dict(conditions=[{"name": "y", "size": 2}, {"name": "y", "size": 3}]), "repeat"),
    (dict(conditions=[{"name": "mask", "size": 2}]), "cannot be named"),
    (dict(conditions=[{"name": "s", "kind": "speakers", "size": 2}]), "kind must be"),
    (dict(kind="tokens", levels=10, special_tokens={"pad": 10}), "special_tokens"),
])
def test_impossible_descriptions_are_refused(bad, match):
    base = {"modality": "image", "shape": [1, 4, 4], "kind": "binary", "levels": 2}
    with pytest.raises(ConfigError, match=match):
        from_dict(DataSpec, {**base, **bad})


def test_unknown_keys_of_a_description_are_named():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['rate'\]"):
        from_dict(DataSpec, {"modality": "audio", "shape": [1, None], "rate": 8000})


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.modality + "-" + s.kind)
def test_random_batches_fit_their_description_and_round_trip(spec):
    batch = random_batch(spec, 5, length=12)
    spec.check(batch, tuple(c.name for c in spec.conditions))
    assert from_dict(DataSpec, to_dict(spec)) == spec
    if spec.variable:
        mask = batch["mask"]
        assert torch.equal(mask.sum(1), batch["lengths"]) and bool(mask[0].all())
        assert torch.equal(element_mask({"x": batch["x"], "lengths": batch["lengths"]}, spec), mask)


def test_batch_checks_name_what_is_wrong():
    with pytest.raises(BatchError, match="int64 token ids"):
        TOKENS.check({"x": torch.rand(2, 5)})
    with pytest.raises(BatchError, match=r"float tensor in \[-1, 1\]"):
        AUDIO.check({"x": torch.zeros(2, 1, 5, dtype=torch.int16)})
    with pytest.raises(BatchError, match=r"built for \[B, 1, T\]"):
        AUDIO.check({"x": torch.zeros(2, 2, 5)})
    with pytest.raises(BatchError, match=r"mask'\] must be bool \[B, T\] = \[2, 5\]"):
        AUDIO.check({"x": torch.zeros(2, 1, 5), "mask": torch.ones(2, 4, dtype=torch.bool)})
    with pytest.raises(BatchError, match="no variable axis"):
        image_spec([1, 4, 4], 2).check({"x": torch.zeros(2, 1, 4, 4), "mask": torch.ones(2, 4, dtype=torch.bool)})
    with pytest.raises(BatchError, match=r"conditioned on 'speaker' \(labels\)"):
        AUDIO.check({"x": torch.zeros(2, 1, 5)}, ("speaker",))
    with pytest.raises(BatchError, match=r"speaker'\] must be int64 of shape \[2\]"):
        AUDIO.check({"x": torch.zeros(2, 1, 5), "speaker": torch.zeros(3, dtype=torch.long)}, ("speaker",))


def test_element_counts_leave_padding_out():
    x = torch.zeros(3, 1, 10)
    mask = torch.arange(10)[None] < torch.tensor([[10], [4], [1]])
    assert num_elements({"x": x, "mask": mask}, AUDIO).tolist() == [10.0, 4.0, 1.0]
    assert num_elements({"x": x}, AUDIO).tolist() == [10.0] * 3
    rolls = torch.zeros(2, 6, 88)
    assert num_elements({"x": rolls, "mask": torch.arange(6)[None] < torch.tensor([[6], [2]])}, ROLLS).tolist() == \
        [6.0, 2.0]  # nats per step: a step's 88 keys count once
    assert num_elements({"x": torch.zeros(4, 3, 4, 4)}, image_spec([3, 4, 4], 256)).tolist() == [48.0] * 4
