"""
The SDK waits for step-up approvals over real HTTP (issue 9).

``task.access_token(..., wait=...)`` and the engine-credential methods repeat the
request with its ``approval_id`` every ``interval`` seconds until an approver decides.
Nothing sleeps: the client's ``sleep`` is a fake that advances the broker's frozen
clock, and the approver votes from inside it, between two polls.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from gatepass.errors import (
    ApprovalDeniedError,
    ApprovalExpiredError,
    ApprovalPendingError,
)
from gatepass.sdk import AgentIdentity, ApprovalProgress, GatepassClient, Task
from gatepass.store import approvals as approval_rows

from .approvals_kit import ApprovalBroker, approval_broker, operator

pytestmark = pytest.mark.slow

ALICE = operator("alice", "prod-approvers")
TICKETS = "tickets-prod"
WAIT = dt.timedelta(minutes=5)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalBroker]:
    """One approvals broker for the module."""
    yield from approval_broker(tmp_path_factory.mktemp("sdk-approvals"))


@dataclass
class Approver:
    """
    The client's sleep: time passes on the broker's clock, and a human may act.

    ``act`` is called with the number of the sleep (1 for the first) after the
    clock moved; it votes, or moves the clock further.
    """

    broker: ApprovalBroker
    act: Callable[[int], None] = lambda _: None
    sleeps: list[float] = field(default_factory=list)
    approval_id: str | None = None

    def __call__(self, seconds: float) -> None:
        """Advance the broker's clock by ``seconds``, then let the human act."""
        self.sleeps.append(seconds)
        self.broker.clock.advance(dt.timedelta(seconds=seconds))
        self.act(len(self.sleeps))

    def progress(self, seen: ApprovalProgress) -> None:
        """Remember the approval the SDK waits for (the human is told its id)."""
        self.approval_id = seen.approval_id

    def votes(self, choice: str, *, on: int = 1, reason: str = "ok") -> Approver:
        """Cast ``choice`` during sleep number ``on``."""

        def act(number: int) -> None:
            if number == on:
                assert self.approval_id is not None
                self.broker.vote(ALICE, self.approval_id, choice, reason)

        self.act = act
        return self


@pytest.fixture
def approver(broker: ApprovalBroker) -> Approver:
    """A fresh fake sleep with no human acting yet."""
    return Approver(broker)


@pytest.fixture
def task(broker: ApprovalBroker, approver: Approver) -> Iterator[Task]:
    """A prod task of the demo agent, through the SDK at the broker's time."""
    identity = AgentIdentity(
        broker.identity["agent_id"], broker.identity["private_jwk"], broker.url
    )
    with (
        GatepassClient(identity, clock=broker.clock, sleep=approver) as client,
        client.open_task(
            intent="fix ticket 42 in production",
            purpose="support-triage",
            environment="prod",
            targets=[TICKETS, "vault-prod", "payments-prod"],
        ) as opened,
    ):
        yield opened


def left(broker: ApprovalBroker, expires_at: dt.datetime) -> dt.timedelta:
    """How long a credential still lives on the broker's clock."""
    return expires_at - broker.clock.now()


