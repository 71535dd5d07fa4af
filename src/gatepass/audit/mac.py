"""
The keyed half of the audit log: an HMAC on every record and every journal line.

The hash chain proves that records were not edited *relative to each other*; anyone
who can write the database can still append a correctly hashed record, or rewrite
the tail after the last signed checkpoint and recompute every hash. A MAC under a
key that never enters the database closes that gap at a cost of about a
microsecond per record, where an Ed25519 signature per record would cost ~40 µs on
the token path (FACTS.md).

The keys are derived with HKDF-SHA256 (RFC 5869) from the audit signing key, which
is stored sealed by the master key (DESIGN ground rule 8): whoever holds the
database holds only ciphertext, and there is no second secret to create, back up
or rotate. Distinct ``info`` labels keep the record key, the journal key and the
signing key independent (RFC 5869 §3.2).

Only the broker can check a MAC. A verifier holding just the public key relies on
the signed checkpoints instead, which the broker signs only after checking the MAC
of every record since the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gatepass.errors import AuditIntegrityError

__all__ = ["AuditMac"]

_RECORD_INFO: Final = b"gatepass/audit/record-mac/v1"
_JOURNAL_INFO: Final = b"gatepass/audit/journal-mac/v1"
_RECORD_PREFIX: Final = b"gatepass audit record v1\n"
_KEY_BYTES: Final = 32
_HEX_MAC = re.compile(r"[0-9a-f]{64}")


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=info
    ).derive(secret)


class AuditMac:
    """
    HMAC-SHA256 over audit record hashes and anchor journal lines.

    Build one with :meth:`derive`, normally through
    :meth:`gatepass.audit.AuditSigner.mac`.

    Args:
        record_key: the key for record MACs.
        journal_key: the key for anchor journal lines.
    """

    __slots__ = ("_journal_base", "_record_base")

    def __init__(self, record_key: bytes, journal_key: bytes) -> None:
        """Keep keyed HMAC states to copy (the record one past its fixed prefix)."""
        # Copying a keyed state saves the two key-pad compressions per MAC (about
        # a third of the cost), which the token path and every start-up pay.
        self._record_base = hmac.new(record_key, _RECORD_PREFIX, hashlib.sha256)
        self._journal_base = hmac.new(journal_key, digestmod=hashlib.sha256)

    @classmethod
    def derive(cls, secret: bytes) -> AuditMac:
        """
        Derive both keys from a secret of at least 32 bytes (HKDF, RFC 5869).

        Args:
            secret: the audit signing key's private bytes.

        Raises:
            ValueError: the secret is shorter than 32 bytes.
        """
        if len(secret) < _KEY_BYTES:
            msg = "audit mac secret must be at least 32 bytes"
            raise ValueError(msg)
        return cls(_derive(secret, _RECORD_INFO), _derive(secret, _JOURNAL_INFO))

    def record_mac(self, record_hash: str) -> str:
        """
        Return the MAC of a record, given its chain hash.

        The hash already commits to every field, the seq and the previous record,
        so MACing the hash authenticates all of them.

        Args:
            record_hash: the record's 64-character hex chain hash.

        Returns:
            64 lower-case hex characters.
        """
        state = self._record_base.copy()
        state.update(record_hash.encode("ascii"))
        return state.hexdigest()

    def check_record(self, seq: int, record_hash: str, mac: str | None) -> None:
        """
        Check a record's MAC in constant time.

        Raises:
            AuditIntegrityError: the MAC is missing or does not match; the message
                names the seq.
        """
        if mac is None:
            raise AuditIntegrityError(f"record seq {seq} has no mac: record forged")
        if not _HEX_MAC.fullmatch(mac):
            raise AuditIntegrityError(f"record seq {seq} mac is malformed")
        try:
            expected = self.record_mac(record_hash)
        except (UnicodeEncodeError, AttributeError) as exc:
            raise AuditIntegrityError(f"record seq {seq} hash is malformed") from exc
        if not hmac.compare_digest(expected, mac):
            raise AuditIntegrityError(
                f"record seq {seq} mac does not verify: record forged"
            )

    def line_mac(self, payload: bytes) -> str:
        """Return the MAC of one anchor journal line's canonical payload."""
        state = self._journal_base.copy()
        state.update(payload)
        return state.hexdigest()

    def check_line(self, payload: bytes, mac: object, where: str) -> None:
        """
        Check, in constant time, that ``mac`` is the MAC of ``payload``.

        Args:
            payload: the line's canonical bytes without its MAC.
            mac: the MAC the line carries.
            where: names the line in the error (``journal line 7 of FILE``).

        Raises:
            AuditIntegrityError: the MAC is missing, malformed or wrong.
        """
        if not isinstance(mac, str) or not _HEX_MAC.fullmatch(mac):
            raise AuditIntegrityError(f"{where} has no valid mac: line forged")
        if not hmac.compare_digest(self.line_mac(payload), mac):
            raise AuditIntegrityError(f"{where} mac does not verify: line forged")

    def __repr__(self) -> str:
        """Never show the keys."""
        return "AuditMac(<keys hidden>)"
