"""
The agent's side of step-up approvals over real HTTP (issue 9).

A request that needs approval answers ``authorization_pending`` with an
``approval_id``; the agent repeats it with that id until it is approved (one
credential, exactly the approved scope, TTL within the profile and the window),
denied, or expired. The same mechanism serves ``POST /v1/credentials``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest

from gatepass.store import approvals as approval_rows

from .approvals_kit import ApprovalAgent, ApprovalBroker, approval_broker, operator

pytestmark = pytest.mark.slow

ALICE = operator("alice", "prod-approvers")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBroker]:
    """One approvals broker for the module."""
    yield from approval_broker(tmp_path_factory.mktemp("approvals"))


@pytest.fixture
def agent(broker: ApprovalBroker) -> Iterator[ApprovalAgent]:
    """The demo agent with a fresh key."""
    with broker.agent() as client:
        yield client


def pending(response: httpx.Response) -> str:
    """Assert an ``authorization_pending`` answer and return its approval id."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "authorization_pending", body
    assert body["interval"] == 5
    assert body["expires_in"] > 0
    approval_id: str = body["approval_id"]
    assert approval_id.startswith("apr_")
    return approval_id


def claims(token: str) -> dict[str, object]:
    """A token's claims, unverified (the test reads what the broker wrote)."""
    found: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return found


