"""The broker's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatepass.api.errors import handle_gatepass_error
from gatepass.api.routes.admin import admin_routes
from gatepass.api.routes.approvals import approval_routes
from gatepass.api.routes.console_links import console_link_routes
from gatepass.api.routes.credentials import credential_routes
from gatepass.api.routes.evidence import evidence_routes
from gatepass.api.routes.health import health_routes
from gatepass.api.routes.oauth import TokenEndpointApp, oauth_routes
from gatepass.api.routes.operators import operator_routes
from gatepass.api.routes.proxy_support import proxy_support_routes
from gatepass.api.routes.signals import signal_routes
from gatepass.api.routes.ssf import ssf_routes
from gatepass.broker import Runtime, run_jobs
from gatepass.console import console_mount
from gatepass.errors import GatepassError
from gatepass.observability import Metrics, get_logger

__all__ = ["create_app"]

_log = get_logger("gatepass.api")
_ENDPOINTS = {
    "/token": "token",
    "/introspect": "introspect",
    "/revoke": "revoke",
    "/jwks.json": "jwks",
    "/.well-known/oauth-authorization-server": "metadata",
}


def _endpoint_label(path: str) -> str:
    # Bounded label values: a fixed name per route family, never an id.
    if path in _ENDPOINTS:
        return _ENDPOINTS[path]
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "v1":
        return f"v1_{parts[2]}"[:32] if parts[2].isidentifier() else "other"
    return "other"


class _Timing:
    """Pure ASGI middleware recording request latency by endpoint and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.request_seconds.labels(
                endpoint=_endpoint_label(scope["path"]), outcome=f"{status // 100}xx"
            ).observe(time.perf_counter() - started)


class _TokenFastPath:
    """
    Pure ASGI dispatch: ``POST /token`` goes straight to its endpoint.

    Every issuance is a ``POST /token``; routing it through the framework's
    middleware and router costs more than parsing its form. Everything else, and
    any other method on ``/token`` (405), goes to the framework app. An unexpected
    error answers the same ``server_error`` JSON as the framework's handler and
    is re-raised, as the framework does, so the server logs it.
    """

    def __init__(self, app: ASGIApp, token: TokenEndpointApp) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != "/token"
            or scope["method"] != "POST"
        ):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.token(scope, receive, tracked)
        except Exception as exc:
            if not started:
                await (await _unexpected(None, exc))(scope, receive, send)
            raise


async def _http_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover - registration contract
        raise exc
    code = {404: "not_found", 405: "invalid_request"}.get(
        exc.status_code, "invalid_request"
    )
    return JSONResponse(
        {"error": code, "error_description": str(exc.detail).lower()},
        status_code=exc.status_code,
    )


async def _unexpected(_request: Request | None, exc: Exception) -> Response:
    # Never echo the exception: its text may hold request data.
    _log.error("unhandled error", error=type(exc).__name__)
    return JSONResponse(
        {"error": "server_error", "error_description": "internal error"},
        status_code=500,
    )


def create_app(runtime: Runtime, *, background_jobs: bool = True) -> ASGIApp:
    """
    Build the ASGI application around a runtime.

    Args:
        runtime: the assembled broker.
        background_jobs: run sweeping, checkpoints and policy reload in the app's
            lifespan (tests that drive time by hand turn this off).
    """
    broker = runtime.broker

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await broker.health.check_engines()
        if not background_jobs:
            yield
            return
        async with anyio.create_task_group() as group:
            group.start_soon(run_jobs, broker)
            yield
            group.cancel_scope.cancel()
        try:
            await broker.audit.checkpoint()
        except GatepassError as error:
            # A broker stopping with its store down, or with the audit alarm up,
            # still stops; the next start checkpoints (or seals) as it should.
            _log.error("checkpoint at shutdown failed", detail=error.detail)
        await broker.health.close_engines()

    app = Starlette(
        routes=[
            *oauth_routes,
            *credential_routes,
            *proxy_support_routes,
            *admin_routes,
            *operator_routes,
            *evidence_routes,
            *approval_routes,
            *health_routes,
            *ssf_routes,
            # The web console (issue 13): its own error pages and headers.
            *console_link_routes,
            *console_mount(broker),
            *signal_routes,
        ],
        exception_handlers={
            GatepassError: handle_gatepass_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.broker = broker
    token_endpoint = TokenEndpointApp(
        broker, asyncio.Semaphore(runtime.settings.server.max_inflight_token_requests)
    )
    app.state.token_endpoint = token_endpoint
    return _Timing(_TokenFastPath(app, token_endpoint), runtime.metrics)
