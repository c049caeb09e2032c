"""Typed configs refuse unknown keys and bad values, with messages that name the key."""

from __future__ import annotations

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
