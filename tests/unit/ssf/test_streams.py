"""Validating stream configurations and status updates (SSF 1.0 §8)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import InvalidRequestError
from gatepass.ssf import streams
from gatepass.ssf.streams import DeliveryMethod, StreamStatus

PUSH = {"method": streams.DELIVERY_PUSH, "endpoint_url": "https://rs.example/events"}
POLL = {"method": streams.DELIVERY_POLL}

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_members = st.sampled_from(
    [
        "delivery",
        "events_requested",
        "description",
        "inactivity_timeout",
        "aud",
        "stream_id",
        "iss",
        "other",
    ]
)


class TestParseStreamRequest:
    """parse_stream_request accepts SSF configurations and names what is wrong."""

    def test_push(self) -> None:
        """A push configuration keeps its URL and seals-to-be authorization."""
        parsed = streams.parse_stream_request(
            {
                "delivery": {**PUSH, "authorization_header": "Bearer s3cret"},
                "events_requested": ["urn:x", "urn:x", "urn:y"],
                "description": "rs",
                "inactivity_timeout": 600,
            },
            require_delivery=True,
        )
        assert parsed.method is DeliveryMethod.PUSH
        assert parsed.endpoint_url == PUSH["endpoint_url"]
        assert parsed.authorization_header is not None
        assert "s3cret" not in repr(parsed)
        assert parsed.events_requested == ("urn:x", "urn:y")
        assert parsed.inactivity_timeout == 600

    def test_poll_ignores_a_receiver_endpoint(self) -> None:
        """For poll the transmitter supplies the endpoint; the receiver's is dropped."""
        parsed = streams.parse_stream_request(
            {"delivery": {**POLL, "endpoint_url": "https://evil.example/"}},
            require_delivery=True,
        )
        assert parsed.method is DeliveryMethod.POLL
        assert parsed.endpoint_url is None

    def test_echoed_transmitter_members_are_ignored(self) -> None:
        """A receiver may PUT back what it read (stream_id, iss...)."""
        parsed = streams.parse_stream_request(
            {"delivery": POLL, "stream_id": "sst_1", "iss": "x", "aud": "https://a/"},
            require_delivery=True,
        )
        assert parsed.audiences == ("https://a/",)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ([], "json object"),
            ({}, "delivery is required"),
            ({"delivery": POLL, "colour": 1}, "unknown member 'colour'"),
            ({"delivery": {"method": "smoke"}}, "delivery.method"),
            ({"delivery": {"method": streams.DELIVERY_PUSH}}, "endpoint_url"),
            ({"delivery": {**PUSH, "endpoint_url": "ftp://x/"}}, "http(s)"),
            ({"delivery": {**PUSH, "endpoint_url": "https://u:p@x/"}}, "credentials"),
            ({"delivery": {**POLL, "authorization_header": "x"}}, "only for push"),
            ({"delivery": {**POLL, "x": 1}}, "unknown member 'x'"),
            ({"delivery": POLL, "aud": []}, "at least one"),
            ({"delivery": POLL, "aud": [1]}, "aud must be"),
            ({"delivery": POLL, "inactivity_timeout": 5}, "inactivity_timeout"),
            ({"delivery": POLL, "inactivity_timeout": True}, "inactivity_timeout"),
            ({"delivery": POLL, "description": "a\nb"}, "control characters"),
            ({"delivery": POLL, "events_requested": ["u"] * 33}, "at most 32"),
        ],
    )
    def test_refusals(self, body: object, message: str) -> None:
        """Each malformed configuration is invalid_request naming the member."""
        with pytest.raises(InvalidRequestError, match=re.escape(message)):
            streams.parse_stream_request(body, require_delivery=True)

    def test_update_without_delivery(self) -> None:
        """An update may leave delivery out."""
        parsed = streams.parse_stream_request(
            {"description": "x"}, require_delivery=False
        )
        assert parsed.method is None
        assert parsed.description == "x"

    @given(st.dictionaries(_members, _json, max_size=6))
    def test_any_json_is_parsed_or_refused_cleanly(self, body: dict[str, Any]) -> None:
        """Whatever the JSON, the parser returns or raises InvalidRequestError."""
        try:
            parsed = streams.parse_stream_request(body, require_delivery=False)
        except InvalidRequestError as error:
            detail: str | None = error.detail
        else:
            detail = None
        if detail is not None:
            # Lower case, as every error; a quoted member name may keep its case.
            assert detail
            assert detail == detail.lower() or "'" in detail
            return
        if parsed.method is DeliveryMethod.PUSH:
            assert parsed.endpoint_url is not None
            assert parsed.endpoint_url.startswith(("http://", "https://"))
        if parsed.audiences is not None:
            assert parsed.audiences
            assert all(parsed.audiences)

    @given(st.text(max_size=40))
    def test_description_round_trips_or_is_refused(self, text: str) -> None:
        """A description is kept exactly, or refused when empty or with controls."""
        try:
            parsed = streams.parse_stream_request(
                {"description": text}, require_delivery=False
            )
        except InvalidRequestError:
            assert not text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
            return
        assert parsed.description == text


class TestParseStreamStatus:
    """Status updates."""

    def test_valid(self) -> None:
        """stream_id, status and reason are read."""
        assert streams.parse_stream_status(
            {"stream_id": "sst_1", "status": "paused", "reason": "upgrade"}
        ) == ("sst_1", StreamStatus.PAUSED, "upgrade")

    @pytest.mark.parametrize(
        "body",
        [
            None,
            {"status": "enabled"},
            {"stream_id": "s", "status": "on"},
            {"stream_id": "s", "status": "enabled", "extra": 1},
            {"stream_id": "s", "status": "enabled", "reason": 3},
        ],
    )
    def test_refusals(self, body: object) -> None:
        """Anything else is invalid_request."""
        with pytest.raises(InvalidRequestError):
            streams.parse_stream_status(body)
