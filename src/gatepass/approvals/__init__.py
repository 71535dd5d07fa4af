"""
Step-up approvals, the parts that need neither the store nor the broker.

What binds an approval to the exact request (:mod:`~gatepass.approvals.canonical`),
the ``[approvals]`` configuration (:mod:`~gatepass.approvals.settings`), how
approver groups are told (:mod:`~gatepass.approvals.webhooks`: bodies, signatures,
retries) and how agent-supplied text is shown to approvers
(:mod:`~gatepass.approvals.text`). The broker composes them with the store
(``broker/approval_*.py``, ``broker/notifications.py``).
"""

from __future__ import annotations

from gatepass.approvals.canonical import CanonicalRequest, request_hash
from gatepass.approvals.settings import (
    ApprovalSettings,
    ApproverGroupSettings,
    WebhookSettings,
)
from gatepass.approvals.text import inert, inert_html
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
    "inert",
    "inert_html",
    "request_hash",
    "verify_signature",
]
