"""The console's ASGI application, mounted by the broker at ``/console``."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from gatepass.broker import Broker
from gatepass.console import actions, login, pages
from gatepass.console.oidc import OIDCClient
from gatepass.console.security import SecurityHeaders
from gatepass.console.web import PREFIX, error_page, page, signed_in
from gatepass.errors import GatepassError, NotFoundError
from gatepass.observability import get_logger

__all__ = ["console_app", "console_mount"]

_STATIC = Path(__file__).parent / "static"
_log = get_logger("gatepass.console")


async def _refused(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, GatepassError):  # pragma: no cover - registration contract
        raise exc
    return error_page(request, exc, await signed_in(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover - registration contract
        raise exc
    error = NotFoundError("no such page")
    page_ = error_page(request, error, await signed_in(request))
    page_.status_code = exc.status_code
    return page_


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Never echo the exception: its text may hold request data.
    _log.error("unhandled console error", error=type(exc).__name__)
    error = GatepassError("internal error")
    return error_page(request, error, None)


async def _home(_request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=308)


def console_app(broker: Broker) -> ASGIApp:
    """
    Build the console for a broker.

    Args:
        broker: the broker's use cases.

    Returns:
        An ASGI app to mount at ``/console``.
    """
    settings = broker.settings.console
    routes = [
        Route("/", page(pages.overview_page), methods=["GET"]),
        Route("/tasks", page(pages.tasks_page), methods=["GET"]),
        Route("/tasks/{task_id}", page(pages.task_page), methods=["GET"]),
        Route(
            "/tasks/{task_id}/close",
            page(actions.close_task, changes=True),
            methods=["POST"],
        ),
        Route("/leases", page(pages.leases_page), methods=["GET"]),
        Route("/leases/{lease_id}", page(pages.lease_page), methods=["GET"]),
        Route(
            "/leases/{lease_id}/revoke",
            page(actions.revoke_lease, changes=True),
            methods=["POST"],
        ),
        Route("/agents", page(pages.agents_page), methods=["GET"]),
        Route("/agents/{agent_id}", page(pages.agent_page), methods=["GET"]),
        Route(
            "/agents/{agent_id}/disable",
            page(actions.disable_agent, changes=True),
            methods=["POST"],
        ),
        Route("/approvals", page(pages.approvals_page), methods=["GET"]),
        Route("/approvals/{approval_id}", page(pages.approval_page), methods=["GET"]),
        Route(
            "/approvals/{approval_id}/vote",
            page(actions.vote, changes=True),
            methods=["POST"],
        ),
        Route("/audit", page(pages.audit_page), methods=["GET"]),
        Route("/audit/export", page(pages.audit_export), methods=["GET"]),
        Route(
            "/audit/verify", page(actions.verify_chain, changes=True), methods=["POST"]
        ),
        Route("/policy", page(pages.policy_page), methods=["GET"]),
        Route("/logout", page(actions.sign_out, changes=True), methods=["POST"]),
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login/link", login.show_link, methods=["GET"]),
        Route("/login/link", login.redeem_link, methods=["POST"]),
        Route("/login/oidc", login.oidc_start, methods=["GET"]),
        Route("/login/oidc/callback", login.oidc_callback, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=_STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            GatepassError: _refused,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.broker = broker
    app.state.oidc = None if settings.oidc is None else OIDCClient(settings.oidc)
    return SecurityHeaders(app, static_prefix=f"{PREFIX}/static/")


def console_mount(broker: Broker) -> list[Route | Mount]:
    """Return the routes that put the console at ``/console`` (empty if disabled)."""
    if not broker.settings.console.enabled:
        return []
    return [
        Route(PREFIX, _home, methods=["GET"]),
        Mount(PREFIX, app=console_app(broker)),
    ]
