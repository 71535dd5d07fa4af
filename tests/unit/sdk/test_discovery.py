"""discover_resource: which metadata an agent accepts, against a scripted server."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gatepass.errors import ConfigurationError
from gatepass.sdk import Challenge, discover_resource
from gatepass.sdk.discovery import within

URL = "https://api.example/mcp"
GOOD = {"resource": URL, "authorization_servers": ["https://broker.example"]}
NO_CHALLENGE = Challenge(scheme="dpop", params={})

Answer = Callable[[httpx.Request], httpx.Response]


def client(answers: dict[str, Answer]) -> httpx.Client:
    """A client whose server answers each path with a script (404 otherwise)."""

    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.get(request.url.path)
        return answer(request) if answer else httpx.Response(404)

    return httpx.Client(transport=httpx.MockTransport(handle))


PATH = "/.well-known/oauth-protected-resource/mcp"
ROOT = "/.well-known/oauth-protected-resource"


class TestDiscoverResource:
    """Fallbacks, and metadata that is refused."""

    def test_path_then_root(self) -> None:
        """Without a challenge URL, the path-inserted URL comes first, then the root."""
        root_only = client({ROOT: lambda _r: httpx.Response(200, json=GOOD)})
        found = discover_resource(root_only, URL, NO_CHALLENGE)
        assert found.resource == URL
        assert found.authorization_servers == ("https://broker.example",)

    @pytest.mark.parametrize(
        "answer",
        [
            lambda _r: httpx.Response(500),
            lambda _r: httpx.Response(200, content=b"not json"),
            lambda _r: httpx.Response(200, json=["a list"]),
            lambda _r: httpx.Response(200, json={"resource": URL}),
            lambda _r: httpx.Response(
                200, json={**GOOD, "scopes_supported": "read write"}
            ),
            lambda _r: httpx.Response(200, content=b" " * (64 * 1024 + 1)),
        ],
    )
    def test_unusable_answers_are_skipped(self, answer: Answer) -> None:
        """Errors, non-JSON, malformed and oversized documents are not used."""
        with pytest.raises(ConfigurationError, match="no usable"):
            discover_resource(client({PATH: answer, ROOT: answer}), URL, NO_CHALLENGE)

    def test_unreachable_server(self) -> None:
        """A connection error on every candidate: no usable metadata."""

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        with pytest.raises(ConfigurationError, match="no usable"):
            discover_resource(client({PATH: refuse, ROOT: refuse}), URL, NO_CHALLENGE)

    def test_metadata_for_a_resource_elsewhere_is_refused(self) -> None:
        """RFC 9728 §3.3: the request URL must lie within the named resource."""
        other = {**GOOD, "resource": "https://api.example/other"}
        with pytest.raises(ConfigurationError, match="another resource"):
            discover_resource(
                client({PATH: lambda _r: httpx.Response(200, json=other)}),
                URL,
                NO_CHALLENGE,
            )


class TestWithin:
    """Where a token for a resource may be sent."""

    @pytest.mark.parametrize(
        ("url", "resource", "expected"),
        [
            ("https://api.example/mcp", "https://api.example/mcp", True),
            ("https://api.example/mcp/x", "https://api.example/mcp", True),
            ("https://api.example/mcpx", "https://api.example/mcp", False),
            ("https://api.example/", "https://api.example/mcp", False),
            ("https://evil.example/mcp", "https://api.example/mcp", False),
            ("not a url", "https://api.example/mcp", False),
        ],
    )
    def test_cases(self, url: str, resource: str, expected: bool) -> None:
        """Same origin, and the resource's path or beneath it."""
        assert within(url, resource) is expected
