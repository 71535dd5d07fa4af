"""Liveness, readiness and metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.errors import RETRY_AFTER_SECONDS
from gatepass.broker import Broker

__all__ = ["health_routes"]


async def healthz(_request: Request) -> Response:
    """Answer while the process runs."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Answer 200 when the store answers, the broker is unsealed and has policies."""
    broker: Broker = request.app.state.broker
    readiness = await broker.health.readiness()
    if readiness.ready:
        ready: dict[str, object] = {"status": "ready"}
        if readiness.identity is not None:
            ready["identity"] = readiness.identity
        return JSONResponse(ready)
    body: dict[str, str] = {"status": "unavailable", "reason": readiness.reason or ""}
    headers: dict[str, str] = {}
    if readiness.error == "store_unavailable":
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif readiness.error in {"sealed", "audit_integrity"}:
        body["error"] = readiness.error
    return JSONResponse(body, status_code=503, headers=headers)


async def metrics(request: Request) -> Response:
    """Serve Prometheus metrics."""
    broker: Broker = request.app.state.broker
    body, content_type = broker.health.metrics()
    return Response(body, media_type=content_type)


health_routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
