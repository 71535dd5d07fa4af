"""
Issue 9: approver webhooks delivered to a real receiver on 127.0.0.1.

The receiver is a small Starlette app under uvicorn that checks every delivery's
signature with the public ``verify_signature``, as a real one would. The broker
runs in-process on a FrozenClock; each test advances it and calls ``deliver_due``
itself (the background job does exactly that every second), so retries are
exercised without waiting for them. One test runs the real background job.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.unit.approvals.factories import make_approval

from gatepass.api import create_app
from gatepass.approvals.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    WebhookEvent,
    verify_signature,
)
from gatepass.broker import Runtime, build_runtime
from gatepass.clock import FrozenClock
from gatepass.errors import ConfigurationError, WebhookSignatureError
from gatepass.models import Approval
from gatepass.observability import configure_logging
from gatepass.store import audit_log, outbox

from .conftest import RunningServer, free_port, quickstart_settings, start_server
from .deadline import poll

pytestmark = pytest.mark.slow

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
HOOK_SECRET = "whsec-8c1f0e7a-do-not-log"
SLACK_PATH_SECRET = "T0AAA/B0BBB/xoxbPathSecret42"
PAST_ANY_BACKOFF = dt.timedelta(minutes=11)


@dataclass
class Delivery:
    """One request the receiver got."""

    hook: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> Any:
        """The parsed body."""
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: answers per hook, records what it got."""

    now: Callable[[], float]
    plans: dict[str, list[int]] = field(default_factory=dict)
    got: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def of(self, hook: str) -> list[Delivery]:
        """Return the deliveries to one hook."""
        with self.lock:
            return [delivery for delivery in self.got if delivery.hook == hook]

    async def handle(self, request: Request) -> Response:
        """Verify, record, answer as planned (the last answer repeats)."""
        hook = request.path_params["hook"]
        body = await request.body()
        try:
            verify_signature(
                HOOK_SECRET, request.headers.get(SIGNATURE_HEADER), body, self.now()
            )
            verified = True
        except WebhookSignatureError:
            verified = False
        with self.lock:
            self.got.append(Delivery(hook, dict(request.headers), body, verified))
            plan = self.plans.get(hook, [200])
            status = plan.pop(0) if len(plan) > 1 else plan[0]
        if 300 <= status < 400:
            return Response(status_code=status, headers={"Location": "/hook/landing"})
        return Response("this body is never read", status_code=status)


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    """The broker's clock, shared with the receiver's signature check."""
    return FrozenClock(START)


@pytest.fixture(scope="module")
def receiver(clock: FrozenClock) -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1."""
    found = Receiver(now=lambda: clock.now().timestamp())
    app = Starlette(routes=[Route("/hook/{hook:path}", found.handle, methods=["POST"])])
    running: RunningServer = start_server(app, free_port())
    found.url = running.url
    try:
        yield found
    finally:
        running.stop()


def hook(url: str, *, secret: Path | None, **options: Any) -> dict[str, Any]:
    """A [approvals.groups.webhook] table."""
    table: dict[str, Any] = {"url": url, **options}
    if secret is not None:
        table["secret_file"] = str(secret)
    return table


def approver_groups(receiver: Receiver, secret: Path) -> list[dict[str, Any]]:
    """One approver group per receiver behaviour."""
    base = f"{receiver.url}/hook"
    dead = f"http://127.0.0.1:{free_port()}/hook/down"
    return [
        {"name": "ok", "webhook": hook(f"{base}/ok", secret=secret)},
        {"name": "flaky", "webhook": hook(f"{base}/flaky", secret=secret)},
        {"name": "down", "webhook": hook(dead, secret=secret, max_attempts=3)},
        {
            "name": "moved",
            "webhook": hook(f"{base}/moved", secret=secret, max_attempts=2),
        },
        {
            "name": "chat",
            "webhook": hook(
                f"{base}/services/{SLACK_PATH_SECRET}", secret=secret, format="slack"
            ),
        },
        {"name": "open", "webhook": hook(f"{base}/open", secret=None)},
        {"name": "quiet"},
    ]


def build(tmp_path: Path, receiver: Receiver, clock: FrozenClock | None) -> Runtime:
    """A quickstart broker whose approver groups point at the receiver."""
    secret = tmp_path / "hook.key"
    secret.write_text(HOOK_SECRET + "\n")
    port = free_port()
    settings = quickstart_settings(
        tmp_path / "state",
        port=port,
        resource_port=free_port(),
        approvals={
            "link_base": "https://console.example",
            "groups": approver_groups(receiver, secret),
        },
    )
    return build_runtime(settings, clock=clock)


@pytest.fixture
def runtime(
    tmp_path: Path, receiver: Receiver, clock: FrozenClock
) -> Iterator[Runtime]:
    """A broker on the frozen clock; the background jobs do not run."""
    built = build(tmp_path, receiver, clock)
    try:
        yield built
    finally:
        built.database.dispose()


def announce(runtime: Runtime, approval: Approval, event: WebhookEvent) -> list[int]:
    """Queue an event's notifications as the approval code does: in a transaction."""
    notifier = runtime.context.notifier
    with runtime.database.transaction() as conn:
        return notifier.enqueue(conn, approval, event, runtime.context.clock.now())