class TestWaiting:
    """wait= polls until an approver decides."""

    def test_issue9_wait_approved_gives_a_short_token(
        self, broker: ApprovalBroker, task: Task, approver: Approver
    ) -> None:
        """Approved during the first pause: a write token of at most 60 s, once."""
        approver.votes("approve")
        token = task.access_token(
            TICKETS, "write", wait=WAIT, on_progress=approver.progress
        )
        assert token.scope == "write"
        assert dt.timedelta(0) < left(broker, token.expires_at) <= dt.timedelta(60)
        assert approver.sleeps == [5]
        assert approver.approval_id is not None
        assert broker.audit_kinds(approver.approval_id) == [
            "approval.requested",
            "approval.vote",
            "approval.approved",
            "approval.redeemed",
        ]

    def test_issue9_without_wait_pending_is_raised(
        self, task: Task, approver: Approver
    ) -> None:
        """Without wait the SDK does not poll: the pending answer is raised."""
        with pytest.raises(ApprovalPendingError) as raised:
            task.access_token(TICKETS, "write")
        assert raised.value.approval_id.startswith("apr_")
        assert raised.value.interval == 5
        assert approver.sleeps == []

    def test_issue9_denied_raises_approval_denied(
        self, task: Task, approver: Approver
    ) -> None:
        """An approver's deny ends the wait with ApprovalDeniedError and the id."""
        approver.votes("deny", on=2, reason="not during the freeze")
        with pytest.raises(ApprovalDeniedError) as raised:
            task.access_token(
                TICKETS, "write", wait=WAIT, on_progress=approver.progress
            )
        assert raised.value.approval_id == approver.approval_id
        assert approver.sleeps == [5, 5]

    def test_issue9_broker_expiry_raises_approval_expired(
        self, broker: ApprovalBroker, task: Task, approver: Approver
    ) -> None:
        """Nobody approves within the policy's 300 s: expired_token, not pending."""

        def nobody_comes(number: int) -> None:
            if number == 1:
                broker.clock.advance(dt.timedelta(seconds=300))

        approver.act = nobody_comes
        with pytest.raises(ApprovalExpiredError) as raised:
            task.access_token(
                "payments-prod",
                "refund",
                wait=dt.timedelta(minutes=10),
                on_progress=approver.progress,
            )
        assert raised.value.still_pending is False
        assert raised.value.approval_id == approver.approval_id
        assert approver.approval_id is not None
        assert broker.audit_kinds(approver.approval_id)[-1] == "approval.expired"

    def test_issue9_local_wait_elapses_with_the_id_and_resumes(
        self, task: Task, approver: Approver
    ) -> None:
        """The wait runs out first: the error names the approval; a retry resumes."""
        with pytest.raises(ApprovalExpiredError) as raised:
            task.access_token(
                TICKETS,
                "write",
                wait=dt.timedelta(seconds=12),
                on_progress=approver.progress,
            )
        approval_id = approver.approval_id
        assert approval_id is not None
        assert raised.value.still_pending is True
        assert raised.value.approval_id == approval_id
        assert approval_id in str(raised.value)
        assert approver.sleeps == [5, 5]
        # The same call again finds the same open approval and gets the token.
        approver.votes("approve", on=3)
        token = task.access_token(
            TICKETS, "write", wait=WAIT, on_progress=approver.progress
        )
        assert approver.approval_id == approval_id
        assert token.scope == "write"

    def test_issue9_progress_is_reported_once_per_poll(
        self, task: Task, approver: Approver
    ) -> None:
        """Every "still waiting" answer reports the id, the time and the attempt."""
        seen: list[ApprovalProgress] = []

        def record(progress: ApprovalProgress) -> None:
            approver.progress(progress)
            seen.append(progress)

        approver.votes("approve", on=3)
        task.access_token(TICKETS, "write", wait=WAIT, on_progress=record)
        # Three pending answers (the ask and two polls), then the token.
        assert [p.attempt for p in seen] == [1, 2, 3]
        assert len(seen) == len(approver.sleeps)
        assert [p.elapsed.total_seconds() for p in seen] == [0, 5, 10]
        assert len({p.approval_id for p in seen}) == 1
        remaining = [p.expires_in for p in seen]
        assert remaining == sorted(remaining, reverse=True)
        assert remaining[0] <= dt.timedelta(seconds=900)

    def test_issue9_requested_ttl_and_justification_reach_the_broker(
        self, broker: ApprovalBroker, task: Task, approver: Approver
    ) -> None:
        """requested_ttl bounds the token; the justification is stored for approvers."""
        approver.votes("approve")
        token = task.access_token(
            TICKETS,
            "write",
            wait=WAIT,
            requested_ttl=dt.timedelta(seconds=20),
            justification="customer asked to merge tickets 42 and 43",
            on_progress=approver.progress,
        )
        assert dt.timedelta(0) < left(broker, token.expires_at) <= dt.timedelta(20)
        assert approver.approval_id is not None
        with broker.runtime.database.reading() as conn:
            stored = approval_rows.get_approval(conn, approver.approval_id)
        assert stored is not None
        assert stored.justification == "customer asked to merge tickets 42 and 43"
        assert stored.state.value == "redeemed"


class TestEngineCredentials:
    """The engine credential methods wait the same way."""

    def test_issue9_redis_credential_waits_for_approval(
        self, broker: ApprovalBroker, task: Task, approver: Approver
    ) -> None:
        """vault-prod write: pending, approved in the pause, one short credential."""
        approver.votes("approve", on=2)
        credential = task.redis(
            "vault-prod",
            "write",
            wait=WAIT,
            justification="rotate the vault cache",
            on_progress=approver.progress,
        )
        assert credential.kind == "redis"
        assert credential.actions == ("write",)
        assert (
            dt.timedelta(0)
            < left(broker, credential.expires_at)
            <= (dt.timedelta(seconds=60))
        )
        assert approver.sleeps == [5, 5]
        assert approver.approval_id is not None
        assert broker.audit_kinds(approver.approval_id)[-1] == "approval.redeemed"

    def test_issue9_credential_denied_raises_approval_denied(
        self, task: Task, approver: Approver
    ) -> None:
        """A deny of an engine credential is ApprovalDeniedError too."""
        approver.votes("deny")
        with pytest.raises(ApprovalDeniedError):
            task.credential(
                "vault-prod", ["write"], wait=WAIT, on_progress=approver.progress
            )
