"""
Reading this deployment's live facts for the framework report.

Everything the report judges comes from here: the validated settings, the live
policy set, the audit log's state, the store (failing revocations, agents without
owners). The judging is :mod:`gatepass.frameworks`, pure and offline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from gatepass.broker.context import BrokerContext
from gatepass.config import Settings
from gatepass.frameworks import Facts, TargetFact, build_report
from gatepass.models import AgentStatus
from gatepass.sealing import MASTER_KEY_ENV
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import audit_log as audit_rows
from gatepass.store import leases as lease_rows

__all__ = ["FrameworkReport"]


def _section(section: BaseModel) -> Mapping[str, Any] | None:
    """
    Return what a configuration section configures, or None when it is not on.

    Used for ``[signals]`` (transmitters, rules) and ``[reuse]`` (rules): a
    section counts as configured when it is not switched off (``enabled =
    false``) and holds at least one non-empty list or table; defaults alone
    (numbers, flags) configure nothing.
    """
    dumped = section.model_dump()
    if dumped.get("enabled") is False:
        return None
    present = {
        k: v for k, v in dumped.items() if isinstance(v, list | dict | tuple) and v
    }
    return present or None


def _targets(settings: Settings) -> tuple[TargetFact, ...]:
    return tuple(
        TargetFact(
            name=target.name,
            kind=target.kind,
            tenant=target.tenant,
            environment=target.environment,
            uri=target.uri,
            risk=target.risk,
            max_ttl_seconds=int(target.max_ttl_seconds),
            ttl_set="max_ttl_seconds" in target.model_fields_set,
        )
        for target in settings.targets
    )


class FrameworkReport:
    """
    The framework report of this deployment.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    def _stored(self, conn: Connection) -> dict[str, Any]:
        head, _ = audit_rows.read_audit_head(conn)
        checkpoint = audit_rows.last_checkpoint(conn)
        revoking, failed = lease_rows.count_revoking(conn)
        agents = agent_rows.list_agents(conn, status=AgentStatus.ACTIVE.value)
        return {
            "head": head,
            "checkpoint": checkpoint,
            "revoking": revoking,
            "failed": failed,
            "active": len(agents),
            "ownerless": tuple(sorted(a.name for a in agents if not a.owners)),
        }

    async def facts(self) -> Facts:
        """Read every fact the checks judge, now."""
        context = self._context
        settings = context.settings
        stored = await context.database.read(self._stored)
        checkpoint = stored["checkpoint"]
        now = context.clock.now()
        policies = context.policies
        unready = context.seal.unready()
        return Facts(
            access_max_ttl_seconds=int(settings.tokens.access_max_ttl_seconds),
            task_max_ttl_seconds=int(settings.tokens.task_max_ttl_seconds),
            dpop_nonce_required=settings.dpop.require_nonce,
            targets=_targets(settings),
            policy_count=policies.current.policy_count,
            policy_digest=policies.current.digest,
            policy_error=policies.last_error,
            audit_unready=None if unready is None else unready[1],
            audit_head_seq=stored["head"],
            audit_checkpoint_seq=0 if checkpoint is None else checkpoint.seq,
            audit_checkpoint_age_seconds=(
                None if checkpoint is None else (now - checkpoint.at).total_seconds()
            ),
            audit_checkpoint_interval_seconds=settings.audit.checkpoint_interval_seconds,
            revoking=stored["revoking"],
            revoking_failed=stored["failed"],
            active_agents=stored["active"],
            agents_without_owners=stored["ownerless"],
            approval_groups=len(settings.approvals.groups),
            approval_policies=policies.current.approval_policy_count,
            federated_issuers=tuple(i.name for i in settings.identity.issuers),
            delegation_max_depth=settings.delegation.max_depth,
            signals=_section(settings.signals),
            reuse=_section(settings.reuse),
            master_key_source=(
                "environment"
                if os.environ.get(MASTER_KEY_ENV)
                else "state directory file"
            ),
            tls=settings.server.tls is not None,
            issuer=settings.server.issuer,
        )

    async def report(self) -> dict[str, Any]:
        """Return the report as JSON (see :func:`gatepass.frameworks.build_report`)."""
        return build_report(await self.facts(), generated_at=self._context.clock.now())
