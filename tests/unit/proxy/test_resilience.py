"""
Resilience of the proxy's links to the broker: the revocation feed and audit shipper.

No sockets and no sleeps: the broker is an ``httpx.MockTransport``, time is a
``FrozenClock``, and the backoff waits are injected so each one is recorded and
returns at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.lowlevel
import httpx
import pytest

from gatepass.clock import FrozenClock
from gatepass.proxy.audit import AuditShipper, ProxyAuditEvent
from gatepass.proxy.revocations import RevocationFeed
from gatepass.secret import Secret

BROKER = "https://broker.test"
API_TOKEN = "proxy-api-token-5e1d"
LIFETIME = dt.timedelta(minutes=15)

Script = Callable[[httpx.Request], httpx.Response]


class _Body(httpx.AsyncByteStream):
    """A response body sent in chunks, optionally failing or hanging at the end."""

    def __init__(
        self,
        chunks: list[bytes],
        *,
        error: Exception | None = None,
        hang: bool = False,
        seen: Callable[[], None] | None = None,
    ) -> None:
        self._chunks = chunks
        self._error = error
        self._hang = hang
        self._seen = seen

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._seen is not None:
            self._seen()
        if self._hang:
            await asyncio.Event().wait()
        if self._error is not None:
            raise self._error


def _sse(*lines: str) -> list[bytes]:
    return [(line + "\n").encode() for line in lines]


def _event(handle: object, revoked_at: str | None = None) -> str:
    payload: dict[str, object] = {"handle": handle}
    if revoked_at is not None:
        payload["revoked_at"] = revoked_at
    return "data: " + json.dumps(payload)


def _stream(*lines: str, error: Exception | None = None) -> Script:
    def answer(request: httpx.Request) -> httpx.Response:
        del request
        return httpx.Response(200, stream=_Body(_sse(*lines), error=error))

    return answer


def _status(code: int) -> Script:
    def answer(request: httpx.Request) -> httpx.Response:
        del request
        return httpx.Response(code)

    return answer


def _raise(error: Exception) -> Script:
    def answer(request: httpx.Request) -> httpx.Response:
        del request
        raise error

    return answer


@dataclasses.dataclass
class _FeedRun:
    """A feed driven through a fixed list of broker answers, one per connection."""

    feed: RevocationFeed
    requests: list[httpx.Request]
    pauses: list[float]
    healthy_at_pause: list[bool]


def _run_feed(
    scripts: list[Script],
    clock: FrozenClock,
    *,
    api_token: Secret | str = API_TOKEN,
    feeds: list[RevocationFeed] | None = None,
    **options: float,
) -> _FeedRun:
    """Connect once per script, then stop; return what the feed did."""
    requests: list[httpx.Request] = []
    pauses: list[float] = []
    healthy_at_pause: list[bool] = []
    remaining = list(scripts)
    feed: RevocationFeed

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return remaining.pop(0)(request)

    async def pause(seconds: float) -> None:
        pauses.append(seconds)
        healthy_at_pause.append(feed.healthy)
        if not remaining:
            feed._stopping.set()
        await anyio.lowlevel.checkpoint()

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            nonlocal feed
            feed = RevocationFeed(
                BROKER,
                lambda: api_token,
                token_lifetime=LIFETIME,
                http=http,
                clock=clock,
                pause=pause,
                **options,  # type: ignore[arg-type]
            )
            if feeds is not None:
                feeds.append(feed)
            with anyio.fail_after(5):
                await feed._run()

    anyio.run(main)
    return _FeedRun(feed, requests, pauses, healthy_at_pause)


class TestRevocationFeedParsing:
    """Server-Sent Events from the broker become revoked token ids."""

    def test_data_lines_revoke(self, clock: FrozenClock) -> None:
        """Each dispatched ``data:`` event revokes the handle it names."""
        run = _run_feed(
            [
                _stream(
                    _event("jti-1"),
                    "",
                    "event: revocation",
                    "id: 7",
                    _event("jti-2", clock.now().isoformat()),
                    "",
                )
            ],
            clock,
        )
        assert run.feed.is_revoked("jti-1")
        assert run.feed.is_revoked("jti-2")
        assert not run.feed.is_revoked("jti-3")
        assert run.feed.events_seen == 2

    def test_comments_and_keepalives_are_ignored(self, clock: FrozenClock) -> None:
        """Comment lines, keepalives and blank lines revoke nothing."""
        run = _run_feed(
            [_stream(": keepalive", "", ":", "", "", _event("jti-1"), "")],
            clock,
        )
        assert run.feed.events_seen == 1
        assert run.feed.is_revoked("jti-1")

    def test_multiline_data_is_joined(self, clock: FrozenClock) -> None:
        """Several ``data:`` lines form one event, joined by newlines."""
        run = _run_feed(
            [_stream('data: {"handle":', 'data:"jti-9"}', "")],
            clock,
        )
        assert run.feed.is_revoked("jti-9")

    @pytest.mark.parametrize(
        "line",
        [
            "data: not json",
            "data: [1, 2]",
            'data: {"revoked_at": "2024-01-01T00:00:00Z"}',
            'data: {"handle": 42}',
            "data",
            "garbage without a colon",
        ],
    )
    def test_malformed_events_are_skipped(self, clock: FrozenClock, line: str) -> None:
        """A malformed event is skipped and the stream goes on."""
        run = _run_feed([_stream(line, "", _event("jti-ok"), "")], clock)
        assert run.feed.events_seen == 1
        assert run.feed.is_revoked("jti-ok")
        assert list(run.feed._revoked) == ["jti-ok"]

    def test_bad_revoked_at_still_revokes(self, clock: FrozenClock) -> None:
        """An unreadable ``revoked_at`` revokes the handle as of now."""
        run = _run_feed([_stream(_event("jti-1", "yesterday"), "")], clock)
        assert run.feed.is_revoked("jti-1")
        assert run.feed._revoked["jti-1"] == clock.now() + LIFETIME

    def test_naive_revoked_at_is_utc(self, clock: FrozenClock) -> None:
        """A ``revoked_at`` without a zone is read as UTC."""
        at = clock.now().replace(tzinfo=None)
        run = _run_feed([_stream(_event("jti-1", at.isoformat()), "")], clock)
        assert run.feed._cursor == at.replace(tzinfo=dt.UTC)

    def test_unterminated_event_is_dropped(self, clock: FrozenClock) -> None:
        """An event the stream ends before dispatching (no blank line) is ignored."""
        run = _run_feed([_stream(_event("jti-1"), "", _event("jti-2"))], clock)
        assert run.feed.is_revoked("jti-1")
        assert not run.feed.is_revoked("jti-2")


class TestRevocationFeedReconnection:
    """The feed reconnects with backoff and misses nothing revoked meanwhile."""

    def test_reconnects_after_end_and_errors(self, clock: FrozenClock) -> None:
        """A stream that ends, fails or is refused is opened again."""
        run = _run_feed(
            [
                _stream(_event("jti-1"), ""),
                _raise(httpx.ConnectError("refused")),
                _stream("", error=httpx.ReadError("reset")),
                _status(503),
                _stream(_event("jti-2"), ""),
            ],
            clock,
        )
        assert len(run.requests) == 5
        assert run.feed.reconnects == 5
        assert run.feed.is_revoked("jti-1")
        assert run.feed.is_revoked("jti-2")

    def test_backoff_grows_with_jitter_up_to_the_cap(self, clock: FrozenClock) -> None:
        """Consecutive failures wait twice as long each time, jittered, capped."""
        failures = [_raise(httpx.ConnectError("down")) for _ in range(5)]
        run = _run_feed(failures, clock, backoff_initial=1.0, backoff_max=4.0)
        ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
        assert len(run.pauses) == len(ceilings)
        for pause, ceiling in zip(run.pauses, ceilings, strict=True):
            assert ceiling / 2 <= pause <= ceiling

    def test_backoff_resets_after_a_stream(self, clock: FrozenClock) -> None:
        """A connection that streamed resets the delay to its initial value."""
        run = _run_feed(
            [
                _raise(httpx.ConnectError("down")),
                _raise(httpx.ConnectError("down")),
                _stream(_event("jti-1"), ""),
            ],
            clock,
            backoff_initial=1.0,
            backoff_max=8.0,
        )
        assert 1.0 <= run.pauses[1] <= 2.0
        assert 0.5 <= run.pauses[2] <= 1.0

    def test_backoff_grows_while_refused(self, clock: FrozenClock) -> None:
        """Consecutive refusals (non-200 answers) back off like errors do."""
        run = _run_feed(
            [_status(503) for _ in range(4)],
            clock,
            backoff_initial=1.0,
            backoff_max=8.0,
        )
        assert run.pauses[-1] > 2.0

    def test_resumes_with_since(self, clock: FrozenClock) -> None:
        """The first request asks for one token lifetime back, later ones resume."""
        start = clock.now()
        revoked_at = start + dt.timedelta(seconds=30)
        run = _run_feed(
            [
                _stream(_event("jti-1", revoked_at.isoformat()), ""),
                _raise(httpx.ConnectError("down")),
                _stream(""),
            ],
            clock,
        )
        since = [
            dt.datetime.fromisoformat(request.url.params["since"])
            for request in run.requests
        ]
        overlap = dt.timedelta(seconds=5)
        assert since == [start - LIFETIME, revoked_at - overlap, revoked_at - overlap]

    def test_cursor_never_moves_back(self, clock: FrozenClock) -> None:
        """A late event with an older ``revoked_at`` does not rewind the cursor."""
        newer = clock.now()
        older = newer - dt.timedelta(minutes=1)
        run = _run_feed(
            [
                _stream(
                    _event("a", newer.isoformat()),
                    "",
                    _event("b", older.isoformat()),
                    "",
                )
            ],
            clock,
        )
        assert run.feed._cursor == newer

    def test_sends_the_api_token(self, clock: FrozenClock) -> None:
        """The api token is revealed only in the Authorization header, trimmed."""
        run = _run_feed([_stream("")], clock, api_token=Secret(f" {API_TOKEN}\n"))
        request = run.requests[0]
        assert request.headers["authorization"] == f"Bearer {API_TOKEN}"
        assert request.headers["accept"] == "text/event-stream"
        assert API_TOKEN not in str(request.url)
        assert API_TOKEN not in repr(run.feed)


class TestRevocationFeedHealth:
    """``healthy`` says whether revocations arrive as they happen."""

    def test_silence_timeout_marks_unhealthy(self, clock: FrozenClock) -> None:
        """A stream silent past the read timeout is down until the next connection."""
        healthy_while_streaming: list[bool] = []
        feeds: list[RevocationFeed] = []

        def run_feed() -> RevocationFeed:
            return feeds[0]

        def silent(request: httpx.Request) -> httpx.Response:
            del request
            body = _Body(
                _sse(_event("jti-1"), ""),
                error=httpx.ReadTimeout("idle"),
                seen=lambda: healthy_while_streaming.append(run_feed().healthy),
            )
            return httpx.Response(200, stream=body)

        def resumed(request: httpx.Request) -> httpx.Response:
            del request
            body = _Body(
                _sse(_event("jti-2"), ""),
                seen=lambda: healthy_while_streaming.append(run_feed().healthy),
            )
            return httpx.Response(200, stream=body)

        run = _run_feed([silent, resumed], clock, feeds=feeds)
        assert healthy_while_streaming == [True, True]
        assert run.healthy_at_pause == [False, False]
        assert run.feed.is_revoked("jti-1")
        assert run.feed.is_revoked("jti-2")

    def test_refused_connection_is_unhealthy(self, clock: FrozenClock) -> None:
        """A non-200 answer never marks the stream healthy."""
        run = _run_feed([_status(401), _status(503)], clock)
        assert run.healthy_at_pause == [False, False]
        assert not run.feed.healthy

    def test_revoked_stays_revoked_after_disconnect(self, clock: FrozenClock) -> None:
        """A jti seen before the stream dropped is still refused afterwards."""
        run = _run_feed(
            [
                _stream(_event("jti-1"), "", error=httpx.RemoteProtocolError("cut")),
                _status(503),
                _raise(httpx.ConnectError("down")),
            ],
            clock,
        )
        assert not run.feed.healthy
        assert run.feed.is_revoked("jti-1")

    def test_start_connect_and_close(self, clock: FrozenClock) -> None:
        """``start`` connects in the background and ``aclose`` stops it."""

        def handler(request: httpx.Request) -> httpx.Response:
            del request
            return httpx.Response(200, stream=_Body(_sse(_event("j"), ""), hang=True))

        async def main() -> None:
            transport = httpx.MockTransport(handler)
            async with httpx.AsyncClient(transport=transport) as http:
                feed = RevocationFeed(BROKER, lambda: API_TOKEN, http=http, clock=clock)
                assert not feed.healthy
                await feed.start()
                await feed.start()
                assert await feed.wait_connected(5.0)
                await feed.aclose()
                assert not feed.healthy
                assert feed._task is None
                assert not http.is_closed

        anyio.run(main)


def _offline_feed(clock: FrozenClock, **options: int) -> RevocationFeed:
    """A feed that is never started, for its in-memory set."""
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(500))
    )
    return RevocationFeed(
        BROKER,
        lambda: API_TOKEN,
        token_lifetime=LIFETIME,
        http=http,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


class TestRevocationFeedMemory:
    """The set of revoked ids is bounded in size and in time."""

    def test_oldest_go_first_past_max_entries(self, clock: FrozenClock) -> None:
        """Past ``max_entries`` the oldest revocations are forgotten."""
        feed = _offline_feed(clock, max_entries=3)
        for number in range(5):
            feed.revoke(f"jti-{number}")
        assert list(feed._revoked) == ["jti-2", "jti-3", "jti-4"]

    def test_entries_expire_after_the_token_lifetime(self, clock: FrozenClock) -> None:
        """A revocation is kept as long as a token can live, then dropped."""
        feed = _offline_feed(clock)
        feed.revoke("old")
        clock.advance(LIFETIME - dt.timedelta(seconds=1))
        feed.revoke("new")
        assert feed.is_revoked("old")
        clock.advance(dt.timedelta(seconds=2))
        feed.revoke("newest")
        assert not feed.is_revoked("old")
        assert feed.is_revoked("new")
        assert feed.is_revoked("newest")

    def test_ancient_revocation_is_not_kept(self, clock: FrozenClock) -> None:
        """A revocation older than any live token is not stored at all."""
        feed = _offline_feed(clock)
        feed.revoke("ancient", at=clock.now() - 2 * LIFETIME)
        assert not feed.is_revoked("ancient")

    def test_repeat_revocation_refreshes_the_entry(self, clock: FrozenClock) -> None:
        """Revoking a known id again moves it to the back of the eviction order."""
        feed = _offline_feed(clock, max_entries=2)
        feed.revoke("a")
        feed.revoke("b")
        feed.revoke("a")
        feed.revoke("c")
        assert list(feed._revoked) == ["a", "c"]


def _audit_event(number: int = 0, *, path: str = "/v1/tickets") -> ProxyAuditEvent:
    return ProxyAuditEvent(
        jti=f"jti-{number}",
        task_id="task-1",
        agent_id="agent-1",
        route="tickets",
        method="GET",
        path=path,
        status=200,
        bytes_in=0,
        bytes_out=12,
        latency_ms=1.5,
        outcome="ok",
    )


@dataclasses.dataclass
class _Broker:
    """The broker's audit endpoint, answering from a script then with 200."""

    answers: list[Callable[[], httpx.Response]] = dataclasses.field(
        default_factory=list
    )
    requests: list[httpx.Request] = dataclasses.field(default_factory=list)
    received: asyncio.Event | None = None

    def batches(self) -> list[list[dict[str, object]]]:
        """Every posted batch's events, in order."""
        return [json.loads(request.content)["events"] for request in self.requests]

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Record the request and answer it."""
        self.requests.append(request)
        if self.received is not None:
            self.received.set()
        if self.answers:
            return self.answers.pop(0)()
        return httpx.Response(202)


def _answer(code: int) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(code)


def _fail(error: Exception) -> Callable[[], httpx.Response]:
    def answer() -> httpx.Response:
        raise error

    return answer


class _Pauses(list[float]):
    """An injected backoff wait: records the delay and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await anyio.lowlevel.checkpoint()