def deliver(runtime: Runtime) -> int:
    """Run one pass of the delivery job."""
    return anyio.run(runtime.broker.notifier.deliver_due)


def message(runtime: Runtime, message_id: int) -> outbox.OutboxMessage:
    """Read one outbox row."""
    with runtime.database.reading() as conn:
        found = outbox.get(conn, message_id)
    assert found is not None
    return found


def audited(runtime: Runtime, kind: str, subject: str) -> list[dict[str, Any]]:
    """Return (outcome, data) of the audit records of a kind about a subject."""
    with runtime.database.reading() as conn:
        return [
            {"outcome": record.outcome, **record.data}
            for record in audit_log.iter_audit(conn)
            if record.kind == kind and record.subject == subject
        ]


def counted(runtime: Runtime, group: str, outcome: str) -> float:
    """Return the delivery counter of a group and outcome."""
    value = runtime.metrics.registry.get_sample_value(
        "gatepass_approval_notifications_total", {"group": group, "outcome": outcome}
    )
    return value or 0.0


class TestDelivery:
    """Delivered, retried, given up, never redirected."""

    def test_delivered_on_first_try(
        self, runtime: Runtime, receiver: Receiver, clock: FrozenClock
    ) -> None:
        """A signed JSON notification reaches the receiver, is audited and counted."""
        approval = make_approval(groups=("ok", "quiet"))
        (message_id,) = announce(runtime, approval, WebhookEvent.REQUESTED)
        assert deliver(runtime) == 1
        (got,) = [d for d in receiver.of("ok") if d.json["approval_id"] == approval.id]
        assert got.verified
        assert got.headers[EVENT_HEADER.lower()] == "approval.requested"
        assert got.headers[DELIVERY_HEADER.lower()] == str(message_id)
        assert (
            got.json["link"]
            == f"https://console.example/console/approvals/{approval.id}"
        )
        assert got.json["request"] == approval.request
        assert message(runtime, message_id).delivered_at == clock.now()
        assert audited(runtime, "approval.notified", approval.id) == [
            {
                "outcome": "ok",
                "group": "ok",
                "event": "approval.requested",
                "delivery": message_id,
                "attempts": 1,
            }
        ]
        assert counted(runtime, "ok", "delivered") == 1
        # Nothing is sent twice.
        assert deliver(runtime) == 0

    def test_issue9_500_twice_then_200_delivers_on_the_third_attempt(
        self, runtime: Runtime, receiver: Receiver, clock: FrozenClock
    ) -> None:
        """A receiver failing twice gets the delivery a third time and takes it."""
        receiver.plans["flaky"] = [500, 500, 200]
        approval = make_approval(groups=("flaky",))
        (message_id,) = announce(runtime, approval, WebhookEvent.REQUESTED)
        assert deliver(runtime) == 0
        first = message(runtime, message_id)
        assert (first.attempts, first.last_error) == (1, "http 500")
        assert first.next_attempt_at <= clock.now() + dt.timedelta(seconds=2)
        clock.advance(PAST_ANY_BACKOFF)
        assert deliver(runtime) == 0
        assert message(runtime, message_id).attempts == 2
        clock.advance(PAST_ANY_BACKOFF)
        assert deliver(runtime) == 1
        final = message(runtime, message_id)
        assert final.delivered_at is not None
        assert final.attempts == 3
        got = [d for d in receiver.of("flaky") if d.json["approval_id"] == approval.id]
        assert len(got) == 3
        assert {d.headers[DELIVERY_HEADER.lower()] for d in got} == {str(message_id)}
        assert all(d.verified for d in got)
        # Each attempt is signed when it is sent, so a retry is never stale.
        assert len({d.headers[SIGNATURE_HEADER.lower()] for d in got}) == 3
        assert audited(runtime, "approval.notified", approval.id)[0]["attempts"] == 3
        assert counted(runtime, "flaky", "retry") == 2

    def test_receiver_down_is_retried_then_given_up(
        self, runtime: Runtime, clock: FrozenClock
    ) -> None:
        """With nothing listening: three attempts, then failed and audited."""
        approval = make_approval(groups=("down",))
        (message_id,) = announce(runtime, approval, WebhookEvent.REQUESTED)
        for _ in range(3):
            assert deliver(runtime) == 0
            clock.advance(PAST_ANY_BACKOFF)
        failed = message(runtime, message_id)
        assert failed.failed_at is not None
        assert (failed.attempts, failed.last_error) == (3, "ConnectError")
        assert audited(runtime, "approval.notify_failed", approval.id) == [
            {
                "outcome": "error",
                "group": "down",
                "event": "approval.requested",
                "delivery": message_id,
                "attempts": 3,
                "reason": "ConnectError",
            }
        ]
        assert counted(runtime, "down", "failed") == 1
        # Given up means given up.
        clock.advance(PAST_ANY_BACKOFF)
        assert deliver(runtime) == 0
        assert message(runtime, message_id).attempts == 3

    def test_redirect_is_not_followed(
        self, runtime: Runtime, receiver: Receiver, clock: FrozenClock
    ) -> None:
        """A 302 is a failed attempt; the signed body never goes where it points."""
        receiver.plans["moved"] = [302]
        approval = make_approval(groups=("moved",))
        (message_id,) = announce(runtime, approval, WebhookEvent.DENIED)
        landed = len(receiver.of("landing"))
        deliver(runtime)
        clock.advance(PAST_ANY_BACKOFF)
        deliver(runtime)
        assert len(receiver.of("landing")) == landed
        failed = message(runtime, message_id)
        assert failed.failed_at is not None
        assert failed.last_error == "http 302"

    def test_slack_and_unsigned_groups(
        self, runtime: Runtime, receiver: Receiver
    ) -> None:
        """A slack group gets a Slack body; a group without secret_file is unsigned."""
        approval = make_approval(
            groups=("chat", "open"), justification="<!channel> urgent \u202e"
        )
        assert len(announce(runtime, approval, WebhookEvent.REQUESTED)) == 2
        assert deliver(runtime) == 2
        (chat,) = [
            d
            for d in receiver.of(f"services/{SLACK_PATH_SECRET}")
            if approval.id in d.body.decode()
        ]
        assert chat.verified
        assert set(chat.json) == {"text", "blocks"}
        assert "<" not in chat.body.decode()
        (plain,) = [
            d for d in receiver.of("open") if d.json["approval_id"] == approval.id
        ]
        assert SIGNATURE_HEADER.lower() not in plain.headers
        assert not plain.verified

    def test_body_is_what_the_approval_was(
        self, runtime: Runtime, receiver: Receiver
    ) -> None:
        """The body is built when the event is queued, not when it is sent."""
        approval = make_approval(groups=("ok",), justification="first words")
        announce(runtime, approval, WebhookEvent.REQUESTED)
        deliver(runtime)
        (got,) = [d for d in receiver.of("ok") if d.json["approval_id"] == approval.id]
        assert got.json["agent_supplied"]["justification"] == "first words"
        assert got.json["state"] == "pending"

    def test_rolled_back_change_sends_nothing(self, runtime: Runtime) -> None:
        """An approval whose transaction rolled back is never announced."""
        approval = make_approval(groups=("ok",))
        notifier = runtime.context.notifier

        def change_that_fails() -> None:
            with runtime.database.transaction() as conn:
                notifier.enqueue(conn, approval, WebhookEvent.REQUESTED, START)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            change_that_fails()
        assert anyio.run(runtime.context.notifier.messages, approval.id) == []

    def test_group_without_webhook_is_skipped(self, runtime: Runtime) -> None:
        """Only groups with a webhook get a row."""
        approval = make_approval(groups=("quiet", "no-such-group"))
        assert announce(runtime, approval, WebhookEvent.REQUESTED) == []


