"""
The admin API of operators and API tokens, under ``/v1/admin/``.

A token is in an answer exactly once, when it is made (``201``, ``Cache-Control:
no-store``); lists and records never hold a token or its hash. ``GET
/v1/admin/whoami`` tells any authenticated caller who the broker takes it for.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_body, read_json
from gatepass.api.errors import NO_STORE
from gatepass.api.inputs import validated
from gatepass.api.operator_inputs import (
    OperatorQuery,
    operator_registration,
    operator_token_description,
    service_token_request,
)
from gatepass.api.routes.access import authenticated
from gatepass.api.shapes import api_token_json, operator_json
from gatepass.broker import Broker, Caller, IssuedToken, Permission
from gatepass.errors import GatepassError, InvalidRequestError

__all__ = ["issued_json", "operator_routes", "whoami_json"]

_ONCE = "store this token now: it will not be shown again"


def _name(request: Request) -> str:
    value = str(request.path_params["name"])
    if len(value) > 64:
        raise InvalidRequestError("name is too long")
    return value


def issued_json(issued: IssuedToken) -> dict[str, Any]:
    """Return the one answer that holds a token: the token, its record, a warning."""
    body: dict[str, Any] = {
        "token": issued.token.reveal(),
        "token_id": issued.record.id,
        "record": api_token_json(issued.record),
        "note": _ONCE,
    }
    if issued.operator is not None:
        body["operator"] = operator_json(issued.operator)
    return body


def whoami_json(caller: Caller) -> dict[str, Any]:
    """Return who the broker takes a caller for (never the token)."""
    operator = caller.operator
    return {
        "actor": caller.actor,
        "token_id": caller.token_id,
        "kind": "service" if operator is None else "operator",
        "token_role": caller.role.value,
        "name": None if operator is None else operator.name,
        "roles": [] if operator is None else sorted(r.value for r in operator.roles),
        "permissions": sorted(permission.value for permission in caller.permissions),
        "groups": [] if operator is None else sorted(operator.groups),
        "tenants": [] if operator is None else sorted(operator.tenants),
    }


async def add_operator(request: Request, broker: Broker, caller: Caller) -> Response:
    """Add an operator; the answer holds their first token, once."""
    try:
        payload = await read_json(request, broker.settings.server.max_body_bytes)
        registration = operator_registration(payload)
    except GatepassError as error:
        await broker.operators.reject(caller, "operator.add", error)
        raise
    issued = await broker.operators.add(caller, registration)
    return JSONResponse(issued_json(issued), status_code=201, headers=NO_STORE)


async def list_operators(request: Request, broker: Broker, _caller: Caller) -> Response:
    """List operators."""
    query = validated(OperatorQuery, request.query_params)
    found = await broker.operators.find(status=query.status)
    return JSONResponse({"items": [operator_json(operator) for operator in found]})


async def show_operator(request: Request, broker: Broker, _caller: Caller) -> Response:
    """Show one operator with their tokens (ids and dates only)."""
    operator = await broker.operators.get(_name(request))
    body = operator_json(operator)
    tokens = await broker.api_tokens.find(operator_id=operator.id)
    body["tokens"] = [api_token_json(token) for token in tokens]
    return JSONResponse(body)


async def disable_operator(
    request: Request, broker: Broker, caller: Caller
) -> Response:
    """Disable an operator; every token they hold is revoked."""
    await read_body(request, broker.settings.server.max_body_bytes)
    operator = await broker.operators.disable(caller, _name(request))
    return JSONResponse(operator_json(operator))


async def operator_token(request: Request, broker: Broker, caller: Caller) -> Response:
    """Make another token for an operator; the answer holds it, once."""
    limit = broker.settings.server.max_body_bytes
    try:
        if request.headers.get("content-type"):
            description = operator_token_description(await read_json(request, limit))
        else:
            await read_body(request, limit)
            description = ""
    except GatepassError as error:
        await broker.operators.reject(caller, "token.create", error)
        raise
    issued = await broker.operators.new_token(
        caller, _name(request), description=description
    )
    return JSONResponse(issued_json(issued), status_code=201, headers=NO_STORE)


async def list_tokens(_request: Request, broker: Broker, _caller: Caller) -> Response:
    """List API tokens: ids, roles, owners and dates, never a token or hash."""
    found = await broker.api_tokens.find()
    return JSONResponse({"items": [api_token_json(token) for token in found]})


async def create_token(request: Request, broker: Broker, caller: Caller) -> Response:
    """Make a service token (introspect, proxy or admin); the answer holds it, once."""
    try:
        payload = await read_json(request, broker.settings.server.max_body_bytes)
        token_request = service_token_request(payload)
    except GatepassError as error:
        await broker.api_tokens.reject(caller, "token.create", error)
        raise
    issued = await broker.api_tokens.create(caller, token_request)
    return JSONResponse(issued_json(issued), status_code=201, headers=NO_STORE)


async def revoke_token(request: Request, broker: Broker, caller: Caller) -> Response:
    """Revoke an API token; it stops working at once."""
    await read_body(request, broker.settings.server.max_body_bytes)
    token_id = str(request.path_params["token_id"])
    if len(token_id) > 64:
        raise InvalidRequestError("token_id is too long")
    token = await broker.api_tokens.revoke(caller, token_id)
    return JSONResponse(api_token_json(token))


async def whoami(_request: Request, _broker: Broker, caller: Caller) -> Response:
    """Tell the caller who the broker takes them for."""
    return JSONResponse(whoami_json(caller))


_ADMIN = Permission.ADMINISTER
_AUDIT = Permission.AUDIT

operator_routes = [
    Route(
        "/v1/admin/operators",
        authenticated(add_operator, needs=_ADMIN),
        methods=["POST"],
    ),
    Route(
        "/v1/admin/operators",
        authenticated(list_operators, needs=_AUDIT),
        methods=["GET"],
    ),
    Route(
        "/v1/admin/operators/{name}",
        authenticated(show_operator, needs=_AUDIT),
        methods=["GET"],
    ),
    Route(
        "/v1/admin/operators/{name}/disable",
        authenticated(disable_operator, needs=_ADMIN),
        methods=["POST"],
    ),
    Route(
        "/v1/admin/operators/{name}/tokens",
        authenticated(operator_token, needs=_ADMIN),
        methods=["POST"],
    ),
    Route(
        "/v1/admin/tokens", authenticated(list_tokens, needs=_AUDIT), methods=["GET"]
    ),
    Route(
        "/v1/admin/tokens", authenticated(create_token, needs=_ADMIN), methods=["POST"]
    ),
    Route(
        "/v1/admin/tokens/{token_id}/revoke",
        authenticated(revoke_token, needs=_ADMIN),
        methods=["POST"],
    ),
    Route("/v1/admin/whoami", authenticated(whoami, needs=None), methods=["GET"]),
]
