"""
Telling approver groups about approvals: the outbox and its delivery job.

The approval use cases call :meth:`Notifier.enqueue` **inside the transaction**
that creates or decides an approval: one outbox row per group of the approval that
has a webhook, with the body built then, so the notification says what the
approval was when it changed and exists exactly when the change committed.

:meth:`Notifier.deliver_due` runs every second among the broker's background jobs
(``broker/jobs.py``): it claims due rows (``store/outbox.py``: a lease, so two
replicas never send one row at once), sends them concurrently, each bounded by its
group's timeout, and records each outcome:

* delivered (2xx): the row is marked and ``approval.notified`` is audited with the
  group and the number of attempts, in one transaction;
* failed with attempts left: the row is due again after
  :func:`~gatepass.approvals.webhooks.backoff` (exponential, full jitter, 2 s to
  10 min);
* failed for the last time (``max_attempts``), or its group lost its webhook:
  the row is given up and ``approval.notify_failed`` is audited with the last
  short reason.

Every attempt is counted in ``gatepass_approval_notifications{group,outcome}``.
Webhook URLs and secrets are read once, at start, and registered with the log
scrubber: neither ever appears in a log line, an audit record or the outbox (which
holds the group's name, never its URL).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Final

import anyio
import httpx

from gatepass.approvals.webhooks import (
    Webhook,
    WebhookEvent,
    approval_link,
    backoff,
    deliver,
    new_client,
)
from gatepass.audit import Outcome
from gatepass.broker.trail import Attempt, AuditRecorder, AuditTrail
from gatepass.clock import Clock
from gatepass.config import Settings
from gatepass.errors import GatepassError
from gatepass.models import Approval
from gatepass.observability import Metrics, get_logger, redact_values
from gatepass.store import Connection, Database, outbox
from gatepass.store.outbox import OutboxMessage

__all__ = ["Notifier"]

_log = get_logger("gatepass.notifications")
# A claim must outlive the slowest delivery of its pass (all run at once, each
# within its group's timeout) plus the writes that record them.
_LEASE_MARGIN: Final = dt.timedelta(seconds=30)
_KEEP_FINISHED: Final = dt.timedelta(days=7)
_PRUNE_EVERY: Final = dt.timedelta(hours=1)


def _subject_of(message: OutboxMessage) -> str:
    """Return what a notice is about: its approval, or a quarantined agent."""
    approval = message.payload.get("approval_id")
    if approval:
        return str(approval)
    body = message.payload.get("body")
    return str(body.get("agent_id", "")) if isinstance(body, dict) else ""


class Notifier:
    """
    Queue approval notifications in the outbox and deliver them to webhooks.

    Args:
        webhooks: each approver group's webhook, by group name.
        link_base: the base of the console link (``approvals.link_base`` or the
            issuer).
        database: the store.
        trail: where delivery outcomes are audited.
        clock: the time source.
        metrics: the broker's metrics.
        rng: the backoff's random source (seeded in tests).
        batch: the most notifications sent in one pass (at once).
        transport: an httpx transport to deliver through (tests); the network by
            default.
    """

    def __init__(
        self,
        *,
        webhooks: Mapping[str, Webhook],
        link_base: str,
        database: Database,
        trail: AuditTrail,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random | None = None,
        batch: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Keep the collaborators; nothing is sent until :meth:`deliver_due`."""
        self._webhooks = dict(webhooks)
        self._link_base = link_base
        self._database = database
        self._trail = trail
        self._clock = clock
        self._metrics = metrics
        # Jitter only spreads retries out; it protects no secret.
        self._rng = rng or random.Random()  # noqa: S311
        self._batch = batch
        self._transport = transport
        slowest = max((hook.timeout for hook in self._webhooks.values()), default=None)
        self._lease = (slowest or dt.timedelta(0)) + _LEASE_MARGIN
        self._lock = anyio.Lock()
        self._pruned_at: dt.datetime | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        database: Database,
        trail: AuditTrail,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> Notifier:
        """
        Build the notifier of ``[approvals]``, reading every webhook secret now.

        A group without ``secret_file`` sends unsigned and is warned about once,
        here.

        Raises:
            ConfigurationError: a secret file is unreadable or empty.
        """
        webhooks: dict[str, Webhook] = {}
        for group in settings.approvals.groups:
            if group.webhook is None:
                continue
            hook = Webhook.from_settings(group.name, group.webhook)
            # As configured and as httpx spells it in its own request log lines.
            url = hook.url.reveal()
            secrets = [url, str(httpx.URL(url))]
            if hook.secret is None:
                _log.warning(
                    "approver webhook is unsigned: receivers cannot tell its "
                    "notifications from forgeries; set secret_file",
                    group=group.name,
                )
            else:
                secrets.append(hook.secret.reveal())
            redact_values(secrets)
            webhooks[group.name] = hook
        return cls(
            webhooks=webhooks,
            link_base=settings.approvals.link_base or settings.server.issuer,
            database=database,
            trail=trail,
            clock=clock,
            metrics=metrics,
            rng=rng,
        )

    @property
    def enabled(self) -> bool:
        """True when at least one approver group has a webhook."""
        return bool(self._webhooks)

    @property
    def groups(self) -> tuple[str, ...]:
        """The approver groups that have a webhook."""
        return tuple(self._webhooks)

    def enqueue(
        self,
        conn: Connection,
        approval: Approval,
        event: WebhookEvent,
        now: dt.datetime,
    ) -> list[int]:
        """
        Queue the notifications of one event, inside the caller's transaction.

        Call it in the transaction that creates or changes the approval, with the
        approval as it is after the change: one row per group of the approval that
        has a webhook; groups without one are skipped.

        Args:
            conn: the transaction of the change.
            approval: the approval as changed.
            event: what happened.
            now: the time of the change.

        Returns:
            The outbox ids queued (the ``Gatepass-Delivery`` of each).
        """
        link = approval_link(self._link_base, approval.id)
        queued = []
        for group in approval.groups:
            hook = self._webhooks.get(group)
            if hook is None:
                continue
            payload = {
                "approval_id": approval.id,
                "event": event.value,
                "body": hook.body(approval, event, link),
            }
            queued.append(outbox.enqueue(conn, event.value, group, payload, now))
        return queued

    def enqueue_notice(
        self,
        conn: Connection,
        kind: str,
        groups: list[str],
        body: dict[str, object],
        now: dt.datetime,
    ) -> list[str]:
        """
        Queue a notice that is not about an approval (an agent quarantined).

        Delivered like approval notifications (signed, retried), to each group
        that has a webhook; inside the caller's transaction.

        Args:
            conn: the transaction of the change.
            kind: the event name (``agent.quarantined``), the ``Gatepass-Event``.
            groups: the approver groups to tell; those without a webhook are
                skipped.
            body: the JSON body (ids only, never a secret).
            now: the time of the change.

        Returns:
            The groups queued.
        """
        queued = []
        for group in dict.fromkeys(groups):
            if group not in self._webhooks:
                continue
            outbox.enqueue(conn, kind[:32], group, {"body": body}, now)
            queued.append(group)
        return queued

    async def announce(self, approval: Approval, event: WebhookEvent) -> list[int]:
        """
        Queue an event's notifications in a transaction of their own.

        For tests, and for callers with no transaction of their own to join; the
        approval use cases call :meth:`enqueue` in theirs.

        Returns:
            The outbox ids queued.
        """
        now = self._clock.now()
        return await self._database.write(
            lambda conn: self.enqueue(conn, approval, event, now)
        )

    async def messages(self, approval_id: str | None = None) -> list[OutboxMessage]:
        """Return the approval notifications in the outbox (of one approval)."""
        kinds = [event.value for event in WebhookEvent]
        found = await self._database.read(
            lambda conn: outbox.list_messages(conn, kinds=kinds)
        )
        if approval_id is None:
            return found
        return [m for m in found if m.payload.get("approval_id") == approval_id]

    async def deliver_due(self) -> int:
        """
        Send every notification that is due, once each; record the outcomes.

        One pass runs at a time in a process; replicas coordinate through the
        outbox's claims.

        Returns:
            How many were delivered in this pass.

        Raises:
            StoreError: the outbox could not be read or claimed.
        """
        async with self._lock:
            now = self._clock.now()
            claimed: list[OutboxMessage] = []
            if await self._database.read(lambda conn: outbox.any_due(conn, now)):
                claimed = await self._database.write(
                    lambda conn: outbox.due(conn, now, self._batch, lease=self._lease)
                )
            delivered = [0]
            if claimed:
                async with (
                    new_client(self._transport) as client,
                    anyio.create_task_group() as group,
                ):
                    for message in claimed:
                        group.start_soon(self._attempt, client, message, delivered)
            await self._housekeeping()
            return delivered[0]

    async def _housekeeping(self) -> None:
        now = self._clock.now()
        if self._pruned_at is None or now - self._pruned_at >= _PRUNE_EVERY:
            self._pruned_at = now
            before = now - _KEEP_FINISHED
            await self._database.write(
                lambda conn: outbox.prune(conn, finished_before=before)
            )
        pending = await self._database.read(outbox.count_pending)
        self._metrics.notifications_pending.set(pending)

    async def _attempt(
        self, client: httpx.AsyncClient, message: OutboxMessage, delivered: list[int]
    ) -> None:
        # One failing record (a database blip) must not cancel the pass's other
        # deliveries; the row's lease runs out and it is tried again.
        try:
            if await self._send(client, message):
                delivered[0] += 1
        except GatepassError as error:
            _log.warning(
                "recording a notification failed",
                delivery=message.id,
                error=error.code,
                detail=error.detail,
            )

    async def _send(self, client: httpx.AsyncClient, message: OutboxMessage) -> bool:
        attempts = message.attempts + 1
        hook = self._webhooks.get(message.destination)
        body = message.payload.get("body")
        if hook is None:
            await self._give_up(message, attempts, "group has no webhook configured")
            return False
        if not isinstance(body, dict):
            await self._give_up(message, attempts, "malformed outbox payload")
            return False
        result = await deliver(
            client,
            hook,
            body=body,
            event=message.kind,
            delivery_id=str(message.id),
            now=self._clock.now(),
        )
        if result.delivered:
            await self._delivered(message, attempts)
            return True
        if attempts >= hook.max_attempts:
            await self._give_up(message, attempts, result.reason)
            return False
        retry_in = backoff(attempts, rng=self._rng)
        next_at = self._clock.now() + retry_in
        await self._database.write(
            lambda conn: outbox.mark_retry(
                conn,
                message.id,
                attempts=attempts,
                next_attempt_at=next_at,
                error=result.reason,
            )
        )
        self._metrics.notifications.labels(group=hook.group, outcome="retry").inc()
        _log.warning(
            "approver webhook failed; will retry",
            group=hook.group,
            delivery=message.id,
            attempts=attempts,
            reason=result.reason,
            retry_in_seconds=round(retry_in.total_seconds(), 1),
        )
        return False

    def _attempt_record(
        self, kind: str, message: OutboxMessage, attempts: int, **data: object
    ) -> Attempt:
        return Attempt(
            kind=kind,
            actor="system",
            subject=_subject_of(message),
            data={
                "group": message.destination,
                "event": message.kind,
                "delivery": message.id,
                "attempts": attempts,
                **data,
            },
        )

    async def _delivered(self, message: OutboxMessage, attempts: int) -> None:
        record = self._attempt_record("approval.notified", message, attempts)
        now = self._clock.now()

        def change(conn: Connection, audit: AuditRecorder) -> None:
            if outbox.mark_delivered(conn, message.id, attempts=attempts, now=now):
                audit.record(conn, record, Outcome.OK)

        await self._trail.write(change)
        self._metrics.notifications.labels(
            group=message.destination, outcome="delivered"
        ).inc()
        _log.info(
            "approver notified",
            group=message.destination,
            delivery=message.id,
            attempts=attempts,
        )

    async def _give_up(
        self, message: OutboxMessage, attempts: int, reason: str
    ) -> None:
        record = self._attempt_record(
            "approval.notify_failed", message, attempts, reason=reason
        )
        now = self._clock.now()

        def change(conn: Connection, audit: AuditRecorder) -> None:
            if outbox.mark_failed(
                conn, message.id, attempts=attempts, error=reason, now=now
            ):
                audit.record(conn, record, Outcome.ERROR)

        await self._trail.write(change)
        self._metrics.notifications.labels(
            group=message.destination, outcome="failed"
        ).inc()
        # Error level on purpose: approvers were not told, and an agent may be
        # waiting on them.
        _log.error(
            "approver webhook given up",
            group=message.destination,
            delivery=message.id,
            attempts=attempts,
            reason=reason,
        )
