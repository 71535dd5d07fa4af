"""
The credential-injecting proxy as a pure ASGI application.

For each request, in this order, and without contacting the upstream until every
check passed:

1. refuse an HTTP version other than 1.0 and 1.1 (``400``; the server layer in
   :mod:`gatepass.proxy.server` refuses it first) and a protocol upgrade (``400``;
   WebSocket scopes are closed);
2. find the route whose prefix starts the raw path (``404`` otherwise);
3. refuse a method that is never forwarded (TRACE, CONNECT) or that no rule can
   name (``405`` with ``Allow``);
4. refuse oversized (``431``: too many fields or bytes), malformed or ambiguous
   headers (``400``: smuggling, CR/LF, repeated Host);
5. normalise the path, refusing any spelling an upstream could read another way
   (``400``), and check it still lies under the route's prefix;
6. verify the DPoP-bound access token (signature from the broker's JWKS, issuer,
   the route's target as the one audience, expiry) and its proof for this exact
   method and URL, rebuilt from ``public_url`` and the raw path, never from
   ``Host`` or ``X-Forwarded-*`` (``401``);
7. refuse a revoked token: pushed by the broker's stream, or asked of the
   introspection endpoint while the stream is down (``401``);
8. a method the route's rules do not serve for this path is ``405`` with
   ``Allow``; a method and path outside the rules of the token's actions is
   ``403 insufficient_scope``;
9. per-lease and per-route rate limits (``429`` with ``Retry-After``);
10. a declared body larger than the route's limit (``413``; a chunked body is
    counted while it streams);
11. forward with only the allowed headers plus the route's secret, streaming both
    ways; an upstream timeout is ``504``, an unreachable upstream ``502``; the
    answer is decoded and scanned for the secret (:mod:`gatepass.proxy.relay`).

Every answer the proxy makes itself has the broker's error shape
``{"error", "error_description"}`` with a fixed description: no value from the
request, the token or the secret is ever echoed. Every call and every refusal is
audited through :class:`~gatepass.proxy.audit.AuditShipper`, a refusal with its
:class:`~gatepass.proxy.reasons.RefusalReason`.

The steps live beside this module: ``access`` (6 and 7), ``forwarding`` (10 and
11), ``relay`` (the answer), ``refusals`` (the answers above) and ``metrics`` (each
request's record).
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
from gatepass.errors import RateLimitedError
from gatepass.observability import redact_values
from gatepass.proxy.access import verify_access
from gatepass.proxy.asgi import Header, Receive, Scope, Send
from gatepass.proxy.audit import AuditShipper
from gatepass.proxy.checks import (
    check_headers,
    check_method,
    check_rules,
    check_version,
    normalized_path,
    raw_path_of,
    route_for,
)
from gatepass.proxy.forwarding import Route, declared_length, forward
from gatepass.proxy.limits import TokenBucket
from gatepass.proxy.metrics import (
    Exchange,
    ProxyMetrics,
    audit_event,
    send_own_endpoint,
)
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.refusals import AbortedError, RefusedError, send_refusal
from gatepass.proxy.replay import DeferredReplayCache, ProofLedger, RedisProofLedger
from gatepass.proxy.settings import RESERVED_PATHS, ProxySettings
from gatepass.proxy.upstream import AiohttpUpstream, HttpxUpstream, UpstreamClient
from gatepass.secret import Secret
from gatepass.tokens import DPoPVerifier, JWKSKeySource, KeySource, MemoryReplayCache
from gatepass.verify import (
    Introspector,
    ResourceVerifier,
    RevocationFeed,
    VerifiedAccess,
)

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
        ledger: ProofLedger | None = None,
    ) -> None:
        """Build every route's verifier, rules, compartment and limits."""
        self.settings = settings
        self._clock = clock or SystemClock()
        server = settings.proxy
        self._owns_http = http is None
        # Redirects are the agent's business: following one here could carry the
        # secret to another origin (neither client follows them).
        self._http: UpstreamClient
        if http is not None:
            self._http = HttpxUpstream(http)
        elif server.upstream_client == "httpx":
            self._http = HttpxUpstream()
        else:
            self._http = AiohttpUpstream()
        token_file = _read_token_file(server.api_token_file)
        self._owned_key_source: JWKSKeySource | None = None
        if key_source is None:
            self._owned_key_source = JWKSKeySource(
                f"{settings.broker}/jwks.json", clock=self._clock
            )
            key_source = self._owned_key_source
        # One replay cache for every route: a proof is used once, wherever; with
        # a shared ledger, once in every proxy process behind this address.
        local = MemoryReplayCache(self._clock)
        self.ledger: ProofLedger | None = ledger
        if ledger is None and server.replay == "redis" and server.redis_url:
            self.ledger = RedisProofLedger(server.redis_url, prefix=server.redis_prefix)
        replay = DeferredReplayCache(local) if self.ledger is not None else local
        dpop = DPoPVerifier(clock=self._clock, replay=replay)
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
        for built in self._routes:
            # Log lines from any library (httpx logs each URL it calls, query and
            # all) are scrubbed of every spelling of every route's secret.
            exact, folded = built.compartment.redaction_forms()
            redact_values(exact)
            redact_values(folded, ignore_case=True)
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
        if self.ledger is not None:
            await self.ledger.aclose()
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
            # Upgrades are not proxied: a WebSocket would outlive every check. The
            # server answers a close before accept with a 403.
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            raw_path = raw_path_of(scope).decode("latin-1")
            exchange = Exchange(method="GET", raw_path=raw_path)
            exchange.status = 403
            exchange.reason = RefusalReason.UPGRADE_REFUSED
            self._record(exchange)

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

    def record_server_refusal(
        self, reason: RefusalReason, *, method: str, raw_path: str
    ) -> None:
        """
        Audit and count a refusal the HTTP server layer made before this app ran.

        Args:
            reason: why the server refused.
            method: the request method, when the parser got that far (else ``-``).
            raw_path: the request path, when known (else empty).
        """
        exchange = Exchange(method=method, raw_path=raw_path)
        exchange.status = 400 if reason != RefusalReason.OVERLOADED else 503
        exchange.reason = reason
        self._record(exchange)

    async def _http_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path = raw_path_of(scope)
        # Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET.
        method = str(scope["method"])
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
            exchange.reason = refusal.reason
            exchange.bytes_out = await send_refusal(send, refusal)
        except AbortedError:
            # The answer had started: returning without its last message makes the
            # server close the connection, so the agent sees it was cut short.
            if exchange.reason is None:
                exchange.reason = RefusalReason.UPSTREAM_ABORTED
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
        headers: list[Header] = list(scope.get("headers", ()))
        check_version(scope)
        route = route_for(self._routes, raw_path)
        exchange.route = route.settings.name
        check_method(exchange.method, route)
        check_headers(headers, max_header_bytes=self.settings.proxy.max_header_bytes)
        path = normalized_path(raw_path, route)
        exchange.path = path
        access = await verify_access(
            route,
            exchange.method,
            raw_path,
            headers,
            feed=self.feed,
            introspector=self.introspector,
            ledger=self.ledger,
        )
        exchange.access = access
        relative = path[len(route.prefix) - 1 :]
        check_rules(route, access, exchange.method, relative)
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
            RefusalReason.RATE_LIMITED,
            RateLimitedError("too many requests; retry later"),
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
    ledger: ProofLedger | None = None,
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
        ledger: the replay ledger shared with other proxy processes; a Redis one
            is built when ``replay = "redis"`` and this is omitted.

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
        ledger=ledger,
    )
