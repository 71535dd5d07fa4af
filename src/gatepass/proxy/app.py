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
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gatepass.clock import Clock, SystemClock
from gatepass.errors import (
    DPoPNonceRequiredError,
    DPoPProofError,
    GatepassError,
    TokenError,
    TokenRevokedError,
)
from gatepass.proxy.audit import AuditShipper, ProxyAuditEvent
from gatepass.proxy.compartments import Compartment
from gatepass.proxy.headers import (
    HeaderRejectedError,
    check_request_framing,
    forward_request_headers,
    forward_response_headers,
)
from gatepass.proxy.limits import TokenBucket
from gatepass.proxy.paths import PathRejectedError, normalize_path
from gatepass.proxy.revocations import RevocationFeed
from gatepass.proxy.rules import RuleSet
from gatepass.proxy.settings import RESERVED_PATHS, ProxySettings, RouteSettings
from gatepass.secret import Secret
from gatepass.tokens import (
    DPOP_ALGORITHMS,
    DPoPVerifier,
    JWKSKeySource,
    KeySource,
    MemoryReplayCache,
)
from gatepass.verify import Introspector, ResourceVerifier, VerifiedAccess

__all__ = ["ProxyApp", "create_proxy_app"]

_log = logging.getLogger("gatepass.proxy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

_ALGS = " ".join(sorted(DPOP_ALGORITHMS))
# Upstream error bodies are buffered to look for the secret; past this size they
# are not forwarded at all.
_MAX_ERROR_BODY = 1_048_576
_POLICY_VIOLATION = 1008


class _RefusedError(Exception):
    """An answer the proxy gives itself, with a fixed description."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        *,
        challenge: str | None = None,
        headers: tuple[Header, ...] = (),
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.description = description
        self.challenge = challenge
        self.headers = headers


class _BodyTooLargeError(Exception):
    """The request body grew past the route's limit while streaming."""


class _ClientTimeoutError(Exception):
    """The agent stopped sending its body."""


class _ClientGoneError(Exception):
    """The agent disconnected before the request body was complete."""


def _quoted(text: str) -> str:
    # RFC 9110 §5.6.4: a quoted-string may not hold a bare quote or backslash.
    return text.replace("\\", "").replace('"', "'")


def _token_refusal(error: GatepassError) -> _RefusedError:
    # RFC 6750 §3 and RFC 9449 §7.1: 401 with a DPoP challenge naming the error.
    code = error.code
    challenge = (
        f'DPoP error="{code}", error_description="{_quoted(error.detail)}", '
        f'algs="{_ALGS}"'
    )
    extra: tuple[Header, ...] = ()
    if isinstance(error, DPoPNonceRequiredError):
        extra = ((b"dpop-nonce", error.nonce.encode("latin-1", "replace")),)
    status = 401 if isinstance(error, TokenError | DPoPProofError) else 400
    return _RefusedError(status, code, error.detail, challenge=challenge, headers=extra)


def _header_values(headers: list[Header], name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in headers if key.lower() == name]


def _read_token_file(path: Path) -> Callable[[], Secret]:
    def read() -> Secret:
        return Secret(path.read_text(encoding="utf-8").strip())

    return read


@dataclass
class _Route:
    """A configured route with its runtime parts."""

    settings: RouteSettings
    prefix: bytes
    rules: RuleSet
    verifier: ResourceVerifier
    compartment: Compartment
    allowed_headers: frozenset[str]


@dataclass
class _Exchange:
    """What one request did, for its audit record and metrics."""

    method: str
    raw_path: str
    route: str = "-"
    path: str = ""
    access: VerifiedAccess | None = None
    status: int = 0
    outcome: str = "ok"
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = field(default_factory=time.perf_counter)


class _Metrics:
    """The proxy's metric families; labels are route names and fixed outcomes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gatepass_proxy_requests",
            "Requests answered by the proxy, by route and outcome.",
            ("route", "outcome"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "gatepass_proxy_request_seconds",
            "Time from request to the end of the answer, by route.",
            ("route",),
            registry=self.registry,
        )
        self.stream_up = Gauge(
            "gatepass_proxy_revocation_stream_up",
            "1 while the broker's revocation stream is connected.",
            registry=self.registry,
        )
        self.audit_dropped = Gauge(
            "gatepass_proxy_audit_dropped",
            "Proxy audit events dropped because the broker was unreachable.",
            registry=self.registry,
        )
        self.audit_queued = Gauge(
            "gatepass_proxy_audit_queued",
            "Proxy audit events waiting to be sent to the broker.",
            registry=self.registry,
        )


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
        self._routes: list[_Route] = []
        self._lease_buckets: dict[str, TokenBucket] = {}
        self._route_buckets: dict[str, TokenBucket] = {}
        for route in settings.routes:
            self._routes.append(
                _Route(
                    settings=route,
                    prefix=route.prefix.encode("ascii"),
                    rules=route.rule_set(),
                    verifier=ResourceVerifier(
                        issuer=settings.broker,
                        audience=route.target,
                        key_source=key_source,
                        clock=self._clock,
                        public_url=settings.public_url,
                        dpop_verifier=dpop,
                    ),
                    compartment=Compartment.load(route.name, route.auth),
                    allowed_headers=frozenset(route.allowed_headers),
                )
            )
            self._lease_buckets[route.name] = TokenBucket(
                route.rate_per_lease, route.burst_per_lease, clock=self._clock
            )
            self._route_buckets[route.name] = TokenBucket(
                route.rate_per_route, route.burst_per_route, clock=self._clock
            )
        self.metrics = _Metrics()
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
            await self._own_endpoint(raw_path.decode("latin-1"), send)
            return
        exchange = _Exchange(method=method, raw_path=raw_path.decode("latin-1"))
        try:
            await self._proxy(scope, receive, send, raw_path, exchange)
        except _RefusedError as refusal:
            exchange.status = refusal.status
            exchange.outcome = refusal.code
            exchange.bytes_out = await self._refuse(send, refusal)
        except _AbortedError:
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
        exchange: _Exchange,
    ) -> None:
        route = self._route_for(raw_path)
        exchange.route = route.settings.name
        headers: list[Header] = list(scope.get("headers", ()))
        self._check_headers(headers)
        path = self._normalized(raw_path, route)
        exchange.path = path
        access = await self._verify(route, exchange.method, raw_path, headers)
        exchange.access = access
        relative = path[len(route.prefix) - 1 :]
        if not route.rules.allows(access.scopes, exchange.method, relative):
            raise _RefusedError(
                403,
                "insufficient_scope",
                "the token's scope does not allow this method and path",
                challenge=(
                    'DPoP error="insufficient_scope", error_description='
                    f'"the token\'s scope does not allow this request", algs="{_ALGS}"'
                ),
            )
        self._check_rate(route, access)
        declared = self._declared_length(headers, route)
        await self._forward(
            scope,
            receive,
            send,
            route=route,
            relative=relative,
            headers=headers,
            declared=declared,
            exchange=exchange,
        )

    def _route_for(self, raw_path: bytes) -> _Route:
        for route in self._routes:
            if raw_path.startswith(route.prefix):
                return route
        raise _RefusedError(404, "not_found", "no route serves this path")

    def _check_headers(self, headers: list[Header]) -> None:
        limit = self.settings.proxy.max_header_bytes
        total = sum(len(name) + len(value) + 4 for name, value in headers)
        if total > limit:
            # RFC 6585 §5.
            raise _RefusedError(431, "invalid_request", "request headers are too large")
        try:
            check_request_framing(headers, max_header_bytes=limit)
        except HeaderRejectedError as error:
            raise _RefusedError(400, "invalid_request", error.detail) from None

    @staticmethod
    def _normalized(raw_path: bytes, route: _Route) -> str:
        try:
            path = normalize_path(raw_path)
        except PathRejectedError as error:
            raise _RefusedError(400, "invalid_request", error.detail) from None
        if not path.startswith(route.settings.prefix):
            raise _RefusedError(
                400, "invalid_request", "request path rejected: it leaves its route"
            )
        return path

    async def _verify(
        self, route: _Route, method: str, raw_path: bytes, headers: list[Header]
    ) -> VerifiedAccess:
        authorization = _header_values(headers, b"authorization")
        proofs = _header_values(headers, b"dpop")
        if not authorization:
            raise _RefusedError(
                401,
                "invalid_token",
                "missing access token",
                challenge=f'DPoP algs="{_ALGS}"',
            )
        if len(authorization) > 1 or len(proofs) > 1:
            # RFC 9449 §4.3 item 1: exactly one DPoP header.
            raise _token_refusal(
                DPoPProofError("more than one authorization or dpop header")
            )
        # RFC 9449 §4.3 item 9: the htu is this server's URL for the request, rebuilt
        # from the configured public URL; Host and X-Forwarded-* are the caller's.
        url = route.verifier.url_for(raw_path.decode("latin-1"))
        try:
            # Verification may fetch the JWKS or ask the broker: keep the loop free.
            access = await asyncio.to_thread(
                route.verifier.verify,
                method,
                url,
                authorization[0],
                proofs[0] if proofs else None,
            )
            await self._check_revocation(access, authorization[0])
        except GatepassError as error:
            raise _token_refusal(error) from None
        return access

    async def _check_revocation(
        self, access: VerifiedAccess, authorization: str
    ) -> None:
        feed = self.feed
        if feed is not None and feed.is_revoked(access.jti):
            raise TokenRevokedError("token is no longer active")
        if feed is not None and feed.healthy:
            return
        # No live push: ask the broker (cached for poll_interval_seconds), and fail
        # closed if it cannot answer.
        token = authorization.strip().partition(" ")[2].strip()
        await asyncio.to_thread(self.introspector.check, token)

    def _check_rate(self, route: _Route, access: VerifiedAccess) -> None:
        name = route.settings.name
        lease_bucket = self._lease_buckets[name]
        route_bucket = self._route_buckets[name]
        if not lease_bucket.take(access.jti):
            wait = lease_bucket.retry_after(access.jti)
        elif not route_bucket.take(name):
            wait = route_bucket.retry_after(name)
        else:
            return
        raise _RefusedError(
            429,
            "rate_limited",
            "too many requests; retry later",
            headers=((b"retry-after", str(max(math.ceil(wait), 1)).encode()),),
        )

    @staticmethod
    def _declared_length(headers: list[Header], route: _Route) -> int | None:
        values = _header_values(headers, b"content-length")
        if not values:
            return None
        # check_request_framing allowed exactly one plain decimal.
        length = int(values[0])
        if length > route.settings.max_body_bytes:
            raise _RefusedError(413, "invalid_request", "request body is too large")
        return length

    # ---------------------------------------------------------------- forwarding

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        route: _Route,
        relative: str,
        headers: list[Header],
        declared: int | None,
        exchange: _Exchange,
    ) -> None:
        forwarded = forward_request_headers(headers, allowed=route.allowed_headers)
        raw_query: bytes = scope.get("query_string", b"") or b""
        forwarded, query = route.compartment.apply(
            forwarded, raw_query.decode("latin-1")
        )
        chunked = any(
            value.lower() == b"chunked"
            for name, value in headers
            if name.lower() == b"transfer-encoding"
        )
        content: AsyncIterator[bytes] | bytes | None = None
        if declared is not None:
            content = self._body(receive, route, exchange)
            forwarded.append((b"content-length", str(declared).encode()))
        elif chunked:
            # No declared length: read the body whole first (it is bounded by the
            # route's limit), so an oversized one never reaches the upstream.
            content = await self._buffered_body(receive, route, exchange)
            if content is None:
                return
            forwarded.append((b"content-length", str(len(content)).encode()))
        url = route.settings.upstream_url(relative)
        if query:
            url = f"{url}?{query}"
        request = self._http.build_request(
            exchange.method,
            url,
            headers=forwarded,
            content=content,
            timeout=route.settings.timeout_seconds,
        )
        try:
            response = await self._http.send(request, stream=True)
        except _BodyTooLargeError:
            raise _RefusedError(
                413, "invalid_request", "request body is too large"
            ) from None
        except _ClientTimeoutError:
            raise _RefusedError(
                408, "invalid_request", "request body was not received in time"
            ) from None
        except _ClientGoneError:
            exchange.status = 499
            exchange.outcome = "client_closed"
            return
        except httpx.TimeoutException:
            raise _RefusedError(
                504, "upstream_timeout", "the upstream did not answer in time"
            ) from None
        except (httpx.HTTPError, OSError):
            raise _RefusedError(
                502, "bad_gateway", "the upstream could not be reached"
            ) from None
        try:
            await self._relay(response, send, route, exchange)
        finally:
            await response.aclose()

    async def _buffered_body(
        self, receive: Receive, route: _Route, exchange: _Exchange
    ) -> bytes | None:
        """Return the whole request body, or None if the client went away."""
        try:
            return b"".join(
                [chunk async for chunk in self._body(receive, route, exchange)]
            )
        except _BodyTooLargeError:
            raise _RefusedError(
                413, "invalid_request", "request body is too large"
            ) from None
        except _ClientTimeoutError:
            raise _RefusedError(
                408, "invalid_request", "request body was not received in time"
            ) from None
        except _ClientGoneError:
            exchange.status = 499
            exchange.outcome = "client_closed"
            return None

    async def _body(
        self, receive: Receive, route: _Route, exchange: _Exchange
    ) -> AsyncIterator[bytes]:
        limit = route.settings.max_body_bytes
        timeout = route.settings.timeout_seconds
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise _ClientTimeoutError from None
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            chunk: bytes = message.get("body", b"")
            exchange.bytes_in += len(chunk)
            if exchange.bytes_in > limit:
                raise _BodyTooLargeError
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def _relay(
        self,
        response: httpx.Response,
        send: Send,
        route: _Route,
        exchange: _Exchange,
    ) -> None:
        compartment = route.compartment
        headers = forward_response_headers(list(response.headers.raw))
        if any(
            compartment.contains_secret(name) or compartment.contains_secret(value)
            for name, value in headers
        ):
            self._leak_refused(route)
        status = response.status_code
        if status >= httpx.codes.BAD_REQUEST:
            # Error bodies are where upstreams echo what they were sent: read them
            # whole (bounded) and never pass on one that holds the secret.
            body = await self._bounded_body(response, route)
            if compartment.contains_secret(body):
                self._leak_refused(route)
            headers = [
                (name, value) for name, value in headers if name != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
            exchange.status = status
            exchange.outcome = "upstream_error"
            exchange.bytes_out = len(body)
            return
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        exchange.status = status
        # A success body streams; a window as long as the secret spans chunk
        # boundaries, and a body that turns out to hold the secret is cut off.
        tail = b""
        try:
            async for chunk in response.aiter_raw():
                if compartment.contains_secret(tail + chunk):
                    exchange.outcome = "secret_in_response"
                    _log.error(
                        "upstream response held the route's secret; cut off",
                        extra={"route": route.settings.name},
                    )
                    raise _AbortedError  # noqa: TRY301 - handled right below
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
                exchange.bytes_out += len(chunk)
                tail = (tail + chunk)[-256:]
        except _AbortedError:
            # Ending without the final message makes the server drop the connection,
            # so the agent sees a truncated answer rather than a complete one.
            raise
        except httpx.TimeoutException:
            exchange.outcome = "upstream_timeout"
            raise _AbortedError from None
        except (httpx.HTTPError, OSError):
            exchange.outcome = "bad_gateway"
            raise _AbortedError from None
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _bounded_body(self, response: httpx.Response, route: _Route) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > _MAX_ERROR_BODY:
                    raise _RefusedError(
                        502, "bad_gateway", "the upstream answer could not be relayed"
                    )
                parts.append(chunk)
        except httpx.TimeoutException:
            raise _RefusedError(
                504, "upstream_timeout", "the upstream did not answer in time"
            ) from None
        except (httpx.HTTPError, OSError):
            raise _RefusedError(
                502, "bad_gateway", "the upstream could not be reached"
            ) from None
        del route
        return b"".join(parts)

    @staticmethod
    def _leak_refused(route: _Route) -> None:
        _log.error(
            "upstream answer held the route's secret; replaced",
            extra={"route": route.settings.name},
        )
        raise _RefusedError(
            502, "bad_gateway", "the upstream answer could not be relayed"
        )

    # ------------------------------------------------------------------ answers

    @staticmethod
    async def _refuse(send: Send, refusal: _RefusedError) -> int:
        body = json.dumps(
            {"error": refusal.code, "error_description": refusal.description}
        ).encode()
        headers: list[Header] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if refusal.challenge is not None:
            headers.append(
                (b"www-authenticate", refusal.challenge.encode("latin-1", "replace"))
            )
        headers.extend(refusal.headers)
        # The connection is not reused after a refusal: the rest of a refused
        # request's body is never read, so the next bytes could be mistaken for
        # a request (the desync behind request smuggling).
        headers.append((b"connection", b"close"))
        with contextlib.suppress(OSError, RuntimeError):
            await send(
                {
                    "type": "http.response.start",
                    "status": refusal.status,
                    "headers": headers,
                }
            )
            await send({"type": "http.response.body", "body": body})
        return len(body)

    async def _own_endpoint(self, path: str, send: Send) -> None:
        if path == "/healthz":
            stream = self.feed.healthy if self.feed is not None else None
            body = json.dumps(
                {
                    "status": "ok",
                    "revocation": "stream" if stream else "poll",
                }
            ).encode()
            content_type = b"application/json"
        else:
            self._refresh_gauges()
            body = generate_latest(self.metrics.registry)
            content_type = CONTENT_TYPE_LATEST.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _refresh_gauges(self) -> None:
        metrics = self.metrics
        metrics.stream_up.set(1 if self.feed is not None and self.feed.healthy else 0)
        metrics.audit_dropped.set(self.shipper.dropped)
        metrics.audit_queued.set(self.shipper.queued)

    def _record(self, exchange: _Exchange) -> None:
        latency = time.perf_counter() - exchange.started
        access = exchange.access
        self.metrics.requests.labels(exchange.route, exchange.outcome).inc()
        self.metrics.latency.labels(exchange.route).observe(latency)
        self.shipper.submit(
            ProxyAuditEvent(
                jti=access.jti if access else "",
                task_id=access.task_id if access else "",
                agent_id=access.agent_id if access else "",
                route=exchange.route,
                method=exchange.method,
                # The checked path, or the raw one when it never normalised; the
                # query string (which may carry credentials) is never recorded.
                path=exchange.path or exchange.raw_path,
                status=exchange.status,
                bytes_in=exchange.bytes_in,
                bytes_out=exchange.bytes_out,
                latency_ms=round(latency * 1000, 3),
                outcome=_audit_outcome(exchange),
            )
        )
        _log.info(
            "proxied %s %s -> %s (%s)",
            exchange.method,
            exchange.route,
            exchange.status,
            exchange.outcome,
        )


def _audit_outcome(exchange: _Exchange) -> str:
    # The broker's audit log knows ok / deny / error; the precise code is in the
    # status, the metrics and the proxy's log line.
    if exchange.outcome in {"ok", "upstream_error"}:
        return "ok"
    if exchange.status >= httpx.codes.INTERNAL_SERVER_ERROR or exchange.outcome in {
        "aborted",
        "secret_in_response",
        "client_closed",
    }:
        return "error"
    return "deny"


class _AbortedError(Exception):
    """The response was started and cannot be completed; drop the connection."""


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
