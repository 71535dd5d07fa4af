"""RFC 9493 subject identifiers and event type names (issue 14)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.ssf.events import CAEP, RISC, event_uri, is_known, parse_subject


class TestSubjects:
    """Each supported format yields its identifying values."""

    @pytest.mark.parametrize(
        ("entry", "names"),
        [
            ({"format": "email", "email": "a@example.test"}, ("a@example.test",)),
            ({"format": "opaque", "id": "agent-1"}, ("agent-1",)),
            ({"format": "iss_sub", "iss": "https://i", "sub": "s1"}, ("s1",)),
            (
                {"format": "account", "uri": "acct:a@example.test"},
                ("acct:a@example.test",),
            ),
            ({"format": "uri", "uri": "https://x.test/a"}, ("https://x.test/a",)),
            ({"format": "did", "url": "did:example:1"}, ("did:example:1",)),
            (
                {"format": "phone_number", "phone_number": "+15555550100"},
                ("+15555550100",),
            ),
            (
                {
                    "format": "aliases",
                    "identifiers": [
                        {"format": "email", "email": "a@example.test"},
                        {"format": "opaque", "id": "a"},
                    ],
                },
                ("a@example.test", "a"),
            ),
            (
                {
                    "format": "complex",
                    "user": {"format": "opaque", "id": "u"},
                    "tenant": {"format": "opaque", "id": "acme"},
                },
                ("u", "acme"),
            ),
        ],
    )
    def test_formats(self, entry: dict[str, object], names: tuple[str, ...]) -> None:
        """The identifying members are read in order."""
        assert parse_subject(entry).names() == names

    @pytest.mark.parametrize(
        "entry",
        [
            "a@example.test",
            {"format": "email"},
            {"format": "iss_sub", "sub": "s1"},
            {"format": "opaque", "id": ""},
            {"format": "aliases", "identifiers": []},
            {"format": "aliases", "identifiers": ["x"]},
            {"format": "complex"},
            {"format": "complex", "user": "u"},
            {"format": "unknown", "id": "x"},
        ],
    )
    def test_refused(self, entry: object) -> None:
        """Malformed subjects raise ValueError."""
        with pytest.raises(ValueError, match=r"subject|alias|iss|lacks"):
            parse_subject(entry)

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        ["format", "id", "email", "identifiers", "user", "sub"]
                    )
                    | st.text(max_size=5),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=10,
        )
    )
    def test_any_json_parses_or_raises_value_error(self, entry: object) -> None:
        """Whatever JSON arrives, the parser answers or raises ValueError only."""
        try:
            subject = parse_subject(entry)
        except ValueError:
            return
        assert all(subject.names())


class TestEventNames:
    """Short names map to the CAEP and RISC URIs."""

    def test_short_names(self) -> None:
        """session-revoked is CAEP, account-disabled is RISC, URIs pass through."""
        assert event_uri("session-revoked") == CAEP + "session-revoked"
        assert event_uri("account-disabled") == RISC + "account-disabled"
        assert event_uri("https://x.test/e") == "https://x.test/e"
        assert is_known(CAEP + "device-compliance-change")
        assert not is_known("https://x.test/e")
