"""
The approver's admin API: ``/v1/admin/approvals``.

Approvers (operators with the ``approver`` role) see the approvals of their tenants
and groups and vote; admins and auditors see every approval and never vote (a vote
is a named human's). Every vote needs a reason; refusals are audited by the broker.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_json
from gatepass.api.inputs import validated
from gatepass.api.routes.access import authenticated
from gatepass.broker import Broker, Caller, Permission, Viewer
from gatepass.errors import AccessDeniedError, InvalidRequestError
from gatepass.ids import is_id
from gatepass.models import ApprovalState, VoteChoice

__all__ = ["approval_routes"]

_STATES = {state.value for state in ApprovalState}


class _VoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[StrictStr, Field(min_length=1, max_length=500)]


def _viewer(caller: Caller) -> Viewer:
    if not (caller.may(Permission.AUDIT) or caller.may(Permission.APPROVE)):
        raise AccessDeniedError(f"{caller.describe()} may not read approvals")
    return Viewer(
        actor=caller.actor,
        operator=caller.operator,
        sees_all=caller.may(Permission.AUDIT),
    )


def _approval_id(request: Request) -> str:
    value = str(request.path_params["approval_id"])
    if not is_id(value, "apr"):
        raise InvalidRequestError("approval id must look like apr_...")
    return value


async def list_approvals(request: Request, broker: Broker, caller: Caller) -> Response:
    """List approvals (``?state=pending`` by default; ``state=all`` for every one)."""
    state = request.query_params.get("state", "pending")
    if state != "all" and state not in _STATES:
        raise InvalidRequestError(
            f"state must be all or one of {', '.join(sorted(_STATES))}"
        )
    raw_limit = request.query_params.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
        raise InvalidRequestError("limit must be a whole number from 1 to 500")
    found = await broker.approvals.list(
        _viewer(caller),
        states=None if state == "all" else (state,),
        limit=int(raw_limit),
    )
    return JSONResponse({"approvals": found})


async def show_approval(request: Request, broker: Broker, caller: Caller) -> Response:
    """Show one approval: the broker's facts, then the agent's words."""
    shown = await broker.approvals.show(_viewer(caller), _approval_id(request))
    return JSONResponse(shown)


async def _vote(
    request: Request, broker: Broker, caller: Caller, choice: VoteChoice
) -> Response:
    approval_id = _approval_id(request)
    body = validated(
        _VoteBody, await read_json(request, broker.settings.server.max_body_bytes)
    )
    operator = caller.operator
    if operator is None:  # pragma: no cover - APPROVE is an operator's permission
        raise AccessDeniedError("only a named operator votes")
    voted = await broker.approvals.vote(operator, approval_id, choice, body.reason)
    return JSONResponse(voted)


async def approve(request: Request, broker: Broker, caller: Caller) -> Response:
    """Approve: ``{"reason": "..."}``."""
    return await _vote(request, broker, caller, VoteChoice.APPROVE)


async def deny(request: Request, broker: Broker, caller: Caller) -> Response:
    """Deny (final): ``{"reason": "..."}``."""
    return await _vote(request, broker, caller, VoteChoice.DENY)


approval_routes = [
    Route(
        "/v1/admin/approvals",
        authenticated(list_approvals, needs=None),
        methods=["GET"],
    ),
    Route(
        "/v1/admin/approvals/{approval_id}",
        authenticated(show_approval, needs=None),
        methods=["GET"],
    ),
    Route(
        "/v1/admin/approvals/{approval_id}/approve",
        authenticated(approve, needs=Permission.APPROVE),
        methods=["POST"],
    ),
    Route(
        "/v1/admin/approvals/{approval_id}/deny",
        authenticated(deny, needs=Permission.APPROVE),
        methods=["POST"],
    ),
]
