"""The console's filters and cursors: strict parsing of query strings (issue 13)."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from gatepass.console.queries import (
    audit_query,
    cursor,
    cursor_of,
    lease_query,
    reason_of,
    task_query,
)
from gatepass.errors import InvalidRequestError


class TestFilters:
    """Empty means any; anything malformed is invalid_request."""

    def test_issue13_empty_form_fields_are_no_filter(self) -> None:
        """A submitted form with blank fields filters nothing."""
        wanted = task_query(QueryParams("agent=&tenant=&state=&purpose="))
        assert (wanted.agent_id, wanted.tenant, wanted.state, wanted.purpose) == (
            None,
            None,
            None,
            None,
        )

    def test_issue13_states_are_checked(self) -> None:
        """Only a known state is accepted."""
        assert task_query(QueryParams("state=open")).state == "open"
        assert lease_query(QueryParams("state=revoking")).state == "revoking"
        with pytest.raises(InvalidRequestError):
            task_query(QueryParams("state=gone"))

    def test_issue13_repeated_field_is_refused(self) -> None:
        """agent=a&agent=b is ambiguous, so refused."""
        with pytest.raises(InvalidRequestError):
            task_query(QueryParams("agent=a&agent=b"))

    @given(st.text(max_size=300))
    def test_issue13_any_agent_text_parses_or_is_refused(self, text: str) -> None:
        """Arbitrary text is a valid word or an invalid_request, never a crash."""
        detail = ""
        try:
            wanted = task_query(QueryParams({"agent": text}))
        except InvalidRequestError as error:
            detail = error.detail
        else:
            assert wanted.agent_id is None or wanted.agent_id == text.strip()
        # A refusal names the field, never echoes the value.
        assert not text.strip() or len(text.strip()) < 3 or text.strip() not in detail

    @given(st.text(max_size=40))
    def test_issue13_any_audit_query_parses_or_is_refused(self, text: str) -> None:
        """Every audit field holds arbitrary text without crashing the parser."""
        for name in ("kind", "outcome", "before", "since", "until", "task"):
            with contextlib.suppress(InvalidRequestError):
                audit_query(QueryParams({name: text}))


class TestCursors:
    """Keyset cursors round-trip and refuse anything else."""

    @given(
        st.datetimes(
            min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis adds the zone
            max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
            timezones=st.just(dt.UTC),
        ),
        st.from_regex(r"tsk_[a-z0-9]{8}", fullmatch=True),
    )
    def test_issue13_cursor_round_trips(self, at: dt.datetime, last: str) -> None:
        """cursor() then cursor_of() gives the same position back."""
        assert cursor_of(QueryParams({"before": cursor(at, last)})) == (at, last)

    @pytest.mark.parametrize("raw", ["x", "2026-01-01~", "2026-01-01T00:00:00~tsk_1"])
    def test_issue13_bad_cursors_are_refused(self, raw: str) -> None:
        """A cursor without a zone, an id, or a time is invalid_request."""
        with pytest.raises(InvalidRequestError):
            cursor_of(QueryParams({"before": raw}))

    def test_issue13_audit_before_is_a_seq(self) -> None:
        """The audit explorer pages by seq; since/until read as UTC."""
        match, before, until = audit_query(
            QueryParams("before=120&since=2026-01-06T10:00&until=2026-01-06T11:00")
        )
        assert before == 120
        assert match.since == dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)
        assert until == dt.datetime(2026, 1, 6, 11, 0, tzinfo=dt.UTC)
        with pytest.raises(InvalidRequestError):
            audit_query(QueryParams("before=-1"))


class TestReasons:
    """Actions need a reason."""

    @pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
    def test_issue13_empty_or_long_reason_is_refused(self, reason: str) -> None:
        """A blank or over-long reason is invalid_request."""
        with pytest.raises(InvalidRequestError):
            reason_of({"reason": reason})

    def test_issue13_reason_is_trimmed(self) -> None:
        """Whitespace around the reason is dropped."""
        assert reason_of({"reason": "  incident 7 "}) == "incident 7"
