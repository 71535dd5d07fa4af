"""
The credential-injecting proxy as a pure ASGI application.

For each request, in this order, and without contacting the upstream until every
check passed:

1. find the route whose prefix starts the raw path (``404`` otherwise);
2. refuse oversized (``431``), malformed or ambiguous headers (``400``:
   smuggling, CR/LF, repeated Host);
3. normalise the path, refusing any spelling an upstream could read another way
   (``400``), and check it still lies under the route's prefix;
4. verify the DPoP-bound access token (signature from the broker's JWKS, issuer,
   the route's target as the one audience, expiry) and its proof for this exact
   method and URL, rebuilt from ``public_url`` and the raw path, never from
   ``Host`` or ``X-Forwarded-*`` (``401``);
5. refuse a revoked token: pushed by the broker's stream, or asked of the
   introspection endpoint while the stream is down (``401``);
6. match the method and path relative to the prefix against the rules of the
   token's actions (``403 insufficient_scope``);
7. per-lease and per-route rate limits (``429`` with ``Retry-After``);
8. a declared body larger than the route's limit (``413``; a chunked body is
   counted while it streams);
9. forward with only the allowed headers plus the route's secret, streaming both
   ways; an upstream timeout is ``504``, an unreachable upstream ``502``.

Every answer the proxy makes itself has the broker's error shape
``{"error", "error_description"}`` with a fixed description: no value from the
request, the token or the secret is ever echoed. Every call and every refusal is
audited through :class:`~gatepass.proxy.audit.AuditShipper`.

The steps live beside this module: ``access`` (4 and 5), ``forwarding`` (8 and 9),
``refusals`` (the answers above) and ``metrics`` (each request's record).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from gatepass.clock import Clock, SystemClock
from gatepass.proxy.access import verify_access
from gatepass.proxy.asgi import Header, Receive, Scope, Send
from gatepass.proxy.audit import AuditShipper
from gatepass.proxy.forwarding import Route, declared_length, forward
from gatepass.proxy.headers import HeaderRejectedError, check_request_framing
from gatepass.proxy.limits import TokenBucket
from gatepass.proxy.metrics import (
    Exchange,
    ProxyMetrics,
    audit_event,
    send_own_endpoint,
)
from gatepass.proxy.paths import PathRejectedError, normalize_path
from gatepass.proxy.refusals import (
    ALGS,
    AbortedError,
    RefusedError,
    send_refusal,
)
from gatepass.proxy.revocations import RevocationFeed
from gatepass.proxy.settings import RESERVED_PATHS, ProxySettings
from gatepass.secret import Secret
from gatepass.tokens import DPoPVerifier, JWKSKeySource, KeySource, MemoryReplayCache
from gatepass.verify import Introspector, ResourceVerifier, VerifiedAccess

__all__ = ["ProxyApp", "create_proxy_app"]

_log = logging.getLogger("gatepass.proxy")

_POLICY_VIOLATION = 1008


def _read_token_file(path: Path) -> Callable[[], Secret]:
    def read() -> Secret:
        return Secret(path.read_text(encoding="utf-8").strip())

    return read


class ProxyApp:
    """
    The proxy: verify, authorise, inject the route's secret, forward, audit.

    Build it with :func:`create_proxy_app`. The revocation feed and the audit
    shipper start and stop with the ASGI lifespan, or with :meth:`startup` and
    :meth:`shutdown`.

    Attributes:
        settings: the configuration.
        feed: the revocation stream follower (None in ``poll`` mode).
        shipper: the audit shipper.
        introspector: the fallback revocation check.
    """

    def __init__(
        self,
        settings: ProxySettings,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        key_source: KeySource | None = None,
        feed: RevocationFeed | None = None,
        shipper: AuditShipper | None = None,
        introspector: Introspector | None = None,
    ) -> None:
        """Build every route's verifier, rules, compartment and limits."""
        self.settings = settings
        self._clock = clock or SystemClock()
        self._owns_http = http is None
        # Redirects are the agent's business: following one here could carry the
        # secret to another origin.
        self._http = http or httpx.AsyncClient(
            follow_redirects=False, timeout=30.0, trust_env=False
        )
        server = settings.proxy
        token_file = _read_token_file(server.api_token_file)
        self._owned_key_source: JWKSKeySource | None = None
        if key_source is None:
            self._owned_key_source = JWKSKeySource(
                f"{settings.broker}/jwks.json", clock=self._clock
            )
            key_source = self._owned_key_source
        # One replay cache for every route: a proof is used once, wherever.
        dpop = DPoPVerifier(clock=self._clock, replay=MemoryReplayCache(self._clock))
        self.introspector = introspector or Introspector(
            f"{settings.broker}/introspect",
            token_file,
            cache_ttl=dt.timedelta(seconds=server.poll_interval_seconds),
            clock=self._clock,
        )
        self.feed: RevocationFeed | None = None
        if server.revocation == "stream":
            self.feed = feed or RevocationFeed(
                settings.broker,
                token_file,
                token_lifetime=dt.timedelta(seconds=server.token_max_lifetime_seconds),
                clock=self._clock,
            )
        self.shipper = shipper or AuditShipper(
            settings.broker, token_file, max_queue=server.audit_queue_size
        )
        self._routes: list[Route] = []
        self._lease_buckets: dict[str, TokenBucket] = {}
        self._route_buckets: dict[str, TokenBucket] = {}
        for route in settings.routes:
            self._routes.append(
                Route.build(
                    route,
                    verifier=ResourceVerifier(
                        issuer=settings.broker,
                        audience=route.target,
                        key_source=key_source,
                        clock=self._clock,
                        public_url=settings.public_url,
                        dpop_verifier=dpop,
                    ),
                )
            )
            self._lease_buckets[route.name] = TokenBucket(
                route.rate_per_lease, route.burst_per_lease, clock=self._clock
            )
            self._route_buckets[route.name] = TokenBucket(
                route.rate_per_route, route.burst_per_route, clock=self._clock
            )
        self.metrics = ProxyMetrics()
        self._started = False

    def __repr__(self) -> str:
        """Show the routes, never a secret."""
        names = [route.settings.name for route in self._routes]
        return f"ProxyApp(public_url={self.settings.public_url!r}, routes={names!r})"

    async def startup(self) -> None:
        """Start following revocations and shipping audit events."""
        if self._started:
            return
        self._started = True
        if self.feed is not None:
            await self.feed.start()
        await self.shipper.start()

    async def shutdown(self) -> None:
        """Ship what is queued, stop the background work and close the clients."""
        if not self._started:
            return
        self._started = False
        if self.feed is not None:
            await self.feed.aclose()
        await self.shipper.aclose()
        if self._owns_http:
            await self._http.aclose()
        await asyncio.to_thread(self._close_sync_clients)

    def _close_sync_clients(self) -> None:
        self.introspector.close()
        if self._owned_key_source is not None:
            self._owned_key_source.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http_request(scope, receive, send)
        elif kind == "websocket":
            # Upgrades are not proxied: a WebSocket would outlive every check.
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:  # noqa: BLE001 - reported to the server
                    await send(
                        {
                            "type": "lifespan.startup.failed",
                            "message": type(error).__name__,
                        }
                    )
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ----------------------------------------------------------------- requests

    async def _http_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        raw_path = (
            raw.split(b"?", 1)[0]
            if isinstance(raw, bytes) and raw
            else str(scope.get("path", "/")).encode("utf-8", "replace")
        )
        method = str(scope["method"]).upper()
        if raw_path.decode("latin-1") in RESERVED_PATHS and method in {"GET", "HEAD"}:
            await send_own_endpoint(
                send,
                raw_path.decode("latin-1"),
                metrics=self.metrics,
                stream_healthy=self.feed is not None and self.feed.healthy,
                shipper=self.shipper,
            )
            return
        exchange = Exchange(method=method, raw_path=raw_path.decode("latin-1"))
        try:
            await self._proxy(scope, receive, send, raw_path, exchange)
        except RefusedError as refusal:
            exchange.status = refusal.status
            exchange.outcome = refusal.code
            exchange.bytes_out = await send_refusal(send, refusal)
        except AbortedError:
            # The answer had started: returning without its last message makes the
            # server close the connection, so the agent sees it was cut short.
            if exchange.outcome == "ok":
                exchange.outcome = "aborted"
        finally:
            self._record(exchange)

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        raw_path: bytes,
        exchange: Exchange,
    ) -> None:
        route = self._route_for(raw_path)
        exchange.route = route.settings.name
        headers: list[Header] = list(scope.get("headers", ()))
        self._check_headers(headers)
        path = self._normalized(raw_path, route)
        exchange.path = path
        access = await verify_access(
            route,
            exchange.method,
            raw_path,
            headers,
            feed=self.feed,
            introspector=self.introspector,
        )
        exchange.access = access
        relative = path[len(route.prefix) - 1 :]
        if not route.rules.allows(access.scopes, exchange.method, relative):
            raise RefusedError(
                403,
                "insufficient_scope",
                "the token's scope does not allow this method and path",
                challenge=(
                    'DPoP error="insufficient_scope", error_description='
                    f'"the token\'s scope does not allow this request", algs="{ALGS}"'
                ),
            )
        self._check_rate(route, access)
        declared = declared_length(headers, route)
        await forward(
            self._http,
            scope,
            receive,
            send,
            route=route,
            relative=relative,
            headers=headers,
            declared=declared,
            exchange=exchange,
        )

    def _route_for(self, raw_path: bytes) -> Route:
        for route in self._routes:
            if raw_path.startswith(route.prefix):
                return route
        raise RefusedError(404, "not_found", "no route serves this path")

    def _check_headers(self, headers: list[Header]) -> None:
        limit = self.settings.proxy.max_header_bytes
        total = sum(len(name) + len(value) + 4 for name, value in headers)
        if total > limit:
            # RFC 6585 §5.
            raise RefusedError(431, "invalid_request", "request headers are too large")
        try:
            check_request_framing(headers, max_header_bytes=limit)
        except HeaderRejectedError as error:
            raise RefusedError(400, "invalid_request", error.detail) from None

    @staticmethod
    def _normalized(raw_path: bytes, route: Route) -> str:
        try:
            path = normalize_path(raw_path)
        except PathRejectedError as error:
            raise RefusedError(400, "invalid_request", error.detail) from None
        if not path.startswith(route.settings.prefix):
            raise RefusedError(
                400, "invalid_request", "request path rejected: it leaves its route"
            )
        return path

    def _check_rate(self, route: Route, access: VerifiedAccess) -> None:
        name = route.settings.name
        lease_bucket = self._lease_buckets[name]
        route_bucket = self._route_buckets[name]
        if not lease_bucket.take(access.jti):
            wait = lease_bucket.retry_after(access.jti)
        elif not route_bucket.take(name):
            wait = route_bucket.retry_after(name)
        else:
            return
        raise RefusedError(
            429,
            "rate_limited",
            "too many requests; retry later",
            headers=((b"retry-after", str(max(math.ceil(wait), 1)).encode()),),
        )

    def _record(self, exchange: Exchange) -> None:
        latency = time.perf_counter() - exchange.started
        self.metrics.observe(exchange, latency)
        self.shipper.submit(audit_event(exchange, latency))
        _log.info(
            "proxied %s %s -> %s (%s)",
            exchange.method,
            exchange.route,
            exchange.status,
            exchange.outcome,
        )


def create_proxy_app(
    settings: ProxySettings,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Clock | None = None,
    key_source: KeySource | None = None,
    feed: RevocationFeed | None = None,
    shipper: AuditShipper | None = None,
    introspector: Introspector | None = None,
) -> ProxyApp:
    """
    Build the proxy application.

    Args:
        settings: the validated configuration.
        http: the client for upstream calls; one that follows no redirects and
            ignores proxy environment variables is created when omitted.
        clock: the time source for token and proof checks.
        key_source: the broker's signing keys; fetched from ``{broker}/jwks.json``
            when omitted.
        feed: the revocation stream follower; built from the settings when omitted.
        shipper: the audit shipper; built from the settings when omitted.
        introspector: the fallback revocation check; built from the settings when
            omitted.

    Returns:
        The ASGI application.

    Raises:
        ConfigurationError: a route's secret cannot be loaded or a URL is invalid.
    """
    return ProxyApp(
        settings,
        http=http,
        clock=clock,
        key_source=key_source,
        feed=feed,
        shipper=shipper,
        introspector=introspector,
    )
