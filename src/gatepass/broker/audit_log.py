"""
Reading the audit log, anchoring it on demand, and recording the proxy's calls.

Verification itself never runs here: ``gatepass audit verify`` checks what these
return with only the audit public key, because a broker whose database was
rewritten cannot vouch for itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gatepass.audit import AuditEntry, Checkpoint, Outcome
from gatepass.broker.audit_anchor import AuditAnchoring
from gatepass.broker.callers import Caller
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt
from gatepass.errors import GatepassError
from gatepass.store import audit_log

__all__ = ["AuditFilter", "AuditLog", "ProxyCall"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyCall:
    """
    One proxied call or refusal, as the credential-injecting proxy reports it.

    Attributes:
        outcome: ``ok``, ``deny`` or ``error``.
        agent_id: the agent, when the proxy knew it.
        task_id: the task, when the proxy knew it.
        details: the rest of the proxy's fields (route, method, path, status,
            byte counts, latency, the access token's jti, the reason code).
    """

    outcome: Outcome
    agent_id: str
    task_id: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    """
    Which audit records an operator asks for; every filter given must hold.

    Attributes:
        agent: an agent id that acted, was acted on, or is named in the details.
        task: a task id that is the subject or is named in the details.
        kind: a kind (``task.open``) or a dotted prefix (``task``).
        outcome: ``ok``, ``allow``, ``deny`` or ``error``.
        since: only records at or after this time.
    """

    agent: str | None = None
    task: str | None = None
    kind: str | None = None
    outcome: Outcome | None = None
    since: dt.datetime | None = None


class AuditLog:
    """
    The audit log's use cases.

    Args:
        context: the broker's collaborators.
        anchoring: checkpoints and reconcile.
    """

    def __init__(self, context: BrokerContext, anchoring: AuditAnchoring) -> None:
        """Keep the collaborators."""
        self._context = context
        self._anchoring = anchoring

    @property
    def public_key(self) -> dict[str, Any]:
        """The audit key's public JWK, which verifies checkpoints."""
        return dict(self._context.signer.public_jwk)

    async def events(self, *, after: int, limit: int) -> list[dict[str, Any]]:
        """Return audit records after ``after`` as JSON objects, oldest first."""
        records = await self._context.database.read(
            lambda c: list(audit_log.iter_audit(c, after=after, limit=limit))
        )
        return [record.to_json() for record in records]

    async def last(self, count: int) -> list[dict[str, Any]]:
        """Return the newest ``count`` audit records as JSON objects, in order."""
        records = await self._context.database.read(
            lambda c: audit_log.last_audit(c, count)
        )
        return [record.to_json() for record in records]

    async def page(
        self,
        match: AuditFilter,
        *,
        limit: int,
        after: int = 0,
        newest: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        """
        Return matching records as JSON objects, oldest first, and the next cursor.

        Args:
            match: the filters.
            limit: at most this many records.
            after: only records after this seq.
            newest: the newest matching records rather than the oldest after
                ``after``.

        Returns:
            The records and the seq to continue after (``audit tail --follow``
            passes it back as ``after``); it never skips a matching record.
        """
        outcome = None if match.outcome is None else match.outcome.value
        records, next_seq = await self._context.database.read(
            lambda c: audit_log.audit_page(
                c,
                limit=limit,
                after=after,
                newest=newest,
                agent=match.agent,
                task=match.task,
                kind=match.kind,
                outcome=outcome,
                since=match.since,
            )
        )
        return [record.to_json() for record in records], next_seq

    async def checkpoints(self) -> list[dict[str, Any]]:
        """Return every checkpoint as JSON objects."""
        found = await self._context.database.read(audit_log.list_checkpoints)
        return [checkpoint.to_json() for checkpoint in found]

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the chain head if it moved (the background job's tick)."""
        return await self._anchoring.checkpoint()

    async def checkpoint_now(self) -> Checkpoint | None:
        """
        Return a checkpoint covering the current head, signing one if needed.

        Raises:
            AuditIntegrityError: a record since the last checkpoint failed its
                chain or MAC check; nothing was signed.
        """
        return await self._anchoring.checkpoint_now()

    async def reconcile(self, caller: Caller) -> dict[str, Any]:
        """Re-apply what the anchor journal holds and the database lacks; unseal."""
        return await self._anchoring.reconcile(caller.actor)

    async def reject(
        self, kind: str, error: GatepassError, *, actor: str = "unknown"
    ) -> None:
        """
        Audit a request the API refused before it reached a use case.

        Raises:
            StoreError: the refusal could not be audited.
        """
        await self._context.trail.refuse(Attempt(kind=kind, actor=actor), error)

    async def record_proxy_calls(self, caller: Caller, calls: list[ProxyCall]) -> int:
        """
        Append the proxy's records of proxied calls (``proxy.call``).

        Returns:
            How many were recorded.
        """
        now = self._context.clock.now()
        entries = [
            AuditEntry(
                at=now,
                kind="proxy.call",
                outcome=call.outcome,
                actor=(call.agent_id or "unknown")[:80],
                subject=call.task_id[:80],
                data={**call.details, "proxy": caller.token_id},
            )
            for call in calls
        ]
        await self._context.trail.append(*entries)
        return len(entries)
