"""
RFC 9728 protected-resource metadata: how a client learns who guards a resource.

A resource server publishes one JSON document per resource identifier at a
well-known URL built from it (RFC 9728 §3.1): the path ``/.well-known/
oauth-protected-resource`` goes between the host and the resource's own path::

    resource                               metadata
    http://127.0.0.1:8402/mcp              http://127.0.0.1:8402/.well-known/oauth-protected-resource/mcp
    https://api.example/                   https://api.example/.well-known/oauth-protected-resource

Every ``401`` the resource answers names that URL in ``resource_metadata``
(RFC 9728 §5.1), so a client that knows only the resource's URL discovers the
broker to ask (``authorization_servers``) and that tokens must be DPoP-bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gatepass.errors import ConfigurationError
from gatepass.tokens import DPOP_ALGORITHMS

__all__ = [
    "WELL_KNOWN_PATH",
    "ProtectedResource",
    "metadata_url",
    "origin_of",
]

WELL_KNOWN_PATH = "/.well-known/oauth-protected-resource"


def _parts(resource: str) -> tuple[str, str, str, str]:
    parts = urlsplit(resource)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.fragment:
        # RFC 9728 §1.2: a resource identifier is an https URL without a fragment
        # (http is accepted for loopback development servers).
        raise ConfigurationError("resource must be an absolute http(s) url")
    return parts.scheme, parts.netloc, parts.path, parts.query


def origin_of(resource: str) -> str:
    """
    Return the scheme and authority of a URL (``https://api.example:8443``).

    Args:
        resource: an absolute http(s) URL.

    Raises:
        ConfigurationError: the URL is not an absolute http(s) URL.
    """
    scheme, netloc, _, _ = _parts(resource)
    return f"{scheme}://{netloc}"


def metadata_url(resource: str) -> str:
    """
    Return where a resource's protected-resource metadata is published.

    Args:
        resource: the resource identifier (a gatepass target URI).

    Returns:
        The well-known URL of RFC 9728 §3.1: a terminating slash after the host
        is removed, and the well-known path inserted before the resource's path.

    Raises:
        ConfigurationError: the resource is not an absolute http(s) URL.
    """
    scheme, netloc, path, query = _parts(resource)
    suffix = "" if path == "/" else path
    return urlunsplit((scheme, netloc, WELL_KNOWN_PATH + suffix, query, ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectedResource:
    """
    What a resource server says about itself (RFC 9728 §2).

    Attributes:
        resource: the resource identifier, the tokens' one audience (RFC 8707).
        authorization_servers: the issuer URLs of the brokers that grant tokens.
        scopes_supported: the actions (OAuth scope values) the resource knows.
        resource_name: a human-readable name, shown by clients.
        documentation: a URL of documentation for developers.
    """

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] = ()
    resource_name: str | None = None
    documentation: str | None = None
    _url: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check the identifier once, so serving never fails."""
        object.__setattr__(self, "_url", metadata_url(self.resource))
        if not self.authorization_servers:
            raise ConfigurationError("name at least one authorization server")

    @classmethod
    def of(
        cls,
        resource: str,
        issuer: str,
        *,
        scopes: Iterable[str] = (),
        resource_name: str | None = None,
        documentation: str | None = None,
    ) -> ProtectedResource:
        """
        Describe a resource guarded by one gatepass broker.

        Args:
            resource: the resource identifier.
            issuer: the broker's issuer URL.
            scopes: the actions the resource knows.
            resource_name: a human-readable name.
            documentation: a URL of documentation for developers.
        """
        return cls(
            resource=resource,
            authorization_servers=(issuer,),
            scopes_supported=tuple(dict.fromkeys(scopes)),
            resource_name=resource_name,
            documentation=documentation,
        )

    @property
    def url(self) -> str:
        """The metadata's well-known URL, named in every challenge."""
        return self._url

    @property
    def path(self) -> str:
        """The path the metadata is served at, on the resource's origin."""
        return urlsplit(self._url).path

    def document(self) -> dict[str, Any]:
        """
        Return the metadata as a JSON object.

        Returns:
            The RFC 9728 §2 parameters. Tokens travel only in the
            ``Authorization`` header (RFC 6750 §2.1; the body and query forms
            leak into logs), and must be DPoP-bound (RFC 9449 §5.2).
        """
        document: dict[str, Any] = {
            "resource": self.resource,
            "authorization_servers": list(self.authorization_servers),
            "bearer_methods_supported": ["header"],
            "dpop_bound_access_tokens_required": True,
            "dpop_signing_alg_values_supported": sorted(DPOP_ALGORITHMS),
        }
        if self.scopes_supported:
            document["scopes_supported"] = list(self.scopes_supported)
        if self.resource_name is not None:
            document["resource_name"] = self.resource_name
        if self.documentation is not None:
            document["resource_documentation"] = self.documentation
        return document

    def body(self) -> bytes:
        """Return the document as the bytes of an ``application/json`` answer."""
        return json.dumps(self.document(), separators=(",", ":")).encode()
