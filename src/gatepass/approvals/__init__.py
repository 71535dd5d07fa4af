"""
Step-up approvals, the parts that need neither the store nor the broker.

What binds an approval to the exact request (:mod:`~gatepass.approvals.canonical`),
the ``[approvals]`` configuration (:mod:`~gatepass.approvals.settings`) and how
agent-supplied text is shown to approvers (:mod:`~gatepass.approvals.text`). The
broker composes them with the store (``broker/approval_*.py``).
"""

from __future__ import annotations

from gatepass.approvals.canonical import CanonicalRequest, request_hash
from gatepass.approvals.settings import (
    ApprovalSettings,
    ApproverGroupSettings,
    WebhookSettings,
)
from gatepass.approvals.text import inert, inert_html

__all__ = [
    "ApprovalSettings",
    "ApproverGroupSettings",
    "CanonicalRequest",
    "WebhookSettings",
    "inert",
    "inert_html",
    "request_hash",
]
