"""
What every console page shares: templates, the signed-in session, permissions.

Templates are Jinja2 with autoescaping on for every file, so any value is escaped
unless a template marks it safe; the only values marked safe are the server-made
SVG chart and the output of :func:`gatepass.approvals.inert_html`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gatepass.approvals import inert_html
from gatepass.broker import Broker, Caller, ConsoleSession, Permission
from gatepass.console.security import SESSION_COOKIE, check_csrf, check_same_origin
from gatepass.console.security import csrf_token as make_csrf
from gatepass.errors import AccessDeniedError, GatepassError, InvalidRequestError

__all__ = [
    "PREFIX",
    "Page",
    "Signed",
    "broker_of",
    "form_of",
    "page",
    "render",
    "signed_in",
]

PREFIX: Final = "/console"
_TEMPLATES = Path(__file__).parent / "templates"
_MAX_FORM_BYTES: Final = 16_384


def _when(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, str) and value:
        try:
            return _when(dt.datetime.fromisoformat(value))
        except ValueError:
            return value
    return "" if value is None else str(value)


def _agent_text(value: object, limit: int = 1000) -> Markup:
    # Agent-supplied words: made inert (controls escaped, one line, bounded),
    # HTML-escaped, then isolated so right-to-left letters cannot reorder the page.
    text = "" if value is None else str(value)
    shown = inert_html(text, limit=limit)
    return Markup(  # noqa: S704 - inert_html escapes every markup character
        f'<bdi class="agent-text" title="written by the agent">{shown}</bdi>'
    )


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["when"] = _when
_environment.filters["agent_text"] = _agent_text
_environment.filters["pretty"] = _json


@dataclass(frozen=True, slots=True)
class Signed:
    """A request's signed-in session and its CSRF token."""

    session: ConsoleSession
    csrf: str

    @property
    def caller(self) -> Caller:
        """The operator as a caller."""
        return self.session.caller

    def may(self, permission: Permission) -> bool:
        """Tell whether the operator holds ``permission``."""
        return self.caller.may(permission)

    def need(self, *permissions: Permission) -> None:
        """
        Require one of ``permissions``.

        Raises:
            AccessDeniedError: the operator holds none of them.
        """
        if not any(self.caller.may(p) for p in permissions):
            names = " or ".join(p.value for p in permissions)
            raise AccessDeniedError(f"{self.caller.describe()} may not {names}")


def broker_of(request: Request) -> Broker:
    """Return the broker the console serves."""
    broker: Broker = request.app.state.broker
    return broker


async def signed_in(request: Request) -> Signed | None:
    """Return the request's live session, or None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    session = await broker_of(request).console.session(cookie)
    if session is None:
        return None
    return Signed(session=session, csrf=make_csrf(cookie))


def render(
    request: Request,
    template: str,
    values: dict[str, Any],
    *,
    signed: Signed | None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a template with what every page shows (who, CSRF token, nav)."""
    body = _environment.get_template(template).render(
        prefix=PREFIX,
        signed=signed,
        operator=None if signed is None else signed.session.operator,
        csrf=None if signed is None else signed.csrf,
        may_administer=signed is not None and signed.may(Permission.ADMINISTER),
        may_audit=signed is not None and signed.may(Permission.AUDIT),
        may_approve=signed is not None and signed.may(Permission.APPROVE),
        path=request.url.path,
        request_url=request.url.path
        + (f"?{request.url.query}" if request.url.query else ""),
        **values,
    )
    return HTMLResponse(body, status_code=status_code)


Page = Callable[[Request, Signed], Awaitable[Response]]


def page(
    handler: Page, *, changes: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """
    Wrap a page or action so that it runs for a signed-in operator only.

    A GET without a session goes to the sign-in page; an action (``changes``)
    without one is refused. An action checks the request's origin and the form's
    CSRF token before the handler runs.

    Args:
        handler: the page's body.
        changes: the request changes state (a POST form).
    """

    async def endpoint(request: Request) -> Response:
        signed = await signed_in(request)
        if signed is None:
            if changes:
                raise AccessDeniedError("sign in to the console first")
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        if changes:
            check_same_origin(request, broker_of(request).settings.server.issuer)
            form = await form_of(request)
            presented = form.get("csrf") or request.headers.get("x-csrf-token")
            check_csrf(request.cookies[SESSION_COOKIE], presented)
            request.state.form = form
        return await handler(request, signed)

    endpoint.__doc__ = handler.__doc__
    return endpoint


async def form_of(request: Request) -> dict[str, str]:
    """
    Return a urlencoded form's fields (each at most once).

    Raises:
        InvalidRequestError: too large, not a form, or a field repeated.
    """
    cached: dict[str, str] | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in {"application/x-www-form-urlencoded", ""}:
        raise InvalidRequestError("forms are sent urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise InvalidRequestError("the form is too large")
    fields: dict[str, str] = {}
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequestError("the form is not utf-8") from None
    for name, value in pairs:
        if name in fields:
            raise InvalidRequestError(f"field {name[:32]} is repeated")
        fields[name] = value
    request.state.form = fields
    return fields


def error_page(
    request: Request, error: GatepassError, signed: Signed | None
) -> HTMLResponse:
    """Render a refusal as a page with its code and status."""
    return render(
        request,
        "error.html",
        {"code": error.code, "detail": error.detail, "status": error.http_status},
        signed=signed,
        status_code=error.http_status,
    )
