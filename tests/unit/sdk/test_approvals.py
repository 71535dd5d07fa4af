"""The SDK waits for approval (fake broker): intervals, slow_down, endings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import (
    AccessDeniedError,
    ApprovalDeniedError,
    ApprovalExpiredError,
    ApprovalPendingError,
    GatepassError,
    InsufficientScopeError,
    InvalidGrantError,
    InvalidRequestError,
)
from gatepass.sdk import AgentIdentity, ApprovalProgress, GatepassClient
from gatepass.sdk.approvals import ApprovalParameters, WaitOptions, obtain

from .conftest import TARGET, FakeBroker, open_task

APPROVAL = "apr_" + "c" * 26
WAIT = dt.timedelta(minutes=5)


def pending(interval: int = 5, expires_in: int = 900) -> tuple[int, dict[str, Any]]:
    """The broker's authorization_pending answer."""
    return (
        400,
        {
            "error": "authorization_pending",
            "error_description": "waiting for approval",
            "approval_id": APPROVAL,
            "interval": interval,
            "expires_in": expires_in,
        },
    )


def refused(code: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    """An error answer with ``code``."""
    return status, {"error": code, "error_description": f"because {code}"}


class Sleeper:
    """A fake sleep that advances the frozen clock."""

    def __init__(self, clock: FrozenClock) -> None:
        """Start with no sleeps."""
        self.clock = clock
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        """Record the pause and let the time pass."""
        self.sleeps.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeper(clock: FrozenClock) -> Sleeper:
    """The client's sleep."""
    return Sleeper(clock)


@pytest.fixture
def waiting_client(
    broker: FakeBroker, identity: AgentIdentity, clock: FrozenClock, sleeper: Sleeper
) -> GatepassClient:
    """An SDK client of the fake broker, pausing with the fake sleep."""
    http = httpx.Client(transport=httpx.MockTransport(broker.handle))
    return GatepassClient(identity, http=http, clock=clock, sleep=sleeper)


class TestIntervals:
    """Never faster than the broker asks; slow_down adds 5 s for good."""

    def test_issue9_polls_at_the_broker_interval(
        self, broker: FakeBroker, waiting_client: GatepassClient, sleeper: Sleeper
    ) -> None:
        """Two pending answers, then a token: two pauses of the interval."""
        task = open_task(waiting_client)
        broker.errors = [pending(), pending()]
        token = task.access_token(TARGET, "write", wait=WAIT)
        assert token.scope == "write"
        assert sleeper.sleeps == [5, 5]

    def test_issue9_a_raised_interval_is_honoured_and_kept(
        self, broker: FakeBroker, waiting_client: GatepassClient, sleeper: Sleeper
    ) -> None:
        """The broker raises the interval to 10 then lowers it: the SDK stays at 10."""
        task = open_task(waiting_client)
        broker.errors = [pending(5), pending(10), pending(5)]
        task.access_token(TARGET, "write", wait=WAIT)
        assert sleeper.sleeps == [5, 10, 10]

    def test_issue9_slow_down_adds_five_seconds(
        self, broker: FakeBroker, waiting_client: GatepassClient, sleeper: Sleeper
    ) -> None:
        """RFC 8628 §3.5: slow_down adds 5 s to this and every later interval."""
        task = open_task(waiting_client)
        broker.errors = [pending(), refused("slow_down"), pending(), pending()]
        task.access_token(TARGET, "write", wait=WAIT)
        assert sleeper.sleeps == [5, 10, 10, 10]

    def test_issue9_an_interval_of_zero_still_pauses(
        self, broker: FakeBroker, waiting_client: GatepassClient, sleeper: Sleeper
    ) -> None:
        """A broker saying interval 0 does not make the SDK spin."""
        task = open_task(waiting_client)
        broker.errors = [pending(0)]
        task.access_token(TARGET, "write", wait=WAIT)
        assert sleeper.sleeps == [1]


class TestRepeatedRequest:
    """The repeat is the same request plus approval_id; justification goes once."""

    def test_issue9_repeat_names_the_approval(
        self, broker: FakeBroker, waiting_client: GatepassClient
    ) -> None:
        """approval_id on every repeat; requested_ttl every time; justification once."""
        task = open_task(waiting_client)
        broker.errors = [pending(), pending()]
        task.access_token(
            TARGET,
            "write",
            wait=WAIT,
            justification="ticket 42",
            requested_ttl=dt.timedelta(seconds=30),
        )
        asks = broker.forms()[1:]
        assert [form.get("approval_id") for form in asks] == [
            None,
            APPROVAL,
            APPROVAL,
        ]
        assert [form.get("justification") for form in asks] == ["ticket 42", None, None]
        assert {form["requested_ttl"] for form in asks} == {"30"}
        assert {form["scope"] for form in asks} == {"write"}

    def test_issue9_requested_ttl_must_be_whole_seconds(
        self, broker: FakeBroker, waiting_client: GatepassClient
    ) -> None:
        """A fractional or zero TTL is refused before anything is sent."""
        task = open_task(waiting_client)
        sent = len(broker.requests)
        for ttl in (dt.timedelta(seconds=0.5), dt.timedelta(0)):
            with pytest.raises(InvalidRequestError, match="requested_ttl"):
                task.access_token(TARGET, "write", requested_ttl=ttl)
        with pytest.raises(InvalidRequestError, match="wait"):
            task.access_token(TARGET, "write", wait=dt.timedelta(seconds=-1))
        assert len(broker.requests) == sent


class TestEndings:
    """How a wait ends when the answer is not the credential."""

    def test_issue9_access_denied_after_pending_is_approval_denied(
        self, broker: FakeBroker, waiting_client: GatepassClient
    ) -> None:
        """An approver's deny is ApprovalDeniedError with the approval id."""
        task = open_task(waiting_client)
        broker.errors = [pending(), refused("access_denied", 403)]
        with pytest.raises(ApprovalDeniedError) as raised:
            task.access_token(TARGET, "write", wait=WAIT)
        assert raised.value.approval_id == APPROVAL
        assert raised.value.detail == "because access_denied"

    def test_issue9_policy_deny_on_the_first_ask_stays_access_denied(
        self, broker: FakeBroker, waiting_client: GatepassClient
    ) -> None:
        """No pending answer came first: it is policy's deny, not an approver's."""
        task = open_task(waiting_client)
        broker.errors = [refused("access_denied", 403)]
        with pytest.raises(AccessDeniedError) as raised:
            task.access_token(TARGET, "write", wait=WAIT)
        assert not isinstance(raised.value, ApprovalDeniedError)

    def test_issue9_expired_token_is_approval_expired(
        self, broker: FakeBroker, waiting_client: GatepassClient
    ) -> None:
        """expired_token from the broker: not resumable, with the id."""
        task = open_task(waiting_client)
        broker.errors = [pending(), refused("expired_token")]
        with pytest.raises(ApprovalExpiredError) as raised:
            task.access_token(TARGET, "write", wait=WAIT)
        assert raised.value.approval_id == APPROVAL
        assert raised.value.still_pending is False

    def test_issue9_other_answers_are_raised_as_they_are(
        self, broker: FakeBroker, waiting_client: GatepassClient
    ) -> None:
        """A cancelled approval (invalid_grant) ends the wait as invalid_grant."""
        task = open_task(waiting_client)
        broker.errors = [pending(), refused("invalid_grant")]
        with pytest.raises(InvalidGrantError):
            task.access_token(TARGET, "write", wait=WAIT)

    def test_issue9_insufficient_scope_is_not_an_approver_deny(
        self, broker: FakeBroker, waiting_client: GatepassClient
    ) -> None:
        """Only access_denied itself becomes ApprovalDeniedError."""
        task = open_task(waiting_client)
        broker.errors = [pending(), refused("insufficient_scope", 403)]
        with pytest.raises(InsufficientScopeError):
            task.access_token(TARGET, "write", wait=WAIT)

    def test_issue9_local_deadline_stops_before_a_late_poll(
        self, broker: FakeBroker, waiting_client: GatepassClient, sleeper: Sleeper
    ) -> None:
        """wait=7 s with a 5 s interval: one poll, then the wait gives up."""
        task = open_task(waiting_client)
        broker.errors = [pending(), pending()]
        with pytest.raises(ApprovalExpiredError, match=APPROVAL) as raised:
            task.access_token(TARGET, "write", wait=dt.timedelta(seconds=7))
        assert raised.value.still_pending is True
        assert sleeper.sleeps == [5]

    def test_issue9_zero_wait_asks_once(
        self, broker: FakeBroker, waiting_client: GatepassClient, sleeper: Sleeper
    ) -> None:
        """wait=0 asks, learns the id, and gives up without a pause."""
        task = open_task(waiting_client)
        broker.errors = [pending()]
        with pytest.raises(ApprovalExpiredError) as raised:
            task.access_token(TARGET, "write", wait=dt.timedelta(0))
        assert raised.value.approval_id == APPROVAL
        assert sleeper.sleeps == []

    def test_issue9_a_raising_progress_callback_stops_the_wait(
        self, broker: FakeBroker, waiting_client: GatepassClient, sleeper: Sleeper
    ) -> None:
        """The caller cancels by raising from on_progress."""
        task = open_task(waiting_client)
        broker.errors = [pending(), pending()]

        class StopError(Exception):
            pass

        def stop(progress: ApprovalProgress) -> None:
            if progress.attempt == 2:
                raise StopError

        with pytest.raises(StopError):
            task.access_token(TARGET, "write", wait=WAIT, on_progress=stop)
        assert sleeper.sleeps == [5]


class TestObtain:
    """The loop itself, without HTTP."""

    def test_issue9_an_answer_for_another_approval_is_refused(
        self, clock: FrozenClock
    ) -> None:
        """A broker that switches approvals mid-wait is not followed."""
        answers = iter([APPROVAL, "apr_" + "d" * 26])

        def ask(_: ApprovalParameters) -> str:
            raise ApprovalPendingError(
                "waiting", approval_id=next(answers), interval=5, expires_in=60
            )

        with pytest.raises(GatepassError, match="another approval"):
            obtain(
                ask,
                WaitOptions(wait=WAIT),
                clock=clock,
                sleep=clock.advance,
            )

    def test_issue9_parameters_render_as_form_and_json(self) -> None:
        """The form carries strings, the JSON body an integer TTL."""
        parameters = ApprovalParameters(
            approval_id=APPROVAL, justification="why", requested_ttl=20
        )
        assert parameters.form() == {
            "approval_id": APPROVAL,
            "justification": "why",
            "requested_ttl": "20",
        }
        assert parameters.json() == {
            "approval_id": APPROVAL,
            "justification": "why",
            "requested_ttl": 20,
        }
        assert ApprovalParameters().form() == {}
        assert ApprovalParameters().json() == {}
