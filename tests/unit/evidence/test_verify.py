"""Every single edit, deletion, reorder or truncation of a bundle is named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gatepass.audit import AuditRecord, AuditSigner
from gatepass.errors import AuditIntegrityError
from gatepass.evidence import (
    build_receipts,
    check_receipts,
    inspect_bundle,
    link_of,
    verify_bundle,
)

from .bundles import LEASE, TASK, Built, build, sign

BUILT = build()
SIGNATURE = "bundle signature does not verify"


def _entries(document: dict[str, Any]) -> list[tuple[int, int]]:
    return [
        (s, e)
        for s, segment in enumerate(document["evidence"]["segments"])
        for e in range(len(segment["entries"]))
    ]


def _chain_problems(raw: bytes) -> list[str]:
    """Problems other than the bundle signature; parse failures count as one."""
    try:
        report = inspect_bundle(raw, public_jwk=BUILT.jwk)
    except AuditIntegrityError as error:
        return [error.detail]
    return [p for p in report.problems if not p.startswith(SIGNATURE)]


class TestIntact:
    """An untouched bundle verifies, pinned or not."""

    def test_verifies(self, built: Built) -> None:
        """The report counts what the bundle holds."""
        report = verify_bundle(built.raw, public_jwk=built.jwk)
        assert report.task == TASK
        assert report.records == 5
        assert report.links == 3
        assert report.checkpoints == 2
        assert report.receipts == (("ledger", "confirmed"),)
        assert report.pinned

    def test_other_tasks_are_links(self, built: Built) -> None:
        """No record of the other task is disclosed, and its data is absent."""
        assert b"payroll secrets" not in built.raw
        assert b"/salaries" not in built.raw
        records = [
            entry["record"]
            for segment in built.document["evidence"]["segments"]
            for entry in segment["entries"]
            if "record" in entry
        ]
        assert {r["subject"] for r in records} == {TASK, LEASE}


class TestTampering:
    """What changed is named by seq, not only by the bundle signature."""

    @given(
        st.data(),
        st.sampled_from(
            ["at", "kind", "outcome", "actor", "subject", "data", "prev_hash", "hash"]
        ),
    )
    def test_any_record_edit_is_named(self, data: st.DataObject, field: str) -> None:
        """Editing any field of any disclosed record names that record's seq."""
        document = BUILT.document
        spots = [
            (s, e)
            for s, e in _entries(document)
            if "record" in document["evidence"]["segments"][s]["entries"][e]
        ]
        s, e = data.draw(st.sampled_from(spots))
        record = document["evidence"]["segments"][s]["entries"][e]["record"]
        if field == "data":
            record["data"] = {**record["data"], "added": 1}
        elif field == "at":
            record["at"] = "2030-01-01T00:00:00.000000Z"
        elif field in {"prev_hash", "hash"}:
            record[field] = ("f" if record[field][0] != "f" else "e") + record[field][
                1:
            ]
        else:
            record[field] = record[field] + "x"
        problems = _chain_problems(json.dumps(document).encode())
        assert any(f"seq {record['seq']}" in p for p in problems), problems

    @given(st.data(), st.sampled_from(["subject", "state", "tail", "hash", "absorbed"]))
    def test_any_link_edit_is_detected(self, data: st.DataObject, field: str) -> None:
        """Editing any field of any link breaks the chain at or after it."""
        document = BUILT.document
        spots = [
            (s, e)
            for s, e in _entries(document)
            if "link" in document["evidence"]["segments"][s]["entries"][e]
        ]
        s, e = data.draw(st.sampled_from(spots))
        link = document["evidence"]["segments"][s]["entries"][e]["link"]
        if field == "absorbed":
            link["absorbed"] += 64
        elif field == "tail":
            link["tail"] = "QQ" + link["tail"]
        elif field == "subject":
            link["subject"] += "x"
        else:
            link[field] = ("f" if link[field][0] != "f" else "e") + link[field][1:]
        assert _chain_problems(json.dumps(document).encode())

    @given(st.data())
    def test_any_deletion_is_named(self, data: st.DataObject) -> None:
        """Deleting any one entry names a missing seq, a removed record or a cut."""
        document = BUILT.document
        s, e = data.draw(st.sampled_from(_entries(document)))
        entries = document["evidence"]["segments"][s]["entries"]
        gone = entries.pop(e)
        seq = (gone.get("record") or gone.get("link"))["seq"]
        problems = _chain_problems(json.dumps(document).encode())
        assert any(
            f"seq {seq}" in p or "truncated" in p or "starts with a link" in p
            for p in problems
        ), problems

    @given(st.data())
    def test_any_reorder_is_named(self, data: st.DataObject) -> None:
        """Swapping any two neighbouring entries is named as a reorder."""
        document = BUILT.document
        spots = [(s, e) for s, e in _entries(document) if e > 0]
        s, e = data.draw(st.sampled_from(spots))
        entries = document["evidence"]["segments"][s]["entries"]
        entries[e - 1], entries[e] = entries[e], entries[e - 1]
        problems = _chain_problems(json.dumps(document).encode())
        assert any("reordered" in p or "out of order" in p for p in problems), problems

    def test_segments_reordered(self) -> None:
        """Swapping segments is named."""
        document = BUILT.document
        segments = document["evidence"]["segments"]
        segments.reverse()
        problems = _chain_problems(json.dumps(document).encode())
        assert any("segments out of order" in p for p in problems), problems

    @given(st.data())
    def test_any_truncation_is_named(self, data: st.DataObject) -> None:
        """Cutting a segment short names the segment that misses its checkpoint."""
        document = BUILT.document
        segments = document["evidence"]["segments"]
        s = data.draw(st.integers(0, len(segments) - 1))
        keep = data.draw(st.integers(1, len(segments[s]["entries"]) - 1))
        checkpoint = segments[s]["checkpoint"]
        segments[s]["entries"] = segments[s]["entries"][:keep]
        problems = _chain_problems(json.dumps(document).encode())
        assert any(
            f"checkpoint seq {checkpoint}" in p and "truncated" in p for p in problems
        ), problems

    @given(st.integers(min_value=1, max_value=len(BUILT.raw) - 1))
    def test_any_byte_truncation_is_refused(self, length: int) -> None:
        """A file cut anywhere is refused with an integrity error, never a crash."""
        with pytest.raises(AuditIntegrityError):
            verify_bundle(BUILT.raw[:length], public_jwk=BUILT.jwk)

    def test_dropping_a_whole_segment_is_named(self) -> None:
        """A segment removed from the file leaves its records listed but missing."""
        document = BUILT.document
        document["evidence"]["segments"].pop()
        problems = _chain_problems(json.dumps(document).encode())
        assert any("record removed" in p for p in problems), problems

    def test_a_record_hidden_as_a_link_is_named(self) -> None:
        """Turning the task's own record into a link (and re-listing) is caught."""
        document = BUILT.document
        evidence = document["evidence"]
        entries = evidence["segments"][-1]["entries"]
        index = next(
            i
            for i, e in enumerate(entries)
            if e.get("record", {}).get("kind") == "task.close"
        )
        record = AuditRecord.from_json(entries[index]["record"])
        entries[index] = {"link": link_of(record).to_json()}
        evidence["disclosed"].remove(record.seq)
        evidence["receipts"] = []
        problems = inspect_bundle(
            sign(document, BUILT.signer), public_jwk=BUILT.jwk
        ).problems
        assert (
            f"link at seq {record.seq} is a record about {TASK!r} of this bundle: "
            "record hidden"
        ) in problems


