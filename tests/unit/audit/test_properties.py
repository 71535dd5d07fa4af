import dataclasses
import datetime as dt
import json
import string
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gatepass.audit import (
    OUTCOMES,
    REDACTED,
    AuditEntry,
    AuditMac,
    AuditRecord,
    AuditSigner,
    Checkpoint,
    canonical_bytes,
    chain,
    export_lines,
    looks_like_jwt,
    scrub,
    verify_export,
    verify_log,
)
from gatepass.errors import AuditIntegrityError

Log = tuple[list[AuditRecord], list[Checkpoint]]
SIGNER = AuditSigner(Ed25519PrivateKey.generate())
MAC = SIGNER.mac()
# Pinned below the ci profile's 100: each example chains, signs and verifies a log,
# and 50 keeps this module near one second.
SETTINGS = settings(max_examples=50, deadline=None)

B64URL = string.ascii_letters + string.digits + "-_"
SECRET_WORDS = ["token", "Password", "client_secret", "authorization", "dpop_proof"]

times = st.datetimes(
    min_value=dt.datetime(1970, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=dt.datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
jwts = st.builds(
    "eyJ{}.{}.{}".format,
    st.text(B64URL, min_size=1, max_size=12),
    st.text(B64URL, min_size=1, max_size=12),
    st.text(B64URL, max_size=12),
)
# Logs use flatter data than the round-trip test, to keep the suite fast.
flat_objects = st.dictionaries(
    st.text(max_size=6), scalars | st.lists(scalars, max_size=3), max_size=3
)
kinds = st.sampled_from(["task.open", "credential.issue", "token.deny", "lease.revoke"])


def entries(
    data: st.SearchStrategy[dict[str, Any]] = json_objects,
) -> st.SearchStrategy[AuditEntry]:
    """Return a strategy for audit entries carrying ``data``."""
    return st.builds(
        AuditEntry,
        at=times,
        kind=kinds,
        outcome=st.sampled_from(sorted(OUTCOMES)),
        actor=st.text(min_size=1, max_size=12),
        subject=st.text(max_size=12),
        data=data,
    )


def chain_all(items: list[AuditEntry], mac: AuditMac | None = MAC) -> list[AuditRecord]:
    """Chain entries from the genesis hash, MACed as the broker does."""
    records: list[AuditRecord] = []
    previous: AuditRecord | None = None
    for entry in items:
        previous = chain(previous, entry, mac=mac)
        records.append(previous)
    return records


def no_secret_survives(value: object) -> bool:
    """Return whether no JWT string and no unredacted secret key remains."""
    if isinstance(value, dict):
        for key, item in value.items():
            if looks_like_jwt(key):
                return False
            if key in SECRET_WORDS and item != REDACTED:
                return False
            if not no_secret_survives(item):
                return False
        return True
    if isinstance(value, list):
        return all(no_secret_survives(item) for item in value)
    return not (isinstance(value, str) and looks_like_jwt(value))


@st.composite
def logs(draw: st.DrawFn, min_size: int = 1, *, anchored: bool = True) -> Log:
    """Draw a chained log and checkpoints at random seqs (and at its end)."""
    records = chain_all(
        draw(st.lists(entries(flat_objects), min_size=min_size, max_size=8))
    )
    seqs = draw(st.sets(st.integers(1, len(records)))) if records else set()
    if anchored and records:
        seqs.add(len(records))
    elif records:
        seqs.discard(len(records))
    checkpoints = [
        SIGNER.sign(seq, records[seq - 1].hash, records[seq - 1].at)
        for seq in sorted(seqs)
    ]
    return records, checkpoints


class TestChainProperties:
    """Any chain verifies untouched and fails after any one change."""

    @SETTINGS
    @given(logs(min_size=0))
    def test_untampered_chain_verifies(self, log: Log) -> None:
        """Any chain ending at a checkpoint verifies, with or without MAC checks."""
        records, checkpoints = log
        report = verify_log(iter(records), checkpoints, SIGNER.public_jwk)
        assert report.events == report.last_seq == len(records)
        assert report.unanchored_tail == 0
        assert verify_log(records, checkpoints, SIGNER.public_jwk, mac=MAC) == report

    @SETTINGS
    @given(logs(anchored=False))
    def test_issue11_any_unanchored_tail_fails(self, log: Log) -> None:
        """A chain whose last record follows its last checkpoint never verifies."""
        records, checkpoints = log
        first = (checkpoints[-1].seq if checkpoints else 0) + 1
        with pytest.raises(AuditIntegrityError, match=f"^records from seq {first} "):
            verify_log(records, checkpoints, SIGNER.public_jwk)

    @SETTINGS
    @given(logs(anchored=False))
    def test_issue11_macs_vouch_for_the_tail(self, log: Log) -> None:
        """With the broker's MAC keys the same tail verifies, and is counted."""
        records, checkpoints = log
        report = verify_log(records, checkpoints, SIGNER.public_jwk, mac=MAC)
        last = checkpoints[-1].seq if checkpoints else 0
        assert report.unanchored_tail == len(records) - last

    @SETTINGS
    @given(logs(), st.data())
    def test_any_single_mutation_is_detected(
        self, log: Log, data: st.DataObject
    ) -> None:
        """Changing any one field of any one record fails verification."""
        records, checkpoints = log
        index = data.draw(st.integers(0, len(records) - 1), label="index")
        record = records[index]
        field = data.draw(
            st.sampled_from([f.name for f in dataclasses.fields(AuditRecord)]),
            label="field",
        )
        mutations: dict[str, st.SearchStrategy[Any]] = {
            "seq": st.integers(-5, 50),
            "at": times,
            "kind": kinds,
            "outcome": st.sampled_from(sorted(OUTCOMES)),
            "actor": st.text(max_size=12),
            "subject": st.text(max_size=12),
            "data": flat_objects.map(scrub),
            "prev_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
            "hash": st.text("0123456789abcdef", min_size=64, max_size=64),
            "mac": st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
        }
        new_value: Any = data.draw(mutations[field], label="new_value")
        old_value = getattr(record, field)
        if field == "data":
            assume(canonical_bytes(new_value) != canonical_bytes(old_value))
        else:
            assume(new_value != old_value)
        tampered = list(records)
        changes: dict[str, Any] = {field: new_value}
        tampered[index] = dataclasses.replace(record, **changes)
        with pytest.raises(AuditIntegrityError, match="seq"):
            verify_log(tampered, checkpoints, SIGNER.public_jwk, mac=MAC)

    @SETTINGS
    @given(logs())
    def test_export_round_trip_verifies(self, log: Log) -> None:
        """A log written as JSON lines and read back verifies with the same report."""
        records, checkpoints = log
        lines = list(export_lines(records, checkpoints, public_jwk=SIGNER.public_jwk))
        expected = verify_log(records, checkpoints, SIGNER.public_jwk)
        assert verify_export(lines, public_jwk=SIGNER.public_jwk) == expected


class TestCanonicalProperties:
    """Arbitrary JSON data survives the canonical round trip."""

    @SETTINGS
    @given(entries())
    def test_nested_data_survives_the_json_round_trip(self, entry: AuditEntry) -> None:
        """to_json, text, from_json gives an equal record with the same hash."""
        record = chain(None, entry)
        text = json.dumps(record.to_json(), ensure_ascii=False)
        again = AuditRecord.from_json(json.loads(text))
        assert again == record
        assert canonical_bytes(again.data) == canonical_bytes(record.data)
        assert again.computed_hash() == record.hash

    @SETTINGS
    @given(json_values)
    def test_canonical_bytes_decode_to_the_same_value(self, value: object) -> None:
        """The canonical encoding is valid UTF-8 JSON of the same value."""
        assert json.loads(canonical_bytes(value).decode("utf-8")) == value


class TestScrubProperties:
    """No generated secret survives scrubbing."""

    @SETTINGS
    @given(
        st.recursive(
            scalars | jwts | st.builds("x {} y".format, jwts),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(SECRET_WORDS) | st.text(max_size=8) | jwts,
                    children,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda value: {"root": value})
    )
    def test_no_secret_key_or_jwt_survives(self, data: dict[str, Any]) -> None:
        """After scrubbing, no secret key keeps its value and no JWT remains."""
        cleaned = scrub(data)
        assert no_secret_survives(cleaned)
        assert scrub(cleaned) == cleaned

    @SETTINGS
    @given(jwts, st.text(max_size=8), st.text(max_size=8))
    def test_jwt_inside_text_is_found(self, jwt: str, before: str, after: str) -> None:
        """A JWT is recognised wherever it sits in a string."""
        assert scrub({"v": before + jwt + after}) == {"v": REDACTED}
