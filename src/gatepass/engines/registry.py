"""
The catalog of engines, and building one engine per engine-backed target.

Built-in engines are registered explicitly by name (as in SPIRE's catalog) and
imported only when a target uses them, so a broker without Redis targets never
imports the Redis client. Third-party engines register under the entry-point group
``gatepass.engines``. An engine that fails to load or validate stops the start.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

from gatepass.engines.base import SecretEngine
from gatepass.engines.context import EngineContext
from gatepass.engines.wrappers import GuardedEngine
from gatepass.errors import ConfigurationError
from gatepass.models import Target
from gatepass.observability import Metrics

__all__ = ["BUILTIN_ENGINES", "EngineFactory", "build_engines", "load_engine_class"]

BUILTIN_ENGINES: Mapping[str, str] = {
    "postgres": "gatepass.engines.postgres:PostgresEngine",
    "redis": "gatepass.engines.redis:RedisEngine",
    "ssh": "gatepass.engines.ssh:SSHEngine",
}
_ENTRY_POINT_GROUP = "gatepass.engines"


class EngineFactory(Protocol):
    """What an engine class offers to be built from configuration."""

    def from_target(
        self, target: Target, settings: Mapping[str, Any], context: EngineContext
    ) -> SecretEngine:
        """Build the engine of one mount."""
        ...


def load_engine_class(kind: str) -> EngineFactory:
    """
    Return the engine class registered for ``kind``.

    Raises:
        ConfigurationError: no engine of that kind, or it failed to import.
    """
    reference = BUILTIN_ENGINES.get(kind)
    if reference is None:
        found = [ep for ep in entry_points(group=_ENTRY_POINT_GROUP) if ep.name == kind]
        if not found:
            raise ConfigurationError(f"no engine of kind {kind!r}")
        try:
            loaded: EngineFactory = found[0].load()
        except Exception as exc:
            raise ConfigurationError(f"engine {kind!r} failed to load") from exc
        return loaded
    module_name, _, class_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"engine {kind!r} needs a package that is not installed ({exc.name})"
        ) from exc
    engine_class: EngineFactory = getattr(module, class_name)
    return engine_class


def build_engines(
    targets: Iterable[tuple[Target, Mapping[str, Any]]],
    *,
    context: EngineContext,
    metrics: Metrics,
    timeout: dt.timedelta = dt.timedelta(seconds=10),
) -> dict[str, GuardedEngine]:
    """
    Build a guarded engine for every engine-backed target.

    Args:
        targets: each target with its ``[targets.engine]`` table.
        context: shared facilities (state directory, sealer, clock).
        metrics: where engine calls are counted.
        timeout: the longest any engine call may take.

    Returns:
        Engines by target name (``http`` targets have none).

    Raises:
        ConfigurationError: an engine is unknown or its settings are invalid.
    """
    engines: dict[str, GuardedEngine] = {}
    for target, settings in targets:
        if target.kind == "http":
            continue
        engine = load_engine_class(target.kind).from_target(target, settings, context)
        engines[target.name] = GuardedEngine(
            engine, target=target.name, metrics=metrics, timeout=timeout
        )
    return engines
