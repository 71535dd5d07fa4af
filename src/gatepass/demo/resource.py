"""
The quickstart's demo resource server: a tiny tickets API behind gatepass.

``GET /`` says what it is, ``GET /tickets`` needs ``read`` and ``POST /tickets``
needs ``write``. Every other request needs a valid token too. Tokens are checked
with :class:`~gatepass.verify.GatepassMiddleware` against the broker's JWKS, and
revocation through introspection on every request, so closing a task is seen at
once (a real server would cache for a few seconds).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.config import Settings, TargetSettings
from gatepass.errors import ConfigurationError
from gatepass.secret import Secret
from gatepass.verify import (
    ASGIApp,
    GatepassMiddleware,
    Introspector,
    ResourceVerifier,
    verified_access,
)

__all__ = ["create_resource_app", "demo_target"]

_MAX_TICKETS = 1000
_MAX_TITLE = 200
_SCOPES = {("GET", "/tickets"): "read", ("POST", "/tickets"): "write"}


def demo_target(settings: Settings) -> TargetSettings:
    """
    Return the target the demo resource server plays.

    Args:
        settings: the broker's settings.

    Raises:
        ConfigurationError: ``demo.resource_target`` names no configured target.
    """
    for target in settings.targets:
        if target.name == settings.demo.resource_target:
            return target
    raise ConfigurationError(
        f"demo.resource_target {settings.demo.resource_target!r} is not a target"
    )


def _api_token_reader(path: Path) -> Secret:
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError:
        raise ConfigurationError("introspection token file is not readable") from None


def _required_scope(method: str, path: str) -> str | None:
    return _SCOPES.get((method, path))


def _invalid(detail: str) -> Response:
    return JSONResponse(
        {"error": "invalid_request", "error_description": detail}, status_code=400
    )


def create_resource_app(settings: Settings) -> ASGIApp:
    """
    Build the demo resource server for the quickstart.

    Nothing is fetched or read at build time: the JWKS and the introspection token
    are loaded on the first request, because the broker may still be starting.

    Args:
        settings: the broker's settings; the target named by
            ``demo.resource_target`` is the one served.

    Returns:
        The ASGI application.

    Raises:
        ConfigurationError: the demo target is not configured.
    """
    target = demo_target(settings)
    issuer = settings.server.issuer
    token_file = settings.server.state_dir / "introspect.token"
    verifier = ResourceVerifier(
        issuer=issuer,
        audience=target.uri,
        jwks_uri=f"{issuer}/jwks.json",
        introspection=Introspector(
            f"{issuer}/introspect",
            lambda: _api_token_reader(token_file),
            cache_ttl=dt.timedelta(0),
        ),
        public_url=target.uri,
    )
    tickets: list[dict[str, Any]] = []

    async def home(_request: Request) -> Response:
        return JSONResponse(
            {
                "service": "gatepass demo tickets api",
                "target": target.name,
                "uri": target.uri,
                "issuer": issuer,
                "endpoints": {"GET /tickets": "read", "POST /tickets": "write"},
            }
        )

    async def list_tickets(_request: Request) -> Response:
        return JSONResponse({"items": tickets})

    async def create_ticket(request: Request) -> Response:
        access = verified_access(request.scope)
        try:
            body = await request.json()
        except ValueError:
            return _invalid("body must be json")
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not 0 < len(title.strip()) <= _MAX_TITLE:
            return _invalid("title must be a string of 1 to 200 characters")
        if len(tickets) >= _MAX_TICKETS:
            return _invalid("the demo holds at most 1000 tickets")
        ticket = {
            "id": len(tickets) + 1,
            "title": title.strip(),
            "created_by": access.agent_id,
            "task_id": access.task_id,
        }
        tickets.append(ticket)
        return JSONResponse(ticket, status_code=201)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        verifier.close()

    app = Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/tickets", list_tickets, methods=["GET"]),
            Route("/tickets", create_ticket, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    return GatepassMiddleware(
        app,
        verifier,
        required_scope=_required_scope,
        public_paths=("/",),
    )
