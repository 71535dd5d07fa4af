"""
The tamper-evident audit log: entries, the hash chain, signed checkpoints, verification.

Every decision becomes an :class:`AuditEntry` (secrets scrubbed on construction),
which :func:`chain` turns into an :class:`AuditRecord` linked by SHA-256 to the one
before it. An :class:`AuditSigner` periodically signs a :class:`Checkpoint` over the
latest hash with an Ed25519 key sealed by the master key. :func:`verify_log` checks
a stream of records against checkpoints and the published public key;
:func:`export_lines` / :func:`verify_export` carry a log in a self-contained
JSON-lines file. Persistence lives in ``gatepass.store``.
"""

from __future__ import annotations

from gatepass.audit.canonical import canonical_bytes, format_timestamp, parse_timestamp
from gatepass.audit.chain import (
    GENESIS_HASH,
    AuditRecord,
    chain,
    chain_after,
    record_hash,
)
from gatepass.audit.checkpoint import (
    AuditSigner,
    Checkpoint,
    jwk_thumbprint,
    load_public_keys,
    verify_checkpoint,
)
from gatepass.audit.entry import OUTCOMES, REDACTED, AuditEntry, looks_like_jwt, scrub
from gatepass.audit.export import AuditExport, export_lines, read_export, verify_export
from gatepass.audit.verify import VerifyReport, verify_log

__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "REDACTED",
    "AuditEntry",
    "AuditExport",
    "AuditRecord",
    "AuditSigner",
    "Checkpoint",
    "VerifyReport",
    "canonical_bytes",
    "chain",
    "chain_after",
    "export_lines",
    "format_timestamp",
    "jwk_thumbprint",
    "load_public_keys",
    "looks_like_jwt",
    "parse_timestamp",
    "read_export",
    "record_hash",
    "scrub",
    "verify_checkpoint",
    "verify_export",
    "verify_log",
]
