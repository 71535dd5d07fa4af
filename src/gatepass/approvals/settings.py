"""
The ``[approvals]`` section: how long approvals wait, quotas, approver groups.

Included in ``gatepass.config.Settings``. Approver groups need no table here to
exist (an operator is put in a group with ``gatepass operators add --group``); a
``[[approvals.groups]]`` table adds what a group is told, a webhook::

    [approvals]
    poll_interval_seconds = 5
    pending_ttl_seconds = 900        # a policy's @approval_ttl overrides it
    redeem_window_seconds = 300
    max_pending_per_agent = 10
    max_pending_per_task = 3

    [[approvals.groups]]
    name = "prod-approvers"
    [approvals.groups.webhook]
    url = "https://hooks.example/gatepass"
    secret_file = "/etc/gatepass/hook.key"
    format = "slack"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ApprovalSettings", "ApproverGroupSettings", "WebhookSettings"]

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookSettings(_Section):
    """
    Where a group's notifications go, and how they are signed.

    The body is signed with HMAC-SHA256 under the contents of ``secret_file``
    (``Gatepass-Signature``); ``format = "slack"`` sends a Slack-compatible body
    (``text`` and ``blocks``) instead of gatepass's JSON.
    """

    url: str
    secret_file: Path | None = None
    format: Literal["json", "slack"] = "json"
    timeout_seconds: int = Field(default=5, ge=1, le=60)
    max_attempts: int = Field(default=8, ge=1, le=50)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("webhook url must be an http(s) URL")
        return value


class ApproverGroupSettings(_Section):
    """One approver group's settings."""

    name: Name
    webhook: WebhookSettings | None = None


class ApprovalSettings(_Section):
    """
    ``[approvals]``: the broker's rules for step-up approvals.

    Attributes:
        poll_interval_seconds: the ``interval`` agents are told to poll at.
        pending_ttl_seconds: how long a request waits for approval when its
            policy sets no ``@approval_ttl`` (deny on timeout).
        redeem_window_seconds: once approved, how long the agent has to redeem.
        max_pending_per_agent: pending approvals one agent may hold (429 beyond).
        max_pending_per_task: pending approvals one task may hold (429 beyond).
        link_base: the base of the link in notifications; defaults to the
            broker's issuer.
        groups: per-group settings (webhooks).
    """

    poll_interval_seconds: int = Field(default=5, ge=1, le=60)
    pending_ttl_seconds: int = Field(default=900, ge=30, le=7 * 24 * 3600)
    redeem_window_seconds: int = Field(default=300, ge=10, le=3600)
    max_pending_per_agent: int = Field(default=10, ge=1, le=1000)
    max_pending_per_task: int = Field(default=3, ge=1, le=100)
    link_base: str | None = None
    groups: list[ApproverGroupSettings] = Field(default_factory=list, max_length=256)

    @field_validator("groups")
    @classmethod
    def _unique(cls, value: list[ApproverGroupSettings]) -> list[ApproverGroupSettings]:
        names = [group.name for group in value]
        if len(names) != len(set(names)):
            raise ValueError("approver group names must be unique")
        return value

    def group(self, name: str) -> ApproverGroupSettings | None:
        """Return a group's settings, or None when it has no table."""
        return next((group for group in self.groups if group.name == name), None)
