"""
Context signals: the SSF push receiver and gatepass's own signals.

``POST /ssf/push`` receives Security Event Tokens (RFC 8935): 202 with an empty
body when accepted, else the RFC 8935 §2.3 error ``{"err": ..., "description":
...}`` (400; 401 for ``authentication_failed``, 403 for ``access_denied``).
``POST /v1/signals`` sets or clears one of gatepass's own signals (permission
``signal``); ``GET /v1/signals`` lists those in force (``audit``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_body, read_json
from gatepass.api.inputs import validated
from gatepass.api.routes.access import authenticated
from gatepass.api.signal_inputs import SignalBody
from gatepass.broker import Broker, Caller, Permission
from gatepass.errors import GatepassError, PayloadTooLargeError, SecurityEventError

__all__ = ["signal_routes"]

# RFC 8935 does not bound a SET; a JWS of gatepass's own size limit is plenty.
_MAX_SET_BYTES = 16 * 1024


def _set_error(error: SecurityEventError) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gatepass-ssf"'
    return JSONResponse(
        {"err": error.err, "description": error.detail},
        status_code=error.status,
        headers=headers,
    )


async def ssf_push(request: Request) -> Response:
    """Receive one pushed SET (RFC 8935)."""
    broker: Broker = request.app.state.broker
    try:
        body = await read_body(request, _MAX_SET_BYTES)
    except PayloadTooLargeError:
        return _set_error(SecurityEventError("invalid_request", "set is too large"))
    except GatepassError as error:
        return _set_error(SecurityEventError("invalid_request", error.detail))
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    try:
        await broker.context_signals.receive(
            text,
            authorization=request.headers.get("authorization"),
            content_type=request.headers.get("content-type"),
        )
    except SecurityEventError as error:
        return _set_error(error)
    return Response(status_code=202)


async def send_signal(request: Request, broker: Broker, caller: Caller) -> Response:
    """Set or clear one of gatepass's own signals."""
    try:
        payload = await read_json(request, broker.settings.server.max_body_bytes)
        body = validated(SignalBody, payload)
    except GatepassError as error:
        await broker.context_signals.reject(caller, error)
        raise
    outcome = await broker.context_signals.send(caller, body.to_request())
    return JSONResponse(outcome.to_json())


async def list_signals(_request: Request, broker: Broker, _caller: Caller) -> Response:
    """List the signals in force."""
    return JSONResponse({"signals": await broker.context_signals.in_force()})


signal_routes = [
    Route("/ssf/push", ssf_push, methods=["POST"]),
    Route(
        "/v1/signals",
        authenticated(send_signal, needs=Permission.SIGNAL),
        methods=["POST"],
    ),
    Route(
        "/v1/signals",
        authenticated(list_signals, needs=Permission.AUDIT),
        methods=["GET"],
    ),
]
