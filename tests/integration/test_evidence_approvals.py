"""A task that needed approval: its request, vote and redemption are in its bundle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from gatepass.evidence import verify_bundle

from .approvals_kit import ApprovalBroker, approval_broker, operator

pytestmark = pytest.mark.slow

APPROVER = operator("evidence-alice", "prod-approvers")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBroker]:
    """The approvals broker of issue 9."""
    yield from approval_broker(tmp_path_factory.mktemp("evidence-approvals"))


def test_approval_and_vote_are_disclosed(broker: ApprovalBroker) -> None:
    """The bundle holds the approval's whole life, with the approver's vote."""
    with broker.agent() as agent:
        task_token = agent.open_prod_task()
        asked = agent.ask(task_token)
        assert asked.json()["error"] == "authorization_pending"
        approval_id = asked.json()["approval_id"]
        broker.vote(APPROVER, approval_id, "approve", "change 42 approved")
        granted = agent.ask(task_token, approval_id=approval_id)
        assert granted.status_code == 200, granted.text
    claims = jwt.decode(task_token, options={"verify_signature": False})
    task_id = str(claims["txn"])
    state = Path(broker.runtime.settings.server.state_dir)
    token = (state / "admin.token").read_text().strip()
    with httpx.Client(
        base_url=broker.url, headers={"authorization": f"Bearer {token}"}
    ) as admin:
        assert admin.post(f"/v1/tasks/{task_id}/close", json={}).status_code == 200
        answer = admin.get(f"/v1/admin/tasks/{task_id}/evidence")
        public_key = admin.get("/v1/audit/checkpoints").json()["public_key"]
    assert answer.status_code == 200, answer.text
    report = verify_bundle(json.dumps(answer.json()).encode(), public_jwk=public_key)
    assert report.receipts == (("tickets-prod", "confirmed"),)
    body = answer.json()["evidence"]
    records = [
        e["record"] for s in body["segments"] for e in s["entries"] if "record" in e
    ]
    about = [r["kind"] for r in records if r["subject"] == approval_id]
    assert about == [
        "approval.requested",
        "approval.vote",
        "approval.approved",
        "approval.redeemed",
    ]
    vote = next(r for r in records if r["kind"] == "approval.vote")
    assert vote["actor"] == f"operator:{APPROVER.name}"
