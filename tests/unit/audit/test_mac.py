"""AuditMac: the keyed half of the chain, derived from the audit key."""

from __future__ import annotations

import pytest

from gatepass.audit import AuditMac, AuditSigner
from gatepass.errors import AuditIntegrityError
from gatepass.sealing import Sealer

HASH = "c" * 64


class TestAuditMac:
    """MACs are deterministic per key, differ between keys, and verify strictly."""

    def test_same_key_same_mac(self, signer: AuditSigner) -> None:
        """Two derivations from one audit key agree (replicas share the key)."""
        assert signer.mac().record_mac(HASH) == signer.mac().record_mac(HASH)

    def test_other_audit_key_other_mac(
        self, signer: AuditSigner, sealer: Sealer
    ) -> None:
        """Another broker's key (or an attacker's) gives another MAC."""
        other, _ = AuditSigner.generate(sealer)
        assert other.mac().record_mac(HASH) != signer.mac().record_mac(HASH)

    def test_record_and_journal_keys_are_separate(self, signer: AuditSigner) -> None:
        """A record MAC is not a valid journal-line MAC for the same bytes."""
        mac = signer.mac()
        record = mac.record_mac(HASH)
        with pytest.raises(AuditIntegrityError):
            mac.check_line(b"gatepass audit record v1\n" + HASH.encode(), record, "x")

    def test_check_record_accepts_its_own_mac(self, signer: AuditSigner) -> None:
        """A record MAC made by the key verifies."""
        mac = signer.mac()
        mac.check_record(3, HASH, mac.record_mac(HASH))

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (None, r"^record seq 3 has no mac: record forged$"),
            ("zz", r"^record seq 3 mac is malformed$"),
            ("0" * 64, r"^record seq 3 mac does not verify: record forged$"),
        ],
    )
    def test_check_record_refuses(
        self, signer: AuditSigner, value: str | None, message: str
    ) -> None:
        """A missing, malformed or wrong MAC names the seq."""
        with pytest.raises(AuditIntegrityError, match=message):
            signer.mac().check_record(3, HASH, value)

    def test_short_secret_is_refused(self) -> None:
        """HKDF input below 32 bytes is a programming error."""
        with pytest.raises(ValueError, match="at least 32 bytes"):
            AuditMac.derive(b"short")

    def test_repr_hides_the_keys(self, signer: AuditSigner) -> None:
        """The keys never reach a log through repr."""
        assert repr(signer.mac()) == "AuditMac(<keys hidden>)"
