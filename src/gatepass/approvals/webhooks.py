"""
Approver webhooks: the body, the signature, the retry schedule and one delivery.

A library for the broker's notifier (``broker/notifications.py``), which keeps the
outbox and the audit; nothing here touches the store. One :class:`Webhook` per
approver group holds its URL and its secret, both read once at start and held as
:class:`~gatepass.secret.Secret` (a Slack incoming-webhook URL is itself a
credential). A delivery is one ``POST`` of the JSON body with:

* ``Gatepass-Event``: the event (``approval.requested``...);
* ``Gatepass-Delivery``: the outbox id, the same on every retry, so a receiver can
  drop duplicates (delivery is at least once);
* ``Gatepass-Signature``: ``t=<unix seconds>,v1=<hex HMAC-SHA256>`` when the group
  has a ``secret_file`` (:mod:`~gatepass.approvals.signatures`; receivers check it
  with :func:`verify_signature`).

A 2xx answer is delivered. Anything else (a redirect, which is never followed, a
4xx, a 5xx, a timeout, a refused connection) is retried on the
:func:`backoff` schedule; the reason kept is the status code or the exception's
class, never the answer's body, which is not even read.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import httpx

from gatepass.approvals.payloads import (
    WebhookEvent,
    approval_link,
    json_body,
    slack_body,
)
from gatepass.approvals.settings import WebhookSettings
from gatepass.approvals.signatures import (
    SIGNATURE_HEADER,
    signature_header,
    verify_signature,
)
from gatepass.errors import ConfigurationError
from gatepass.models import Approval
from gatepass.secret import Secret

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "Delivery",
    "Webhook",
    "WebhookEvent",
    "approval_link",
    "backoff",
    "deliver",
    "encode_body",
    "json_body",
    "load_secret",
    "new_client",
    "signature_header",
    "slack_body",
    "verify_signature",
]

EVENT_HEADER: Final = "Gatepass-Event"
DELIVERY_HEADER: Final = "Gatepass-Delivery"
BACKOFF_BASE: Final = dt.timedelta(seconds=2)
BACKOFF_CAP: Final = dt.timedelta(minutes=10)
_USER_AGENT: Final = "gatepass-webhooks/1"
_REASON_LIMIT: Final = 120


def load_secret(path: Path) -> Secret:
    """
    Read a webhook secret file once: its content without the trailing newline.

    Args:
        path: the group's ``secret_file``.

    Returns:
        The secret.

    Raises:
        ConfigurationError: the file cannot be read, is not UTF-8, or is empty.
    """
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        msg = f"webhook secret file {path} cannot be read ({type(error).__name__})"
        raise ConfigurationError(msg) from error
    if not value.strip():
        msg = f"webhook secret file {path} is empty"
        raise ConfigurationError(msg)
    return Secret(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """
    One approver group's webhook, ready to deliver.

    Attributes:
        group: the approver group.
        url: where to POST (a secret: Slack's URLs are credentials).
        secret: the HMAC key; None sends unsigned.
        format: ``json`` (gatepass's body) or ``slack``.
        timeout: the longest one delivery may take, connection included.
        max_attempts: attempts before the notification is given up as failed.
    """

    group: str
    url: Secret
    secret: Secret | None
    format: Literal["json", "slack"]
    timeout: dt.timedelta
    max_attempts: int

    @classmethod
    def from_settings(cls, group: str, settings: WebhookSettings) -> Webhook:
        """
        Build a group's webhook, reading its secret file now.

        Raises:
            ConfigurationError: the secret file is unreadable or empty.
        """
        secret_file = settings.secret_file
        return cls(
            group=group,
            url=Secret(settings.url),
            secret=None if secret_file is None else load_secret(secret_file),
            format=settings.format,
            timeout=dt.timedelta(seconds=settings.timeout_seconds),
            max_attempts=settings.max_attempts,
        )

    def body(
        self, approval: Approval, event: WebhookEvent, link: str
    ) -> dict[str, Any]:
        """Return this webhook's body (its format) for an event of an approval."""
        build = slack_body if self.format == "slack" else json_body
        return build(approval, event, link)


def backoff(
    attempts: int,
    *,
    rng: random.Random,
    base: dt.timedelta = BACKOFF_BASE,
    cap: dt.timedelta = BACKOFF_CAP,
) -> dt.timedelta:
    """
    Return the wait after ``attempts`` failed attempts: exponential, full jitter.

    A uniform draw from ``[0, min(cap, base * 2 ** (attempts - 1))]`` ("full
    jitter", AWS Architecture Blog, *Exponential Backoff and Jitter*): receivers
    that come back after an outage are not hit by every broker at once.

    Args:
        attempts: failed attempts so far (1 after the first failure).
        rng: the random source (seeded in tests).
        base: the ceiling after the first failure.
        cap: the largest ceiling.
    """
    exponent = min(max(attempts - 1, 0), 30)
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2**exponent)
    return dt.timedelta(seconds=rng.uniform(0, ceiling))


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Return the exact bytes sent (and signed): compact, ASCII-only JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")


@dataclass(frozen=True, slots=True)
class Delivery:
    """
    How one attempt went.

    Attributes:
        delivered: the receiver answered 2xx.
        reason: a short reason for the record (``http 503``, ``ConnectError``),
            never the answer's body.
    """

    delivered: bool
    reason: str


def new_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """
    Return an HTTP client for deliveries: redirects are never followed.

    A redirect would send a signed notification somewhere its group did not
    configure; it counts as a failed attempt instead.

    Args:
        transport: an httpx transport (tests); the network by default.
    """
    return httpx.AsyncClient(
        follow_redirects=False,
        headers={"User-Agent": _USER_AGENT},
        transport=transport,
    )


def _headers(
    webhook: Webhook, raw: bytes, *, event: str, delivery_id: str, now: dt.datetime
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
    }
    if webhook.secret is not None:
        headers[SIGNATURE_HEADER] = signature_header(webhook.secret, raw, now)
    return headers


async def deliver(
    client: httpx.AsyncClient,
    webhook: Webhook,
    *,
    body: Mapping[str, Any],
    event: str,
    delivery_id: str,
    now: dt.datetime,
) -> Delivery:
    """
    POST one notification, signed at ``now``; never raise for the receiver's sake.

    Args:
        client: from :func:`new_client` (redirects off).
        webhook: the group's webhook.
        body: the body to send.
        event: the ``Gatepass-Event`` header.
        delivery_id: the ``Gatepass-Delivery`` header (the outbox id).
        now: the signing time.

    Returns:
        Whether the receiver took it, and a short reason.
    """
    raw = encode_body(body)
    headers = _headers(webhook, raw, event=event, delivery_id=delivery_id, now=now)
    seconds = webhook.timeout.total_seconds()
    try:
        # httpx's timeout bounds each phase (connect, each read); the outer one
        # bounds the whole attempt, so a receiver that trickles bytes cannot hold
        # the notifier.
        with anyio.fail_after(seconds):
            async with client.stream(
                "POST",
                webhook.url.reveal(),
                content=raw,
                headers=headers,
                timeout=seconds,
                follow_redirects=False,
            ) as response:
                status = response.status_code
    except TimeoutError:
        return Delivery(delivered=False, reason="timeout")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return Delivery(delivered=False, reason=type(error).__name__[:_REASON_LIMIT])
    return Delivery(delivered=200 <= status < 300, reason=f"http {status}")
