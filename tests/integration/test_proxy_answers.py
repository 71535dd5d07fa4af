"""
Issue 7, items 1 and 2, against the live ``gatepass proxy`` process.

A hostile upstream reflects the credential it received, raw or encoded, compressed
or not, whatever Accept-Encoding asked for; the agent must never be able to recover
the secret from what the proxy relays.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator

import brotli
import httpx
import pytest

from gatepass.sdk.access import AccessToken
from gatepass.sdk.task import Task

from .proxy_attack import (
    AttackStack,
    attack_stack,
    leaked,
    open_task,
    raw_exchange,
    raw_request,
    status_of,
)

pytestmark = pytest.mark.slow

ROUTES = ("hdr", "bearer", "basic", "query")
CODINGS = ("gzip", "deflate", "br")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackStack]:
    """The broker, the hostile upstream and the proxy processes."""
    yield from attack_stack(tmp_path_factory.mktemp("answers"))


@pytest.fixture(scope="module")
def task(stack: AttackStack) -> Iterator[Task]:
    """One task on every route."""
    yield from open_task(stack)


@pytest.fixture(autouse=True, scope="module")
def _no_spelling_in_proxy_output(stack: AttackStack) -> Iterator[None]:
    """At the end, the proxy processes' whole output holds no spelling."""
    yield
    for process in (stack.proxy, stack.quiet):
        assert leaked(process.text().encode(), stack.secret) == []


@pytest.fixture(scope="module")
def tokens(stack: AttackStack, task: Task) -> dict[str, AccessToken]:
    """A read token for each route, shared by the module's many requests."""
    return {
        route: task.access_token(stack.proxy.target(route), "read")
        for route in (*ROUTES, "enc")
    }


def fetch(
    stack: AttackStack, tokens: dict[str, AccessToken], route: str, path: str
) -> bytes:
    """GET through the proxy over a raw socket; return every byte received."""
    request = raw_request(stack.proxy, tokens[route], "GET", f"/{route}{path}")
    return raw_exchange(stack.proxy.port, request)


class TestIssue7CompressedAnswers:
    """Item 1: the scanner reads what the agent will read."""

    @pytest.mark.parametrize("coding", CODINGS)
    @pytest.mark.parametrize("status", [200, 500])
    @pytest.mark.parametrize("route", ROUTES)
    def test_issue7_1_compressed_reflection_never_reaches_the_agent(
        self,
        stack: AttackStack,
        tokens: dict[str, AccessToken],
        coding: str,
        status: int,
        route: str,
    ) -> None:
        """A gzip/deflate/br answer echoing the key is refused or cut, decoded."""
        received = fetch(
            stack, tokens, route, f"/reflect/injected/raw/{coding}/{status}"
        )
        if status == 500:
            assert status_of(received) == 502
            assert b'"error": "bad_gateway"' in received
        else:
            # The 200 started, then the connection was cut before the secret.
            assert status_of(received) == 200
            assert b'"}' not in received
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"content-encoding" not in head.lower()
        assert leaked(body, stack.secret) == []
        for decoded in _decodings(body):
            assert leaked(decoded, stack.secret) == []

    def test_issue7_1_proxy_asks_for_identity_whatever_the_agent_sent(
        self, stack: AttackStack, tokens: dict[str, AccessToken]
    ) -> None:
        """The upstream is asked for identity even when the agent offers gzip, br."""
        token = tokens["hdr"]
        url = f"{stack.proxy.url}/hdr/clean/honour"
        headers = {**token.headers("GET", url), "Accept-Encoding": "gzip, br"}
        response = httpx.get(url, headers=headers)
        assert response.status_code == 200
        assert stack.upstream.accept_encodings[-1] == "identity"
        assert "content-encoding" not in response.headers
        assert response.content == b"hello from the upstream " * 200

    @pytest.mark.parametrize("coding", CODINGS)
    def test_issue7_1_clean_compressed_answer_arrives_decoded(
        self, stack: AttackStack, tokens: dict[str, AccessToken], coding: str
    ) -> None:
        """An upstream compressing regardless is decoded; the agent gets plain bytes."""
        received = fetch(stack, tokens, "hdr", f"/clean/{coding}")
        head, _, body = received.partition(b"\r\n\r\n")
        assert status_of(received) == 200
        assert b"content-encoding" not in head.lower()
        assert _dechunked(body) == b"hello from the upstream " * 200

    def test_issue7_1_route_may_allow_codings_it_decodes(
        self, stack: AttackStack, tokens: dict[str, AccessToken]
    ) -> None:
        """A route's accept_encoding is what the upstream is asked; it is decoded."""
        token = tokens["enc"]
        url = f"{stack.proxy.url}/enc/clean/honour"
        response = httpx.get(url, headers=token.headers("GET", url))
        assert response.status_code == 200
        assert stack.upstream.accept_encodings[-1] == "gzip, br"
        assert "content-encoding" not in response.headers
        assert response.content == b"hello from the upstream " * 200
        reflected = fetch(stack, tokens, "enc", "/reflect/secret/b64/br/500")
        assert status_of(reflected) == 502

    def test_issue7_1_undecodable_coding_is_refused(
        self, stack: AttackStack, tokens: dict[str, AccessToken]
    ) -> None:
        """A coding the proxy cannot decode is a 502, never relayed unread."""
        received = fetch(stack, tokens, "hdr", "/reflect/secret/raw/zstd/200")
        assert status_of(received) == 502
        assert leaked(received, stack.secret) == []


