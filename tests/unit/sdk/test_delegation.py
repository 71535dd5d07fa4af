"""``task.delegate()`` and ``client.accept_delegation()`` against the fake broker."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import jwt
import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import (
    GatepassError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidTargetError,
)
from gatepass.sdk import DelegationGrant, GatepassClient

from .conftest import AGENT_ID, BROKER, CHILD_TASK_ID, TASK_ID, FakeBroker, open_task

CHILD = "agt_" + "c" * 26
DELEGATION_TYPE = "urn:gatepass:params:oauth:token-type:delegation"


def _proof_jkt(request: httpx.Request) -> dict[str, object]:
    header: dict[str, object] = jwt.get_unverified_header(request.headers["dpop"])
    return header["jwk"]  # type: ignore[return-value]


class TestDelegate:
    """The parent asks for a grant with its task token and task key."""

    def test_grant_request_names_child_and_narrower_sub_task(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """audience, agent_task (the task's environment) and a proof by the task key."""
        task = open_task(client)
        grant = task.delegate(
            to=CHILD,
            targets=["db"],
            actions=["read"],
            purpose="research",
            ttl=dt.timedelta(minutes=5),
        )
        opened, granted = broker.forms()
        assert granted["subject_token"] == "task-token"
        assert granted["subject_token_type"].endswith(":txn_token")
        assert granted["requested_token_type"] == DELEGATION_TYPE
        assert granted["audience"] == CHILD
        assert json.loads(granted["authorization_details"]) == [
            {
                "type": "agent_task",
                "intent": "research",
                "purpose": "research",
                "environment": "dev",
                "targets": ["db"],
                "actions": ["read"],
                "max_ttl_seconds": 300,
            }
        ]
        token_requests = [r for r in broker.requests if r.url.path == "/token"]
        assert _proof_jkt(token_requests[0]) == _proof_jkt(token_requests[1])
        assert opened["subject_token_type"].endswith(":jwt")
        assert grant.child == CHILD
        assert grant.parent_task == TASK_ID
        assert grant.max_ttl == dt.timedelta(seconds=300)
        assert grant.targets == ("db",)

    def test_grant_never_shows_its_token(
        self, client: GatepassClient, clock: FrozenClock
    ) -> None:
        """The repr hides the token; reveal() hands it over; it expires in 120 s."""
        grant = open_task(client).delegate(
            to=CHILD, targets=["db"], actions="read", purpose="research"
        )
        assert "delegation-token" not in repr(grant)
        assert grant.reveal() == "delegation-token"
        assert grant.expires_at == clock.now() + dt.timedelta(seconds=120)

    @pytest.mark.parametrize(
        ("fields", "error"),
        [
            ({"to": "someone"}, InvalidRequestError),
            ({"targets": "db"}, InvalidRequestError),
            ({"targets": []}, InvalidRequestError),
            ({"actions": []}, GatepassError),
        ],
    )
    def test_malformed_requests_are_refused_locally(
        self,
        client: GatepassClient,
        broker: FakeBroker,
        fields: dict[str, object],
        error: type[GatepassError],
    ) -> None:
        """A bad child id, a string of targets or nothing to hand over never leave."""
        task = open_task(client)
        arguments: dict[str, object] = {
            "to": CHILD,
            "targets": ["db"],
            "actions": ["read"],
            "purpose": "research",
            **fields,
        }
        with pytest.raises(error):
            task.delegate(**arguments)
        assert len(broker.forms()) == 1

    def test_closed_task_cannot_delegate(self, client: GatepassClient) -> None:
        """A closed task has no token to delegate with."""
        task = open_task(client)
        task.close()
        with pytest.raises(InvalidGrantError):
            task.delegate(to=CHILD, targets=["db"], actions="read", purpose="x")

    def test_broker_refusal_is_its_error_class(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """invalid_target from the broker is raised as InvalidTargetError."""
        task = open_task(client)
        broker.errors.append(
            (400, {"error": "invalid_target", "error_description": "outside"})
        )
        with pytest.raises(InvalidTargetError, match="outside"):
            task.delegate(to=CHILD, targets=["x"], actions="read", purpose="x")

    def test_answer_without_a_delegation_token_is_an_error(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A 200 that is not a delegation token answer is refused."""
        task = open_task(client)
        broker.errors.append((200, {"access_token": "x", "expires_in": 5}))
        with pytest.raises(GatepassError, match="without a delegation token"):
            task.delegate(to=CHILD, targets=["db"], actions="read", purpose="x")


class TestAcceptDelegation:
    """The child proves its own identity and binds its task to a new key."""

    @pytest.mark.parametrize("as_string", [True, False])
    def test_accept_sends_the_actor_token_and_a_new_key(
        self, client: GatepassClient, broker: FakeBroker, *, as_string: bool
    ) -> None:
        """actor_token is the agent's assertion; the proof is by a fresh key."""
        grant: DelegationGrant = open_task(client).delegate(
            to=CHILD, targets=["db"], actions="read", purpose="research"
        )
        child = client.accept_delegation(grant.reveal() if as_string else grant)
        accepted = broker.forms()[-1]
        assert accepted["subject_token"] == "delegation-token"
        assert accepted["subject_token_type"] == DELEGATION_TYPE
        assert accepted["actor_token_type"].endswith(":jwt")
        actor = jwt.decode(accepted["actor_token"], options={"verify_signature": False})
        assert actor["sub"] == AGENT_ID
        assert actor["aud"] == BROKER
        requests = [r for r in broker.requests if r.url.path == "/token"]
        assert _proof_jkt(requests[-1]) != _proof_jkt(requests[0])
        assert child.id == CHILD_TASK_ID
        assert child.parent_id == TASK_ID
        assert child.environment == "dev"
        assert "child-task-token" not in repr(child)

    def test_empty_grant_is_refused_locally(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """An empty string is no grant: nothing is sent."""
        with pytest.raises(InvalidRequestError):
            client.accept_delegation("")
        assert broker.forms() == []

    def test_refused_grant_raises_invalid_grant(
        self, client: GatepassClient, broker: FakeBroker
    ) -> None:
        """A used or foreign grant is InvalidGrantError."""
        broker.errors.append(
            (400, {"error": "invalid_grant", "error_description": "already used"})
        )
        with pytest.raises(InvalidGrantError, match="already used"):
            client.accept_delegation("delegation-token")
