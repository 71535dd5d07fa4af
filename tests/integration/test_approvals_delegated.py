"""
A delegated task's approval: nobody in its chain may approve it (issues 9, 10).

A planner hands a refund on payments-prod to a researcher; the researcher's request
needs two approvers from each of payments-approvers and security. An operator who
shares a name with the researcher (the requester) or with the planner (an actor in
the chain) is refused; an operator outside the chain counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gatepass.errors import AccessDeniedError
from gatepass.tokens import (
    DELEGATION_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
    DPoPKey,
    private_jwk,
)

from .agents import ProtocolAgent
from .approvals_kit import ApprovalAgent, ApprovalBroker, approval_broker, operator

pytestmark = pytest.mark.slow

LABELS = {"team": "support"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBroker]:
    """The approvals broker (quickstart policies, delegation.cedar included)."""
    yield from approval_broker(tmp_path_factory.mktemp("approvals-delegated"))


class ChainAgent(ApprovalAgent):
    """A registered agent of the pipeline, speaking at the broker's time."""

    def __init__(self, broker: ApprovalBroker, identity: dict[str, Any]) -> None:
        """Take this agent's identity instead of the demo agent's."""
        ProtocolAgent.__init__(self, broker.url, identity)
        self.clock = broker.clock


def register(broker: ApprovalBroker, name: str, role: str) -> ChainAgent:
    """Add an agent with a ``role`` label through the admin API."""
    key = DPoPKey.generate()
    admin = (broker.runtime.settings.server.state_dir / "admin.token").read_text()
    added = httpx.post(
        f"{broker.url}/v1/agents",
        json={
            "name": name,
            "tenant": "acme",
            "public_key": key.public_jwk,
            "labels": {**LABELS, "role": role},
        },
        headers={"Authorization": f"Bearer {admin.strip()}"},
    )
    assert added.status_code == 201, added.text
    identity = {
        "agent_id": added.json()["id"],
        "private_jwk": private_jwk(key.private_key),
    }
    return ChainAgent(broker, identity)


def delegated_refund_approval(broker: ApprovalBroker) -> str:
    """The planner delegates a refund; the researcher asks; return the approval id."""
    with (
        register(broker, "planner-bot", "planner") as planner,
        register(broker, "researcher-bot", "researcher") as researcher,
    ):
        return _delegate_and_ask(planner, researcher)


def _delegate_and_ask(planner: ChainAgent, researcher: ChainAgent) -> str:
    parent = planner.open_task(targets=["payments-prod"], environment="prod")
    sub_task = {
        "type": "agent_task",
        "intent": "refund order 42",
        "purpose": "support-triage",
        "environment": "prod",
        "targets": ["payments-prod"],
        "actions": ["refund"],
    }
    granted = planner.post_token(
        {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": parent["access_token"],
            "subject_token_type": TXN_TOKEN_TYPE,
            "requested_token_type": DELEGATION_TOKEN_TYPE,
            "audience": researcher.agent_id,
            "authorization_details": json.dumps([sub_task]),
        }
    )
    assert granted.status_code == 200, granted.text
    accepted = researcher.post_token(
        {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": granted.json()["access_token"],
            "subject_token_type": DELEGATION_TOKEN_TYPE,
            "requested_token_type": TXN_TOKEN_TYPE,
            "actor_token": researcher.assertion(),
            "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
        }
    )
    assert accepted.status_code == 200, accepted.text
    asked = researcher.ask(
        accepted.json()["access_token"], resource="payments-prod", scope="refund"
    )
    assert asked.json().get("error") == "authorization_pending", asked.text
    return str(asked.json()["approval_id"])


class TestChainMayNotApprove:
    """No self-approval through a delegation chain."""

    def test_requester_and_parent_namesakes_are_refused(
        self, broker: ApprovalBroker
    ) -> None:
        """The researcher's and the planner's namesakes are refused; others count."""
        approval_id = delegated_refund_approval(broker)
        for name in ("researcher-bot", "planner-bot"):
            namesake = operator(name, "payments-approvers", "security")
            with pytest.raises(AccessDeniedError, match="your own request"):
                broker.vote(namesake, approval_id, "approve")
        outsider = operator("olga", "payments-approvers", "security")
        assert broker.vote(outsider, approval_id, "approve")["state"] == "pending"
        votes = [
            record
            for record in broker.audit_records(approval_id)
            if record["kind"] == "approval.vote"
        ]
        assert [(v["actor"], v["outcome"]) for v in votes] == [
            ("operator:researcher-bot", "deny"),
            ("operator:planner-bot", "deny"),
            ("operator:olga", "allow"),
        ]
        assert votes[1]["data"]["detail"] == "you may not approve your own request"
