"""
The SSF transmitter's HTTP face (OpenID SSF 1.0, RFC 8935, RFC 8936).

``GET /.well-known/ssf-configuration`` is public. Stream management
(``/v1/ssf/streams``, ``/v1/ssf/status``, ``/v1/ssf/verify``) and polling
(``POST /v1/ssf/poll/{stream_id}``) need an ``ssf_receiver`` API token, which
sees only its own streams; registering receivers (``/v1/admin/ssf/receivers``)
needs ``administer``, and listing every stream (``/v1/admin/ssf/streams``)
``audit``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_json
from gatepass.api.routes.access import authenticated
from gatepass.broker import Broker, Caller, Permission, parse_poll_request
from gatepass.errors import InvalidRequestError

__all__ = ["ssf_routes"]

_NO_STORE = {"Cache-Control": "no-store"}


def _stream_id(request: Request) -> str | None:
    values = request.query_params.getlist("stream_id")
    if len(values) > 1:
        raise InvalidRequestError("stream_id must be given once")
    if values and not values[0]:
        raise InvalidRequestError("stream_id must not be empty")
    return values[0] if values else None


async def _body(request: Request, broker: Broker) -> object:
    return await read_json(request, broker.settings.server.max_body_bytes)


async def configuration(request: Request) -> Response:
    """Serve the transmitter configuration metadata (SSF 1.0 §7.1)."""
    broker: Broker = request.app.state.broker
    return JSONResponse(broker.ssf_streams.configuration())


async def _streams(request: Request, broker: Broker, caller: Caller) -> Response:
    """Create, read, update, replace or delete the caller's streams."""
    streams = broker.ssf_streams
    if request.method == "GET":
        shown = await streams.read(caller, _stream_id(request))
        return JSONResponse(shown, headers=_NO_STORE)
    if request.method == "DELETE":
        stream_id = _stream_id(request)
        if stream_id is None:
            raise InvalidRequestError("stream_id is required")
        await streams.delete(caller, stream_id)
        return Response(status_code=204)
    body = await _body(request, broker)
    if request.method == "POST":
        created = await streams.create(caller, body)
        return JSONResponse(created, status_code=201, headers=_NO_STORE)
    updated = await streams.update(caller, body, replace=request.method == "PUT")
    return JSONResponse(updated, headers=_NO_STORE)


async def _status(request: Request, broker: Broker, caller: Caller) -> Response:
    """Read or change one of the caller's streams' status."""
    if request.method == "GET":
        stream_id = _stream_id(request)
        if stream_id is None:
            raise InvalidRequestError("stream_id is required")
        return JSONResponse(await broker.ssf_streams.status(caller, stream_id))
    body = await _body(request, broker)
    return JSONResponse(await broker.ssf_streams.set_status(caller, body))


async def _verify(request: Request, broker: Broker, caller: Caller) -> Response:
    """Ask for a verification event on one of the caller's streams."""
    await broker.ssf_streams.request_verification(caller, await _body(request, broker))
    return Response(status_code=204)


async def _poll(request: Request, broker: Broker, caller: Caller) -> Response:
    """Answer an RFC 8936 poll."""
    # RFC 8936 §2.4: an empty body is a plain poll (read_json answers {}).
    body = await _body(request, broker)
    polled = await broker.ssf_delivery.poll(
        caller, request.path_params["stream_id"], parse_poll_request(body)
    )
    return JSONResponse(polled, headers=_NO_STORE)


async def _receivers(request: Request, broker: Broker, caller: Caller) -> Response:
    """Register an SSF receiver (a token limited to some targets) or list them."""
    if request.method == "GET":
        found = await broker.ssf_streams.receivers()
        return JSONResponse(
            {
                "receivers": [
                    {
                        "token_id": receiver.token_id,
                        "description": receiver.description,
                        "audiences": list(receiver.audiences),
                        "created_at": receiver.created_at.isoformat(),
                        "revoked": receiver.revoked,
                    }
                    for receiver in found
                ]
            }
        )
    body = await _body(request, broker)
    if not isinstance(body, dict):
        raise InvalidRequestError("body must be a json object")
    description = body.get("description")
    audiences = body.get("audiences")
    if not isinstance(description, str):
        raise InvalidRequestError("description must be a string")
    if not isinstance(audiences, list) or not all(
        isinstance(a, str) for a in audiences
    ):
        raise InvalidRequestError("audiences must be a list of target names or uris")
    issued, receiver = await broker.ssf_streams.add_receiver(
        caller, description, audiences
    )
    return JSONResponse(
        {
            "token": issued.token.reveal(),
            "token_id": receiver.token_id,
            "audiences": list(receiver.audiences),
        },
        status_code=201,
        headers=_NO_STORE,
    )


async def _overview(_request: Request, broker: Broker, _caller: Caller) -> Response:
    """List every stream for operators."""
    return JSONResponse({"items": await broker.ssf_streams.overview()})


_RECEIVE = Permission.SSF_RECEIVE
ssf_routes = [
    Route("/.well-known/ssf-configuration", configuration, methods=["GET"]),
    Route(
        "/v1/ssf/streams",
        authenticated(_streams, needs=_RECEIVE),
        methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
    ),
    Route(
        "/v1/ssf/status",
        authenticated(_status, needs=_RECEIVE),
        methods=["GET", "POST"],
    ),
    Route("/v1/ssf/verify", authenticated(_verify, needs=_RECEIVE), methods=["POST"]),
    Route(
        "/v1/ssf/poll/{stream_id}",
        authenticated(_poll, needs=_RECEIVE),
        methods=["POST"],
    ),
    Route(
        "/v1/admin/ssf/streams",
        authenticated(_overview, needs=Permission.AUDIT),
        methods=["GET"],
    ),
    Route(
        "/v1/admin/ssf/receivers",
        authenticated(_receivers, needs=Permission.ADMINISTER),
        methods=["GET", "POST"],
    ),
]
