"""
The console's browser security: headers, cookies and CSRF.

* **Headers** on every console response: a Content-Security-Policy with no inline
  script or style (``script-src 'self'`` loads only the vendored htmx and nothing
  else; ``style-src 'self'`` the one stylesheet), ``frame-ancestors 'none'`` and
  ``X-Frame-Options: DENY`` against clickjacking, ``nosniff``, no referrer, and
  ``no-store`` so that a shared machine's back button shows nothing.
* **Cookies**: the session cookie is HttpOnly, ``SameSite=Strict``, ``Path=/console``
  and ``Secure`` when the broker's issuer is https. The OIDC round trip's cookie
  (state, nonce, PKCE verifier) is ``SameSite=Lax``, because the IdP's redirect
  back is a cross-site navigation that a Strict cookie would not survive; it lives
  ten minutes and is spent by the callback.
* **CSRF**: every state-changing form carries a token bound to the session: the
  HMAC-SHA256 of a fixed label under the session's cookie value, which the page's
  scripts cannot read (HttpOnly), so another site can neither read nor compute it.
  It is checked in constant time (``hmac.compare_digest``). A POST whose
  ``Origin`` (or ``Sec-Fetch-Site``) says it came from another site is refused
  before that, as a second lock.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatepass.errors import CSRFError

__all__ = [
    "CSP",
    "OIDC_COOKIE",
    "SESSION_COOKIE",
    "SecurityHeaders",
    "check_csrf",
    "check_same_origin",
    "csrf_token",
]

SESSION_COOKIE: Final = "gatepass_console"
OIDC_COOKIE: Final = "gatepass_console_oidc"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_HEADERS: Final = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
_CSRF_LABEL: Final = b"gatepass console csrf v1"


class SecurityHeaders:
    """Pure ASGI middleware adding the console's security headers to every answer."""

    def __init__(self, app: ASGIApp, *, static_prefix: str) -> None:
        """Wrap ``app``; answers under ``static_prefix`` may be cached."""
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(self.static_prefix)

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
                if static:
                    headers["cache-control"] = "public, max-age=3600"
                else:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, secured)


def csrf_token(session_cookie: str) -> str:
    """
    Return the CSRF token of a session: HMAC-SHA256(cookie value, fixed label).

    Args:
        session_cookie: the session's cookie value (never shown to page scripts).
    """
    return hmac.new(session_cookie.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def check_csrf(session_cookie: str, presented: str | None) -> None:
    """
    Check a form's CSRF token against its session, in constant time.

    Raises:
        CSRFError: no token, or not this session's.
    """
    expected = csrf_token(session_cookie)
    if not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise CSRFError("the form's csrf token is missing or wrong: reload the page")


def check_same_origin(request: Request, issuer: str | None = None) -> None:
    """
    Refuse a state-changing request that a browser says came from another site.

    Args:
        request: the request.
        issuer: the broker's public URL; its origin counts as the console's own
            too (behind a reverse proxy the request's Host may be another).

    Raises:
        CSRFError: ``Sec-Fetch-Site`` is ``cross-site``, or ``Origin`` names
            another origin than the request's own.
    """
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CSRFError("cross-site form posts are refused")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Browsers send Origin on every POST; "null" comes from sandboxed frames
        # and privacy modes, and the session-bound CSRF token still decides.
        return
    own = {f"{request.url.scheme}://{request.url.netloc}"}
    if issuer:
        parts = urlsplit(issuer)
        own.add(f"{parts.scheme}://{parts.netloc}")
    # Origins are public; the secret check is the CSRF token's, in constant time.
    if origin not in own:
        raise CSRFError("cross-site form posts are refused")
