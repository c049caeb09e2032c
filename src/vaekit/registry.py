"""Registries: one place that maps names to models, likelihoods, priors, objectives and data sets.

The CLI, checkpoint loading and the test-suite parametrisation all read these tables, so a new
model is one decorated class, never another branch of an ``if name == ...`` chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from vaekit.errors import UnknownNameError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered object, its typed config class (if any) and a one-line description."""

    name: str
    obj: T
    config_cls: type | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named table of objects with helpful errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        *,
        config: type | None = None,
        description: str = "",
        **extra: Any,
    ) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("vae", config=VAEConfig, description="...")``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = (getattr(obj, "__doc__", None) or "").strip()
            desc = description or (doc.splitlines()[0] if doc else "")
            self._entries[name] = Entry(name, obj, config, desc, dict(extra))
            return obj

        return deco

    def get(self, name: str) -> Entry[T]:
        _load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}") from None

    def registered(self, name: str) -> bool:
        """Whether ``name`` is registered now, without importing the built-in modules (for use at import)."""
        return name in self._entries

    def __contains__(self, name: str) -> bool:
        _load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        _load_builtins()
        return iter(self._entries[k] for k in sorted(self._entries))

    def names(self) -> list[str]:
        _load_builtins()
        return sorted(self._entries)


MODELS: Registry = Registry("model")
LIKELIHOODS: Registry = Registry("likelihood")
PRIORS: Registry = Registry("prior")
OBJECTIVES: Registry = Registry("objective")
DATASETS: Registry = Registry("data set")
NETWORKS: Registry = Registry("network")
# what applies to which models and data: read by vaekit.api, the CLI and the report, never branched on by name
EVALUATIONS: Registry = Registry("evaluation")  # entry.extra["applies"](model) -> bool
FIGURES: Registry = Registry("figure set")  # by modality: entry.obj(model, data, run_dir, ...) -> [paths]
WRITERS: Registry = Registry("sample writer")  # by modality: entry.obj(samples, path, spec) -> [paths]
EXPLORERS: Registry = Registry("latent explorer")  # by modality: entry.obj -> what `vaekit serve` decodes to


_BUILTINS = ("vaekit.distributions", "vaekit.models", "vaekit.objectives", "vaekit.data",
             "vaekit.evaluation.protocols", "vaekit.evaluation.colour", "vaekit.writers", "vaekit.report", "vaekit.report_audio",
             "vaekit.report_music", "vaekit.report_video", "vaekit.report_text", "vaekit.explorer")
_loading = False


def _load_builtins() -> None:
    """Import the modules that register vaekit's own entries (once; safe against re-entry)."""
    global _loading
    if _loading:
        return
    _loading = True
    import importlib

    for module in _BUILTINS:
        importlib.import_module(module)
