"""
The request checks that need no network: protocol, route, method, headers, path, rules.

Each function either returns what the next step needs or raises
:class:`~gatepass.proxy.refusals.RefusedError` with its reason code. They run in
the order :mod:`gatepass.proxy.app` describes, so nothing reaches the upstream (or
the broker) before the cheap checks passed.
"""

from __future__ import annotations

from collections.abc import Sequence

from gatepass.errors import (
    InsufficientScopeError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
)
from gatepass.proxy.asgi import Header, Scope, header_values
from gatepass.proxy.forwarding import Route
from gatepass.proxy.headers import (
    HeaderRejectedError,
    HeaderSectionTooLargeError,
    check_request_framing,
)
from gatepass.proxy.paths import PathRejectedError, normalize_path
from gatepass.proxy.reasons import RefusalReason
from gatepass.proxy.refusals import RefusedError, access_refusal
from gatepass.proxy.rules import METHODS
from gatepass.verify import VerifiedAccess

__all__ = [
    "HTTP_VERSIONS",
    "check_headers",
    "check_method",
    "check_rules",
    "check_version",
    "normalized_path",
    "raw_path_of",
    "route_for",
]

# RFC 9112 is what the server layer speaks; 0.9 (a request line without a version)
# and anything newer are refused rather than forwarded.
HTTP_VERSIONS = frozenset({"1.0", "1.1"})


def raw_path_of(scope: Scope) -> bytes:
    """
    Return the request's raw path, without the query string.

    Args:
        scope: the ASGI scope.

    Returns:
        ``raw_path`` as received, or the decoded ``path`` re-encoded when the server
        gave no raw path.
    """
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.split(b"?", 1)[0]
    return str(scope.get("path", "/")).encode("utf-8", "replace")


def check_version(scope: Scope) -> None:
    """
    Refuse an HTTP version other than 1.0 and 1.1.

    Args:
        scope: the ASGI scope.

    Raises:
        RefusedError: 400 ``http_version``.
    """
    if str(scope.get("http_version", "1.1")) not in HTTP_VERSIONS:
        raise RefusedError(
            RefusalReason.HTTP_VERSION,
            InvalidRequestError("only http/1.0 and http/1.1 are served"),
        )


def route_for(routes: Sequence[Route], raw_path: bytes) -> Route:
    """
    Return the route whose prefix starts the raw path.

    Args:
        routes: the configured routes (their prefixes never nest).
        raw_path: the raw request path.

    Returns:
        The route.

    Raises:
        RefusedError: 404 ``no_route``.
    """
    for route in routes:
        if raw_path.startswith(route.prefix):
            return route
    raise RefusedError(
        RefusalReason.NO_ROUTE, NotFoundError("no route serves this path")
    )


def _method_refusal(allowed: frozenset[str]) -> RefusedError:
    return RefusedError(
        RefusalReason.METHOD_NOT_ALLOWED,
        MethodNotAllowedError("this method is not served here", allowed=allowed),
    )


def check_method(method: str, route: Route) -> None:
    """
    Refuse a method no rule can name, before anything else is looked at.

    TRACE would echo the injected secret back and CONNECT would open a tunnel
    (RFC 9110 §9.3.8, §9.3.6); neither, nor any other method outside
    :data:`~gatepass.proxy.rules.METHODS`, ever goes upstream. Methods are
    case-sensitive (RFC 9110 §9.1): ``get`` is not ``GET``.

    Args:
        method: the request method.
        route: the route that matched.

    Raises:
        RefusedError: 405 ``method_not_allowed``, with ``Allow`` listing every
            method the route's rules serve.
    """
    if method not in METHODS:
        raise _method_refusal(route.rules.methods)


def check_headers(headers: list[Header], *, max_header_bytes: int) -> None:
    """
    Refuse oversized, ambiguous or malformed headers, and protocol upgrades.

    Args:
        headers: the request headers.
        max_header_bytes: the configured limit.

    Raises:
        RefusedError: 431 ``headers_too_large`` (too many fields or bytes, RFC 6585
            §5), 400 ``header_rejected`` (framing, syntax) or 400
            ``upgrade_refused`` (a switched protocol would outlive every check).
    """
    try:
        check_request_framing(headers, max_header_bytes=max_header_bytes)
    except HeaderSectionTooLargeError as error:
        raise RefusedError(RefusalReason.HEADERS_TOO_LARGE, error) from None
    except HeaderRejectedError as error:
        raise RefusedError(RefusalReason.HEADER_REJECTED, error) from None
    if header_values(headers, b"upgrade"):
        raise RefusedError(
            RefusalReason.UPGRADE_REFUSED,
            InvalidRequestError("protocol upgrades are not proxied"),
        )


def normalized_path(raw_path: bytes, route: Route) -> str:
    """
    Return the canonical path, which must still lie under the route's prefix.

    Args:
        raw_path: the raw request path.
        route: the route that matched.

    Returns:
        The canonical path (see :func:`~gatepass.proxy.paths.normalize_path`).

    Raises:
        RefusedError: 400 ``path_rejected`` or ``path_outside_route``.
    """
    try:
        path = normalize_path(raw_path)
    except PathRejectedError as error:
        raise RefusedError(RefusalReason.PATH_REJECTED, error) from None
    if not path.startswith(route.settings.prefix):
        raise RefusedError(
            RefusalReason.PATH_OUTSIDE_ROUTE,
            PathRejectedError("request path rejected: it leaves its route"),
        )
    return path


def check_rules(
    route: Route, access: VerifiedAccess, method: str, relative: str
) -> None:
    """
    Match the method and path against the route's rules and the token's actions.

    Args:
        route: the route that matched.
        access: the verified token.
        method: the request method.
        relative: the canonical path relative to the route's prefix.

    Raises:
        RefusedError: 405 ``method_not_allowed`` with ``Allow`` when some rule serves
            the path but with other methods (RFC 9110 §15.5.6); 403
            ``insufficient_scope`` when no rule of the token's actions covers it.
    """
    served = route.rules.methods_for(relative)
    if served and method not in served:
        raise _method_refusal(served)
    if not route.rules.allows(access.scopes, method, relative):
        raise access_refusal(
            InsufficientScopeError(
                "the token's scope does not allow this method and path"
            )
        )
