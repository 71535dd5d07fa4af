"""
The one gate of the admin API: authenticate the caller, check the permission.

Each admin route names the :class:`~gatepass.broker.Permission` it needs when it is
declared (``authenticated(handler, needs=Permission.AUDIT)``): reads need
``audit``, changes ``administer``; ``whoami`` needs none beyond a valid token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from gatepass.broker import Broker, Caller, Permission

__all__ = ["Handler", "authenticated"]

Handler = Callable[[Request, Broker, Caller], Awaitable[Response]]


def authenticated(
    handler: Handler, *, needs: Permission | None
) -> Callable[[Request], Awaitable[Response]]:
    """
    Wrap ``handler`` so that it runs only for a caller holding ``needs``.

    Args:
        handler: the route's body, given the broker and the authenticated caller.
        needs: the permission the route needs; None for any authenticated caller.

    Returns:
        A Starlette endpoint.
    """

    async def endpoint(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        caller = await broker.callers.authenticate(
            request.headers.get("authorization"), needs=needs
        )
        return await handler(request, broker, caller)

    endpoint.__doc__ = handler.__doc__
    return endpoint