class TestIssue7EncodedReflections:
    """Item 2: every encoded form of what was injected is caught."""

    @pytest.mark.parametrize(
        "reflection",
        [
            f"{what}/{form}"
            for what in ("secret", "injected", "userpass")
            for form in ("b64", "b64url", "hex", "HEX", "percent", "json",
                         "embedded0", "embedded1", "embedded2")
        ],
    )  # fmt: skip
    @pytest.mark.parametrize(
        "case", [(route, status) for route in ROUTES for status in (200, 500)]
    )
    def test_issue7_2_encoded_reflection_never_reaches_the_agent(
        self,
        stack: AttackStack,
        tokens: dict[str, AccessToken],
        reflection: str,
        case: tuple[str, int],
    ) -> None:
        """Base64, base64url, hex, percent or JSON of the credential is caught."""
        route, status = case
        path = f"/reflect/{reflection}/identity/{status}"
        received = fetch(stack, tokens, route, path)
        if status == 500:
            assert status_of(received) == 502
        else:
            assert status_of(received) == 200
            assert b'"}' not in received.partition(b"\r\n\r\n")[2]
        assert leaked(received, stack.secret) == []

    @pytest.mark.parametrize("form", ["raw", "b64", "hex"])
    @pytest.mark.parametrize("route", ROUTES)
    def test_issue7_2_reflection_in_a_header_is_replaced(
        self, stack: AttackStack, tokens: dict[str, AccessToken], form: str, route: str
    ) -> None:
        """A response header echoing the credential turns the answer into a 502."""
        received = fetch(stack, tokens, route, f"/in-header/{form}")
        assert status_of(received) == 502
        assert leaked(received, stack.secret) == []

    def test_issue7_2_ordinary_answers_pass_unchanged(
        self, stack: AttackStack, tokens: dict[str, AccessToken]
    ) -> None:
        """An answer without the secret streams through whole."""
        for route in ROUTES:
            token = tokens[route]
            url = f"{stack.proxy.url}/{route}/v1/items"
            response = httpx.get(url, headers=token.headers("GET", url))
            assert response.status_code == 200
            assert response.json() == {"ok": True}


def _dechunked(body: bytes) -> bytes:
    """Undo HTTP/1.1 chunked framing (or return the body as it is)."""
    out = b""
    rest = body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line, 16)
        except ValueError:
            return body
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]
    return out


def _decodings(body: bytes) -> list[bytes]:
    """Every way the agent might decompress what arrived."""
    data = _dechunked(body)
    out = [data]
    decoders: tuple[Callable[[bytes], bytes], ...] = (
        gzip.decompress,
        zlib.decompress,
        brotli.decompress,
    )
    for decode in decoders:
        try:
            out.append(decode(data))
        except (OSError, EOFError, ValueError, zlib.error, brotli.error):
            continue
    return out
