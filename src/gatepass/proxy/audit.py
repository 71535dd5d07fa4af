"""
Shipping the proxy's records of proxied calls to the broker's audit log.

Every proxied call, and every refusal, becomes one :class:`ProxyAuditEvent`. The
request path never waits for the broker: :class:`AuditShipper` queues events and a
background task posts them in batches (every half second, or at once when 100 are
waiting) to ``POST {broker}/v1/audit/proxy``, retrying with backoff. Memory is
bounded: if the broker stays down until the queue is full, the oldest events are
dropped, counted in ``dropped`` and reported in an error log.

An event has a fixed set of fields (ids, method, path, status, sizes, latency,
outcome, reason code): there is no field where a token, the upstream secret or a
body could go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import httpx

from gatepass.secret import Secret

__all__ = ["AuditShipper", "ProxyAuditEvent"]

_log = logging.getLogger("gatepass.proxy.audit")

ApiTokenSource = Callable[[], Secret | str]
_MAX_FIELD = 512
# A batch the broker fails on this many times in a row (an answer, not a network
# error) is dropped, so one poisoned batch cannot block every later event.
_MAX_REFUSALS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyAuditEvent:
    """
    One proxied call or refusal, as the broker's audit log records it.

    Attributes:
        jti: the access token's id (the lease handle); empty when no token verified.
        task_id: the task the token belongs to; empty when unknown.
        agent_id: the agent; empty when unknown.
        route: the configured route name, or ``-`` when no route matched.
        method: the request method.
        path: the normalised request path (the raw one when it could not be
            normalised), never the query string, which may carry credentials.
        status: the status answered to the agent.
        bytes_in: request body bytes read from the agent.
        bytes_out: response body bytes sent to the agent.
        latency_ms: time from the request to the end of the answer.
        outcome: ``ok`` (forwarded, whatever the upstream answered), ``deny`` (the
            proxy refused) or ``error`` (the upstream failed or the answer was cut
            off), as the broker's audit log records outcomes.
        error: the :class:`~gatepass.proxy.reasons.RefusalReason` code of a
            refusal or failure (as the broker's own denies carry their error
            code); empty, and left out, when the call completed.
    """

    jti: str
    task_id: str
    agent_id: str
    route: str
    method: str
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    latency_ms: float
    outcome: str
    error: str = ""

    def to_json(self) -> dict[str, str | int | float]:
        """
        Return the wire form.

        Text fields are cut to the broker's limit, and empty ones (a refusal before
        any token verified has no jti, task or agent) are left out.
        """
        fields = asdict(self)
        return {
            name: value[:_MAX_FIELD] if isinstance(value, str) else value
            for name, value in fields.items()
            if value != ""
        }


class AuditShipper:
    """
    Queue audit events and post them to the broker in batches.

    Args:
        broker: the broker's issuer URL.
        api_token: returns the proxy's api token (read lazily).
        http: the HTTP client; one with a 10 s timeout is created when omitted.
        max_queue: the most events held while the broker is unreachable.
        batch_size: the most events per request; a full batch is sent at once.
        flush_interval: seconds between flushes of a partial batch.
        backoff_initial: the first retry delay in seconds.
        backoff_max: the longest retry delay in seconds.
        pause: waits between retries, given the seconds; by default that long.
    """

    def __init__(
        self,
        broker: str,
        api_token: ApiTokenSource,
        *,
        http: httpx.AsyncClient | None = None,
        max_queue: int = 10_000,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        pause: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """Keep the configuration; nothing is sent until :meth:`start`."""
        self._url = f"{broker.rstrip('/')}/v1/audit/proxy"
        self._api_token = api_token
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self._queue: deque[ProxyAuditEvent] = deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._pause = self._wait if pause is None else pause
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.shipped = 0
        self.failures = 0
        self._refusals = 0

    def __repr__(self) -> str:
        """Show the endpoint and queue length, never the api token."""
        return f"AuditShipper(url={self._url!r}, queued={len(self._queue)})"

    @property
    def queued(self) -> int:
        """How many events wait to be sent."""
        return len(self._queue)

    def submit(self, event: ProxyAuditEvent) -> None:
        """
        Queue one event; never blocks and never fails.

        Args:
            event: the record of a call or refusal.
        """
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self.dropped += 1
            # Log the first drop and then every thousandth, not one line per event.
            if self.dropped == 1 or self.dropped % 1000 == 0:
                _log.error(
                    "audit queue full; dropped %d proxy audit events so far",
                    self.dropped,
                )
        self._queue.append(event)
        self._idle.clear()
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Start the background sender."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="audit-shipper")

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109
        """
        Wait until every queued event was accepted by the broker.

        Args:
            timeout: the most seconds to wait.

        Returns:
            Whether the queue is empty.
        """
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return not self._queue

    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """
        Send what is queued (for at most ``timeout`` seconds), then stop.

        Args:
            timeout: the most seconds to spend on the last sends.
        """
        if self._task is not None and self._queue:
            await self.flush(timeout)
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue:
            _log.error(
                "proxy stopped with %d audit events not delivered", len(self._queue)
            )
        if self._owns_http:
            await self._http.aclose()

    async def _run(self) -> None:
        delay = self._backoff_initial
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            while self._queue:
                if await self._send_batch():
                    delay = self._backoff_initial
                    continue
                # The broker is down or refused: wait before trying again; new
                # events keep queueing (and the oldest drop) meanwhile.
                await self._pause(delay)
                delay = min(delay * 2, self._backoff_max)
            self._idle.set()

    @staticmethod
    async def _wait(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), seconds)

    async def _send_batch(self) -> bool:
        # The batch leaves the queue while in flight, so submit() dropping the
        # oldest events meanwhile never removes part of it by mistake.
        batch = [
            self._queue.popleft()
            for _ in range(min(self._batch_size, len(self._queue)))
        ]
        try:
            credential = self._api_token()
            token = (
                credential.reveal() if isinstance(credential, Secret) else credential
            )
            response = await self._http.post(
                self._url,
                json={"events": [event.to_json() for event in batch]},
                headers={"Authorization": f"Bearer {token.strip()}"},
            )
        except (httpx.HTTPError, OSError, ValueError) as error:
            self.failures += 1
            _log.warning("audit shipping failed: %s", type(error).__name__)
            self._requeue(batch)
            return False
        if response.status_code >= httpx.codes.BAD_REQUEST:
            self.failures += 1
            _log.warning("audit shipping refused: status %s", response.status_code)
            self._refusals += 1
            if self._refusals >= _MAX_REFUSALS or response.status_code in {
                httpx.codes.BAD_REQUEST,
                httpx.codes.REQUEST_ENTITY_TOO_LARGE,
            }:
                # The broker will never accept this batch: drop it rather than
                # block every later event behind it.
                self.dropped += len(batch)
                self._refusals = 0
                _log.error("broker rejected %d proxy audit events", len(batch))
                return True
            self._requeue(batch)
            return False
        self.shipped += len(batch)
        self._refusals = 0
        return True

    def _requeue(self, batch: list[ProxyAuditEvent]) -> None:
        self._queue.extendleft(reversed(batch))
        while len(self._queue) > self._max_queue:
            self._queue.popleft()
            self.dropped += 1
