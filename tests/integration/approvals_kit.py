"""
A broker with step-up approvals, served over HTTP on a frozen clock (issue 9).

The quickstart's policies (a prod ``write`` needs one ``prod-approvers`` vote and
yields a 60 s token) plus a stricter one: a ``refund`` on ``payments-prod`` needs two
approvers from each of ``payments-approvers`` and ``security``, never the agent's
owners, and waits at most 300 s. ``vault-prod`` is an engine target (a MemoryEngine)
whose ``write`` needs the same approval as tickets. The clock is frozen on a Tuesday
at 10:00 UTC, so the business-hours guardrail never interferes; the agent's proofs
and assertions are made at the broker's time.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.clock import FrozenClock
from gatepass.config import Settings
from gatepass.ids import OperatorId, new_operator_id
from gatepass.models import AgentStatus, Operator, OperatorRole, VoteChoice
from gatepass.store import audit_log
from gatepass.testing import MemoryEngine

from .agents import ProtocolAgent
from .conftest import (
    QUICKSTART_POLICIES,
    RunningServer,
    free_port,
    quickstart_settings,
    start_server,
)

START = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)

REFUND_POLICY = """
@id("refunds-need-two-teams")
@ttl("30")
@approval("payments-approvers, security")
@quorum("2")
@exclude_owners("true")
@approval_ttl("300")
permit (principal, action == Gatepass::Action::"refund", resource)
when {
  resource.environment == "prod" &&
  principal.hasTag("team") && principal.getTag("team") == "support"
};

@id("vault-writes-need-approval")
@ttl("120")
@approval("prod-approvers")
permit (principal, action == Gatepass::Action::"write", resource)
when { resource == Gatepass::Target::"vault-prod" };
"""

EXTRA_TARGETS = [
    {
        "name": "payments-prod",
        "uri": "https://payments.example.internal/",
        "environment": "prod",
        "tenant": "acme",
        "risk": "high",
        "actions": ["read", "refund"],
        "max_ttl_seconds": 300,
    },
    {
        "name": "vault-prod",
        "uri": "redis://vault.example.internal:6379/",
        "kind": "redis",
        "environment": "prod",
        "tenant": "acme",
        "risk": "high",
        "actions": ["read", "write"],
        "max_ttl_seconds": 600,
        "engine": {
            "admin_url": "redis://127.0.0.1:1/0",
            "grants": {
                "read": {"keys": ["v:*"], "categories": ["+@read"]},
                "write": {"keys": ["v:*"], "categories": ["+@write"]},
            },
        },
    },
]


def operator(
    name: str,
    *groups: str,
    tenants: tuple[str, ...] = ("acme",),
    roles: tuple[OperatorRole, ...] = (OperatorRole.APPROVER,),
) -> Operator:
    """An operator as the broker sees one (the vote use case needs no stored row)."""
    return Operator(
        id=OperatorId(new_operator_id()),
        name=name,
        roles=frozenset(roles),
        groups=frozenset(groups),
        tenants=frozenset(tenants),
        status=AgentStatus.ACTIVE,
        created_at=START,
    )


@dataclass
class ApprovalBroker:
    """The broker, its clock and server, and the demo agent's identity."""

    runtime: Runtime
    clock: FrozenClock
    server: RunningServer
    identity: dict[str, Any]
    engine: MemoryEngine

    @property
    def url(self) -> str:
        """The broker's URL."""
        return self.server.url

    def agent(self) -> ApprovalAgent:
        """The demo agent with a fresh DPoP key, speaking at the broker's time."""
        return ApprovalAgent(self)

    def vote(
        self, who: Operator, approval_id: str, choice: str, reason: str = "ok"
    ) -> dict[str, Any]:
        """Cast a vote through the broker's use case."""
        result: dict[str, Any] = anyio.run(
            self.runtime.broker.approvals.vote,
            who,
            approval_id,
            VoteChoice(choice),
            reason,
        )
        return result

    def sweep(self) -> None:
        """Run the expiry sweep once."""
        anyio.run(self.runtime.broker.sweeper.sweep)

    def audit_kinds(self, subject: str) -> list[str]:
        """The audit kinds recorded about ``subject``, oldest first."""
        with self.runtime.database.reading() as conn:
            return [
                record.kind
                for record in audit_log.iter_audit(conn)
                if record.subject == subject
            ]

    def audit_records(self, subject: str) -> list[dict[str, Any]]:
        """The audit records about ``subject``, oldest first, as JSON."""
        with self.runtime.database.reading() as conn:
            return [
                record.to_json()
                for record in audit_log.iter_audit(conn)
                if record.subject == subject
            ]

    def audit_of(self, subject: str, kind: str) -> dict[str, Any]:
        """The newest audit record of ``kind`` about ``subject``."""
        with self.runtime.database.reading() as conn:
            found = [
                record.to_json()
                for record in audit_log.iter_audit(conn)
                if record.subject == subject and record.kind == kind
            ]
        assert found, f"no {kind} record about {subject}"
        return found[-1]


