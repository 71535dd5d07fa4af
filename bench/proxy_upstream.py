"""A small upstream for bench/proxy.py: a tickets API that requires an API key."""

from __future__ import annotations

import hmac
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_KEY = os.environ.get("BENCH_UPSTREAM_KEY", "")


async def tickets(request: Request) -> Response:
    """List tickets when the API key is right."""
    given = request.headers.get("x-api-key", "")
    if not _KEY or not hmac.compare_digest(given, _KEY):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return JSONResponse({"tickets": [{"id": 1, "title": "printer on fire"}]})


async def healthz(_request: Request) -> Response:
    """Answer while the process runs."""
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/v1/tickets", tickets, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
