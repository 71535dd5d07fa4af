"""Hash-only links chain exactly the record they stand for."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.audit import GENESIS_HASH, AuditEntry, AuditRecord, chain_after
from gatepass.errors import AuditIntegrityError
from gatepass.evidence import Link, link_of

_TEXT = st.text(max_size=40)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | _TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def _record(
    seq: int, subject: str, kind: str, data: dict[str, Any], prev: str
) -> AuditRecord:
    entry = AuditEntry(
        at=dt.datetime(2026, 1, 6, tzinfo=dt.UTC),
        kind=kind,
        outcome="ok",
        actor="agt_x",
        subject=subject,
        data=data,
    )
    return chain_after(seq - 1, prev, entry)


_records = st.builds(
    _record,
    seq=st.integers(min_value=1, max_value=10**9),
    subject=_TEXT,
    kind=st.sampled_from(["task.open", "a.b", "credential.issue"]),
    data=st.dictionaries(_TEXT, _JSON, max_size=5),
    prev=st.text("0123456789abcdef", min_size=64, max_size=64),
)


class TestLinks:
    """A link recomputes its record's hash from the previous hash alone."""

    @given(_records)
    def test_link_chains_its_record(self, record: AuditRecord) -> None:
        """The link's hash with the true prev_hash is the record's hash."""
        link = Link.from_json(link_of(record).to_json())
        assert link.chained_hash(record.prev_hash) == record.hash

    @given(_records, st.text("0123456789abcdef", min_size=64, max_size=64))
    def test_another_prev_hash_breaks_it(self, record: AuditRecord, other: str) -> None:
        """Any other prev_hash yields another hash."""
        if other == record.prev_hash:
            return
        assert link_of(record).chained_hash(other) != record.hash

    @given(_records)
    def test_the_seq_is_bound(self, record: AuditRecord) -> None:
        """A link moved to another seq no longer chains."""
        link = dataclasses.replace(link_of(record), seq=record.seq + 1)
        assert link.chained_hash(record.prev_hash) != record.hash

    def test_discloses_no_data(self) -> None:
        """Time, actor and data never appear in a link; the tail ends at prev_hash."""
        data = {"intent": "x" * 300, "secret_plan": "launch codes"}
        record = _record(7, "tsk_other", "task.open", data, GENESIS_HASH)
        link = link_of(record)
        shown = repr(link.to_json()).encode() + link.tail
        assert b"launch codes" not in shown
        assert b"agt_x" not in shown
        assert b"2026" not in shown
        assert link.tail.endswith(b',"prev_hash":"')
        assert len(link.tail) <= 77

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("seq", 0, "seq is not a positive integer"),
            ("seq", True, "seq is not a positive integer"),
            ("subject", 5, "subject is not a short string"),
            ("state", "zz", "state is not 64 hex"),
            ("absorbed", 65, "absorbed is not a multiple of 64"),
            ("hash", "00", "hash is not a sha-256"),
            ("tail", "!!", "tail is not base64url"),
            ("tail", "", "tail does not end at prev_hash"),
            ("tail", "LCJwcmV2X2hhc2giOiJ4", "tail does not end at prev_hash"),
        ],
    )
    def test_malformed_links_are_named(
        self, field: str, value: object, message: str
    ) -> None:
        """Each malformed field is refused with its name."""
        obj = link_of(_record(3, "s", "a.b", {}, GENESIS_HASH)).to_json()
        obj[field] = value
        with pytest.raises(AuditIntegrityError, match=message):
            Link.from_json(obj)
