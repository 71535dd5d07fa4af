"""
The tamper-evident audit log: entries, the keyed hash chain, checkpoints, anchoring.

Every decision becomes an :class:`AuditEntry` (secrets scrubbed on construction),
which :func:`chain` turns into an :class:`AuditRecord` linked by SHA-256 to the one
before it; the store adds an HMAC under :class:`AuditMac`, a key only the broker can
derive. An :class:`AuditSigner` periodically signs a :class:`Checkpoint` over the
latest hash with an Ed25519 key sealed by the master key. :func:`verify_log` checks
a stream of records against checkpoints and the published public key;
:func:`export_lines` / :func:`verify_export` carry a log in a self-contained
JSON-lines file. The :class:`AnchorJournal`, kept outside the database, remembers
what the database must still contain, and :func:`compare` tells when the database
went back in time. Persistence lives in ``gatepass.store``.
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
from gatepass.audit.comparison import (
    ROLLBACK_KIND,
    ChainView,
    Comparison,
    ForkedSegment,
    compare,
)
from gatepass.audit.entry import (
    OUTCOMES,
    REDACTED,
    AuditEntry,
    Outcome,
    looks_like_jwt,
    scrub,
)
from gatepass.audit.export import AuditExport, export_lines, read_export, verify_export
from gatepass.audit.journal import (
    JOURNAL_FILE,
    Anchor,
    Journal,
    Segment,
    SegmentRef,
    read_journal,
)
from gatepass.audit.mac import AuditMac
from gatepass.audit.verify import VerifyReport, verify_log
from gatepass.audit.writer import AnchorJournal

__all__ = [
    "GENESIS_HASH",
    "JOURNAL_FILE",
    "OUTCOMES",
    "REDACTED",
    "ROLLBACK_KIND",
    "Anchor",
    "AnchorJournal",
    "AuditEntry",
    "AuditExport",
    "AuditMac",
    "AuditRecord",
    "AuditSigner",
    "ChainView",
    "Checkpoint",
    "Comparison",
    "ForkedSegment",
    "Journal",
    "Outcome",
    "Segment",
    "SegmentRef",
    "VerifyReport",
    "canonical_bytes",
    "chain",
    "chain_after",
    "compare",
    "export_lines",
    "format_timestamp",
    "jwk_thumbprint",
    "load_public_keys",
    "looks_like_jwt",
    "parse_timestamp",
    "read_export",
    "read_journal",
    "record_hash",
    "scrub",
    "verify_checkpoint",
    "verify_export",
    "verify_log",
]