def _shipper(
    broker: _Broker,
    http: httpx.AsyncClient,
    pauses: _Pauses,
    *,
    api_token: Callable[[], Secret | str] = lambda: Secret(API_TOKEN),
    **options: float,
) -> AuditShipper:
    settings: dict[str, float] = {"flush_interval": 3600.0, **options}
    return AuditShipper(
        BROKER,
        api_token,
        http=http,
        pause=pauses,
        **settings,  # type: ignore[arg-type]
    )


def _client(broker: _Broker) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(broker.handler))


class TestAuditShipperBatching:
    """Events leave in batches: when a batch fills, or when the interval passes."""

    def test_full_batch_is_sent_at_once(self) -> None:
        """A full batch is posted without waiting for the flush interval."""
        broker = _Broker()

        async def main() -> None:
            broker.received = asyncio.Event()
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses(), batch_size=3)
                await shipper.start()
                for number in range(3):
                    shipper.submit(_audit_event(number))
                with anyio.fail_after(5):
                    await broker.received.wait()
                await shipper.aclose()

        anyio.run(main)
        assert [len(batch) for batch in broker.batches()] == [3]

    def test_batches_hold_at_most_batch_size(self) -> None:
        """A long queue is posted in batches of ``batch_size``, in order."""
        broker = _Broker()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses(), batch_size=3)
                for number in range(7):
                    shipper.submit(_audit_event(number))
                await shipper.start()
                assert await shipper.flush(5.0)
                assert shipper.shipped == 7
                await shipper.aclose()

        anyio.run(main)
        batches = broker.batches()
        assert [len(batch) for batch in batches] == [3, 3, 1]
        jtis = [event["jti"] for batch in batches for event in batch]
        assert jtis == [f"jti-{number}" for number in range(7)]

    def test_partial_batch_is_sent_after_the_interval(self) -> None:
        """An event below the batch size is posted once the interval passes."""
        broker = _Broker()

        async def main() -> None:
            broker.received = asyncio.Event()
            async with _client(broker) as http:
                shipper = _shipper(
                    broker, http, _Pauses(), batch_size=100, flush_interval=0.001
                )
                await shipper.start()
                shipper.submit(_audit_event())
                with anyio.fail_after(5):
                    await broker.received.wait()
                await shipper.aclose()

        anyio.run(main)
        assert [len(batch) for batch in broker.batches()] == [1]