class TestSignatures:
    """The bundle signature and the checkpoints' keys."""

    def test_a_forged_bundle_signature_is_named(self) -> None:
        """A bundle re-signed with another key fails against the pinned key."""
        forger = AuditSigner(Ed25519PrivateKey.generate())
        document = BUILT.document
        document["evidence"]["audit_keys"] = {"keys": [forger.public_jwk]}
        raw = sign(document, forger)
        problems = inspect_bundle(raw, public_jwk=BUILT.jwk).problems
        assert "the bundle's audit_keys are not the expected audit key" in problems
        assert f"bundle is signed by unknown kid {forger.kid!r}" in problems

    def test_a_forger_without_pin_still_fails_on_checkpoints(self) -> None:
        """Replacing the key fails the old checkpoints even when nothing is pinned."""
        forger = AuditSigner(Ed25519PrivateKey.generate())
        document = BUILT.document
        document["evidence"]["audit_keys"] = {"keys": [forger.public_jwk]}
        problems = inspect_bundle(sign(document, forger)).problems
        assert any("signed by unknown kid" in p and "checkpoint" in p for p in problems)

    def test_a_flipped_signature_byte_is_named(self) -> None:
        """One changed character of the signature is named."""
        document = BUILT.document
        value = document["signature"]["value"]
        document["signature"]["value"] = ("A" if value[0] != "A" else "B") + value[1:]
        problems = inspect_bundle(
            json.dumps(document).encode(), public_jwk=BUILT.jwk
        ).problems
        assert problems == (f"{SIGNATURE}: the bundle was changed after export",)

    def test_a_forged_checkpoint_is_named(self) -> None:
        """A checkpoint signature that does not verify names its seq."""
        document = BUILT.document
        checkpoint = document["evidence"]["checkpoints"][0]
        sig = checkpoint["signature"]
        checkpoint["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
        problems = _chain_problems(json.dumps(document).encode())
        assert (
            f"checkpoint at seq {checkpoint['seq']} has an invalid signature"
            in problems
        )

    def test_a_statement_domain_cannot_look_like_a_checkpoint(self) -> None:
        """The audit key refuses to sign under a domain that could start JSON."""
        with pytest.raises(ValueError, match="statement domain"):
            BUILT.signer.sign_statement(b"{", b"x")
        with pytest.raises(ValueError, match="statement domain"):
            BUILT.signer.sign_statement(b"label", b"x")


class TestReceipts:
    """A receipt cannot claim what the disclosed records do not show."""

    def test_a_confirmation_that_is_not_there_is_named(self) -> None:
        """Citing another record as the engine's confirmation is named."""
        document = BUILT.document
        lease = document["evidence"]["receipts"][0]["leases"][0]
        lease["confirmed_by"] = lease["ended_by"]
        problems = inspect_bundle(
            sign(document, BUILT.signer), public_jwk=BUILT.jwk
        ).problems
        assert any("is not a disclosed lease.revoked record" in p for p in problems)

    def test_a_status_the_leases_contradict_is_named(self) -> None:
        """A receipt saying confirmed for a lease still revoking is named."""
        document = BUILT.document
        document["evidence"]["receipts"][0]["leases"][0]["state"] = "revoking"
        problems = inspect_bundle(
            sign(document, BUILT.signer), public_jwk=BUILT.jwk
        ).problems
        assert any("but its leases say 'pending'" in p for p in problems), problems


class TestReceiptStatus:
    """Receipts say what the records show, including what they do not show yet."""

    def test_a_confirmation_after_the_checkpoint_is_unconfirmed(self) -> None:
        """A revoked engine lease whose confirmation is not disclosed is unconfirmed."""
        lease = BUILT.document["evidence"]["leases"][0]
        records = [r for r in BUILT.records if r.kind != "lease.revoked"]
        (receipt,) = build_receipts([lease], records)
        assert receipt["status"] == "unconfirmed"
        by_seq = {r.seq: r for r in records}
        assert check_receipts([receipt], [lease], by_seq) == []

    def test_a_revoking_lease_is_pending(self) -> None:
        """A revocation still being retried makes the receipt pending, with why."""
        lease = {
            **BUILT.document["evidence"]["leases"][0],
            "state": "revoking",
            "attempts": 3,
            "last_error": "engine unavailable",
        }
        (receipt,) = build_receipts([lease], BUILT.records)
        assert receipt["status"] == "pending"
        assert receipt["leases"][0]["attempts"] == 3
