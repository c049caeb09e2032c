"""Typed configs refuse unknown keys and bad values, with messages that name the key."""

from __future__ import annotations

import json

import pytest

from vaekit.config import ConfigError, from_dict, parse_overrides, to_dict
from vaekit.run import RunConfig, resolve_config


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        resolve_config("vae", {"model": {"latnet_dim": 3}})
    msg = str(e.value)
    assert "latnet_dim" in msg and "latent_dim" in msg and "model" in msg
    with pytest.raises(ConfigError, match=r"train.optim.*'lrate'"):
        resolve_config("vae", {"train": {"optim": {"lrate": 1}}})
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(RunConfig, {"trian": {}})


def test_bad_values_are_refused():
    with pytest.raises(ConfigError, match="latent_dim"):
        resolve_config("vae", {"model": {"latent_dim": 0}})
    with pytest.raises(ConfigError, match="expected an integer"):
        resolve_config("vae", {"model": {"latent_dim": "many"}})
    with pytest.raises(ConfigError, match="unknown likelihood 'bernouli'"):
        resolve_config("vae", {"model": {"likelihood": "bernouli"}})
    with pytest.raises(ConfigError, match="lr"):
        resolve_config("vae", {"train": {"optim": {"lr": -1}}})
    with pytest.raises(ConfigError, match="neither a registered model"):
        resolve_config("no_such_model")


def test_overrides_and_round_trip(tmp_path):
    over = parse_overrides(["model.latent_dim=32", "train.optim.lr=1e-3", "model.hidden=[64,32]",
                            "model.likelihood=dlogistic", "data.subset=null"])
    assert over["train"]["optim"]["lr"] == 1e-3
    cfg = resolve_config("vae", over)
    assert cfg.model.params.latent_dim == 32 and cfg.model.params.hidden == [64, 32]
    assert cfg.model.params.likelihood.name == "dlogistic"
    assert cfg.model.params.likelihood.params.num_mixtures == 5  # the default filled in
    again = from_dict(RunConfig, to_dict(cfg))
    assert to_dict(again) == to_dict(cfg)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["model.latent_dim"])


def test_yaml_config_files_in_configs_are_valid():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert files, "configs/ holds the example configs"
    for f in files:
        resolve_config(str(f))


def test_yaml_reads_exponent_floats_as_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads ``1e-4`` as a string; vaekit's loader reads it as YAML 1.2 does."""
    from vaekit.config import load_yaml
    from vaekit.run import load_config_file, resolve_config

    got = load_yaml("a: 1e-4\nb: 1.0e5\nc: -2E+3\nd: 1e4x\ne: inf\nf: .inf\ng: 3\nh: 1_000e-3\ni: 0.5\n")
    assert got == {"a": 1e-4, "b": 1e5, "c": -2e3, "d": "1e4x", "e": "inf", "f": float("inf"), "g": 3,
                   "h": 1.0, "i": 0.5}
    assert type(got["g"]) is int and "!!python" not in str(got)
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"train": {"optim": {"eps": 1e-08, "lr": 3e-4}}}))  # JSON writes 1e-08
    cfg = resolve_config("vae", load_config_file(path))
    assert cfg.train.optim.eps == 1e-8 and cfg.train.optim.lr == 3e-4
    assert parse_overrides(["data.name=inf", "train.optim.lr=1e-3"]) == {"data": {"name": "inf"},
                                                                         "train": {"optim": {"lr": 1e-3}}}
    with pytest.raises(Exception):
        load_yaml("!!python/object/apply:os.system ['true']")  # still a safe loader


def test_saved_config_reads_back_the_same_even_for_number_like_strings(tmp_path):
    from vaekit.config import dump_yaml, load_yaml
    from vaekit.run import read_run_config, save_config

    obj = {"path": "1e3", "eps": 1e-8, "big": 1e5, "name": "mnist", "n": 3}
    assert load_yaml(dump_yaml(obj)) == obj
    cfg = resolve_config("vae", {"data": {"path": "1e3"}, "train": {"optim": {"eps": 1e-4}}})
    save_config(tmp_path, cfg)
    back = read_run_config(tmp_path)
    assert back.data.path == "1e3" and back.train.optim.eps == 1e-4


def test_a_choice_set_by_name_and_options_is_the_same_in_either_order():
    """``--set model.likelihood.num_mixtures=1 --set model.likelihood=dlogistic`` once silently meant 5
    mixtures (the bare name replaced the section) and errored in the other order."""
    from vaekit.config import parse_overrides
    from vaekit.run import resolve_config

    orders = (["model.likelihood.num_mixtures=1", "model.likelihood=dlogistic"],
              ["model.likelihood=dlogistic", "model.likelihood.num_mixtures=1"])
    built = [resolve_config("vae", parse_overrides(o)).model.params.likelihood for o in orders]
    assert built[0] == built[1] and built[0].name == "dlogistic" and built[0].params.num_mixtures == 1
    for o in (["a.b=1", "a.b.c=2"], ["a.b.c=2", "a.b=1"]):  # a section and a number: an error either way
        with pytest.raises(ConfigError, match="a.b"):
            parse_overrides(o)
    assert parse_overrides(["t.x=1", "t.x=2"]) == {"t": {"x": 2}}  # the last value wins


def test_a_choice_named_in_a_file_keeps_options_given_by_set(tmp_path):
    from vaekit.config import parse_overrides

    path = tmp_path / "c.yaml"
    path.write_text("objective: iwae\nmodel:\n  name: vae\n  likelihood: dlogistic\n")
    cfg = resolve_config(str(path), parse_overrides(["objective.k=3", "model.likelihood.num_mixtures=2"]))
    assert cfg.objective.name == "iwae" and cfg.objective.params.k == 3  # was: elbo, silently
    assert cfg.model.params.likelihood.name == "dlogistic" and cfg.model.params.likelihood.params.num_mixtures == 2
    cfg = resolve_config(str(path), parse_overrides(["objective=beta", "objective.beta=4"]))
    assert cfg.objective.name == "beta" and cfg.objective.params.beta == 4  # another name starts afresh


@pytest.mark.parametrize("override,key", [({"train": {"val_every": 0}}, "val_every"),
                                          ({"eval": {"batch_size": 0}}, "eval.batch_size"),
                                          ({"eval": {"subset": 0}}, "eval.subset"),
                                          ({"train": {"optim": {"max_skipped_fraction": 2}}}, "max_skipped_fraction")])
def test_impossible_settings_are_refused_before_training(override, key):
    with pytest.raises(ConfigError, match=key):
        resolve_config("vae", override)


def test_error_classes_nest_as_documented():
    from vaekit.data import DataNotFoundError
    from vaekit.data.resolve import DataCorruptError
    from vaekit.errors import DataError, RunError, VaekitError
    from vaekit.training import CheckpointError

    assert issubclass(DataNotFoundError, DataError) and issubclass(DataNotFoundError, FileNotFoundError)
    assert issubclass(DataCorruptError, DataError) and issubclass(CheckpointError, RunError)
    assert issubclass(ConfigError, VaekitError) and issubclass(ConfigError, ValueError)
