"""Component registries: YAML `kind` name -> class, loaded lazily so unused extras never import.

Built-ins are listed in `harness.builtins`; third-party plugins add themselves through the
entry-point groups `harness.backends`, `harness.strategies`, `harness.scorers` and `harness.tuners`.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from harness.errors import ConfigError, closest

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a kind to a class, given directly or as a lazy "module:attr" reference."""

    def __init__(self, what: str, group: str, builtins: dict[str, str]):
        self.what = what
        self.group = group
        self._refs: dict[str, str | type[T]] = dict(builtins)
        self._plugins_loaded = False

    def register(self, kind: str, ref: str | type[T]) -> None:
        self._refs[kind] = ref

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name in self._refs:
                log.warning("plugin %s=%s ignored: the %s kind '%s' is built in", ep.name, ep.value, self.what, ep.name)
                continue
            # Plugins are resolved lazily too; only the reference is kept here.
            self._refs[ep.name] = ep.value

    def kinds(self) -> list[str]:
        self._load_plugins()
        return sorted(self._refs)

    def refs(self) -> dict[str, str]:
        self._load_plugins()
        return {
            k: v if isinstance(v, str) else f"{v.__module__}:{v.__qualname__}" for k, v in sorted(self._refs.items())
        }

    def summary(self, kind: str) -> str:
        """The component's docstring up to its first blank line, on one line ("" when it has none or does not
        import: `harness list` still lists it)."""
        try:
            doc = self.get(kind).__doc__ or ""
        except Exception:
            return ""
        return " ".join(doc.strip().split("\n\n")[0].split())

    def get(self, kind: str, *, where: str = "") -> type[T]:
        self._load_plugins()
        ref = self._refs.get(kind)
        if ref is None:
            at = f"{where}: " if where else ""
            raise ConfigError(
                f"{at}unknown {self.what} kind '{kind}'.{closest(kind, self._refs)} Allowed: {', '.join(self.kinds())}."
            )
        if isinstance(ref, str):
            ref = self._resolve(kind, ref)
            self._refs[kind] = ref
        return ref

    def _resolve(self, kind: str, ref: str) -> type[T]:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        except Exception as exc:  # a broken plugin must not take the product down
            raise ConfigError(f"the {self.what} '{kind}' ({ref}) could not be loaded: {exc}") from exc
