"""
Step-up approvals, the parts that need neither the store nor the broker.

What binds an approval to the exact request (:mod:`~gatepass.approvals.canonical`)
and the ``[approvals]`` configuration (:mod:`~gatepass.approvals.settings`). The
broker composes them with the store (``broker/approvals.py``).
"""

from __future__ import annotations

from gatepass.approvals.canonical import CanonicalRequest, request_hash
from gatepass.approvals.settings import (
    ApprovalSettings,
    ApproverGroupSettings,
    WebhookSettings,
)

__all__ = [
    "ApprovalSettings",
    "ApproverGroupSettings",
    "CanonicalRequest",
    "WebhookSettings",
    "request_hash",
]
