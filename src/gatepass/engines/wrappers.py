"""
Guard rails around every engine: timeouts, error scrubbing and metrics.

In the spirit of Vault's database-plugin middleware: whatever an engine raises,
the broker sees a ``GatepassError`` whose message names no secret (engine and
driver errors can echo connection strings or statements), and no call can hang
the broker past its timeout.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import ClassVar, TypeVar

import anyio

from gatepass.engines.base import IssuedCredential, IssueRequest, SecretEngine
from gatepass.errors import EngineError, EngineUnavailableError, GatepassError
from gatepass.observability import Metrics, get_logger

__all__ = ["GuardedEngine"]

T = TypeVar("T")
_log = get_logger("gatepass.engines")


class GuardedEngine:
    """
    An engine behind timeouts, error scrubbing and metrics.

    Args:
        engine: the engine of one mount.
        target: the mount's target name (a bounded metric label).
        metrics: where to count calls and failures.
        timeout: the longest any call may take.
    """

    kind: ClassVar[str] = "guarded"

    def __init__(
        self,
        engine: SecretEngine,
        *,
        target: str,
        metrics: Metrics,
        timeout: dt.timedelta = dt.timedelta(seconds=10),
    ) -> None:
        """Wrap the engine."""
        self.engine = engine
        self.target = target
        self.engine_kind = engine.kind
        self._metrics = metrics
        self._timeout = timeout.total_seconds()

    async def _guard(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "ok"
        try:
            with anyio.fail_after(self._timeout):
                return await call()
        except TimeoutError as exc:
            outcome = "timeout"
            raise EngineUnavailableError(
                f"{self.engine_kind} target {self.target} did not answer in time"
            ) from exc
        except GatepassError:
            outcome = "error"
            raise
        except Exception as exc:  # noqa: BLE001 - scrubbed and re-raised as EngineError
            outcome = "error"
            # Never render the exception: drivers put statements, URLs and
            # passwords in their messages.
            _log.error(
                "engine failed",
                engine=self.engine_kind,
                target=self.target,
                operation=operation,
                error=type(exc).__name__,
            )
            raise EngineError(
                f"{self.engine_kind} target {self.target} failed ({type(exc).__name__})"
            ) from None
        finally:
            self._metrics.engine_calls.labels(
                engine=self.engine_kind, operation=operation, outcome=outcome
            ).inc()
            self._metrics.engine_seconds.labels(
                engine=self.engine_kind, operation=operation
            ).observe(time.perf_counter() - started)

    async def check(self) -> None:
        """Check the mount's configuration and connectivity."""
        await self._guard("check", self.engine.check)

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """Mint a credential."""
        return await self._guard("issue", lambda: self.engine.issue(request))

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """Extend a credential."""
        return await self._guard("renew", lambda: self.engine.renew(handle, expires_at))

    async def revoke(self, handle: str) -> None:
        """Remove a credential and cut its sessions; idempotent."""
        await self._guard("revoke", lambda: self.engine.revoke(handle))

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:
        """Remove gatepass credentials no live lease accounts for."""
        return await self._guard("reap", lambda: self.engine.reap(live_handles))

    async def aclose(self) -> None:
        """Release the engine's connections."""
        try:
            await self.engine.aclose()
        except Exception as exc:  # noqa: BLE001 - closing must not fail shutdown
            _log.warning(
                "engine close failed", engine=self.engine_kind, error=type(exc).__name__
            )
