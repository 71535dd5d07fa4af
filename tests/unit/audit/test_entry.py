import dataclasses
import datetime as dt
import math
from typing import Any

import pytest

from gatepass.audit import REDACTED, AuditEntry, looks_like_jwt, scrub

JWT = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJhZ3RfMSIsImF1ZCI6Im9yZGVycyJ9"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)
AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def make_entry(**overrides: Any) -> AuditEntry:
    """Return an entry with valid defaults and the given fields."""
    fields: dict[str, Any] = {
        "at": AT,
        "kind": "task.open",
        "outcome": "allow",
        "actor": "agt_1",
        "subject": "tsk_1",
        "data": {},
    }
    fields.update(overrides)
    return AuditEntry(**fields)


class TestScrub:
    """scrub() redacts secret-looking keys and JWT-looking strings."""

    @pytest.mark.parametrize(
        "key",
        [
            "secret",
            "client_secret",
            "Password",
            "db_passwd",
            "token",
            "access_token",
            "subject_token",
            "Authorization",
            "client_assertion",
            "dpop_proof",
            "private_key",
            "credential",
            "Cookie",
            "api_key",
            "X-Api-Key",
            "apikey",
            "TOKEN",
        ],
    )
    def test_redacts_secret_looking_keys(self, key: str) -> None:
        """A key naming a secret has its value redacted, whatever the value is."""
        assert scrub({key: "hunter2"}) == {key: REDACTED}
        assert scrub({key: {"nested": 1}}) == {key: REDACTED}

    @pytest.mark.parametrize(
        "key",
        [
            "token_hash",
            "lease_id",
            "credential_id",
            "token_type",
            "subject_token_type",
            "jti",
            "JTI",
            "target",
            "reasons",
        ],
    )
    def test_keeps_reference_keys(self, key: str) -> None:
        """Hashes, ids, types and jti are references, not secrets, and are kept."""
        assert scrub({key: "abc"}) == {key: "abc"}

    def test_recurses_into_dicts_and_lists(self) -> None:
        """Secret keys are redacted at any depth, including inside lists."""
        data = {"outer": {"password": "x", "ok": 1}, "items": [{"token": "t"}, 2]}
        assert scrub(data) == {
            "outer": {"password": REDACTED, "ok": 1},
            "items": [{"token": REDACTED}, 2],
        }

    def test_redacts_jwt_values_anywhere(self) -> None:
        """A JWT-shaped string is redacted under any key, in lists and inside text."""
        data = {
            "note": JWT,
            "list": ["ok", JWT],
            "header": f"Bearer {JWT}",
            "deep": {"x": [{"y": JWT}]},
        }
        assert scrub(data) == {
            "note": REDACTED,
            "list": ["ok", REDACTED],
            "header": REDACTED,
            "deep": {"x": [{"y": REDACTED}]},
        }

    def test_redacts_jwt_shaped_keys(self) -> None:
        """A JWT used as a key is redacted together with its value."""
        assert scrub({JWT: 1, "ok": 2}) == {REDACTED: REDACTED, "ok": 2}

    def test_redacts_unsecured_jwt(self) -> None:
        """An unsecured JWT (empty signature segment) is still a JWT."""
        assert scrub({"v": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}) == {"v": REDACTED}

    def test_keeps_ordinary_strings(self) -> None:
        """Dotted names and version strings are not mistaken for JWTs."""
        data = {"kind": "credential.issue", "v": "1.2.3", "e": "eyJ"}
        assert scrub(data) == data

    def test_does_not_modify_input(self) -> None:
        """Scrubbing returns a copy and leaves the caller's data alone."""
        data = {"token": "t", "nested": {"password": "p"}}
        scrub(data)
        assert data == {"token": "t", "nested": {"password": "p"}}

    def test_is_idempotent(self) -> None:
        """Scrubbing scrubbed data changes nothing."""
        once = scrub({"token": "t", "v": JWT, "l": (1, 2)})
        assert scrub(once) == once

    def test_turns_tuples_into_lists(self) -> None:
        """Tuples become lists, so data equals itself after a JSON round trip."""
        assert scrub({"pair": (1, (2, 3))}) == {"pair": [1, [2, 3]]}

    def test_looks_like_jwt(self) -> None:
        """looks_like_jwt finds a JWT inside longer text."""
        assert looks_like_jwt(f"x={JWT}&y=1")
        assert not looks_like_jwt("a.b.c")


class TestAuditEntry:
    """AuditEntry validates its fields and scrubs its data."""

    def test_scrubs_data_on_construction(self) -> None:
        """An entry never holds a secret-looking field."""
        entry = make_entry(data={"client_assertion": JWT, "note": JWT, "ok": 1})
        assert entry.data == {"client_assertion": REDACTED, "note": REDACTED, "ok": 1}

    def test_normalizes_time_to_utc(self) -> None:
        """A time in another zone is stored as the same instant in UTC."""
        paris = dt.timezone(dt.timedelta(hours=1))
        entry = make_entry(at=dt.datetime(2026, 1, 1, 1, tzinfo=paris))
        assert entry.at == AT
        assert entry.at.tzinfo is dt.UTC

    def test_rejects_naive_time(self) -> None:
        """A naive time is refused."""
        with pytest.raises(ValueError, match="timezone-aware"):
            make_entry(at=dt.datetime(2026, 1, 1))  # noqa: DTZ001

    @pytest.mark.parametrize(
        "kind", ["open", "Task.Open", "task.", ".task", "task open"]
    )
    def test_rejects_undotted_kind(self, kind: str) -> None:
        """A kind must be a dotted lower-case name."""
        with pytest.raises(ValueError, match="dotted"):
            make_entry(kind=kind)

    def test_rejects_unknown_outcome(self) -> None:
        """The outcome is one of allow, deny, error and ok."""
        with pytest.raises(ValueError, match="outcome"):
            make_entry(outcome="maybe")

    def test_rejects_empty_actor(self) -> None:
        """Every entry names its actor."""
        with pytest.raises(ValueError, match="actor"):
            make_entry(actor="")

    @pytest.mark.parametrize(
        "data", [{"s": {1, 2}}, {"t": AT}, {"b": b"raw"}, {"n": {1: "x"}}]
    )
    def test_rejects_non_json_data(self, data: dict[Any, Any]) -> None:
        """Values JSON cannot represent are refused at construction."""
        with pytest.raises(TypeError):
            make_entry(data=data)

    @pytest.mark.parametrize("value", [math.nan, math.inf, "\ud800"])
    def test_rejects_unencodable_data(self, value: object) -> None:
        """NaN, infinities and lone surrogates are refused at construction."""
        with pytest.raises(ValueError):
            make_entry(data={"v": value})

    def test_is_frozen(self) -> None:
        """Entries are immutable."""
        entry = make_entry()
        with pytest.raises(dataclasses.FrozenInstanceError):
            entry.kind = "task.close"  # type: ignore[misc]
