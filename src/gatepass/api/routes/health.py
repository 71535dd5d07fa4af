"""Liveness, readiness and metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.errors import RETRY_AFTER_SECONDS
from gatepass.broker import Runtime
from gatepass.errors import StoreError

__all__ = ["health_routes"]


async def healthz(_request: Request) -> Response:
    """Answer while the process runs."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Answer 200 when the store answers, the broker is unsealed and has policies."""
    runtime: Runtime = request.app.state.runtime
    try:
        await runtime.database.read(lambda conn: conn.exec_driver_sql("SELECT 1"))
    except StoreError:
        return JSONResponse(
            {"status": "unavailable", "reason": "store unavailable"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    unready = runtime.seal.unready()
    if unready is not None:
        code, reason = unready
        return JSONResponse(
            {"status": "unavailable", "error": code, "reason": reason}, status_code=503
        )
    if runtime.broker.policies.current.policy_count == 0:
        return JSONResponse(
            {"status": "unavailable", "reason": "no policies loaded"}, status_code=503
        )
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Serve Prometheus metrics."""
    runtime: Runtime = request.app.state.runtime
    body, content_type = runtime.metrics.render()
    return Response(body, media_type=content_type)


health_routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
