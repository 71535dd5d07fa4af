import dataclasses
import datetime as dt
import hashlib
import json

import pytest

from gatepass.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    canonical_bytes,
    chain,
    format_timestamp,
    parse_timestamp,
    record_hash,
)
from gatepass.errors import AuditIntegrityError

from .conftest import ChainAll, MakeEntries

GOLDEN_ENTRY = AuditEntry(
    at=dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.UTC),
    kind="credential.issue",
    outcome="allow",
    actor="agt_01",
    subject="lse_01",
    data={"target": "orders-db", "actions": ["read"], "ttl": 300, "note": "café"},
)
GOLDEN_BYTES = (
    '{"actor":"agt_01","at":"2026-01-01T12:30:00.000000Z","data":{"actions":["read"],'
    '"note":"café","target":"orders-db","ttl":300},"kind":"credential.issue",'
    '"outcome":"allow","prev_hash":"' + "0" * 64 + '","seq":1,"subject":"lse_01"}'
).encode()
GOLDEN_HASH = "035ab0a540fef34d61404746c6e6eab782db60574cb319e14179c0433f661792"


class TestCanonicalBytes:
    """canonical_bytes() is the frozen encoding of the chain."""

    def test_sorts_keys_without_whitespace(self) -> None:
        """Keys are sorted at every depth and no whitespace is emitted."""
        assert canonical_bytes({"b": 1, "a": {"d": [1, 2], "c": None}}) == (
            b'{"a":{"c":null,"d":[1,2]},"b":1}'
        )

    def test_writes_utf8_not_escapes(self) -> None:
        """Non-ASCII text is written as UTF-8 bytes, not as escapes."""
        assert canonical_bytes({"k": "é✓"}) == '{"k":"é✓"}'.encode()

    def test_refuses_nan(self) -> None:
        """NaN has no JSON form and is refused."""
        with pytest.raises(ValueError, match="JSON compliant"):
            canonical_bytes({"x": float("nan")})

    def test_golden_vector_never_changes(self) -> None:
        """The chain encoding and hash of a fixed record are pinned forever."""
        record = chain(None, GOLDEN_ENTRY)
        payload = json.loads(GOLDEN_BYTES)
        assert canonical_bytes(payload) == GOLDEN_BYTES
        assert hashlib.sha256(GOLDEN_BYTES).hexdigest() == GOLDEN_HASH
        assert record.hash == GOLDEN_HASH


class TestTimestamps:
    """Audit times have exactly one text form."""

    def test_formats_utc_with_microseconds_and_z(self) -> None:
        """Times are written as RFC 3339 UTC with six fractional digits and Z."""
        moment = dt.datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=dt.UTC)
        assert format_timestamp(moment) == "2026-03-04T05:06:07.000089Z"

    def test_converts_other_zones(self) -> None:
        """An aware time in another zone is written as UTC."""
        zone = dt.timezone(dt.timedelta(hours=-5))
        moment = dt.datetime(2026, 1, 1, 7, tzinfo=zone)
        assert format_timestamp(moment) == "2026-01-01T12:00:00.000000Z"

    def test_pads_early_years(self) -> None:
        """Years before 1000 keep four digits."""
        moment = dt.datetime(5, 1, 1, tzinfo=dt.UTC)
        assert format_timestamp(moment) == "0005-01-01T00:00:00.000000Z"

    def test_refuses_naive_times(self) -> None:
        """A naive time has no defined instant and is refused."""
        with pytest.raises(ValueError, match="timezone-aware"):
            format_timestamp(dt.datetime(2026, 1, 1))  # noqa: DTZ001

    def test_parses_its_own_format(self) -> None:
        """parse_timestamp inverts format_timestamp."""
        moment = dt.datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=dt.UTC)
        assert parse_timestamp(format_timestamp(moment)) == moment

    @pytest.mark.parametrize(
        "text",
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.000000+00:00",
            "2026-01-01 00:00:00.000000Z",
            "2026-01-01T00:00:00.000000z",
            "\uff12026-01-01T00:00:00.000000Z",
        ],
    )
    def test_parse_refuses_other_forms(self, text: str) -> None:
        """Only the exact hashed form is accepted, so no two texts share a time."""
        with pytest.raises(ValueError, match="rfc 3339"):
            parse_timestamp(text)


