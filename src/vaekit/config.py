"""Typed configuration: dataclasses that refuse unknown keys.

Every model, likelihood, prior, objective and the training loop has a dataclass config. Configs are
built from plain dicts (YAML parsed with a safe loader, :func:`load_yaml`); an unknown key is an error that names the
key and lists the valid ones, so a typo never passes silently (the failure mode of dict configs that
return ``None`` for missing keys).

A field whose value is itself "one of a registry" (the model's likelihood, prior, the run's objective)
is a :class:`Choice`: a dict with a ``name`` key picking the registry entry, whose remaining keys are
validated against that entry's own config class.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Union, get_args, get_origin

import yaml

from vaekit.errors import ConfigError  # re-exported: vaekit.config.ConfigError


@dataclass
class Choice:
    """A registry entry chosen by ``name`` plus that entry's typed config (``params``)."""

    name: str
    params: Any = None

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name}
        if self.params is not None:
            d.update(to_dict(self.params))
        return d


def _registry_for(tp_meta: dict) -> Any:
    from vaekit import registry as reg

    return getattr(reg, tp_meta["registry"])


def choice_field(registry: str, default: str, doc: str = "") -> Any:
    """A dataclass field holding a :class:`Choice` from ``registry`` (e.g. ``"LIKELIHOODS"``)."""
    return field(
        default_factory=lambda: Choice(default, None),
        metadata={"registry": registry, "doc": doc, "default": default},
    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp`` (a small subset of typing is enough)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:  # `X | None`: the one type's own message says what is wrong
            raise errors[0]
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build_choice(value: Any, meta: dict, where: str) -> Choice:
    if isinstance(value, Choice):
        value = value.to_dict()
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, dict) and "name" not in value and "default" in meta:
        value = {"name": meta["default"], **value}  # options of the default choice, e.g. objective.beta=4
    if not isinstance(value, dict) or "name" not in value:
        raise ConfigError(f"{where}: expected a name or a mapping with a 'name' key, got {value!r}")
    reg = _registry_for(meta)
    try:
        entry = reg.get(value["name"])
    except KeyError as e:
        raise ConfigError(f"{where}: {e.args[0]}") from None
    rest = {k: v for k, v in value.items() if k != "name"}
    if entry.config_cls is None:
        if rest:
            raise ConfigError(f"{where}: {reg.kind} {value['name']!r} takes no options, got {sorted(rest)}")
        return Choice(value["name"], None)
    return Choice(value["name"], from_dict(entry.config_cls, rest, where=where))


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError`."""
    data = dict(data or {})
    migrate = getattr(cls, "migrate_config", None)  # files written by older versions, e.g. data_shape -> data
    if callable(migrate):
        data = migrate(data)
    hints = typing.get_type_hints(cls)
    valid = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(data) - set(valid))
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}unknown config key(s) {unknown} for {cls.__name__}; valid keys: {sorted(valid)}"
        )
    kwargs = {}
    for name, value in data.items():
        f = valid[name]
        sub = f"{where}.{name}" if where else name
        if "registry" in f.metadata:
            kwargs[name] = _build_choice(value, f.metadata, sub)
        else:
            kwargs[name] = _coerce(value, hints[name], sub)
    obj = cls(**kwargs)
    # Fill Choice defaults with their typed params so that every config is complete.
    for f in fields(cls):
        if "registry" in f.metadata:
            ch = getattr(obj, f.name)
            if ch.params is None:
                setattr(obj, f.name, _build_choice(ch.to_dict(), f.metadata, f.name))
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def to_dict(obj: Any) -> Any:
    """Inverse of :func:`from_dict`: plain dicts/lists suitable for YAML and JSON."""
    if isinstance(obj, Choice):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` and ``1.0e5`` as numbers (YAML 1.2 floats). PyYAML
    follows YAML 1.1, where a float needs a dot and a signed exponent, so ``eps: 1e-4`` came back as
    the string ``'1e-4'`` (and a config saved as JSON with ``1e-08`` could not be read back)."""


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes strings :func:`load_yaml` would read as numbers (e.g. ``'1e3'``)."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


def dump_yaml(obj: Any) -> str:
    """YAML text that :func:`load_yaml` reads back as ``obj`` (keys in the given order)."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False)


def load_yaml(text: str) -> Any:
    """Parse YAML without executing code (a safe loader), with YAML 1.2's exponent floats."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn ``["model.latent_dim=32", "train.lr=1e-3"]`` into a nested dict (values parsed as YAML).

    A key may be set both as a name and as a section, in either order: ``model.likelihood=dlogistic``
    and ``model.likelihood.num_mixtures=1`` give ``{"name": "dlogistic", "num_mixtures": 1}`` (a
    :class:`Choice`'s mapping), so the order of the flags never changes the result. Setting the same
    key twice keeps the last value; a section and a value that is not a name is an error.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        value = load_yaml(raw) if raw != "" else ""
        node = out
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            here = node.get(p, {})
            if isinstance(here, str):  # named first, options after: the name goes into the section
                here = {"name": here}
            if not isinstance(here, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i + 1])} was set to {here!r}, not a section")
            node[p] = here
            node = here
        last = parts[-1]
        if isinstance(node.get(last), dict) and isinstance(value, dict):
            node[last] = deep_merge(node[last], value)
        elif isinstance(node.get(last), dict):
            if not isinstance(value, str):
                raise ConfigError(f"--set {item!r}: {key.strip()} has options set, so its value must be a name")
            node[last] = {**node[last], "name": value}  # options first, named after
        else:
            node[last] = value
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``over`` into a copy of ``base``. A name in ``base`` and options without a name in
    ``over`` make one choice (``"iwae"`` + ``{"k": 5}`` -> ``{"name": "iwae", "k": 5}``); a name in ``over``
    replaces ``base``'s section (another choice starts from its own defaults)."""
    out = dict(base)
    for k, v in over.items():
        here = out.get(k)
        if isinstance(v, dict) and isinstance(here, str) and "name" not in v:
            here = {"name": here}  # a choice named in the file (objective: iwae), its options from --set
        if isinstance(v, dict) and isinstance(here, dict):
            out[k] = deep_merge(here, v)
        else:
            out[k] = v
    return out
