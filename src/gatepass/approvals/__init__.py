"""
Step-up approvals, the parts that need neither the store nor the broker.

What binds an approval to the exact request (:mod:`~gatepass.approvals.canonical`),
the ``[approvals]`` configuration (:mod:`~gatepass.approvals.settings`), and how
approver groups are told (:mod:`~gatepass.approvals.webhooks`: bodies, signatures,
retries). The broker composes them with the store (``broker/approvals.py``,
``broker/notifications.py``).
"""

from __future__ import annotations

from gatepass.approvals.canonical import CanonicalRequest, request_hash
from gatepass.approvals.settings import (
    ApprovalSettings,
    ApproverGroupSettings,
    WebhookSettings,
)
from gatepass.approvals.webhooks import (
    Webhook,
    WebhookEvent,
    verify_signature,
)

__all__ = [
    "ApprovalSettings",
    "ApproverGroupSettings",
    "CanonicalRequest",
    "Webhook",
    "WebhookEvent",
    "WebhookSettings",
    "request_hash",
    "verify_signature",
]
