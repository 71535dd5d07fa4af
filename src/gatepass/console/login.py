"""
Signing in to the console: the one-time link and OpenID Connect.

``gatepass console login`` prints ``/console/login/link?token=…``. Opening it shows
a confirmation with one button; only that POST spends the link, so a chat
client's or mail scanner's preview of the URL cannot use it up. The POST opens the
session and sets its cookie.

OIDC: ``/console/login/oidc`` sends the browser to the provider; the callback
verifies everything (``oidc.py``), maps the claim to an operator, and opens the
session. Its answer is a page that moves on to the console by itself: the session
cookie is ``SameSite=Strict``, and a browser does not send it on a navigation that
started at another site (the provider's redirect), so the next request has to
start here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gatepass.console.oidc import OIDCClient
from gatepass.console.security import OIDC_COOKIE, SESSION_COOKIE, check_same_origin
from gatepass.console.web import PREFIX, broker_of, form_of, render, signed_in
from gatepass.errors import AuthenticationError, GatepassError

__all__ = [
    "login_page",
    "oidc_callback",
    "oidc_start",
    "redeem_link",
    "show_link",
]

_OIDC_COOKIE_SECONDS = 600


def _secure(request: Request) -> bool:
    return broker_of(request).settings.server.issuer.startswith("https:")


def _oidc(request: Request) -> OIDCClient | None:
    client: OIDCClient | None = request.app.state.oidc
    return client


async def login_page(request: Request) -> Response:
    """The sign-in page: the IdP button, and how to get a login link."""
    signed = await signed_in(request)
    if signed is not None:
        return RedirectResponse(f"{PREFIX}/", status_code=303)
    return render(
        request,
        "login.html",
        {"oidc": _oidc(request) is not None, "problem": None},
        signed=None,
    )


async def show_link(request: Request) -> Response:
    """A login link's confirmation page (spends nothing)."""
    token = request.query_params.get("token", "")
    if not token.startswith("gpl_") or len(token) > 100:
        raise AuthenticationError("this login link is not valid")
    return render(request, "link.html", {"token": token}, signed=None)


def _session_cookie(
    request: Request, response: Response, cookie: str, max_age: int
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


async def redeem_link(request: Request) -> Response:
    """Spend a login link and open the session."""
    check_same_origin(request, broker_of(request).settings.server.issuer)
    form = await form_of(request)
    token = form.get("token", "")
    if not token.startswith("gpl_") or len(token) > 100:
        raise AuthenticationError("this login link is not valid")
    broker = broker_of(request)
    cookie, _session = await broker.console.redeem_link(token)
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    _session_cookie(
        request, response, cookie, broker.settings.console.session_ttl_seconds
    )
    return response


async def oidc_start(request: Request) -> Response:
    """Send the browser to the identity provider."""
    client = _oidc(request)
    if client is None:
        raise AuthenticationError("no identity provider is configured")
    started = await client.start()
    response = RedirectResponse(started.url, status_code=303)
    # Lax, not Strict: it must come back with the provider's cross-site redirect.
    response.set_cookie(
        OIDC_COOKIE,
        started.cookie,
        max_age=_OIDC_COOKIE_SECONDS,
        path=f"{PREFIX}/login/oidc",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return response


async def oidc_callback(request: Request) -> Response:
    """Finish the sign-in: verify, map the claim to an operator, open the session."""
    client = _oidc(request)
    if client is None:
        raise AuthenticationError("no identity provider is configured")
    broker = broker_of(request)
    params = request.query_params
    code, state = params.get("code", ""), params.get("state", "")
    remembered = request.cookies.get(OIDC_COOKIE, "")
    evidence = {"issuer": client.settings.issuer[:200]}
    try:
        if params.get("error") or not code or not state or not remembered:
            raise AuthenticationError("the identity provider did not sign you in")
        claims = await client.finish(code=code[:2048], state=state, cookie=remembered)
        name, value = client.operator_for(claims)
        evidence["claim"] = client.settings.claim
        evidence["value"] = value[:120]
    except GatepassError as error:
        await broker.audit.reject("console.login", error)
        raise
    cookie, session = await broker.console.sign_in(
        name, method="oidc", evidence=evidence
    )
    response = render(
        request,
        "signed_in.html",
        {"who": session.operator.name},
        signed=None,
    )
    _session_cookie(
        request, response, cookie, broker.settings.console.session_ttl_seconds
    )
    response.delete_cookie(OIDC_COOKIE, path=f"{PREFIX}/login/oidc")
    return response
