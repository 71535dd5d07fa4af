"""The notifier over a real store and a fake receiver (an httpx MockTransport)."""

from __future__ import annotations

import datetime as dt
import random

import anyio
import httpx
from tests.unit.approvals.factories import make_approval

from gatepass.approvals import WebhookSettings
from gatepass.approvals.webhooks import Webhook, WebhookEvent
from gatepass.broker.notifications import Notifier
from gatepass.store import audit_log, outbox

from .conftest import ISSUER, Harness


def notifier(
    harness: Harness,
    answer: httpx.MockTransport,
    *groups: str,
    batch: int = 16,
    timeout: int = 5,
) -> Notifier:
    """A notifier whose groups all post to the fake receiver."""
    runtime = harness.runtime
    hooks = {
        group: Webhook.from_settings(
            group,
            WebhookSettings(
                url=f"https://hooks.test/{group}",
                timeout_seconds=timeout,
                max_attempts=2,
            ),
        )
        for group in groups
    }
    return Notifier(
        webhooks=hooks,
        link_base=ISSUER,
        database=runtime.database,
        trail=runtime.context.trail,
        clock=harness.clock,
        metrics=runtime.metrics,
        rng=random.Random(0),  # noqa: S311 - jitter, not a secret
        batch=batch,
        transport=answer,
    )


def accept_all(received: list[httpx.Request]) -> httpx.MockTransport:
    """A receiver that takes everything and remembers it."""

    def answer(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    return httpx.MockTransport(answer)


def audit_kinds(harness: Harness, subject: str) -> list[tuple[str, str]]:
    """Return (kind, outcome) of the audit records about a subject."""
    with harness.runtime.database.reading() as conn:
        return [
            (record.kind, record.outcome)
            for record in audit_log.iter_audit(conn)
            if record.subject == subject
        ]


class TestNotifier:
    """Queueing and delivering through the outbox."""

    def test_one_row_per_group_with_a_webhook(self, harness: Harness) -> None:
        """Each of the approval's groups that has a webhook gets its own row."""
        sender = notifier(harness, accept_all([]), "a", "b")
        approval = make_approval(groups=("a", "b", "c"))
        ids = harness.run(sender.announce, approval, WebhookEvent.REQUESTED)
        assert len(ids) == 2
        rows = harness.run(sender.messages, approval.id)
        assert [row.destination for row in rows] == ["a", "b"]
        assert all(row.payload["event"] == "approval.requested" for row in rows)
        assert sender.enabled
        assert sender.groups == ("a", "b")

    def test_batches_are_bounded(self, harness: Harness) -> None:
        """A pass sends at most ``batch`` notifications; the next pass the rest."""
        received: list[httpx.Request] = []
        sender = notifier(harness, accept_all(received), "a", batch=3)
        for _ in range(5):
            harness.run(
                sender.announce, make_approval(groups=("a",)), WebhookEvent.REQUESTED
            )
        assert harness.run(sender.deliver_due) == 3
        assert harness.run(sender.deliver_due) == 2
        assert harness.run(sender.deliver_due) == 0
        assert len(received) == 5
        assert {r.headers["Gatepass-Delivery"] for r in received} == {
            str(n) for n in range(1, 6)
        }
        pending = harness.runtime.metrics.registry.get_sample_value(
            "gatepass_approval_notifications_pending"
        )
        assert pending == 0

    def test_group_that_lost_its_webhook_is_given_up(self, harness: Harness) -> None:
        """A row whose group is no longer configured fails at once, audited."""
        approval = make_approval(groups=("gone",))
        harness.run(
            notifier(harness, accept_all([]), "gone").announce,
            approval,
            WebhookEvent.REQUESTED,
        )
        received: list[httpx.Request] = []
        harness.run(notifier(harness, accept_all(received), "other").deliver_due)
        assert received == []
        (row,) = harness.run(
            notifier(harness, accept_all([]), "x").messages, approval.id
        )
        assert row.failed_at is not None
        assert row.last_error == "group has no webhook configured"
        assert audit_kinds(harness, approval.id) == [
            ("approval.notify_failed", "error")
        ]

    def test_malformed_payload_is_given_up(self, harness: Harness) -> None:
        """A row without a body is failed, not sent."""
        with harness.runtime.database.transaction() as conn:
            message_id = outbox.enqueue(
                conn,
                "approval.requested",
                "a",
                {"approval_id": "apr_x"},
                harness.clock.now(),
            )
        received: list[httpx.Request] = []
        harness.run(notifier(harness, accept_all(received), "a").deliver_due)
        with harness.runtime.database.reading() as conn:
            row = outbox.get(conn, message_id)
        assert received == []
        assert row is not None
        assert row.last_error == "malformed outbox payload"

    def test_slow_receiver_times_out(self, harness: Harness) -> None:
        """A receiver that never answers costs one timeout and a retry."""

        async def never(request: httpx.Request) -> httpx.Response:
            await anyio.sleep_forever()
            raise AssertionError  # pragma: no cover

        sender = notifier(harness, httpx.MockTransport(never), "a", timeout=1)
        (message_id,) = harness.run(
            sender.announce, make_approval(groups=("a",)), WebhookEvent.REQUESTED
        )
        assert harness.run(sender.deliver_due) == 0
        with harness.runtime.database.reading() as conn:
            row = outbox.get(conn, message_id)
        assert row is not None
        assert (row.attempts, row.last_error) == (1, "timeout")

    def test_finished_rows_are_pruned_after_a_week(self, harness: Harness) -> None:
        """Delivered rows older than seven days leave the outbox; open ones stay."""
        sender = notifier(harness, accept_all([]), "a")
        approval = make_approval(groups=("a",))
        harness.run(sender.announce, approval, WebhookEvent.REQUESTED)
        harness.run(sender.deliver_due)
        harness.clock.advance(dt.timedelta(days=8))
        waiting = make_approval(groups=("a",))
        harness.run(sender.announce, waiting, WebhookEvent.REQUESTED)
        harness.clock.advance(dt.timedelta(seconds=-1))  # not due yet: stays open
        harness.run(sender.deliver_due)
        assert harness.run(sender.messages, approval.id) == []
        assert len(harness.run(sender.messages, waiting.id)) == 1
        # The audit keeps what the pruned row said.
        assert audit_kinds(harness, approval.id) == [("approval.notified", "ok")]
