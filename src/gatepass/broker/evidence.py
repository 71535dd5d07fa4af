"""
Exporting a task's evidence bundle: its records, their links to checkpoints, signed.

The broker gathers (the task tree, its leases and approvals, every record about
them, the checkpoints) and signs; building the bundle is
:func:`gatepass.evidence.assemble` and checking it is :func:`gatepass.evidence.
verify_bundle`, which never needs the broker. The export first asks for a
checkpoint over the head (the broker verifies every record's MAC before it signs
one), so every disclosed record is tied to a signed checkpoint; records written
after it are not in the bundle.
"""

from __future__ import annotations

from typing import Any

from gatepass.audit import Checkpoint, Outcome, canonical_bytes, format_timestamp
from gatepass.broker.audit_log import AuditLog
from gatepass.broker.callers import Caller
from gatepass.broker.context import BrokerContext
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import AuditIntegrityError, NotFoundError
from gatepass.evidence import SIGNING_PREFIX, assemble
from gatepass.models import Lease, Task
from gatepass.store import Connection
from gatepass.store import approvals as approval_rows
from gatepass.store import audit_log as audit_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = ["EvidenceExport"]

_MAX_LEASES_PER_TASK = 10_000


def _when(moment: Any) -> str | None:  # noqa: ANN401 - an optional datetime
    return None if moment is None else format_timestamp(moment)


def _task_summary(task: Task) -> dict[str, Any]:
    # The intent is the agent's free text: it stays in the task.open record, which
    # the bundle discloses, rather than being repeated unsigned by the chain.
    return {
        "id": task.id,
        "parent_id": task.parent_id,
        "agent_id": task.agent_id,
        "tenant": task.tenant,
        "environment": task.environment,
        "purpose": task.purpose,
        "targets": list(task.targets),
        "state": task.state.value,
        "created_at": _when(task.created_at),
        "expires_at": _when(task.expires_at),
        "closed_at": _when(task.closed_at),
        "close_reason": task.close_reason,
        "depth": task.depth,
    }


def _lease_summary(lease: Lease) -> dict[str, Any]:
    return {
        "id": lease.id,
        "task_id": lease.task_id,
        "target": lease.target,
        "kind": lease.kind,
        "actions": list(lease.actions),
        "state": lease.state.value,
        "issued_at": _when(lease.issued_at),
        "expires_at": _when(lease.expires_at),
        "revoked_at": _when(lease.revoked_at),
        "policy_ids": list(lease.policy_ids),
        "attempts": lease.attempts,
        "last_error": lease.last_error,
    }


class EvidenceExport:
    """
    The evidence bundle of a task and its descendants.

    Args:
        context: the broker's collaborators.
        audit: the audit log (for a checkpoint over the head).
    """

    def __init__(self, context: BrokerContext, audit: AuditLog) -> None:
        """Keep the collaborators."""
        self._context = context
        self._audit = audit

    async def _authorize(self, caller: Caller, task_id: str) -> None:
        tree = await self._context.database.read(
            lambda c: task_rows.subtree(c, task_id)
        )
        operator = caller.operator
        # Another tenant's task is "not found", so its existence does not leak.
        if not tree or (
            operator is not None and not operator.may_act_on(tree[0].tenant)
        ):
            raise NotFoundError("no such task")

    def _build(
        self, conn: Connection, task_id: str, checkpoint: Checkpoint
    ) -> dict[str, Any]:
        # The tree is read again in the transaction that reads its records, just
        # after the checkpoint, so the summaries and the records agree.
        tree = task_rows.subtree(conn, task_id)
        task_ids = [task.id for task in tree]
        leases = [
            lease
            for task_id in task_ids
            for lease in lease_rows.list_leases(
                conn, task_id=task_id, limit=_MAX_LEASES_PER_TASK
            )
        ]
        leases.sort(key=lambda lease: (lease.issued_at, lease.id))
        approval_ids = [
            approval.id
            for task_id in task_ids
            for approval in approval_rows.list_approvals(
                conn, task_id=task_id, limit=_MAX_LEASES_PER_TASK
            )
        ]
        subjects = {*task_ids, *(lease.id for lease in leases), *approval_ids}
        records = audit_rows.concerning(
            conn, subjects=subjects, task_ids=task_ids, through=checkpoint.seq
        )
        root = tree[0]
        return assemble(
            issuer=self._context.issuer_url,
            task=root.id,
            tenant=root.tenant,
            tasks=[_task_summary(task) for task in tree],
            leases=[_lease_summary(lease) for lease in leases],
            disclosed=records,
            checkpoints=audit_rows.list_checkpoints(conn, through=checkpoint.seq),
            read=lambda after, through: audit_rows.iter_audit(
                conn, after=after, through=through
            ),
            audit_keys={"keys": [self._context.signer.public_jwk]},
            exported_at=self._context.clock.now(),
            receipts=root.state.value != "open",
        )

    async def export(self, caller: Caller, task_id: str) -> dict[str, Any]:
        """
        Build and sign the bundle of ``task_id`` and every task delegated from it.

        The export itself is audited (``evidence.export``, after the bundle's
        checkpoint, so it is in the next bundle, not this one).

        Args:
            caller: who asks (an operator sees only their tenants' tasks).
            task_id: the root task of the bundle.

        Returns:
            The bundle document: ``{"evidence": …, "signature": …}``.

        Raises:
            NotFoundError: no such task, or one of a tenant the operator lacks.
            AuditIntegrityError: a record failed its MAC; the broker vouches for
                nothing until the log is repaired (docs/audit.md).
        """
        await self._authorize(caller, task_id)
        checkpoint = await self._audit.checkpoint_now()
        if checkpoint is None:  # pragma: no cover - the task's own record exists
            raise AuditIntegrityError("the audit log has no checkpoint to tie to")
        body = await self._context.database.read(
            lambda conn: self._build(conn, task_id, checkpoint)
        )
        signer = self._context.signer
        signature = signer.sign_statement(SIGNING_PREFIX, canonical_bytes(body))
        attempt = Attempt(
            kind="evidence.export",
            actor=caller.actor,
            subject=task_id,
            data={
                "through_seq": checkpoint.seq,
                "disclosed_count": len(body["disclosed"]),
                "task_count": len(body["tasks"]),
            },
        )

        def record(conn: Connection, audit: AuditRecorder) -> None:
            audit.record(conn, attempt, Outcome.OK)

        await self._context.trail.write(record)
        return {
            "evidence": body,
            "signature": {"alg": "EdDSA", "kid": signer.kid, "value": signature},
        }
