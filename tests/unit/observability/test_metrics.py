from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gatepass.observability import REQUEST_BUCKETS, TOKEN_REQUEST_KINDS, Metrics


def families(metrics: Metrics) -> dict[str, Metric]:
    """Return the rendered families by name."""
    body, _ = metrics.render()
    return {
        family.name: family for family in text_string_to_metric_families(body.decode())
    }


def sample_value(metrics: Metrics, name: str, **labels: str) -> float:
    """Return a sample's value, asserting that it exists."""
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None
    return value


class TestMetrics:
    """Metrics owns its registry and exposes every gatepass family."""

    def test_render_contains_every_family(self) -> None:
        """The exposition lists every gatepass family with its type."""
        found = families(Metrics())
        expected = {
            "gatepass_policy_decisions": "counter",
            "gatepass_credentials_issued": "counter",
            "gatepass_token_requests": "counter",
            "gatepass_revocations": "counter",
            "gatepass_request_duration_seconds": "histogram",
            "gatepass_audit_events": "counter",
            "gatepass_policy_reloads": "counter",
            "gatepass_live_leases": "gauge",
        }
        for name, kind in expected.items():
            assert found[name].type == kind

    def test_render_returns_the_content_type(self) -> None:
        """render() gives the body and the Prometheus text content type."""
        body, content_type = Metrics().render()
        assert body.startswith(b"# HELP")
        assert content_type.startswith("text/plain")

    def test_counters_carry_their_labels(self) -> None:
        """Observations appear under the documented names and labels."""
        metrics = Metrics()
        metrics.decisions.labels(action="read", outcome="allow").inc()
        metrics.issuances.labels(kind="postgres", target="orders-db").inc(2)
        metrics.token_requests.labels(
            kind="access_token", outcome="invalid_grant"
        ).inc()
        metrics.revocations.labels(reason="task_closed").inc()
        metrics.audit_events.labels(kind="credential.issue").inc()
        metrics.policy_reloads.labels(outcome="ok").inc()
        metrics.live_leases.set(4)
        metrics.request_seconds.labels(endpoint="/token", outcome="ok").observe(0.0003)
        assert (
            sample_value(
                metrics,
                "gatepass_policy_decisions_total",
                action="read",
                outcome="allow",
            )
            == 1
        )
        assert (
            sample_value(
                metrics,
                "gatepass_credentials_issued_total",
                kind="postgres",
                target="orders-db",
            )
            == 2
        )
        assert (
            sample_value(
                metrics,
                "gatepass_token_requests_total",
                kind="access_token",
                outcome="invalid_grant",
            )
            == 1
        )
        assert (
            sample_value(metrics, "gatepass_revocations_total", reason="task_closed")
            == 1
        )
        assert (
            sample_value(
                metrics, "gatepass_audit_events_total", kind="credential.issue"
            )
            == 1
        )
        assert sample_value(metrics, "gatepass_policy_reloads_total", outcome="ok") == 1
        assert sample_value(metrics, "gatepass_live_leases") == 4
        assert (
            sample_value(
                metrics,
                "gatepass_request_duration_seconds_bucket",
                endpoint="/token",
                outcome="ok",
                le="0.0005",
            )
            == 1
        )

    def test_buckets_span_sub_millisecond_to_one_second(self) -> None:
        """Latency buckets run from 0.2 ms to 1 s."""
        assert REQUEST_BUCKETS[0] == 0.0002
        assert REQUEST_BUCKETS[-1] == 1.0
        assert list(REQUEST_BUCKETS) == sorted(REQUEST_BUCKETS)

    def test_token_request_kinds_start_at_zero(self) -> None:
        """Known token request kinds are exported before their first request."""
        metrics = Metrics()
        for kind in TOKEN_REQUEST_KINDS:
            assert (
                sample_value(
                    metrics, "gatepass_token_requests_total", kind=kind, outcome="ok"
                )
                == 0
            )

    def test_instances_do_not_collide(self) -> None:
        """Two brokers in one process keep separate registries and counts."""
        first, second = Metrics(), Metrics()
        first.revocations.labels(reason="expired").inc()
        assert first.registry is not second.registry
        assert sample_value(first, "gatepass_revocations_total", reason="expired") == 1
        assert (
            second.registry.get_sample_value(
                "gatepass_revocations_total", {"reason": "expired"}
            )
            is None
        )

    def test_accepts_a_registry(self) -> None:
        """A caller-supplied registry receives the families."""
        registry = CollectorRegistry()
        metrics = Metrics(registry)
        assert metrics.registry is registry
        assert registry.get_sample_value("gatepass_live_leases") == 0