class TestStart:
    """What the broker checks when it starts."""

    def test_empty_secret_file_stops_the_start(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """A group whose secret file is empty refuses to start the broker."""
        secret = tmp_path / "empty.key"
        secret.write_text("\n")
        settings = quickstart_settings(
            tmp_path / "state",
            port=free_port(),
            resource_port=free_port(),
            approvals={
                "groups": [
                    {
                        "name": "ok",
                        "webhook": hook(f"{receiver.url}/hook/ok", secret=secret),
                    }
                ]
            },
        )
        with pytest.raises(ConfigurationError, match="empty"):
            build_runtime(settings, clock=FrozenClock(START))


@pytest.fixture
def json_logs() -> Iterator[None]:
    """Log JSON lines to stdout for one test, then restore logging."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("info", json=True)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()


class TestLogs:
    """Neither a webhook secret nor a webhook URL ever reaches a log line."""

    @pytest.mark.usefixtures("json_logs")
    def test_issue9_nothing_secret_in_logs(
        self,
        tmp_path: Path,
        receiver: Receiver,
        clock: FrozenClock,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Start, deliver, retry and give up: no secret, no URL path in the output."""
        receiver.plans[f"services/{SLACK_PATH_SECRET}"] = [503, 200]
        built = build(tmp_path, receiver, clock)
        try:
            approval = make_approval(groups=("chat", "down", "open", "ok"))
            announce(built, approval, WebhookEvent.REQUESTED)
            for _ in range(3):
                deliver(built)
                clock.advance(PAST_ANY_BACKOFF)
        finally:
            built.database.dispose()
        # The receiver runs in this process too; its own access log is not the
        # broker's and is left out.
        lines = [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("{") and '"logger": "uvicorn.access"' not in line
        ]
        out = "\n".join(json.dumps(line) for line in lines)
        events = {line["event"] for line in lines}
        assert "approver notified" in events
        assert "approver webhook failed; will retry" in events
        assert "approver webhook given up" in events
        unsigned = [
            line
            for line in lines
            if line["event"].startswith("approver webhook is unsigned")
        ]
        assert [line["group"] for line in unsigned] == ["open"]
        assert any(line["logger"] == "httpx" for line in lines)
        assert HOOK_SECRET not in out
        assert "xoxbPathSecret42" not in out
        assert "/hook/down" not in out


class TestBackgroundJob:
    """The broker's own job delivers, with no one calling deliver_due."""

    def test_served_broker_delivers_by_itself(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """Queued in a transaction, delivered by the running server's job."""
        built = build(tmp_path, receiver, clock=None)
        port = int(built.settings.server.issuer.rsplit(":", 1)[1])
        running = start_server(create_app(built, background_jobs=True), port)
        saved = receiver.now
        receiver.now = time.time
        try:
            approval = make_approval(groups=("ok",))
            announce(built, approval, WebhookEvent.EXPIRED)
            assert poll(
                lambda: any(
                    d.json["approval_id"] == approval.id for d in receiver.of("ok")
                ),
                within=15,
            )
            (got,) = [
                d for d in receiver.of("ok") if d.json["approval_id"] == approval.id
            ]
            assert got.verified
            assert got.json["event"] == "approval.expired"
        finally:
            receiver.now = saved
            running.stop()
            built.database.dispose()
