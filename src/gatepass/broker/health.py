"""Readiness: may a load balancer send this broker traffic?"""

from __future__ import annotations

from dataclasses import dataclass

from gatepass.broker.context import BrokerContext
from gatepass.errors import GatepassError, StoreError
from gatepass.observability import get_logger

__all__ = ["Health", "Readiness"]

_log = get_logger("gatepass.health")


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    """
    The answer: ready, or why not.

    Attributes:
        ready: True when the broker can serve issuance.
        error: a short code when not (``store_unavailable``, ``sealed``,
            ``audit_integrity``, ``no_policies``).
        reason: one line for operators.
        identity: each federated issuer's key state (``ok``, ``stale``,
            ``unavailable``, ``pending``), when any is configured; an issuer whose
            keys are unavailable refuses its tokens but does not make the broker
            unready.
    """

    ready: bool
    error: str | None = None
    reason: str | None = None
    identity: dict[str, dict[str, object]] | None = None


class Health:
    """
    Readiness checks.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def readiness(self) -> Readiness:
        """Tell whether the store answers, the broker is unsealed and has policies."""
        context = self._context
        try:
            await context.database.check()
        except StoreError:
            return Readiness(
                ready=False, error="store_unavailable", reason="store unavailable"
            )
        unready = context.seal.unready()
        if unready is not None:
            code, reason = unready
            return Readiness(ready=False, error=code, reason=reason)
        if context.policies.current.policy_count == 0:
            return Readiness(
                ready=False, error="no_policies", reason="no policies loaded"
            )
        return Readiness(ready=True, identity=self.identity_health())

    def identity_health(self) -> dict[str, dict[str, object]] | None:
        """Return each federated issuer's key state, or None without federation."""
        federation = self._context.federation
        if federation is None:
            return None
        return {name: health.to_json() for name, health in federation.health().items()}

    async def refresh_identity_keys(self) -> None:
        """Refresh the federated issuers' keys that are due (background job)."""
        federation = self._context.federation
        if federation is None:
            return
        await federation.refresh_due()
        gauge = self._context.metrics.identity_keys
        for name, health in federation.health().items():
            for state in ("pending", "ok", "stale", "unavailable"):
                count = health.key_count if health.state == state else 0
                gauge.labels(issuer=name, state=state).set(count)

    @property
    def dialect(self) -> str:
        """The store's backend (``sqlite`` or ``postgresql``), for the start banner."""
        return self._context.database.dialect

    def metrics(self) -> tuple[bytes, str]:
        """Return the Prometheus exposition and its content type."""
        return self._context.metrics.render()

    async def check_engines(self) -> None:
        """
        Check every engine target at start; log the ones that fail.

        A target that is down at start is reported, not fatal: the broker serves
        every other target, and revocations to this one are retried until it is back.
        """
        for name, engine in self._context.engines.items():
            try:
                await engine.check()
            except GatepassError as error:
                _log.error("engine check failed", target=name, detail=error.detail)

    async def close_engines(self) -> None:
        """Release every engine's connections (at shutdown)."""
        for engine in self._context.engines.values():
            await engine.aclose()
