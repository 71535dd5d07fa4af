"""
Reconcile: bring a database that went back in time in line with the anchor journal.

``gatepass audit reconcile`` (``POST /v1/audit/reconcile``):

1. compares the database with the journal again;
2. after a fork (the database is behind the journal, or its history differs),
   closes the current journal file (renamed, kept) and starts a new segment whose
   first line names it and its SHA-256;
3. in one transaction, re-applies every ending the journal holds and the database
   lacks (tasks closed with their leases, leases ended, agents disabled, API
   tokens revoked; engine leases go to ``revoking`` so the revocation worker
   drives them through their engines again, idempotently) and appends an
   ``audit.rollback`` record naming the problem, both heads, the closed
   segments with their fork seqs (the lost range) and what was re-applied;
4. runs the revocation worker and the reaper at once, which removes every engine
   credential no live lease accounts for (those issued after the snapshot too);
5. signs a checkpoint, compares once more and unseals.

A broker sealed only because its journal could not be written is unsealed once the
journal opens again. See docs/audit.md for the operator's side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio

from gatepass.audit import ROLLBACK_KIND, Comparison, Outcome
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.trail import AuditRecorder
from gatepass.errors import AuditIntegrityError, SealedError
from gatepass.models import AgentStatus, ApprovalState
from gatepass.observability import get_logger
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import api_tokens as token_rows
from gatepass.store import approvals as approval_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

if TYPE_CHECKING:
    from gatepass.broker.audit_anchor import AuditAnchoring

__all__ = ["Reconciler"]

_log = get_logger("gatepass.audit")
_LISTED: Final = 100  # ids named in an audit record; the counts cover the rest


def _listed(ids: set[str]) -> list[str]:
    return sorted(ids)[:_LISTED]


_REASON: Final = "ended per the audit anchor journal (reconcile)"


def _end_task(conn: Connection, task_id: str, now: dt.datetime) -> bool:
    closed = task_rows.close_task(conn, task_id, now=now, reason=_REASON)
    # The journal says the task ended, so none of its leases may stay live.
    lease_rows.revoke_task_leases(conn, task_id, now)
    return closed


def _reapply_endings(
    conn: Connection, ended: Mapping[str, frozenset[str]], now: dt.datetime
) -> dict[str, list[str]]:
    """End, in one transaction, everything the journal ended and the rows lack."""
    done: dict[str, list[str]] = {
        "tasks": [],
        "leases": [],
        "agents": [],
        "approvals": [],
        "api_tokens": [],
    }
    for agent_id in sorted(ended.get("agents", ())):
        if agent_rows.set_agent_status(conn, agent_id, AgentStatus.DISABLED, now):
            done["agents"].append(agent_id)
            for open_task in task_rows.open_task_ids_of_agent(conn, agent_id):
                _end_task(conn, open_task, now)
    done["tasks"] = [
        task_id
        for task_id in sorted(ended.get("tasks", ()))
        if _end_task(conn, task_id, now)
    ]
    done["leases"] = [
        lease_id
        for lease_id in sorted(ended.get("leases", ()))
        if lease_rows.revoke_lease(conn, lease_id, now)
    ]
    # An approval the journal saw redeemed, denied, expired or cancelled must
    # never be redeemable again: cancelled here, whatever the rows went back to.
    done["approvals"] = [
        approval_id
        for approval_id in sorted(ended.get("approvals", ()))
        if approval_rows.end_approval(
            conn, approval_id, ApprovalState.CANCELLED, now=now, reason=_REASON
        )
    ]
    # A token the journal saw revoked is revoked again (a restore revived it).
    done["api_tokens"] = [
        token_id
        for token_id in sorted(ended.get(token_rows.ENDED_KIND, ()))
        if token_rows.revoke_api_token(conn, token_id, now)
    ]
    return done


class Reconciler:
    """
    One reconcile run.

    Args:
        anchoring: the broker's audit anchoring (journal, seal, comparison).
        revocations: drives revocations and reaps engine orphans.
    """

    def __init__(
        self, anchoring: AuditAnchoring, revocations: RevocationWorker
    ) -> None:
        """Keep the collaborators."""
        self._anchoring = anchoring
        self._revocations = revocations

    async def run(self, actor: str) -> dict[str, Any]:
        """
        Bring the database back in line with the journal, then unseal.

        Returns:
            What was found and done: ``reconciled``, the problem, the lost range,
            the re-applied ids, the reaped credentials and the new checkpoint.

        Raises:
            AuditIntegrityError: the database still disagrees afterwards (the
                broker stays sealed).
            SealedError: the journal cannot be rotated (the broker stays sealed).
        """
        anchoring = self._anchoring
        comparison = await anyio.to_thread.run_sync(anchoring.compare)
        if comparison.agrees:
            return await self._reopen_journal(comparison)
        forked = comparison.current is not None or bool(comparison.unacknowledged)
        segments: list[dict[str, Any]] = []
        if forked:
            try:
                reference = await anyio.to_thread.run_sync(
                    anchoring.journal.start_segment
                )
            except OSError as error:
                raise SealedError(
                    "cannot start a new anchor journal segment "
                    f"({type(error).__name__}); the broker stays sealed"
                ) from error
            if comparison.current is not None:
                closed = comparison.current.to_json()
                closed.update(file=reference.file, sha256=reference.sha256)
                segments.append(closed)
            segments.extend(item.to_json() for item in comparison.unacknowledged)
        reapplied = await self._reapply(comparison, actor, segments, forked=forked)
        anchoring.context.signals.revoked()
        await self._revocations.run()
        reaped = await self._revocations.reap()
        checkpoint = await anchoring.checkpoint_now()
        after = await anyio.to_thread.run_sync(anchoring.compare)
        if not after.agrees:
            raise AuditIntegrityError(
                f"still disagrees after reconcile: {after.problem}"
            )
        anchoring.seal.open()
        return {
            "reconciled": True,
            "problem": comparison.problem,
            "database_head": comparison.database_head,
            "journal_head": comparison.journal_head,
            "segments": segments,
            "reapplied": reapplied,
            "reaped": {target: len(names) for target, names in reaped.items()},
            "checkpoint": None if checkpoint is None else checkpoint.to_json(),
        }

    async def _reopen_journal(self, comparison: Comparison) -> dict[str, Any]:
        anchoring = self._anchoring
        was = anchoring.seal.reason
        if anchoring.seal.sealed:
            try:
                await anyio.to_thread.run_sync(anchoring.journal.open)
            except OSError as error:
                raise SealedError(
                    f"the anchor journal still cannot be written "
                    f"({type(error).__name__}); the broker stays sealed"
                ) from error
            await anchoring.context.trail.append(
                anchoring.entry(
                    "audit.unseal", Outcome.OK, "system", {"was": was or ""}
                )
            )
            anchoring.seal.open()
        return {
            "reconciled": was is not None,
            "problem": was,
            "database_head": comparison.database_head,
            "journal_head": comparison.journal_head,
            "segments": [],
            "reapplied": {},
            "reaped": {},
            "checkpoint": None,
        }

    async def _reapply(
        self,
        comparison: Comparison,
        actor: str,
        segments: list[dict[str, Any]],
        *,
        forked: bool,
    ) -> dict[str, Any]:
        anchoring = self._anchoring
        ended: Mapping[str, frozenset[str]] = comparison.ended_live
        now = anchoring.context.clock.now()

        def apply(conn: Connection, audit: AuditRecorder) -> dict[str, list[str]]:
            done = _reapply_endings(conn, ended, now)
            data: dict[str, Any] = {
                "problem": comparison.problem,
                "database_head": comparison.database_head,
                "journal_head": comparison.journal_head,
                "reapplied_count": {kind: len(ids) for kind, ids in done.items()},
                "reapplied": {kind: _listed(set(ids)) for kind, ids in done.items()},
            }
            if forked:
                data["segments"] = segments
            kind = ROLLBACK_KIND if forked else "audit.reconcile"
            audit.append(conn, anchoring.entry(kind, Outcome.OK, actor, data))
            return done

        done = await anchoring.context.trail.write(apply)
        anchoring.context.directory.forget_tasks(done["tasks"])
        for agent_id in done["agents"]:
            anchoring.context.directory.forget_agent(agent_id)
        _log.warning(
            "audit reconciled",
            forked=forked,
            database_head=comparison.database_head,
            journal_head=comparison.journal_head,
            **{kind: len(ids) for kind, ids in done.items()},
        )
        return {kind: len(ids) for kind, ids in done.items()}