class ApprovalAgent(ProtocolAgent):
    """The demo agent; every proof and assertion is dated by the broker's clock."""

    def __init__(self, broker: ApprovalBroker) -> None:
        """Load the demo identity."""
        super().__init__(broker.url, broker.identity)
        self.clock = broker.clock

    def proof(self, url: str | None = None, **kwargs: Any) -> str:
        """A proof made at the broker's time."""
        kwargs.setdefault("now", self.clock.now())
        return super().proof(url, **kwargs)

    def assertion(self, **kwargs: Any) -> str:
        """An assertion made at the broker's time."""
        kwargs.setdefault("now", self.clock.now())
        return super().assertion(**kwargs)

    def open_prod_task(self, *targets: str) -> str:
        """Open a prod task on ``targets`` and return its task token."""
        opened = self.open_task(
            targets=list(targets or ("tickets-prod",)), environment="prod"
        )
        token: str = opened["access_token"]
        return token

    def ask(
        self,
        task_token: str,
        *,
        resource: str = "tickets-prod",
        scope: str = "write",
        **extra: str,
    ) -> httpx.Response:
        """Ask for an access token (maybe repeating with ``approval_id``)."""
        form = self.access_form(task_token, resource=resource, scope=scope)
        form.update(extra)
        return self.post_token(form)

    def credential(self, task_token: str, body: dict[str, Any]) -> httpx.Response:
        """``POST /v1/credentials`` with the task token."""
        url = f"{self.url}/v1/credentials"
        return self.http.post(
            url,
            json=body,
            headers={
                "Authorization": f"DPoP {task_token}",
                "DPoP": self.key.proof(
                    "POST", url, access_token=task_token, now=self.clock.now()
                ),
            },
        )


def approval_broker(
    root: Path, *, approvals: dict[str, Any] | None = None
) -> Iterator[ApprovalBroker]:
    """Build, serve and finally stop the approvals broker under ``root``."""
    policies = root / "policies"
    shutil.copytree(
        QUICKSTART_POLICIES, policies, ignore=shutil.ignore_patterns("tests")
    )
    schema = policies / "schema.cedarschema"
    schema.write_text(
        schema.read_text().replace(
            "action OpenTask, read, write, admin",
            "action OpenTask, read, write, admin, refund",
        )
    )
    (policies / "approvals.cedar").write_text(REFUND_POLICY)
    port = free_port()
    base = quickstart_settings(
        root / "state",
        port=port,
        resource_port=free_port(),
        policy={"directory": str(policies)},
    )
    raw = base.model_dump(mode="json")
    raw["targets"] = [*raw["targets"], *EXTRA_TARGETS]
    raw["approvals"] = approvals or {
        "max_pending_per_task": 3,
        "max_pending_per_agent": 100,
    }
    settings = Settings.model_validate(raw)
    clock = FrozenClock(START)
    engine = MemoryEngine()
    runtime = build_runtime(settings, clock=clock, engines={"vault-prod": engine})
    running = start_server(create_app(runtime, background_jobs=False), port)
    identity = json.loads((root / "state" / "demo-agent.json").read_text())
    try:
        yield ApprovalBroker(runtime, clock, running, identity, engine)
    finally:
        running.stop()
        runtime.database.dispose()
