"""
Prometheus metrics, each broker owning its own registry.

Label values are always drawn from small closed sets (actions, outcomes, error
codes, engine kinds, configured target names, endpoint route templates). They
never carry ids, tokens, hashes, agent names or free text: unbounded label
values would explode the number of series, and a token in a label would leak it
to every scraper (DESIGN ground rule 9).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["REQUEST_BUCKETS", "TOKEN_REQUEST_KINDS", "Metrics"]

# From 0.2 ms (a cached policy decision) to 1 s (an engine creating a database role).
REQUEST_BUCKETS: Final = (
    0.0002,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
TOKEN_REQUEST_KINDS: Final = ("open_task", "access_token", "introspect", "revoke")


class Metrics:
    """
    The broker's metric families, registered in a registry of their own.

    Several brokers (or tests) in one process each build a ``Metrics`` and never
    collide in the global default registry.

    Args:
        registry: the registry to use; a new one by default.

    Attributes:
        registry: the registry holding every family below.
        decisions: policy decisions, by ``action`` and ``outcome`` (allow/deny/error).
        issuances: credentials issued, by engine ``kind`` and configured ``target``.
        token_requests: token endpoint calls, by ``kind`` (one of
            :data:`TOKEN_REQUEST_KINDS`) and ``outcome`` (``ok`` or the error code).
        revocations: revocations, by ``reason`` (task_closed, expired, policy...).
        request_seconds: request latency, by route-template ``endpoint`` and
            ``outcome``.
        audit_events: audit records written, by ``kind``.
        policy_reloads: policy reloads, by ``outcome``.
        live_leases: leases currently active.
        clock_offset: wall clock minus the broker's clock, in seconds (a step of
            the wall clock shows here; the broker's own time is unaffected).
        notifications: approver webhook attempts, by configured approver
            ``group`` and ``outcome`` (``delivered``, ``retry``, ``failed``).
        notifications_pending: approver notifications not yet delivered or
            given up.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create and register every family."""
        self.registry = registry if registry is not None else CollectorRegistry()
        self.decisions = Counter(
            "gatepass_policy_decisions",
            "Policy decisions by action and outcome.",
            ("action", "outcome"),
            registry=self.registry,
        )
        self.issuances = Counter(
            "gatepass_credentials_issued",
            "Credentials issued by engine kind and target.",
            ("kind", "target"),
            registry=self.registry,
        )
        self.token_requests = Counter(
            "gatepass_token_requests",
            "Token endpoint requests by kind and outcome (ok or the error code).",
            ("kind", "outcome"),
            registry=self.registry,
        )
        self.revocations = Counter(
            "gatepass_revocations",
            "Lease and token revocations by reason.",
            ("reason",),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gatepass_request_duration_seconds",
            "Request duration in seconds by endpoint and outcome.",
            ("endpoint", "outcome"),
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.audit_events = Counter(
            "gatepass_audit_events",
            "Audit records written by kind.",
            ("kind",),
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "gatepass_policy_reloads",
            "Policy reloads by outcome.",
            ("outcome",),
            registry=self.registry,
        )
        self.live_leases = Gauge(
            "gatepass_live_leases",
            "Leases currently active.",
            registry=self.registry,
        )
        self.engine_calls = Counter(
            "gatepass_engine_calls",
            "Secret-engine calls by engine kind, operation and outcome.",
            ("engine", "operation", "outcome"),
            registry=self.registry,
        )
        self.engine_seconds = Histogram(
            "gatepass_engine_call_duration_seconds",
            "Secret-engine call latency by engine kind and operation.",
            ("engine", "operation"),
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )
        self.revocations_pending = Gauge(
            "gatepass_revocations_pending",
            "Engine leases whose revocation a target has not yet confirmed.",
            registry=self.registry,
        )
        self.revocation_failures = Counter(
            "gatepass_revocation_failures",
            "Failed revocation attempts by engine kind (retried with backoff).",
            ("engine",),
            registry=self.registry,
        )
        self.clock_offset = Gauge(
            "gatepass_clock_offset_seconds",
            "How far the wall clock is ahead of the broker's step-proof clock.",
            registry=self.registry,
        )
        self.identity_keys = Gauge(
            "gatepass_identity_keys",
            "Keys in use per configured workload-identity issuer (0: its tokens are "
            "refused).",
            ("issuer", "state"),
            registry=self.registry,
        )
        self.notifications = Counter(
            "gatepass_approval_notifications",
            "Approver webhook delivery attempts by approver group and outcome "
            "(delivered, retry, failed).",
            ("group", "outcome"),
            registry=self.registry,
        )
        self.notifications_pending = Gauge(
            "gatepass_approval_notifications_pending",
            "Approver notifications neither delivered nor given up.",
            registry=self.registry,
        )
        # Export zeros for the known kinds, so rate() works before the first call.
        for kind in TOKEN_REQUEST_KINDS:
            self.token_requests.labels(kind=kind, outcome="ok")

    def render(self) -> tuple[bytes, str]:
        """
        Return the exposition of every family.

        Returns:
            The body in the Prometheus text format and its content type.
        """
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
