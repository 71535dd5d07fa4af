"""
Revoked access tokens pushed by the broker, as Server-Sent Events.

:class:`RevocationFeed` holds one long ``GET {broker}/v1/revocations/stream``
open. Each event names the ``jti`` (the broker calls it the lease ``handle``) of an
access token that was revoked, usually because its task closed; a
:class:`~gatepass.verify.ResourceVerifier` given the feed (and the proxy, which
builds on one) refuses those tokens from then on. The set is bounded: an entry is
kept for the longest lifetime an access token can have, after which the token has
expired anyway.

Following a push stream instead of asking the broker on every request keeps the
check in memory (a dictionary lookup) while a revocation is still seen within
milliseconds of the broker's commit. While the stream is down the feed reports
``healthy = False`` and the verifier asks the broker's introspection endpoint
instead, or refuses when it has none (fail closed). On reconnection the feed asks
for every revocation since a moment before the last one it saw, so nothing revoked
during the gap is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import httpx

from gatepass.clock import Clock, SystemClock
from gatepass.errors import GatepassError
from gatepass.secret import Secret
from gatepass.ssf.consume import SSFPollSubscription

__all__ = ["RevocationFeed"]

_log = logging.getLogger("gatepass.verify.revocations")

ApiTokenSource = Secret | str | Callable[[], Secret | str]
# Reconnection replays revocations from a little before the last one seen: events
# revoked in the same instant, or on a replica with a slightly slower clock.
_OVERLAP = dt.timedelta(seconds=5)


class RevocationFeed:
    """
    Follow the broker's revocation stream and remember revoked token ids.

    Args:
        broker: the broker's issuer URL.
        api_token: an api token with the ``introspect`` (or ``proxy``) role, or a
            callable that returns it, called before each connection (the broker
            writes the token file on its first start, and it may be rotated).
        token_lifetime: the longest an access token lives; a revoked id is kept
            this long after its revocation.
        http: the HTTP client; one without a read timeout is created when omitted.
        clock: the time source.
        idle_timeout: how long the stream may stay silent (the broker sends a
            keepalive every 15 s) before it is considered dead.
        max_entries: the most revoked ids held; the oldest go first.
        backoff_initial: the first reconnection delay in seconds.
        backoff_max: the longest reconnection delay in seconds.
        pause: waits between reconnections, given the seconds; by default until
            that many seconds passed or the feed is closed.
        subscription: follow the broker's SSF transmitter by poll (an
            ``ssf_receiver`` ``api_token``, docs/ssf.md) instead of the
            Server-Sent Events stream.
    """

    def __init__(
        self,
        broker: str,
        api_token: ApiTokenSource,
        *,
        token_lifetime: dt.timedelta = dt.timedelta(minutes=15),
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        idle_timeout: float = 45.0,
        max_entries: int = 1_000_000,
        backoff_initial: float = 0.1,
        backoff_max: float = 10.0,
        pause: Callable[[float], Awaitable[None]] | None = None,
        subscription: SSFPollSubscription | None = None,
    ) -> None:
        """Keep the configuration; nothing connects until :meth:`start`."""
        self._url = f"{broker.rstrip('/')}/v1/revocations/stream"
        self._api_token = api_token
        self._lifetime = token_lifetime
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, read=idle_timeout), follow_redirects=False
        )
        self._idle_timeout = idle_timeout
        self._clock = clock or SystemClock()
        self._max_entries = max_entries
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._pause = self._until_stopping if pause is None else pause
        self._revoked: OrderedDict[str, dt.datetime] = OrderedDict()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._healthy = False
        self._cursor: dt.datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._connected = asyncio.Event()
        self.events_seen = 0
        self.reconnects = 0
        self.subscription = subscription

    def __repr__(self) -> str:
        """Show the stream URL and state, never the api token."""
        if self.subscription is not None:
            return f"RevocationFeed({self.subscription!r}, healthy={self._healthy})"
        return f"RevocationFeed(url={self._url!r}, healthy={self._healthy})"

    def mark_connected(self) -> None:
        """Say that revocations arrive as they happen (an SSF subscription polls)."""
        self._set_healthy(healthy=True)

    @property
    def healthy(self) -> bool:
        """Whether the stream is connected, so revocations arrive as they happen."""
        return self._healthy

    def is_revoked(self, jti: str) -> bool:
        """
        Tell whether the broker revoked the access token with this id.

        Args:
            jti: the token's ``jti``.

        Returns:
            True when a revocation event named it.
        """
        return jti in self._revoked

    def revoke(self, jti: str, *, at: dt.datetime | None = None) -> None:
        """
        Remember a revoked token id (also used for events read from the stream).

        Args:
            jti: the token's ``jti``.
            at: when it was revoked; now when omitted.
        """
        now = self._clock.now()
        self._revoked[jti] = max(at or now, now - self._lifetime) + self._lifetime
        self._revoked.move_to_end(jti)
        self._prune(now)
        for waiter in self._waiters.pop(jti, ()):
            waiter.set()

    async def wait_revoked(self, jti: str, timeout: float) -> bool:  # noqa: ASYNC109
        """
        Wait until the broker revokes a token, or ``timeout`` seconds pass.

        A resource server uses it to end a response that is still streaming when
        its token is revoked (ground rule: revocation cuts live sessions).

        Args:
            jti: the token's ``jti``.
            timeout: the most seconds to wait (the token's remaining life).

        Returns:
            Whether the token was revoked.
        """
        if self.is_revoked(jti):
            return True
        waiter = asyncio.Event()
        self._waiters.setdefault(jti, set()).add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), max(timeout, 0.0))
        finally:
            waiters = self._waiters.get(jti)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[jti]
        return waiter.is_set() or self.is_revoked(jti)

    def _prune(self, now: dt.datetime) -> None:
        # Entries are appended in arrival order, so expired ones sit near the front.
        while self._revoked:
            jti, until = next(iter(self._revoked.items()))
            if until > now and len(self._revoked) <= self._max_entries:
                break
            del self._revoked[jti]

    async def start(self) -> None:
        """Start following the stream in the background."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="revocation-feed")

    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109
        """
        Wait until the stream is connected.

        Args:
            timeout: the most seconds to wait.

        Returns:
            Whether it is connected.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._healthy

    async def aclose(self) -> None:
        """Stop following the stream and close the client this feed created."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_healthy(healthy=False)
        if self.subscription is not None:
            with contextlib.suppress(GatepassError):
                await self.subscription.close(self._http, self._token())
        if self._owns_http:
            await self._http.aclose()

    def _set_healthy(self, *, healthy: bool) -> None:
        if healthy != self._healthy:
            if healthy:
                _log.info("revocation stream connected")
            else:
                _log.warning("revocation stream down; introspecting each token")
        self._healthy = healthy
        if healthy:
            self._connected.set()
        else:
            self._connected.clear()

    async def _run(self) -> None:
        delay = self._backoff_initial
        while not self._stopping.is_set():
            try:
                # Only a stream that was accepted resets the backoff: a broker that
                # refuses (401, 503) is retried ever more slowly, like a failure.
                if await self._follow():
                    delay = self._backoff_initial
            except (httpx.HTTPError, OSError, ValueError, GatepassError) as error:
                # GatepassError: the api token could not be read yet (the broker
                # writes it on its first start). Any of these is retried: a
                # follower that stopped here would leave the stream down forever.
                _log.warning("revocation stream failed: %s", type(error).__name__)
            self._set_healthy(healthy=False)
            self.reconnects += 1
            # Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
            # replicas do not reconnect to a restarted broker in lockstep.
            pause = random.uniform(delay / 2, delay)  # noqa: S311 - not crypto
            delay = min(delay * 2, self._backoff_max)
            await self._pause(pause)

    async def _until_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _since(self) -> dt.datetime:
        if self._cursor is None:
            # First connection: every revocation of a token that may still be live.
            return self._clock.now() - self._lifetime
        return self._cursor - _OVERLAP

    def _token(self) -> str:
        source = self._api_token
        credential = source() if callable(source) else source
        token = credential.reveal() if isinstance(credential, Secret) else credential
        return token.strip()

    async def _follow(self) -> bool:
        token = self._token()
        if self.subscription is not None:
            return await self.subscription.follow(self._http, token, self)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
        }
        params = {"since": self._since().isoformat()}
        async with self._http.stream(
            "GET", self._url, headers=headers, params=params
        ) as response:
            if response.status_code != httpx.codes.OK:
                _log.warning(
                    "revocation stream refused: status %s", response.status_code
                )
                return False
            self._set_healthy(healthy=True)
            data: list[str] = []
            async for line in response.aiter_lines():
                # Server-Sent Events (WHATWG HTML §9.2.6): "data:" lines accumulate,
                # a blank line dispatches, lines starting with ":" are comments.
                if not line:
                    if data:
                        self._dispatch("\n".join(data))
                        data = []
                    continue
                field, _, value = line.partition(":")
                if field == "data":
                    data.append(value.removeprefix(" "))
        return True

    def _dispatch(self, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            _log.warning("revocation event is not JSON")
            return
        if not isinstance(event, dict) or not isinstance(event.get("handle"), str):
            _log.warning("revocation event has no handle")
            return
        at: dt.datetime | None = None
        raw_at = event.get("revoked_at")
        if isinstance(raw_at, str):
            with contextlib.suppress(ValueError):
                at = dt.datetime.fromisoformat(raw_at)
            if at is not None and at.tzinfo is None:
                at = at.replace(tzinfo=dt.UTC)
        self.events_seen += 1
        self.revoke(event["handle"], at=at)
        if at is not None and (self._cursor is None or at > self._cursor):
            self._cursor = at
