"""Plugin discovery and isolation.

Plugins are found through the ``modelbus`` entry-point group with :mod:`importlib.metadata` (standard
library: no extra dependency, and ``entry_points(group=...)`` selects without importing anything).
Each plugin is loaded, registered and asked for its providers on its own: one that fails to import,
implements a hook that does not exist, or registers something invalid is recorded with its error
and left out, and every other plugin still loads.

Set ``MODELBUS_LOAD_PLUGINS`` to a comma-separated list of entry-point names to load only those
(empty string: none); ``MODELBUS_BLOCK_PLUGINS`` to skip some.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from modelbus import hookspecs
from modelbus.errors import PluginError

ENTRY_POINT_GROUP = "modelbus"


@dataclass
class PluginRecord:
    """One plugin as ``modelbus plugins`` reports it."""

    name: str
    source: str  # "builtin", "entry point" or "code"
    distribution: str | None = None
    version: str | None = None
    providers: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _summarize(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


class PluginHost:
    """Owns the pluggy ``PluginManager`` and knows which plugins loaded and which failed."""

    def __init__(self, *, load_entrypoints: bool = True, plugins: Iterable[object] = ()) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        self.providers: dict[str, Any] = {}  # name -> ProviderInfo
        self._provider_owner: dict[str, str] = {}
        self._load_entrypoints = load_entrypoints
        self._extra = list(plugins)
        self._loaded = False
        self._lock = threading.RLock()
        self._provider_hooks: dict[str, ProviderHooks] = {}

    @property
    def hook(self) -> Any:
        self.load()
        return self.pm.hook

    def load(self) -> None:
        """Register builtins, entry-point plugins and code plugins, once (thread-safe: the first
        caller loads, concurrent callers wait for it)."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            from modelbus import builtin

            self._register(
                builtin, name="modelbus.builtin", record=PluginRecord("modelbus.builtin", "builtin")
            )
            if self._load_entrypoints:
                for entry_point in self._entry_points():
                    self._load_entry_point(entry_point)
            for plugin in self._extra:
                self._register_code_plugin(plugin)
            for record in self.records:
                if record.ok:
                    self._collect_providers(record)
            self._loaded = True

    def provider_hooks(self, provider: str) -> ProviderHooks:
        """The hooks to call for one provider: the same as :attr:`hook`, minus the plugins that declare
        they answer only for other providers (``answers_for``). Same results, far fewer calls per hook
        when many provider plugins are installed."""
        hooks = self._provider_hooks.get(provider)
        if hooks is None:
            self.load()
            others = [
                plugin
                for plugin in self.pm.get_plugins()
                if getattr(plugin, "answers_for", None) is not None and provider not in plugin.answers_for
            ]
            hooks = ProviderHooks(self.pm, others)
            self._provider_hooks[provider] = hooks
        return hooks

    def register(self, plugin: object, name: str | None = None) -> PluginRecord:
        """Register a plugin object or module from code. Returns its record (check ``.error``)."""
        self.load()
        with self._lock:
            record = self._register_code_plugin(plugin, name=name)
            if record.ok:
                self._collect_providers(record)
            self._provider_hooks.clear()
        return record

    def call_isolated(self, hook_name: str, **kwargs: Any) -> list[tuple[str, BaseException]]:
        """Call every implementation of a hook on its own, so one that raises cannot stop the others.

        Returns ``(plugin name, exception)`` for each implementation that raised.
        """
        self.load()
        failures: list[tuple[str, BaseException]] = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                failures.append((impl.plugin_name, exc))
        return failures

    def errors(self) -> list[PluginRecord]:
        self.load()
        return [record for record in self.records if not record.ok]

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _entry_points() -> list[metadata.EntryPoint]:
        selected = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        only = os.environ.get("MODELBUS_LOAD_PLUGINS")
        if only is not None:
            wanted = {name.strip() for name in only.split(",") if name.strip()}
            selected = [ep for ep in selected if ep.name in wanted]
        blocked = {name.strip() for name in os.environ.get("MODELBUS_BLOCK_PLUGINS", "").split(",")}
        return [ep for ep in selected if ep.name not in blocked]

    def _load_entry_point(self, entry_point: metadata.EntryPoint) -> None:
        dist = getattr(entry_point, "dist", None)
        record = PluginRecord(
            name=entry_point.name,
            source="entry point",
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
        )
        if self.pm.has_plugin(entry_point.name):
            record.error = f"another plugin is already registered as {entry_point.name!r}"
            self.records.append(record)
            return
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken plugin is reported, never fatal to the others
            record.error = f"failed to import {entry_point.value}: {_summarize(exc)}"
            self.records.append(record)
            return
        self._register(plugin, name=entry_point.name, record=record)

    def _register_code_plugin(self, plugin: object, name: str | None = None) -> PluginRecord:
        name = name or getattr(plugin, "plugin_name", None) or getattr(plugin, "__name__", None)
        name = name or f"{type(plugin).__module__}.{type(plugin).__qualname__}"
        record = PluginRecord(name=name, source="code")
        self._register(plugin, name=name, record=record)
        return record

    def _register(self, plugin: object, *, name: str, record: PluginRecord) -> None:
        self.records.append(record)
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError, ValueError (duplicate)
            record.error = f"violates the hook specs: {exc}"
            return
        unknown = [
            hook_name
            for hook_name, caller in vars(self.pm.hook).items()
            if not hook_name.startswith("_")
            and isinstance(caller, pluggy.HookCaller)
            and not caller.has_spec()
            and any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls())
        ]
        if unknown:
            self.pm.unregister(plugin)
            record.error = f"implements hooks that do not exist: {', '.join(sorted(unknown))} (typo?)"
            return
        callers = self.pm.get_hookcallers(plugin) or []
        record.hooks = sorted(caller.name for caller in callers)

    def _collect_providers(self, record: PluginRecord) -> None:
        from modelbus.types.models import ProviderInfo

        impls = [
            impl
            for impl in self.pm.hook.modelbus_register_providers.get_hookimpls()
            if impl.plugin_name == record.name
        ]
        registered: list[Any] = []

        def register(info: Any) -> None:
            if not isinstance(info, ProviderInfo):
                raise PluginError(f"register() takes a ProviderInfo, got {type(info).__name__}")
            registered.append(info)

        for impl in impls:
            try:
                impl.function(register=register)
            except Exception as exc:
                record.error = f"modelbus_register_providers failed: {_summarize(exc)}"
                self.pm.unregister(name=record.name)
                return
        for info in registered:
            owner = self._provider_owner.get(info.name)
            if owner is not None:
                # Its hooks would otherwise answer for a provider another plugin owns.
                record.error = f"provider {info.name!r} is already registered by plugin {owner!r}"
                self.pm.unregister(name=record.name)
                return
        for info in registered:
            self.providers[info.name] = info
            self._provider_owner[info.name] = record.name
            record.providers.append(info.name)


class ProviderHooks:
    """Attribute access to per-provider subset hook callers (see :meth:`PluginHost.provider_hooks`)."""

    def __init__(self, pm: pluggy.PluginManager, others: list[object]) -> None:
        self._pm = pm
        self._others = others

    def __getattr__(self, name: str) -> Any:
        caller = (
            self._pm.subset_hook_caller(name, self._others) if self._others else getattr(self._pm.hook, name)
        )
        setattr(self, name, caller)  # later lookups find the attribute and skip __getattr__
        return caller


_default_host: PluginHost | None = None
_default_lock = threading.Lock()


def default_host() -> PluginHost:
    """The process-wide host that loads entry-point plugins (created on first use)."""
    global _default_host
    if _default_host is None:
        with _default_lock:
            if _default_host is None:
                _default_host = PluginHost()
    return _default_host
