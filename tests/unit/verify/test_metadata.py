"""Tests for RFC 9728 protected-resource metadata and its well-known URL."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import ConfigurationError
from gatepass.tokens import DPOP_ALGORITHMS
from gatepass.verify import WELL_KNOWN_PATH, ProtectedResource, metadata_url, origin_of

ISSUER = "https://broker.example"

_SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1)


class TestWellKnownURL:
    """RFC 9728 §3.1: the well-known path goes between the host and the path."""

    @pytest.mark.parametrize(
        ("resource", "expected"),
        [
            (
                "http://127.0.0.1:8402/mcp",
                "http://127.0.0.1:8402/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://api.example/",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example",
                "https://api.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example/v1/tools/",
                "https://api.example/.well-known/oauth-protected-resource/v1/tools/",
            ),
            (
                "https://api.example/r?tenant=a",
                "https://api.example/.well-known/oauth-protected-resource/r?tenant=a",
            ),
        ],
    )
    def test_examples(self, resource: str, expected: str) -> None:
        """A terminating slash after the host is dropped; the path is kept."""
        assert metadata_url(resource) == expected

    @given(st.lists(_SEGMENT, min_size=1, max_size=5))
    def test_any_path_keeps_its_segments(self, segments: list[str]) -> None:
        """The resource's own path follows the well-known path unchanged."""
        path = "/" + "/".join(segments)
        url = metadata_url("https://api.example" + path)
        assert url == "https://api.example" + WELL_KNOWN_PATH + path

    @pytest.mark.parametrize(
        "resource",
        ["urn:example:x", "ftp://api.example/", "https://api.example/#f", "/mcp"],
    )
    def test_not_a_resource_url(self, resource: str) -> None:
        """Only absolute http(s) URLs without a fragment are resource identifiers."""
        with pytest.raises(ConfigurationError):
            metadata_url(resource)

    def test_origin(self) -> None:
        """The origin is the scheme and authority, port included."""
        assert origin_of("http://127.0.0.1:8402/mcp") == "http://127.0.0.1:8402"


class TestDocument:
    """The metadata document's parameters (RFC 9728 §2)."""

    def test_fields(self) -> None:
        """Resource, broker, header-only DPoP tokens, algorithms and scopes."""
        resource = ProtectedResource.of(
            "http://127.0.0.1:8402/mcp",
            ISSUER,
            scopes=["read", "write", "read"],
            resource_name="notes",
        )
        document = json.loads(resource.body())
        assert document == {
            "resource": "http://127.0.0.1:8402/mcp",
            "authorization_servers": [ISSUER],
            "bearer_methods_supported": ["header"],
            "dpop_bound_access_tokens_required": True,
            "dpop_signing_alg_values_supported": sorted(DPOP_ALGORITHMS),
            "scopes_supported": ["read", "write"],
            "resource_name": "notes",
        }
        assert resource.path == "/.well-known/oauth-protected-resource/mcp"

    def test_optional_fields_are_left_out(self) -> None:
        """Without scopes or a name, those parameters are absent."""
        document = ProtectedResource.of("https://api.example/", ISSUER).document()
        assert "scopes_supported" not in document
        assert "resource_name" not in document

    def test_documentation_url(self) -> None:
        """A documentation URL is published as resource_documentation."""
        resource = ProtectedResource.of(
            "https://api.example/", ISSUER, documentation="https://docs.example/"
        )
        assert resource.document()["resource_documentation"] == "https://docs.example/"

    def test_needs_an_authorization_server(self) -> None:
        """Metadata that names no broker is a configuration error."""
        with pytest.raises(ConfigurationError):
            ProtectedResource(resource="https://api.example/", authorization_servers=())