class TestChain:
    """chain() links each record to the one before."""

    def test_first_record_starts_from_genesis(self, make_entries: MakeEntries) -> None:
        """The first record is seq 1 and chains from the all-zero hash."""
        record = chain(None, make_entries(1)[0])
        assert record.seq == 1
        assert record.prev_hash == GENESIS_HASH == "0" * 64

    def test_links_to_previous(self, make_entries: MakeEntries) -> None:
        """Each record carries the previous record's hash and the next seq."""
        first_entry, second_entry = make_entries(2)
        first = chain(None, first_entry)
        second = chain(first, second_entry)
        assert second.seq == 2
        assert second.prev_hash == first.hash
        assert second.hash != first.hash

    def test_hash_covers_the_fields(self, make_entries: MakeEntries) -> None:
        """The stored hash is record_hash of the fields and recomputes."""
        record = chain(None, make_entries(1)[0])
        assert record.computed_hash() == record.hash
        assert record.hash == record_hash(
            seq=1,
            at=record.at,
            kind=record.kind,
            outcome=record.outcome,
            actor=record.actor,
            subject=record.subject,
            data=record.data,
            prev_hash=GENESIS_HASH,
        )

    def test_copies_entry_fields(self, make_entries: MakeEntries) -> None:
        """The record carries the entry's fields unchanged."""
        entry = make_entries(1)[0]
        record = chain(None, entry)
        for field in ("at", "kind", "outcome", "actor", "subject", "data"):
            assert getattr(record, field) == getattr(entry, field)


class TestAuditRecordJSON:
    """AuditRecord converts to and from JSON without loss."""

    def test_round_trip(self, make_entries: MakeEntries, chain_all: ChainAll) -> None:
        """from_json(to_json()) returns an equal record that still verifies."""
        for record in chain_all(make_entries(3)):
            text = json.dumps(record.to_json())
            again = AuditRecord.from_json(json.loads(text))
            assert again == record
            assert again.computed_hash() == record.hash

    def test_times_end_in_z(self, make_entries: MakeEntries) -> None:
        """The JSON time is RFC 3339 UTC with a Z suffix."""
        record = chain(None, make_entries(1)[0])
        assert record.to_json()["at"] == "2026-01-01T00:00:00.000000Z"

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("seq", "1", "seq is not an integer"),
            ("seq", True, "seq is not an integer"),
            ("kind", 3, "kind is not a string"),
            ("at", "yesterday", "at is not rfc 3339"),
            ("data", [], "data is not an object"),
            ("hash", "ABC", "hash is not a sha-256"),
            ("prev_hash", "A" * 64, "prev_hash is not a sha-256"),
        ],
    )
    def test_from_json_refuses_malformed(
        self, make_entries: MakeEntries, field: str, value: object, message: str
    ) -> None:
        """A malformed record is an integrity error naming the field."""
        obj = chain(None, make_entries(1)[0]).to_json()
        obj[field] = value
        with pytest.raises(AuditIntegrityError, match=message):
            AuditRecord.from_json(obj)

    def test_from_json_refuses_missing_field(self, make_entries: MakeEntries) -> None:
        """A record without a field is an integrity error."""
        obj = chain(None, make_entries(1)[0]).to_json()
        del obj["actor"]
        with pytest.raises(AuditIntegrityError, match="seq 1: actor"):
            AuditRecord.from_json(obj)

    def test_records_are_frozen(self, make_entries: MakeEntries) -> None:
        """Records are immutable."""
        record = chain(None, make_entries(1)[0])
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.seq = 2  # type: ignore[misc]
