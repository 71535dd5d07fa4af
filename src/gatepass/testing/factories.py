"""
Small builders for engine tests: a target and an engine context without a broker.

A third-party engine's tests need what the broker would pass its engine: a
:class:`~gatepass.models.Target` and an :class:`~gatepass.engines.EngineContext`
with a state directory, a sealer, a clock and an installation id.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography.fernet import Fernet

from gatepass.clock import Clock
from gatepass.engines import EngineContext, new_installation_id
from gatepass.models import Target
from gatepass.sealing import Sealer

__all__ = ["make_engine_context", "make_target"]


def make_target(
    kind: str,
    *,
    name: str = "example",
    actions: tuple[str, ...] = ("read", "write"),
    max_ttl: dt.timedelta = dt.timedelta(hours=1),
) -> Target:
    """
    Return a target of ``kind`` in tenant ``acme``, environment ``dev``.

    Args:
        kind: the engine kind the target is served by.
        name: the target (mount) name.
        actions: the actions it offers.
        max_ttl: its longest credential.
    """
    return Target(
        name=name,
        uri=f"https://{name}.example/",
        kind=kind,
        environment="dev",
        tenant="acme",
        risk="low",
        actions=actions,
        max_ttl=max_ttl,
    )


def make_engine_context(
    state_dir: Path, clock: Clock, *, installation_id: str | None = None
) -> EngineContext:
    """
    Return an engine context as the broker would build it.

    Args:
        state_dir: the engine's state directory (a ``tmp_path``).
        clock: the clock the engine reads (a ``FrozenClock``).
        installation_id: the deployment's id; a fresh one by default, so that
            each test's credentials are its own.
    """
    return EngineContext(
        state_dir=state_dir,
        sealer=Sealer([Fernet.generate_key()]),
        clock=clock,
        installation_id=installation_id or new_installation_id(),
    )
