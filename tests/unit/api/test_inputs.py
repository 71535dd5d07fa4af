"""JSON bodies and queries validated at the edge: precise refusals, never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.api.inputs import (
    AgentQuery,
    AuditQuery,
    LeaseQuery,
    TaskQuery,
    agent_registration,
    close_reason,
    credential_request,
    proxy_calls,
    validated,
)
from gatepass.audit import Outcome
from gatepass.errors import GatepassError, InvalidRequestError
from gatepass.models import AgentStatus, LeaseState, TaskState
from gatepass.tokens import DPoPKey

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


class TestAgentRegistration:
    """``POST /v1/agents`` bodies."""

    def test_valid(self) -> None:
        """A name, a tenant, labels and a public JWK make a registration."""
        key = DPoPKey.generate()
        registration = agent_registration(
            {
                "name": "a-1",
                "tenant": "acme",
                "public_key": key.public_jwk,
                "labels": {"team": "support"},
            }
        )
        assert registration.algorithm == "ES256"
        assert registration.labels == {"team": "support"}

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ([], "body must be a JSON object"),
            ({"name": "A", "tenant": "acme", "public_key": {}}, "name must match"),
            ({"name": "a", "tenant": "acme"}, "missing field public_key"),
            ({"name": "a", "tenant": "acme", "public_key": 3}, "public_key must be"),
            (
                {"name": "a", "tenant": "acme", "public_key": {}, "x": 1},
                "unknown field",
            ),
            (
                {"name": "a", "tenant": "acme", "public_key": {}, "labels": {"K": "v"}},
                "label keys must match",
            ),
        ],
    )
    def test_refusals(self, body: object, message: str) -> None:
        """Each malformed field is named."""
        with pytest.raises(InvalidRequestError, match=message):
            agent_registration(body)


class TestCredentialRequest:
    """``POST /v1/credentials`` bodies."""

    def test_actions_or_scope(self) -> None:
        """Actions and scope give the same request; the key is carried."""
        by_actions = credential_request(
            {"target": "db", "actions": ["read", "write"]}, idempotency_key="k"
        )
        by_scope = credential_request(
            {"target": "db", "scope": "read write"}, idempotency_key="k"
        )
        assert by_actions == by_scope
        assert by_actions.idempotency_key == "k"

    @pytest.mark.parametrize(
        "body",
        [
            {"actions": ["read"]},
            {"target": "", "actions": ["read"]},
            {"target": "db", "actions": ["read"], "scope": "read"},
            {"target": "db", "actions": "read"},
            {"target": "db", "actions": ["read"], "public_key": 5},
        ],
    )
    def test_refusals(self, body: dict[str, Any]) -> None:
        """Missing targets, both actions and scope, wrong types are refused."""
        with pytest.raises(InvalidRequestError):
            credential_request(body, idempotency_key=None)


class TestQueries:
    """Query strings name the bad parameter; unknown parameters are ignored."""

    def test_defaults_and_values(self) -> None:
        """Defaults apply; enum values parse; strangers are ignored."""
        assert validated(TaskQuery, {}).limit == 100
        assert validated(TaskQuery, {"state": "open", "x": "1"}).state is TaskState.OPEN
        assert validated(LeaseQuery, {"state": "revoking"}).state is LeaseState.REVOKING
        assert (
            validated(AgentQuery, {"status": "disabled"}).status is AgentStatus.DISABLED
        )
        query = validated(AuditQuery, {"after": "7", "limit": "10"})
        assert (query.after, query.limit, query.last) == (7, 10, None)

    @pytest.mark.parametrize(
        ("model", "query", "message"),
        [
            (AgentQuery, {"status": "sleeping"}, "status must be one of"),
            (TaskQuery, {"limit": "0"}, "limit must be an integer from 1 to 1000"),
            (TaskQuery, {"limit": "abc"}, "limit must be"),
            (AuditQuery, {"after": "-1"}, "after must be a non-negative integer"),
            (AuditQuery, {"last": "1001"}, "last must be an integer from 1 to 1000"),
        ],
    )
    def test_refusals(self, model: Any, query: dict[str, str], message: str) -> None:
        """Each refusal names its parameter and its rule."""
        with pytest.raises(InvalidRequestError, match=message):
            validated(model, query)


class TestSmallBodies:
    """Close reasons and proxy batches."""

    def test_close_reason(self) -> None:
        """A reason is optional and bounded."""
        assert close_reason({}) == "closed by admin"
        assert close_reason({"reason": "done"}) == "done"
        with pytest.raises(InvalidRequestError, match="reason must be"):
            close_reason({"reason": "x" * 201})

    def test_proxy_calls(self) -> None:
        """A batch keeps the fields sent and types the outcome."""
        (call,) = proxy_calls(
            {"events": [{"outcome": "deny", "agent_id": "agt_1", "status": 403}]}
        )
        assert call.outcome is Outcome.DENY
        assert call.details == {"outcome": "deny", "agent_id": "agt_1", "status": 403}

    @pytest.mark.parametrize(
        "body",
        [
            {"events": []},
            {"events": [{"password": "x"}]},
            {"events": [{"status": "200"}]},
            {"events": [{"status": True}]},
            {"events": [{"outcome": "maybe"}]},
            {"other": []},
        ],
    )
    def test_bad_batches(self, body: object) -> None:
        """Unknown fields, wrong types and empty batches are refused."""
        with pytest.raises(InvalidRequestError):
            proxy_calls(body)


@given(JSON)
def test_any_json_is_parsed_or_refused(payload: object) -> None:
    """No JSON value makes an edge parser raise anything but a gatepass error."""
    for parse in (
        agent_registration,
        close_reason,
        proxy_calls,
        lambda body: credential_request(body, idempotency_key=None),
    ):
        try:
            parse(payload)
        except GatepassError:
            continue
