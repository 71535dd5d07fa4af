"""
Revocation through engines, retried until it succeeds, and the reaper.

Ground rule 5 (never give up revoking): a lease whose target refuses or cannot be
reached stays ``revoking``, visible in ``gatepass leases list`` with its attempts
and last error, is retried with exponential backoff (capped at five minutes), and
every failure is logged at error level and counted in
``gatepass_revocation_failures_total`` for alerting. It is reported ``revoked`` only
when its engine confirmed.

The reaper compares each engine mount with the live leases (pending and active)
and removes what no lease accounts for: credentials orphaned by a crash between
creating them and activating their lease, or left by a broker that was down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet

import anyio

from gatepass.audit import AuditEntry, Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import AuditRecorder
from gatepass.errors import GatepassError
from gatepass.models import Lease
from gatepass.observability import get_logger
from gatepass.store import Connection
from gatepass.store import leases as lease_rows

__all__ = ["RevocationWorker", "backoff"]

_log = get_logger("gatepass.revocations")
_MAX_BACKOFF = dt.timedelta(minutes=5)


def backoff(attempts: int) -> dt.timedelta:
    """Return the wait before retry ``attempts`` + 1: 2 s, 4 s, 8 s ... 5 min."""
    return min(dt.timedelta(seconds=2 ** min(attempts, 16)), _MAX_BACKOFF)


class RevocationWorker:
    """
    Drive ``revoking`` leases to ``revoked`` and reap orphans.

    Args:
        context: the broker's collaborators (engines, store, signals).
        stale_after: how old a pending lease must be to count as an issuance
            that crashed (the engine call timeout plus a margin).
    """

    def __init__(
        self,
        context: BrokerContext,
        *,
        stale_after: dt.timedelta = dt.timedelta(seconds=15),
    ) -> None:
        """Keep the context; one pass runs at a time."""
        self._broker = context
        self._lock = anyio.Lock()
        self._stale_after = stale_after

    def _entry(self, kind: str, subject: str, data: dict[str, object]) -> AuditEntry:
        return AuditEntry(
            at=self._broker.clock.now(),
            kind=kind,
            outcome=Outcome.OK,
            actor="system",
            subject=subject,
            data=data,
        )

    async def run(self, *, limit: int = 100) -> int:
        """
        Try every revocation that is due.

        Returns:
            How many leases were confirmed revoked.
        """
        broker = self._broker
        if not broker.engines:
            # Access tokens are revoked by marking their lease: nothing to drive.
            return 0
        async with self._lock:
            now = broker.clock.now()
            due: list[Lease] = await broker.database.read(
                lambda c: lease_rows.due_revocations(c, now, limit=limit)
            )
            confirmed = 0
            for lease in due:
                if lease.id in broker.signals.issuing:
                    continue
                if await self._revoke(lease):
                    confirmed += 1
            pending = await broker.database.read(
                lambda c: len(lease_rows.due_revocations(c, now + _MAX_BACKOFF))
            )
            broker.metrics.revocations_pending.set(pending)
            return confirmed

    async def _revoke(self, lease: Lease) -> bool:
        broker = self._broker
        engine = broker.engines.get(lease.target)
        try:
            if engine is None:
                msg = f"no engine is configured for target {lease.target}"
                raise GatepassError(msg)  # noqa: TRY301 - handled right below
            await engine.revoke(lease.handle)
        except GatepassError as error:
            await self._failed(lease, error.detail)
            return False
        entry = self._entry(
            "lease.revoked", lease.id, {"target": lease.target, "kind": lease.kind}
        )

        def confirm(conn: Connection, audit: AuditRecorder) -> None:
            if lease_rows.mark_revoked(conn, lease.id, broker.clock.now()):
                audit.append(conn, entry)

        await broker.trail.write(confirm)
        broker.metrics.revocations.labels(reason="engine_confirmed").inc()
        return True

    async def _failed(self, lease: Lease, detail: str) -> None:
        broker = self._broker
        retry_at = broker.clock.now() + backoff(lease.attempts + 1)
        attempts = await broker.database.write(
            lambda conn: lease_rows.record_revoke_failure(
                conn, lease.id, error=detail, retry_at=retry_at
            )
        )
        broker.metrics.revocation_failures.labels(engine=lease.kind).inc()
        # Error level on purpose: a credential that cannot be revoked is an alert.
        _log.error(
            "revocation failed; will retry",
            lease_id=lease.id,
            target=lease.target,
            attempts=attempts,
            retry_at=retry_at.isoformat(),
            detail=detail,
        )

    def _is_live_now(self, name: str) -> bool:
        # A credential created after the snapshot was read belongs to a lease that
        # was committed pending before the engine made it: look again before
        # removing anything. Only orphan candidates get here, so this is rare.
        with self._broker.database.reading() as conn:
            return lease_rows.is_live_name(conn, name)

    async def reap(self) -> dict[str, list[str]]:
        """
        Remove credentials in every mount that no live lease accounts for.

        Pending leases older than the engine timeout (an issuance that crashed) are
        ended first and revoked. Then one mount at a time; a failing mount is logged
        and skipped until the next pass.

        Returns:
            The removed handles by target.
        """
        broker = self._broker
        removed: dict[str, list[str]] = {}
        now = broker.clock.now()
        abandoned = await broker.database.write(
            lambda conn: lease_rows.end_stale_pending(
                conn, issued_before=now - self._stale_after, now=now
            )
        )
        if abandoned:
            _log.warning("abandoned issuances found", leases=abandoned[:20])
            await self.run()
        async with self._lock:
            for target, engine in broker.engines.items():
                snapshot = await broker.database.read(lease_rows.live_handles)
                live = _LiveHandles(snapshot, self._is_live_now)
                try:
                    gone = await engine.reap(live)
                except GatepassError as error:
                    _log.error("reap failed", target=target, detail=error.detail)
                    continue
                if gone:
                    removed[target] = gone
                    entry = self._entry(
                        "credential.reap", target, {"removed": gone[:100]}
                    )
                    await broker.trail.append(entry)
        return removed


class _LiveHandles(AbstractSet[str]):
    """The live names: a snapshot, re-checked in the store for any name it lacks."""

    def __init__(self, snapshot: set[str], recheck: Callable[[str], bool]) -> None:
        self._snapshot = snapshot
        self._recheck = recheck

    def __contains__(self, name: object) -> bool:
        if name in self._snapshot:
            return True
        return isinstance(name, str) and self._recheck(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._snapshot)

    def __len__(self) -> int:
        return len(self._snapshot)