class TestAuditShipperRetries:
    """A broker that is down or failing is retried with backoff."""

    def test_retries_5xx_and_transport_errors(self) -> None:
        """Server errors and transport errors are retried, doubling the wait."""
        broker = _Broker(
            answers=[
                _answer(503),
                _fail(httpx.ConnectError("down")),
                _answer(502),
                _fail(httpx.ReadTimeout("slow")),
            ]
        )
        pauses = _Pauses()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, pauses, backoff_initial=0.5)
                shipper.submit(_audit_event(1))
                shipper.submit(_audit_event(2))
                await shipper.start()
                assert await shipper.flush(5.0)
                assert (shipper.shipped, shipper.failures, shipper.dropped) == (2, 4, 0)
                await shipper.aclose()

        anyio.run(main)
        assert pauses == [0.5, 1.0, 2.0, 4.0]
        batches = broker.batches()
        assert len(batches) == 5
        assert all(batch == batches[0] for batch in batches)

    def test_backoff_is_capped_and_resets(self) -> None:
        """The wait stops growing at ``backoff_max`` and resets after a success."""
        broker = _Broker(answers=[_answer(500)] * 4)
        pauses = _Pauses()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(
                    broker, http, pauses, backoff_initial=1.0, backoff_max=3.0
                )
                shipper.submit(_audit_event(1))
                await shipper.start()
                assert await shipper.flush(5.0)
                broker.answers.append(_answer(500))
                shipper.submit(_audit_event(2))
                assert await shipper.flush(5.0)
                await shipper.aclose()

        anyio.run(main)
        assert pauses == [1.0, 2.0, 3.0, 3.0, 1.0]

    def test_unreadable_api_token_is_retried(self) -> None:
        """A missing api token file is a failure to retry, not a crash."""
        calls: list[int] = []

        def api_token() -> Secret:
            calls.append(1)
            if len(calls) == 1:
                raise FileNotFoundError("token file not written yet")
            return Secret(API_TOKEN)

        broker = _Broker()
        pauses = _Pauses()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, pauses, api_token=api_token)
                shipper.submit(_audit_event())
                await shipper.start()
                assert await shipper.flush(5.0)
                assert shipper.shipped == 1
                await shipper.aclose()

        anyio.run(main)
        assert len(pauses) == 1
        assert len(broker.requests) == 1

    @pytest.mark.parametrize("status", [400, 413])
    def test_refused_batch_is_dropped(self, status: int) -> None:
        """A batch the broker rejects as invalid is dropped, not retried."""
        broker = _Broker(answers=[_answer(status)])
        pauses = _Pauses()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, pauses, batch_size=2)
                for number in range(3):
                    shipper.submit(_audit_event(number))
                await shipper.start()
                assert await shipper.flush(5.0)
                assert (shipper.dropped, shipper.shipped) == (2, 1)
                await shipper.aclose()

        anyio.run(main)
        assert pauses == []
        assert [len(batch) for batch in broker.batches()] == [2, 1]

    def test_batch_failing_five_times_is_dropped(self) -> None:
        """A batch the broker keeps failing on is dropped after five answers."""
        broker = _Broker(answers=[_answer(500)] * 5)
        pauses = _Pauses()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, pauses)
                shipper.submit(_audit_event())
                await shipper.start()
                assert await shipper.flush(5.0)
                assert (shipper.dropped, shipper.shipped) == (1, 0)
                shipper.submit(_audit_event(2))
                assert await shipper.flush(5.0)
                assert shipper.shipped == 1
                await shipper.aclose()

        anyio.run(main)
        assert len(pauses) == 4
        assert len(broker.requests) == 6