class TestPolling:
    """The RFC 8628 polling vocabulary, bound to the exact request."""

    def test_issue9_prod_write_waits_for_approval(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """The first ask opens an approval; asking again finds the same one."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task, justification="fix ticket 42"))
        assert pending(agent.ask(task)) == approval_id
        assert pending(agent.ask(task, approval_id=approval_id)) == approval_id
        requested = broker.audit_of(approval_id, "approval.requested")
        assert requested["data"]["groups"] == ["prod-approvers"]
        assert requested["data"]["profile"]["ttl_seconds"] == 60
        # Agent-supplied text never lands in the audit record.
        assert "fix ticket 42" not in str(requested)

    def test_issue9_approved_request_yields_one_short_credential(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """After one approval: a token for exactly write, at most 60 s, once."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task))
        broker.vote(ALICE, approval_id, "approve", "change ticket 42 approved")
        granted = agent.ask(task, approval_id=approval_id)
        assert granted.status_code == 200, granted.text
        body = granted.json()
        assert body["scope"] == "write"
        assert 0 < body["expires_in"] <= 60
        token = claims(body["access_token"])
        assert token["aud"] == "https://tickets.example.internal/"
        assert token["scope"] == "write"
        again = agent.ask(task, approval_id=approval_id)
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
        assert "already redeemed" in again.json()["error_description"]
        assert broker.audit_kinds(approval_id) == [
            "approval.requested",
            "approval.vote",
            "approval.approved",
            "approval.redeemed",
        ]

    def test_issue9_a_changed_request_needs_a_new_approval(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """Another TTL is another request: the approved id does not cover it."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task))
        broker.vote(ALICE, approval_id, "approve")
        changed = agent.ask(task, approval_id=approval_id, requested_ttl="30")
        assert changed.status_code == 400
        assert changed.json()["error"] == "invalid_grant"
        assert "different request" in changed.json()["error_description"]
        # Without the id, the changed request asks for its own approval.
        assert pending(agent.ask(task, requested_ttl="30")) != approval_id
        # The original is still redeemable, with exactly its scope.
        assert agent.ask(task, approval_id=approval_id).status_code == 200

    def test_issue9_another_tasks_approval_is_not_usable(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """An approval id names one task's request; another task cannot redeem it."""
        first, second = agent.open_prod_task(), agent.open_prod_task()
        approval_id = pending(agent.ask(first))
        broker.vote(ALICE, approval_id, "approve")
        stolen = agent.ask(second, approval_id=approval_id)
        assert stolen.status_code == 400
        assert stolen.json()["error"] == "invalid_grant"

    def test_issue9_requested_ttl_lowers_the_credential(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """An approved request for 20 s gets at most 20 s."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task, requested_ttl="20"))
        broker.vote(ALICE, approval_id, "approve")
        granted = agent.ask(task, approval_id=approval_id, requested_ttl="20")
        assert granted.status_code == 200, granted.text
        assert granted.json()["expires_in"] <= 20


class TestRedemptionRace:
    """Two concurrent redemptions of a single-use approval give one credential."""

    def test_issue9_two_redemptions_one_credential(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """Both repeat at once with fresh proofs: exactly one 200."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task))
        broker.vote(ALICE, approval_id, "approve")
        forms = [
            {
                **agent.access_form(task, resource="tickets-prod", scope="write"),
                "approval_id": approval_id,
            }
            for _ in range(2)
        ]
        proofs = [agent.proof() for _ in forms]
        start = threading.Barrier(2)

        def redeem(index: int) -> httpx.Response:
            with httpx.Client(timeout=10) as client:
                start.wait(timeout=10)
                return client.post(
                    agent.token_endpoint,
                    data=forms[index],
                    headers={"DPoP": proofs[index]},
                )

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(redeem, range(2)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 400], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 400)
        assert refused.json()["error"] == "invalid_grant"
        with broker.runtime.database.reading() as conn:
            spent = approval_rows.get_approval(conn, approval_id)
        assert spent is not None
        assert (spent.state.value, spent.uses) == ("redeemed", 1)


class TestEndings:
    """Denied, expired, cancelled: each answers the agent precisely."""

    def test_issue9_denied_is_access_denied(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """A deny answers 403 access_denied, for good."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task))
        broker.vote(ALICE, approval_id, "deny", "not during the freeze")
        denied = agent.ask(task, approval_id=approval_id)
        assert denied.status_code == 403
        assert denied.json()["error"] == "access_denied"

    def test_issue9_unapproved_request_expires(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """Past its approval window the sweep expires it; polling says expired_token."""
        task = agent.open_prod_task("payments-prod")
        approval_id = pending(agent.ask(task, resource="payments-prod", scope="refund"))
        broker.clock.advance(dt.timedelta(seconds=301))
        broker.sweep()
        assert broker.audit_kinds(approval_id)[-1] == "approval.expired"
        expired = agent.ask(
            task, resource="payments-prod", scope="refund", approval_id=approval_id
        )
        assert expired.status_code == 400
        assert expired.json()["error"] == "expired_token"

    def test_issue9_approved_but_not_redeemed_in_time_expires(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """The redemption window (300 s by default) closes an approved approval."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task))
        broker.vote(ALICE, approval_id, "approve")
        broker.clock.advance(dt.timedelta(seconds=301))
        late = agent.ask(task, approval_id=approval_id)
        assert late.status_code == 400
        assert late.json()["error"] == "expired_token"

    def test_issue9_closing_the_task_cancels_its_approvals(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """A closed task's pending approval is cancelled and audited."""
        task = agent.open_prod_task()
        approval_id = pending(agent.ask(task))
        task_id = claims(task)["txn"]
        close_url = f"{broker.url}/v1/tasks/{task_id}/close"
        closed = agent.http.post(
            close_url,
            headers={
                "Authorization": f"DPoP {task}",
                "DPoP": agent.key.proof(
                    "POST", close_url, access_token=task, now=broker.clock.now()
                ),
            },
        )
        assert closed.status_code == 200, closed.text
        assert broker.audit_kinds(approval_id)[-1] == "approval.cancelled"
        with broker.runtime.database.reading() as conn:
            cancelled = approval_rows.get_approval(conn, approval_id)
        assert cancelled is not None
        assert cancelled.state.value == "cancelled"


class TestQuota:
    """Approvers cannot be flooded."""

    def test_issue9_too_many_pending_approvals_is_429(
        self, agent: ApprovalAgent
    ) -> None:
        """A task may hold three pending approvals; the fourth is rate_limited."""
        task = agent.open_prod_task()
        for ttl in ("10", "11", "12"):
            pending(agent.ask(task, requested_ttl=ttl))
        flood = agent.ask(task, requested_ttl="13")
        assert flood.status_code == 429
        assert flood.json()["error"] == "rate_limited"


class TestAgentQuota:
    """One agent cannot flood approvers from many tasks either."""

    def test_issue9_too_many_pending_approvals_of_one_agent_is_429(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """Two pending approvals per agent here: a third task's ask is rate_limited."""
        root = tmp_path_factory.mktemp("agent-quota")
        running = approval_broker(root, approvals={"max_pending_per_agent": 2})
        broker = next(running)
        try:
            with broker.agent() as agent:
                for _ in range(2):
                    pending(agent.ask(agent.open_prod_task()))
                flood = agent.ask(agent.open_prod_task())
            assert flood.status_code == 429
            assert "the agent has too many" in flood.json()["error_description"]
        finally:
            next(running, None)


class TestEngineCredentials:
    """POST /v1/credentials speaks the same protocol."""

    def test_issue9_engine_credential_waits_then_issues_once(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """Pending, approved, one credential; of two permits the strictest TTL wins."""
        task = agent.open_prod_task("vault-prod")
        body = {"target": "vault-prod", "actions": ["write"]}
        waiting = agent.credential(task, body)
        approval_id = pending(waiting)
        broker.vote(ALICE, approval_id, "approve")
        issued = agent.credential(task, {**body, "approval_id": approval_id})
        assert issued.status_code == 201, issued.text
        assert issued.json()["actions"] == ["write"]
        # vault-writes-need-approval says 120 s, prod-writes-need-approval 60 s.
        assert 0 < issued.json()["expires_in"] <= 60
        again = agent.credential(task, {**body, "approval_id": approval_id})
        assert again.status_code == 400
        assert again.json()["error"] == "invalid_grant"
