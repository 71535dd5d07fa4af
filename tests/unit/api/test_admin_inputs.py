"""The inputs issue 17 added: audit filters, API token bodies, what-if questions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.api.inputs import (
    AuditQuery,
    audit_filter,
    policy_question,
    validated,
)
from gatepass.audit import Outcome
from gatepass.errors import InvalidRequestError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


class TestAuditFilters:
    """``GET /v1/audit/events`` filters."""

    def test_all_filters(self) -> None:
        """Every filter is read into the broker's AuditFilter, since in UTC."""
        query = validated(
            AuditQuery,
            {
                "agent": "agt_x",
                "task": "tsk_y",
                "kind": "task",
                "outcome": "deny",
                "since": "2026-01-06T11:00:00+01:00",
            },
        )
        found = audit_filter(query)
        assert (found.agent, found.task, found.kind) == ("agt_x", "tsk_y", "task")
        assert found.outcome is Outcome.DENY
        assert found.since == dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ({"outcome": "maybe"}, "outcome must be one of allow, deny, error, ok"),
            ({"since": "yesterday"}, "since must be an ISO 8601 time with a zone"),
            ({"since": "2026-01-06T10:00:00"}, "since must be an ISO 8601 time"),
            ({"kind": "k" * 65}, "kind"),
        ],
    )
    def test_refusals_name_the_field(self, query: dict[str, str], message: str) -> None:
        """A bad filter is invalid_request naming the field, never echoing it."""
        with pytest.raises(InvalidRequestError, match=message) as caught:
            validated(AuditQuery, query)
        assert "yesterday" not in caught.value.detail

    @given(st.text(max_size=40))
    def test_since_never_crashes(self, text: str) -> None:
        """Any since is an aware time or a clear invalid_request."""
        try:
            moment: dt.datetime | None = dt.datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            with pytest.raises(InvalidRequestError, match=r"^since must be"):
                validated(AuditQuery, {"since": text})
            return
        query = validated(AuditQuery, {"since": text})
        assert query.since == moment
        assert query.since is not None
        assert query.since.utcoffset() == dt.timedelta(0)


class TestPolicyQuestion:
    """``POST /v1/policy/explain`` bodies."""

    def test_defaults(self) -> None:
        """Only agent, target and action are required."""
        question = policy_question(
            {"agent": "demo", "target": "tickets", "action": "read"}
        )
        assert (question.purpose, question.environment, question.tenant) == (
            "",
            None,
            None,
        )
        assert question.at is None

    def test_at_is_utc(self) -> None:
        """``at`` is read as an aware time in UTC."""
        question = policy_question(
            {
                "agent": "a",
                "target": "t",
                "action": "OpenTask",
                "at": "2026-01-06T22:00:00Z",
            }
        )
        assert question.at == dt.datetime(2026, 1, 6, 22, 0, tzinfo=dt.UTC)

    @pytest.mark.parametrize(
        "body",
        [
            {"target": "t", "action": "read"},
            {"agent": "a", "target": "t", "action": "read now"},
            {"agent": "a", "target": "t", "action": "read", "environment": "Prod!"},
            {"agent": "a", "target": "t", "action": "read", "at": "tonight"},
        ],
    )
    def test_refusals(self, body: dict[str, Any]) -> None:
        """Missing fields, malformed actions, environments and times are refused."""
        with pytest.raises(InvalidRequestError):
            policy_question(body)

    @given(JSON)
    def test_any_json_is_a_question_or_invalid(self, body: object) -> None:
        """Arbitrary JSON never raises anything but invalid_request."""
        try:
            policy_question(body)
        except InvalidRequestError:
            return
