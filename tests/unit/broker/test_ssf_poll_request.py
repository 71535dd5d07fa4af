"""Parsing RFC 8936 poll requests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.broker import parse_poll_request
from gatepass.errors import InvalidRequestError

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)


class TestParsePollRequest:
    """ack, setErrs, maxEvents and returnImmediately."""

    def test_full(self) -> None:
        """Every member is read."""
        parsed = parse_poll_request(
            {
                "ack": ["set_1"],
                "setErrs": {"set_2": {"err": "invalid_key", "description": "x"}},
                "maxEvents": 0,
                "returnImmediately": True,
            }
        )
        assert parsed.ack == ("set_1",)
        assert parsed.errors == {"set_2": "invalid_key"}
        assert parsed.max_events == 0
        assert parsed.return_immediately is True

    def test_empty_is_a_plain_long_poll(self) -> None:
        """No body and {} both wait for events."""
        bodies: tuple[object, ...] = (None, {})
        for body in bodies:
            parsed = parse_poll_request(body)
            assert parsed.ack == ()
            assert parsed.max_events is None
            assert parsed.return_immediately is False

    @pytest.mark.parametrize(
        "body",
        [
            [],
            {"ack": "set_1"},
            {"ack": [1]},
            {"setErrs": {"s": "bad"}},
            {"setErrs": {"s": {"description": "no err"}}},
            {"maxEvents": -1},
            {"maxEvents": True},
            {"returnImmediately": "yes"},
            {"wait": 3},
        ],
    )
    def test_refusals(self, body: object) -> None:
        """Malformed polls are invalid_request."""
        with pytest.raises(InvalidRequestError):
            parse_poll_request(body)

    @given(
        st.dictionaries(
            st.sampled_from(["ack", "setErrs", "maxEvents", "returnImmediately"]),
            _json,
            max_size=4,
        )
    )
    def test_any_json_is_parsed_or_refused(self, body: dict[str, Any]) -> None:
        """Whatever the JSON, a PollRequest or InvalidRequestError comes back."""
        try:
            parsed = parse_poll_request(body)
        except InvalidRequestError as error:
            detail: str | None = error.detail
        else:
            detail = None
        if detail is not None:
            assert detail
            return
        assert all(parsed.ack)
        assert parsed.max_events is None or parsed.max_events >= 0
