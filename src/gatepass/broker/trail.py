"""
The one way the broker writes its audit log.

Every use case describes what it is doing in an :class:`Attempt` (kind, actor,
subject, details gathered as they become known) and ends it in exactly one of two
ways:

* with the change it made, in the same transaction: :meth:`AuditTrail.write` runs
  the change and gives it an :class:`AuditRecorder` whose :meth:`~AuditRecorder.record`
  appends the record beside the change (DESIGN ground rule 2: audit or nothing);
* refused: :meth:`AuditTrail.refuse` appends the refusal, with its error code and
  description, in a transaction of its own before the error reaches the caller.

The ``gatepass_audit_events`` metric is counted here, once per record, and only
after its transaction committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gatepass.audit import AuditEntry, Outcome
from gatepass.clock import Clock
from gatepass.errors import GatepassError
from gatepass.observability import Metrics
from gatepass.store import Connection, Database, audit_log

__all__ = ["Attempt", "AuditRecorder", "AuditTrail", "Suspicion"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Suspicion:
    """
    Why a refusal may be a stolen or cached credential (``broker/reuse.py``).

    Attributes:
        kind: ``closed_task_use``, ``foreign_key``, ``replayed_proof``,
            ``wrong_audience`` or ``two_keys``.
        evidence: ids, key thumbprints and hashes (never a token).
    """

    kind: str
    evidence: dict[str, Any]


@dataclass(slots=True)
class Attempt:
    """
    What is known about a request so far, for its audit record.

    Attributes:
        kind: the dotted event name (``task.open``, ``credential.issue``...).
        actor: who asks: an agent id, ``admin:<token id>`` or ``system``.
        subject: the task, lease or agent acted on, once known.
        data: details (never a secret: the audit entry scrubs them anyway).
        suspicion: set where a refusal looks like credential reuse; never
            audited as such (``broker/reuse.py`` writes ``credential.reuse``).
    """

    kind: str
    actor: str = "unknown"
    subject: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    suspicion: Suspicion | None = None


class AuditRecorder:
    """Appends records inside one write transaction (see :meth:`AuditTrail.write`)."""

    def __init__(self, trail: AuditTrail) -> None:
        """Start with nothing recorded."""
        self._trail = trail
        self.kinds: list[str] = []

    def record(
        self, conn: Connection, attempt: Attempt, outcome: Outcome
    ) -> AuditEntry:
        """
        Append the attempt's record to the transaction of ``conn``.

        Returns:
            The entry appended.
        """
        entry = self._trail.entry(attempt, outcome)
        self.append(conn, entry)
        return entry

    def append(self, conn: Connection, entry: AuditEntry) -> None:
        """Append a prepared entry to the transaction of ``conn``."""
        audit_log.append_audit(conn, entry)
        self.kinds.append(entry.kind)


class AuditTrail:
    """
    Builds audit entries and writes them with the changes they describe.

    Args:
        database: the store.
        clock: the time of each entry.
        metrics: where records are counted.
    """

    def __init__(self, database: Database, *, clock: Clock, metrics: Metrics) -> None:
        """Keep the collaborators."""
        self._database = database
        self._clock = clock
        self._metrics = metrics

    def entry(self, attempt: Attempt, outcome: Outcome) -> AuditEntry:
        """Return the audit entry of an attempt with this outcome, timed now."""
        return AuditEntry(
            at=self._clock.now(),
            kind=attempt.kind,
            outcome=outcome,
            actor=attempt.actor,
            subject=attempt.subject,
            data=attempt.data,
        )

    async def write(self, change: Callable[[Connection, AuditRecorder], T]) -> T:
        """
        Run ``change`` in one committed write transaction with its records.

        ``change`` may run twice (the group-commit writer retries a failed batch
        job by job); each run starts with a fresh recorder, so records are counted
        once, after the commit.

        Args:
            change: the change; it records what it did through the recorder.

        Returns:
            What ``change`` returned.

        Raises:
            StoreError: the transaction failed (nothing was written).
        """
        recorder = AuditRecorder(self)

        def work(conn: Connection) -> T:
            recorder.kinds.clear()
            return change(conn, recorder)

        result = await self._database.write(work)
        self._count(recorder.kinds)
        return result

    async def append(self, *entries: AuditEntry) -> None:
        """
        Append entries in a transaction of their own.

        Raises:
            StoreError: the records could not be written.
        """

        def change(conn: Connection, recorder: AuditRecorder) -> None:
            for entry in entries:
                recorder.append(conn, entry)

        await self.write(change)

    async def record(self, attempt: Attempt, outcome: Outcome) -> None:
        """Append an attempt's record in a transaction of its own."""
        await self.append(self.entry(attempt, outcome))

    async def refuse(self, attempt: Attempt, error: GatepassError) -> None:
        """
        Audit a refused attempt with its error code and description.

        A client's mistake or a policy's no is a ``deny``; a failure on the
        broker's side (5xx) an ``error``.

        Raises:
            StoreError: the record could not be written (the request then fails
                with that error: audit or nothing).
        """
        attempt.data["error"] = error.code
        attempt.data["detail"] = error.detail
        outcome = Outcome.DENY if error.http_status < 500 else Outcome.ERROR
        await self.record(attempt, outcome)

    def _count(self, kinds: list[str]) -> None:
        for kind in kinds:
            self._metrics.audit_events.labels(kind=kind).inc()
