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
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gatepass.api.bodies import read_json
from gatepass.audit import AuditEntry
from gatepass.broker import Runtime
from gatepass.errors import InvalidRequestError
from gatepass.models import Lease
from gatepass.store import ApiRole, audit_log
from gatepass.store import leases as lease_rows

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["proxy_support_routes"]

_STREAM_ROLES = frozenset({ApiRole.ADMIN, ApiRole.PROXY, ApiRole.INTROSPECT})
_POLL_SECONDS = 1.0
_KEEPALIVE_EVERY = 15
_MAX_EVENTS = 500
_EVENT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "jti": str,
    "task_id": str,
    "agent_id": str,
    "route": str,
    "method": str,
    "path": str,
    "status": int,
    "bytes_in": int,
    "bytes_out": int,
    "latency_ms": (int, float),
    "outcome": str,
    "error": str,
}
_OUTCOMES = frozenset({"ok", "deny", "error"})


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


def _revoked_since(cursor: dt.datetime) -> Callable[[Connection], list[Lease]]:
    return lambda conn: lease_rows.revoked_since(conn, cursor, limit=_MAX_EVENTS)


def _event(lease: Lease) -> str:
    revoked_at = (lease.revoked_at or lease.issued_at).isoformat()
    data = {"handle": lease.handle, "task_id": lease.task_id, "revoked_at": revoked_at}
    return f"id: {revoked_at}\ndata: {json.dumps(data)}\n\n"


async def revocation_stream(request: Request) -> Response:
    """Stream revoked access tokens (their ``jti``) as Server-Sent Events."""
    runtime: Runtime = request.app.state.runtime
    await runtime.admin.authenticate(
        request.headers.get("authorization"), roles=_STREAM_ROLES
    )
    broker = runtime.broker
    cursor = _since(request, broker.clock.now())

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        quiet = 0
        yield ": gatepass revocations\n\n"
        while True:
            found = await broker.database.read(_revoked_since(cursor))
            for lease in found:
                yield _event(lease)
                cursor = max(cursor, lease.revoked_at or cursor)
            if found:
                quiet = 0
                continue
            quiet += 1
            if quiet % _KEEPALIVE_EVERY == 0:
                yield ": keepalive\n\n"
            await broker.wait_for_revocations(_POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _validate_events(payload: object) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or set(payload) != {"events"}:
        raise InvalidRequestError('body must be {"events": [...]}')
    events = payload["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= _MAX_EVENTS:
        raise InvalidRequestError(f"events must be a list of 1 to {_MAX_EVENTS}")
    clean: list[dict[str, Any]] = []
    for event in events:
        if not isinstance(event, dict) or not set(event) <= set(_EVENT_FIELDS):
            raise InvalidRequestError("an event has unknown or malformed fields")
        for name, value in event.items():
            kind = _EVENT_FIELDS[name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise InvalidRequestError(f"event field {name} has the wrong type")
            if isinstance(value, str) and len(value) > 512:
                raise InvalidRequestError(f"event field {name} is too long")
        if event.get("outcome", "ok") not in _OUTCOMES:
            raise InvalidRequestError("event outcome must be ok, deny or error")
        clean.append({k: v for k, v in event.items() if v != ""})
    return clean


async def proxy_audit(request: Request) -> Response:
    """Append the proxy's records of proxied calls to the audit log."""
    runtime: Runtime = request.app.state.runtime
    caller = await runtime.admin.authenticate(
        request.headers.get("authorization"),
        roles=frozenset({ApiRole.PROXY, ApiRole.ADMIN}),
    )
    events = _validate_events(
        await read_json(request, runtime.settings.server.max_body_bytes)
    )
    now = runtime.broker.clock.now()
    entries = [
        AuditEntry(
            at=now,
            kind="proxy.call",
            outcome=str(event.get("outcome", "ok")),
            actor=str(event.get("agent_id") or "unknown")[:80],
            subject=str(event.get("task_id", ""))[:80],
            data={**event, "proxy": caller.token_id},
        )
        for event in events
    ]

    def append_all(conn: Any) -> None:  # noqa: ANN401 - a SQLAlchemy connection
        for entry in entries:
            audit_log.append_audit(conn, entry)

    await runtime.database.write(append_all)
    return JSONResponse({"accepted": len(entries)}, status_code=202)


proxy_support_routes = [
    Route("/v1/revocations/stream", revocation_stream, methods=["GET"]),
    Route("/v1/audit/proxy", proxy_audit, methods=["POST"]),
]
