"""Plugin manager and registry: loads plugins, isolates broken ones.

Plugins are modules (or objects) with ``@eyescan.api.hookimpl`` functions,
found through the entry-point group ``eyescan``. Each entry point is loaded,
checked and registered on its own, so one broken plugin is reported (with its
name and version) and the others keep working.

Environment:
- ``EYESCAN_LOAD_PLUGINS=a,b``: load only these entry points ("" loads none).
- ``EYESCAN_TRACE=1``: print every hook call to stderr.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from eyescan import HOOK_CONTRACT_VERSION
from eyescan.errors import PluginError, UnknownNameError
from eyescan.plugins import hookspecs
from eyescan.plugins.task import Task

ENTRY_POINT_GROUP = "eyescan"
#: Oldest hook-contract version this core still serves.
MIN_CONTRACT_VERSION = 1


@dataclass
class ModelEntry:
    task: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass
class LossEntry:
    name: str
    factory: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass
class ReaderEntry:
    task: str
    name: str
    reader: Any
    plugin: str = ""


@dataclass
class PluginInfo:
    name: str
    version: str = ""
    tasks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    error: str | None = None


class Registry:
    """Everything the installed plugins registered, plus the plugin manager."""

    def __init__(self, pm: pluggy.PluginManager, plugins: dict[str, PluginInfo]):
        self.pm = pm
        self.hook = pm.hook
        self.plugins = plugins
        self.tasks: dict[str, Task] = {}
        self.models: dict[tuple[str, str], ModelEntry] = {}
        self.losses: dict[str, LossEntry] = {}
        self.readers: dict[tuple[str, str], ReaderEntry] = {}
        self.warnings: list[str] = []

    # -- look-ups ---------------------------------------------------------
    def task(self, name: str) -> Task:
        if name not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none installed"
            raise UnknownNameError(f"unknown task {name!r} (installed: {known})")
        return self.tasks[name]

    def models_for(self, task: str) -> list[ModelEntry]:
        return [m for (t, _), m in sorted(self.models.items()) if t == task]

    def model(self, task: str, name: str) -> ModelEntry:
        if (task, name) not in self.models:
            known = ", ".join(m.name for m in self.models_for(task)) or "none"
            raise UnknownNameError(f"unknown model {name!r} for task {task!r} (models: {known})")
        return self.models[(task, name)]

    def loss(self, name: str, **options: Any) -> Any:
        if name not in self.losses:
            known = ", ".join(sorted(self.losses)) or "none"
            raise UnknownNameError(f"unknown loss {name!r} (losses: {known})")
        return self.losses[name].factory(**options)

    def readers_for(self, task: str) -> list[ReaderEntry]:
        return [r for (t, _), r in self.readers.items() if t == task]

    def reader(self, task: str, name: str) -> ReaderEntry:
        if (task, name) not in self.readers:
            known = ", ".join(r.name for r in self.readers_for(task)) or "none"
            raise UnknownNameError(f"unknown reader {name!r} for task {task!r} (readers: {known})")
        return self.readers[(task, name)]


_messages: list[str] = []


def _warn(message: str) -> None:
    """Record a plugin problem; the CLI prints these on stderr, one line each."""
    _messages.append(message)


def _contract_error(plugin: Any) -> str | None:
    declared = getattr(plugin, "EYESCAN_HOOK_CONTRACT", HOOK_CONTRACT_VERSION)
    if not isinstance(declared, int) or not (
        MIN_CONTRACT_VERSION <= declared <= HOOK_CONTRACT_VERSION
    ):
        return (
            f"needs hook contract {declared!r}, this eyescan serves "
            f"{MIN_CONTRACT_VERSION}..{HOOK_CONTRACT_VERSION}; install a plugin release "
            "written for this eyescan, or upgrade eyescan"
        )
    return None


def _entry_points() -> Iterable[metadata.EntryPoint]:
    wanted = os.environ.get("EYESCAN_LOAD_PLUGINS")
    names = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if names is None or ep.name in names:
            yield ep


def _register_plugin(
    pm: pluggy.PluginManager, infos: dict[str, PluginInfo], plugin: Any, name: str, version: str
) -> None:
    info = infos.setdefault(name, PluginInfo(name=name, version=version))
    error = _contract_error(plugin)
    if error is None:
        try:
            pm.register(plugin, name=name)
        except Exception as exc:  # invalid hook signatures, duplicate names
            error = f"cannot register: {exc}"
        else:
            _name_failures(pm, plugin, name)
    if error is not None:
        info.error = error
        label = f"{name} {version}".strip()
        _warn(f"plugin {label}: {error}; its tasks are unavailable")


def _name_failures(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """Make exceptions raised by ``plugin``'s pipeline hooks carry the plugin's name.

    Each hook implementation is wrapped so an exception leaving it gets
    ``eyescan_plugin`` and ``eyescan_hook`` attributes (the innermost plugin
    wins: a wrapper that lets an inner failure pass does not take the blame).
    The core's own plugin is left alone: its failures are the task plugin's.
    """
    from eyescan.plugins import builtin

    if plugin is builtin:
        return
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.name.startswith("register_"):
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                impl.function = _naming(impl.function, name, caller.name)  # type: ignore[misc]


def _tag(exc: BaseException, plugin: str, hook: str) -> None:
    if getattr(exc, "eyescan_plugin", None) is None:
        try:
            exc.eyescan_plugin = plugin  # type: ignore[attr-defined]
            exc.eyescan_hook = hook  # type: ignore[attr-defined]
        except AttributeError:  # exception types without a __dict__
            pass


def _naming(function: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(function):  # wrapper=True / hookwrapper=True

        @functools.wraps(function)
        def wrapper(*args: Any) -> Any:
            try:
                return (yield from function(*args))
            except Exception as exc:
                _tag(exc, plugin, hook)
                raise

        return wrapper

    @functools.wraps(function)
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except Exception as exc:
            _tag(exc, plugin, hook)
            raise

    return call


def build_registry(
    extra_plugins: Iterable[tuple[str, Any]] = (), entry_points: bool = True
) -> Registry:
    """Build a fresh plugin manager and registry.

    ``extra_plugins`` are ``(name, plugin)`` pairs registered in-process (tests,
    embedding applications) after the installed ones.
    """
    _messages.clear()
    pm = pluggy.PluginManager("eyescan")
    pm.add_hookspecs(hookspecs)
    if os.environ.get("EYESCAN_TRACE"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    infos: dict[str, PluginInfo] = {}

    from eyescan.plugins import builtin

    _register_plugin(pm, infos, builtin, "eyescan.plugins.builtin", _dist_version("eyescan"))
    if entry_points:
        for ep in _entry_points():
            version = ep.dist.version if ep.dist else ""
            try:
                plugin = ep.load()
            except Exception as exc:
                infos[ep.name] = PluginInfo(ep.name, version, error=f"import failed: {exc!r}")
                _warn(f"plugin {ep.name} {version} failed to import: {exc!r}; skipped")
                continue
            _register_plugin(pm, infos, plugin, ep.name, version)
    for name, plugin in extra_plugins:
        _register_plugin(pm, infos, plugin, name, "")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        _warn(f"plugin hook not in the contract (misspelled?): {exc}")

    registry = Registry(pm, infos)
    _run_registrations(registry)
    registry.warnings = list(_messages)
    return registry


def _dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _run_registrations(registry: Registry) -> None:
    """Call each registration hook plugin by plugin, isolating failures."""

    def callbacks(plugin: str) -> dict[str, Callable[..., None]]:
        info = registry.plugins[plugin]

        def register_task(task: Task) -> None:
            if not isinstance(task, Task):
                raise PluginError(f"register_tasks expects a Task instance, got {task!r}")
            registry.tasks[task.name] = task
            info.tasks.append(task.name)

        def register_model(
            task: str, name: str, factory: Callable[..., Any], description: str = ""
        ) -> None:
            registry.models[(task, name)] = ModelEntry(task, name, factory, description, plugin)
            info.models.append(f"{task}/{name}")

        def register_loss(name: str, factory: Callable[..., Any], description: str = "") -> None:
            registry.losses[name] = LossEntry(name, factory, description, plugin)

        def register_reader(task: str, name: str, reader: Any) -> None:
            registry.readers[(task, name)] = ReaderEntry(task, name, reader, plugin)

        return {
            "register_tasks": register_task,
            "register_models": register_model,
            "register_losses": register_loss,
            "register_readers": register_reader,
        }

    for hook_name in ("register_tasks", "register_models", "register_losses", "register_readers"):
        for impl in getattr(registry.hook, hook_name).get_hookimpls():
            info = registry.plugins.get(impl.plugin_name)
            if info is None or info.error:
                continue
            try:
                impl.function(callbacks(impl.plugin_name)[hook_name])
            except Exception as exc:
                info.error = f"{hook_name} failed: {exc!r}"
                _warn(f"plugin {info.name} {info.version}: {hook_name} failed: {exc!r}; skipped")
    # Drop everything a failed plugin registered, so no half-registered task shows.
    failed = {name for name, info in registry.plugins.items() if info.error}
    if failed:
        registry.tasks = {
            k: v for k, v in registry.tasks.items() if k not in _tasks_of(registry, failed)
        }
        registry.models = {k: v for k, v in registry.models.items() if v.plugin not in failed}
        registry.losses = {k: v for k, v in registry.losses.items() if v.plugin not in failed}
        registry.readers = {k: v for k, v in registry.readers.items() if v.plugin not in failed}
        for name in failed:
            plugin = registry.pm.get_plugin(name)
            if plugin is not None:
                registry.pm.unregister(plugin)


def _tasks_of(registry: Registry, plugins: set[str]) -> set[str]:
    return {t for name in plugins for t in registry.plugins[name].tasks}


_registry: Registry | None = None
_extra: list[tuple[str, Any]] = []


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _registry
    if _registry is None:
        _registry = build_registry(_extra)
    return _registry


def reset_registry(extra_plugins: Iterable[tuple[str, Any]] = ()) -> None:
    """Forget the registry; the next :func:`get_registry` rebuilds it (tests)."""
    global _registry, _extra
    _registry = None
    _extra = list(extra_plugins)
