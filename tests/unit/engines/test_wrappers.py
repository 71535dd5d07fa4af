"""Guard rails around engines, and the engine catalog."""

from __future__ import annotations

import datetime as dt
from collections.abc import Set as AbstractSet
from typing import ClassVar

import anyio
import pytest

from gatepass.clock import FrozenClock
from gatepass.engines import (
    EngineContext,
    IssuedCredential,
    IssueRequest,
    new_installation_id,
)
from gatepass.engines.registry import build_engines, load_engine_class
from gatepass.engines.wrappers import GuardedEngine
from gatepass.errors import (
    ConfigurationError,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
)
from gatepass.ids import new_lease_id
from gatepass.models import Target
from gatepass.observability import Metrics
from gatepass.sealing import Sealer
from gatepass.testing import MemoryEngine

CANARY = "postgresql://admin:s3cr3t-canary@db/x"


class Misbehaving:
    """An engine whose calls hang or raise driver-style errors."""

    kind: ClassVar[str] = "misbehaving"

    def __init__(self, mode: str) -> None:
        """Choose how to misbehave."""
        self.mode = mode

    async def _act(self) -> None:
        if self.mode == "hang":
            await anyio.Event().wait()
        if self.mode == "leak":
            raise RuntimeError(CANARY)
        if self.mode == "refuse":
            msg = "bad public key"
            raise InvalidRequestError(msg)

    async def check(self) -> None:
        """Misbehave."""
        await self._act()

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """Misbehave."""
        await self._act()
        return IssuedCredential(handle=request.name, expires_at=request.expires_at)

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:  # noqa: ARG002
        """Misbehave."""
        await self._act()
        return expires_at

    async def revoke(self, handle: str) -> None:  # noqa: ARG002 - protocol shape
        """Misbehave."""
        await self._act()

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:  # noqa: ARG002
        """Misbehave."""
        await self._act()
        return []

    async def aclose(self) -> None:
        """Fail to close."""
        raise RuntimeError(CANARY)


def request() -> IssueRequest:
    """Build an issue request."""
    lease_id = new_lease_id()
    return IssueRequest(
        lease_id=lease_id,
        name="gp_" + lease_id[4:],
        actions=("read",),
        principal="agt_x",
        expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )


def guarded(engine: object, metrics: Metrics | None = None) -> GuardedEngine:
    """Wrap an engine with a short timeout."""
    return GuardedEngine(
        engine,  # type: ignore[arg-type]
        target="t",
        metrics=metrics or Metrics(),
        timeout=dt.timedelta(seconds=0.2),
    )


class TestGuardedEngine:
    """Timeouts, scrubbing and metrics."""

    def test_timeout_is_unavailable(self) -> None:
        """A call that hangs becomes engine_unavailable after the timeout."""
        with pytest.raises(EngineUnavailableError, match="did not answer"):
            anyio.run(guarded(Misbehaving("hang")).revoke, "gp_x")

    def test_driver_errors_are_scrubbed(self) -> None:
        """An unexpected error becomes EngineError without its message."""
        with pytest.raises(EngineError) as caught:
            anyio.run(guarded(Misbehaving("leak")).issue, request())
        assert CANARY not in str(caught.value)
        assert caught.value.__cause__ is None

    def test_gatepass_errors_pass_through(self) -> None:
        """Errors that are already gatepass errors keep their code."""
        with pytest.raises(InvalidRequestError):
            anyio.run(guarded(Misbehaving("refuse")).check)

    def test_success_and_metrics(self) -> None:
        """A working engine's calls are counted by outcome."""
        metrics = Metrics()
        engine = guarded(MemoryEngine(), metrics)
        issued = anyio.run(engine.issue, request())
        assert issued.secret is not None
        assert anyio.run(engine.reap, {issued.handle}) == []
        anyio.run(engine.aclose)
        body, _ = metrics.render()
        assert b'gatepass_engine_calls_total{engine="memory",operation="issue"' in body
        assert b"pw-" not in body

    def test_close_failure_is_swallowed(self) -> None:
        """A failing close never fails shutdown."""
        anyio.run(guarded(Misbehaving("none")).aclose)


class TestRegistry:
    """Engines are found by kind and built from each target's settings."""

    def context(self, tmp_path: object) -> EngineContext:
        """Build an engine context."""
        from pathlib import Path  # noqa: PLC0415

        from cryptography.fernet import Fernet  # noqa: PLC0415

        return EngineContext(
            state_dir=Path(str(tmp_path)),
            sealer=Sealer([Fernet.generate_key()]),
            clock=FrozenClock(),
            installation_id=new_installation_id(),
        )

    def target(self, kind: str) -> Target:
        """Build a target of ``kind``."""
        return Target(
            name="t",
            uri="redis://r/",
            kind=kind,
            environment="dev",
            tenant="a",
            risk="low",
            actions=("read",),
            max_ttl=dt.timedelta(minutes=5),
        )

    def test_unknown_kind(self) -> None:
        """An unknown engine kind stops the start."""
        with pytest.raises(ConfigurationError, match="no engine of kind"):
            load_engine_class("mainframe")

    def test_builtins_load(self) -> None:
        """Every built-in engine imports."""
        for kind in ("postgres", "redis", "ssh"):
            assert hasattr(load_engine_class(kind), "from_target")

    def test_http_targets_have_no_engine(self, tmp_path: object) -> None:
        """HTTP targets are skipped; invalid engine settings stop the start."""
        context = self.context(tmp_path)
        assert (
            build_engines(
                [(self.target("http"), {})], context=context, metrics=Metrics()
            )
            == {}
        )
        with pytest.raises(ConfigurationError, match=r"targets\.t\.engine"):
            build_engines(
                [(self.target("redis"), {"grants": {}})],
                context=context,
                metrics=Metrics(),
            )
