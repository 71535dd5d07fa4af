"""
``POST /v1/admin/console/links``: a one-time console login link.

Any API token may ask for its own operator; the admin token (or an admin
operator) for an operator who is not an approver. The link is in the answer once;
only its hash is stored (``broker/console_access.py``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_json
from gatepass.api.errors import NO_STORE
from gatepass.api.inputs import validated
from gatepass.api.routes.access import authenticated
from gatepass.broker import Broker, Caller

__all__ = ["console_link_routes"]


class _LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None


async def make_link(request: Request, broker: Broker, caller: Caller) -> Response:
    """Make a login link: ``{"operator": NAME}`` (optional)."""
    raw = await read_json(request, broker.settings.server.max_body_bytes)
    body = validated(_LinkBody, raw)
    link = await broker.console.make_link(caller, body.operator)
    url = f"{broker.settings.server.issuer}/console/login/link?token={link.token}"
    return JSONResponse(
        {
            "url": url,
            "operator": link.operator.name,
            "expires_at": link.expires_at.isoformat().replace("+00:00", "Z"),
        },
        status_code=201,
        headers=dict(NO_STORE),
    )


console_link_routes = [
    Route(
        "/v1/admin/console/links",
        authenticated(make_link, needs=None),
        methods=["POST"],
    ),
]
