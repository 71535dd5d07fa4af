"""
Evidence bundles: one task's audit trail, provable offline with the audit key alone.

A bundle (:mod:`gatepass.evidence.bundle`, format version 1) holds every audit
record that concerns a task and its descendants, tied to signed checkpoints by
hash-only :class:`Link` entries for the records in between (so other tasks'
details stay out, :mod:`gatepass.evidence.links`), revocation receipts per target,
and the audit key's signature over the whole. :func:`verify_bundle` checks it with
no broker: this package imports the audit package and the leaves only.
"""

from __future__ import annotations

from gatepass.evidence.build import assemble, plan_segments
from gatepass.evidence.bundle import (
    FORMAT,
    SIGNING_PREFIX,
    VERSION,
    Bundle,
    Segment,
    parse_bundle,
)
from gatepass.evidence.links import Link, link_of
from gatepass.evidence.receipts import build_receipts, check_receipts
from gatepass.evidence.verify import BundleReport, inspect_bundle, verify_bundle

__all__ = [
    "FORMAT",
    "SIGNING_PREFIX",
    "VERSION",
    "Bundle",
    "BundleReport",
    "Link",
    "Segment",
    "assemble",
    "build_receipts",
    "check_receipts",
    "inspect_bundle",
    "link_of",
    "parse_bundle",
    "plan_segments",
    "verify_bundle",
]
