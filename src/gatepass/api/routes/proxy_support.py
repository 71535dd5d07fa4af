"""
What the credential-injecting proxy (and other verifiers) need from the broker.

``GET /v1/revocations/stream`` pushes revoked access tokens as Server-Sent Events
the moment this broker revokes them (and polls the store every second for those
another replica revoked). ``POST /v1/audit/proxy`` appends the proxy's records of
proxied calls to the tamper-evident audit log.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gatepass.api.bodies import read_json
from gatepass.api.inputs import proxy_calls
from gatepass.broker import Broker, Permission
from gatepass.errors import InvalidRequestError
from gatepass.models import Lease

__all__ = ["proxy_support_routes"]

_POLL_SECONDS = 1.0
_KEEPALIVE_EVERY = 15


def _since(request: Request, now: dt.datetime) -> dt.datetime:
    raw = request.query_params.get("since") or request.headers.get("last-event-id")
    if raw is None:
        return now
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidRequestError("since must be an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise InvalidRequestError("since must carry a time zone")
    return moment


def _event(lease: Lease) -> str:
    revoked_at = (lease.revoked_at or lease.issued_at).isoformat()
    data = {"handle": lease.handle, "task_id": lease.task_id, "revoked_at": revoked_at}
    return f"id: {revoked_at}\ndata: {json.dumps(data)}\n\n"


async def revocation_stream(request: Request) -> Response:
    """Stream revoked access tokens (their ``jti``) as Server-Sent Events."""
    broker: Broker = request.app.state.broker
    await broker.callers.authenticate(
        request.headers.get("authorization"), needs=Permission.INTROSPECT
    )
    feed = broker.feed
    cursor = _since(request, feed.now())

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        quiet = 0
        yield ": gatepass revocations\n\n"
        while True:
            watch = feed.watch()  # before the read: see RevocationFeed.watch
            found = await feed.revoked_since(cursor)
            for lease in found:
                yield _event(lease)
                cursor = max(cursor, lease.revoked_at or cursor)
            if found:
                quiet = 0
                continue
            quiet += 1
            if quiet % _KEEPALIVE_EVERY == 0:
                yield ": keepalive\n\n"
            await feed.wait(_POLL_SECONDS, watch)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def proxy_audit(request: Request) -> Response:
    """Append the proxy's records of proxied calls to the audit log."""
    broker: Broker = request.app.state.broker
    caller = await broker.callers.authenticate(
        request.headers.get("authorization"), needs=Permission.PROXY
    )
    calls = proxy_calls(await read_json(request, broker.settings.server.max_body_bytes))
    # The proxy refused these as revoked: someone still holds and uses them.
    await broker.reuse.observe_proxy_calls(calls)
    accepted = await broker.audit.record_proxy_calls(caller, calls)
    return JSONResponse({"accepted": accepted}, status_code=202)


proxy_support_routes = [
    Route("/v1/revocations/stream", revocation_stream, methods=["GET"]),
    Route("/v1/audit/proxy", proxy_audit, methods=["POST"]),
]