class TestAuditShipperQueue:
    """Memory is bounded: the oldest events go first, and are counted."""

    def test_full_queue_drops_the_oldest(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Past ``max_queue`` the oldest events are dropped, counted and logged."""
        broker = _Broker()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses(), max_queue=3)
                with caplog.at_level(logging.ERROR, "gatepass.proxy.audit"):
                    for number in range(5):
                        shipper.submit(_audit_event(number))
                assert (shipper.queued, shipper.dropped) == (3, 2)
                await shipper.start()
                assert await shipper.flush(5.0)
                await shipper.aclose()

        anyio.run(main)
        jtis = [event["jti"] for batch in broker.batches() for event in batch]
        assert jtis == ["jti-2", "jti-3", "jti-4"]
        assert [record.getMessage() for record in caplog.records] == [
            "audit queue full; dropped 1 proxy audit events so far"
        ]

    def test_requeue_after_failure_keeps_the_bound(self) -> None:
        """Events queued while a batch failed in flight push out the oldest."""
        shipper: AuditShipper

        def busy_then_down() -> httpx.Response:
            for number in range(10, 13):
                shipper.submit(_audit_event(number))
            return httpx.Response(503)

        broker = _Broker(answers=[busy_then_down])

        async def main() -> None:
            nonlocal shipper
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses(), max_queue=3, batch_size=2)
                shipper.submit(_audit_event(0))
                shipper.submit(_audit_event(1))
                await shipper.start()
                assert await shipper.flush(5.0)
                assert shipper.dropped == 2
                await shipper.aclose()

        anyio.run(main)
        jtis = [event["jti"] for batch in broker.batches()[1:] for event in batch]
        assert jtis == ["jti-10", "jti-11", "jti-12"]


class TestAuditShipperContent:
    """Shipped events hold their fixed fields only: never a token or a secret."""

    def test_no_token_in_shipped_events(self) -> None:
        """The api token travels only in the Authorization header."""
        broker = _Broker()
        long_path = "/v1/" + "a" * 600

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses())
                shipper.submit(_audit_event(path=long_path))
                shipper.submit(
                    dataclasses.replace(_audit_event(), jti="", task_id="", agent_id="")
                )
                assert API_TOKEN not in repr(shipper)
                await shipper.start()
                assert await shipper.flush(5.0)
                await shipper.aclose()

        anyio.run(main)
        request = broker.requests[0]
        assert request.headers["authorization"] == f"Bearer {API_TOKEN}"
        assert API_TOKEN.encode() not in request.content
        assert API_TOKEN not in str(request.url)
        first, anonymous = broker.batches()[0]
        # A completed call has no reason code, so no error field.
        fields = {field.name for field in dataclasses.fields(ProxyAuditEvent)} - {
            "error"
        }
        assert set(first) == fields
        assert first["path"] == long_path[:512]
        assert set(anonymous) == fields - {"jti", "task_id", "agent_id"}


class TestAuditShipperClose:
    """Closing ships what is queued, within a deadline."""

    def test_close_flushes_the_queue(self) -> None:
        """Events queued at shutdown are posted before the shipper stops."""
        broker = _Broker()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses())
                await shipper.start()
                shipper.submit(_audit_event(1))
                shipper.submit(_audit_event(2))
                await shipper.aclose()
                assert shipper.queued == 0
                assert not http.is_closed

        anyio.run(main)
        assert [len(batch) for batch in broker.batches()] == [2]

    def test_close_with_broker_down_reports_the_loss(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """If the broker stays down, closing gives up at the deadline and logs it."""
        broker = _Broker(answers=[_fail(httpx.ConnectError("down"))] * 1_000_000)

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses())
                await shipper.start()
                shipper.submit(_audit_event())
                with caplog.at_level(logging.ERROR, "gatepass.proxy.audit"):
                    await shipper.aclose(timeout=0.01)
                assert shipper.queued == 1

        anyio.run(main)
        assert "proxy stopped with 1 audit events not delivered" in caplog.text

    def test_close_before_start(self) -> None:
        """Closing a shipper that never started sends nothing."""
        broker = _Broker()

        async def main() -> None:
            async with _client(broker) as http:
                shipper = _shipper(broker, http, _Pauses())
                shipper.submit(_audit_event())
                await shipper.aclose()

        anyio.run(main)
        assert broker.requests == []
