"""
Finding out who guards a resource, from its RFC 9728 protected-resource metadata.

A resource's ``401`` names its metadata in ``resource_metadata`` (RFC 9728 §5.1);
:func:`discover_resource` fetches it from the origin the request went to, falls
back to the well-known URLs built from the request URL (§3.1), and checks that the
metadata describes a resource the request URL lies within (§3.3, §7.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from gatepass.errors import ConfigurationError
from gatepass.sdk.challenge import Challenge
from gatepass.tokens import normalize_htu
from gatepass.verify.metadata import metadata_url, origin_of

__all__ = ["ResourceMetadata", "discover_resource", "within"]

_log = logging.getLogger("gatepass.sdk")

_MAX_METADATA = 64 * 1024


def within(url: str, resource: str) -> bool:
    """
    Tell whether a URL is a resource identifier or lies beneath it.

    Args:
        url: the request URL.
        resource: the resource identifier.

    Returns:
        True for the identifier itself or a path under it, on the same origin.
    """
    try:
        target, base = normalize_htu(url), normalize_htu(resource)
    except ValueError:
        return False
    return target == base or target.startswith(base.rstrip("/") + "/")


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceMetadata:
    """
    The parts of a resource's RFC 9728 metadata the agent acts on.

    Attributes:
        resource: the resource identifier, which becomes the token's audience.
        authorization_servers: the issuers that grant tokens for it.
        scopes_supported: the actions it knows.
    """

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] = ()


def _parse_metadata(body: object) -> ResourceMetadata:
    if not isinstance(body, dict):
        raise ConfigurationError("resource metadata is not a json object")
    resource = body.get("resource")
    servers = body.get("authorization_servers")
    scopes = body.get("scopes_supported", [])
    if (
        not isinstance(resource, str)
        or not isinstance(servers, list)
        or not all(isinstance(server, str) for server in servers)
        or not isinstance(scopes, list)
        or not all(isinstance(scope, str) for scope in scopes)
    ):
        raise ConfigurationError("resource metadata is malformed")
    return ResourceMetadata(
        resource=resource,
        authorization_servers=tuple(servers),
        scopes_supported=tuple(scopes),
    )


def discover_resource(
    http: httpx.Client, request_url: str, challenge: Challenge
) -> ResourceMetadata:
    """
    Fetch and check the RFC 9728 metadata of the resource a request went to.

    Args:
        http: the client to fetch with (redirects are not followed).
        request_url: the URL the refused request was sent to.
        challenge: the refusal's challenge; its ``resource_metadata`` is tried
            first, then the well-known URLs built from the request URL (its path,
            then the origin's root).

    Returns:
        The metadata of a resource the request URL lies within.

    Raises:
        ConfigurationError: no candidate answered usable metadata, or the
            metadata names a resource the request URL is not within (RFC 9728
            §3.3 and §7.3: a server may not send the agent's tokens elsewhere).
    """
    candidates: list[str] = []
    if challenge.resource_metadata is not None:
        candidates.append(challenge.resource_metadata)
    path_only = urlsplit(request_url)._replace(query="", fragment="").geturl()
    candidates += [metadata_url(path_only), metadata_url(origin_of(request_url))]
    for url in dict.fromkeys(candidates):
        # RFC 9728 §7.3: metadata named by a challenge is only trusted when it
        # is served by the origin the request went to.
        if urlsplit(url).netloc.lower() != urlsplit(request_url).netloc.lower():
            continue
        try:
            response = http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            _log.warning("resource metadata unreachable: %s", type(error).__name__)
            continue
        if response.status_code != httpx.codes.OK or len(response.content) > (
            _MAX_METADATA
        ):
            continue
        try:
            metadata = _parse_metadata(response.json())
        except (ValueError, ConfigurationError):
            continue
        if not within(request_url, metadata.resource):
            raise ConfigurationError("resource metadata names another resource")
        return metadata
    raise ConfigurationError("no usable resource metadata")
