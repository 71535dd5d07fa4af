"""
What each proxied request did: its :class:`Exchange` record and the metrics.

Metric labels are route names and fixed outcome codes (``ok``, ``upstream_error``
or a :class:`~gatepass.proxy.reasons.RefusalReason`), never a value from the
request. The same record becomes the request's audit event (see
:func:`audit_event`), whose outcome is one of the broker's ``ok`` / ``deny`` /
``error`` and whose ``error`` field is the reason code.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gatepass.proxy.asgi import Send
from gatepass.proxy.audit import AuditShipper, ProxyAuditEvent
from gatepass.proxy.reasons import RefusalReason
from gatepass.verify import VerifiedAccess

__all__ = [
    "Exchange",
    "ProxyMetrics",
    "audit_event",
    "audit_outcome",
    "send_own_endpoint",
]


@dataclass
class Exchange:
    """What one request did, for its audit record and metrics."""

    method: str
    raw_path: str
    route: str = "-"
    path: str = ""
    access: VerifiedAccess | None = None
    status: int = 0
    reason: RefusalReason | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def outcome(self) -> str:
        """The metric outcome: the reason code, ``upstream_error`` or ``ok``."""
        if self.reason is not None:
            return self.reason.value
        return "upstream_error" if self.status >= httpx.codes.BAD_REQUEST else "ok"


# Not refusals but failures: the answer was cut short or never completed (some
# after a 200 was sent, so the status alone does not tell).
_FAILURES = frozenset(
    {
        RefusalReason.CLIENT_CLOSED,
        RefusalReason.SECRET_IN_STREAM,
        RefusalReason.UPSTREAM_ABORTED,
        RefusalReason.UPSTREAM_ENCODING,
        RefusalReason.UPSTREAM_TIMEOUT,
    }
)


class ProxyMetrics:
    """The proxy's metric families; labels are route names and fixed outcomes."""

    def __init__(self) -> None:
        """Create the families in a registry of their own."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gatepass_proxy_requests",
            "Requests answered by the proxy, by route and outcome.",
            ("route", "outcome"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "gatepass_proxy_request_seconds",
            "Time from request to the end of the answer, by route.",
            ("route",),
            registry=self.registry,
        )
        self.stream_up = Gauge(
            "gatepass_proxy_revocation_stream_up",
            "1 while the broker's revocation stream is connected.",
            registry=self.registry,
        )
        self.audit_dropped = Gauge(
            "gatepass_proxy_audit_dropped",
            "Proxy audit events dropped because the broker was unreachable.",
            registry=self.registry,
        )
        self.audit_queued = Gauge(
            "gatepass_proxy_audit_queued",
            "Proxy audit events waiting to be sent to the broker.",
            registry=self.registry,
        )

    def observe(self, exchange: Exchange, latency: float) -> None:
        """
        Count one answered request.

        Args:
            exchange: what the request did.
            latency: seconds from the request to the end of the answer.
        """
        self.requests.labels(exchange.route, exchange.outcome).inc()
        self.latency.labels(exchange.route).observe(latency)


def audit_outcome(exchange: Exchange) -> str:
    """
    Return the broker's audit outcome for a request.

    Args:
        exchange: what the request did.

    Returns:
        ``ok``, ``deny`` or ``error``.
    """
    # The broker's audit log knows ok / deny / error; the precise reason code is
    # the event's error field.
    if exchange.reason is None:
        return "ok"
    if (
        exchange.status >= httpx.codes.INTERNAL_SERVER_ERROR
        or exchange.reason in _FAILURES
    ):
        return "error"
    return "deny"


def audit_event(exchange: Exchange, latency: float) -> ProxyAuditEvent:
    """
    Build the audit event for a request.

    Args:
        exchange: what the request did.
        latency: seconds from the request to the end of the answer.

    Returns:
        The event; it never holds the query string, a token or a body.
    """
    access = exchange.access
    return ProxyAuditEvent(
        jti=access.jti if access else "",
        task_id=access.task_id if access else "",
        agent_id=access.agent_id if access else "",
        route=exchange.route,
        method=exchange.method,
        # The checked path, or the raw one when it never normalised; the
        # query string (which may carry credentials) is never recorded.
        path=exchange.path or exchange.raw_path,
        status=exchange.status,
        bytes_in=exchange.bytes_in,
        bytes_out=exchange.bytes_out,
        latency_ms=round(latency * 1000, 3),
        outcome=audit_outcome(exchange),
        error=exchange.reason.value if exchange.reason is not None else "",
    )


async def send_own_endpoint(
    send: Send,
    path: str,
    *,
    metrics: ProxyMetrics,
    stream_healthy: bool,
    shipper: AuditShipper,
) -> None:
    """
    Answer ``/healthz`` or ``/metrics``.

    Args:
        send: the ASGI send callable.
        path: the reserved path asked for.
        metrics: the proxy's metrics.
        stream_healthy: whether the revocation stream is connected.
        shipper: the audit shipper, for its queue gauges.
    """
    if path == "/healthz":
        body = json.dumps(
            {
                "status": "ok",
                "revocation": "stream" if stream_healthy else "poll",
            }
        ).encode()
        content_type = b"application/json"
    else:
        metrics.stream_up.set(1 if stream_healthy else 0)
        metrics.audit_dropped.set(shipper.dropped)
        metrics.audit_queued.set(shipper.queued)
        body = generate_latest(metrics.registry)
        content_type = CONTENT_TYPE_LATEST.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
