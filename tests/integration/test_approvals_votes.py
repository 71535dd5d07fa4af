"""
The approver's side of step-up approvals: who may vote, quorum, deny, audit (issue 9).

A refund on payments-prod needs two distinct approvers from each of
payments-approvers and security, never the agent's owners; approvers act only on
tenants they hold.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from gatepass.broker import Viewer
from gatepass.errors import (
    AccessDeniedError,
    ConflictError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
)
from gatepass.models import Operator, OperatorRole
from gatepass.store import approvals as approval_rows
from gatepass.store.tables import agents as agent_table

from .approvals_kit import ApprovalAgent, ApprovalBroker, approval_broker, operator

pytestmark = pytest.mark.slow

BOB = operator("bob", "payments-approvers")
ERIN = operator("erin", "payments-approvers", "security")
CAROL = operator("carol", "security")
FRANK = operator("frank", "security")
DAVE = operator("dave", "payments-approvers", "security")  # owns the demo agent
MALLORY = operator("mallory", "payments-approvers", tenants=("globex",))
AUDITOR = operator("ivy", "security", roles=(OperatorRole.AUDITOR,))
NAMESAKE = operator("demo-agent", "security")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBroker]:
    """One approvals broker; the demo agent is owned by dave."""
    built = approval_broker(tmp_path_factory.mktemp("votes"))
    instance = next(built)
    with instance.runtime.database.transaction() as conn:
        conn.execute(
            agent_table.update()
            .where(agent_table.c.id == instance.identity["agent_id"])
            .values(owners=["dave"])
        )
    instance.runtime.context.directory.forget_agent(instance.identity["agent_id"])
    yield instance
    next(built, None)


@pytest.fixture
def agent(broker: ApprovalBroker) -> Iterator[ApprovalAgent]:
    """The demo agent with a fresh key."""
    with broker.agent() as client:
        yield client


def refund_approval(agent: ApprovalAgent) -> tuple[str, str]:
    """Open a payments task and ask for a refund; return (task token, approval id)."""
    task = agent.open_prod_task("payments-prod")
    answer = agent.ask(task, resource="payments-prod", scope="refund")
    assert answer.json()["error"] == "authorization_pending", answer.text
    return task, str(answer.json()["approval_id"])


def redeem(agent: ApprovalAgent, task: str, approval_id: str) -> httpx.Response:
    """Repeat the refund request with its approval id."""
    return agent.ask(
        task, resource="payments-prod", scope="refund", approval_id=approval_id
    )


class TestQuorum:
    """Every group needs its quorum of distinct operators."""

    def test_issue9_two_per_group_distinct_operators(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """2 payments votes + 1 security vote wait; a 2nd security vote approves."""
        task, approval_id = refund_approval(agent)
        assert broker.vote(BOB, approval_id, "approve")["state"] == "pending"
        assert broker.vote(ERIN, approval_id, "approve")["state"] == "pending"
        # Erin counts for both of her groups: payments is met, security is not.
        viewer = Viewer(actor="auditor", operator=None, sees_all=True)
        shown = anyio.run(broker.runtime.broker.approvals.show, viewer, approval_id)
        assert shown["progress"] == {"payments-approvers": 2, "security": 1}
        # One operator, one vote: bob again counts for nothing.
        with pytest.raises(ConflictError, match="already voted"):
            broker.vote(BOB, approval_id, "approve")
        assert redeem(agent, task, approval_id).json()["error"] == (
            "authorization_pending"
        )
        approved = broker.vote(CAROL, approval_id, "approve")
        assert approved["state"] == "approved"
        granted = redeem(agent, task, approval_id)
        assert granted.status_code == 200, granted.text
        assert granted.json()["expires_in"] <= 30
        approvers = broker.audit_of(approval_id, "approval.approved")["data"]
        assert approvers["approvers"] == ["bob", "carol", "erin"]

    def test_issue9_any_deny_is_final(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """One deny after approvals ends it; later approvals are refused."""
        task, approval_id = refund_approval(agent)
        broker.vote(BOB, approval_id, "approve")
        denied = broker.vote(CAROL, approval_id, "deny", "no refunds this week")
        assert denied["state"] == "denied"
        vote = broker.audit_of(approval_id, "approval.vote")
        assert vote["actor"] == "operator:carol"
        assert vote["outcome"] == "deny"
        assert vote["data"]["reason"] == "no refunds this week"
        with pytest.raises(ConflictError, match="denied"):
            broker.vote(ERIN, approval_id, "approve")
        assert redeem(agent, task, approval_id).status_code == 403

    def test_issue9_deny_after_quorum_stops_the_redemption(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """Approved but not yet redeemed: a deny still wins."""
        task, approval_id = refund_approval(agent)
        for voter in (BOB, ERIN, CAROL):
            broker.vote(voter, approval_id, "approve")
        broker.vote(FRANK, approval_id, "deny", "wrong customer")
        assert redeem(agent, task, approval_id).status_code == 403


class TestWhoMayVote:
    """No self-approval, no owners when the policy says so, tenants and groups held."""

    @pytest.mark.parametrize(
        ("voter", "error", "message"),
        [
            (DAVE, AccessDeniedError, "owners of the agent"),
            (NAMESAKE, AccessDeniedError, "your own request"),
            (MALLORY, NotFoundError, "no such approval"),
            (operator("gus", "prod-approvers"), AccessDeniedError, "none of the"),
            (AUDITOR, AccessDeniedError, "only approvers"),
        ],
    )
    def test_issue9_refused_voters(
        self,
        broker: ApprovalBroker,
        agent: ApprovalAgent,
        voter: Operator,
        error: type[GatepassError],
        message: str,
    ) -> None:
        """Each refused vote names why, is audited, and changes nothing."""
        _, approval_id = refund_approval(agent)
        with pytest.raises(error, match=message):
            broker.vote(voter, approval_id, "approve")
        assert broker.audit_kinds(approval_id) == [
            "approval.requested",
            "approval.vote",
        ]
        refused = broker.audit_of(approval_id, "approval.vote")
        assert refused["outcome"] == "deny"
        assert refused["actor"] == f"operator:{voter.name}"
        assert refused["data"]["error"] == error.code
        with broker.runtime.database.reading() as conn:
            still = approval_rows.get_approval(conn, approval_id)
        assert still is not None
        assert (still.state.value, still.votes) == ("pending", ())

    def test_issue9_vote_needs_a_reason(
        self, broker: ApprovalBroker, agent: ApprovalAgent
    ) -> None:
        """An empty reason is invalid_request: the audit needs the why."""
        _, approval_id = refund_approval(agent)
        with pytest.raises(InvalidRequestError, match="reason"):
            broker.vote(BOB, approval_id, "approve", "  ")
