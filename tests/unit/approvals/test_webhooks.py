"""Webhooks: secrets read once, the retry schedule, one delivery through a fake."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.approvals.factories import make_approval

from gatepass.approvals import WebhookSettings
from gatepass.approvals.webhooks import (
    BACKOFF_CAP,
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Webhook,
    WebhookEvent,
    backoff,
    deliver,
    load_secret,
    new_client,
    verify_signature,
)
from gatepass.errors import ConfigurationError

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
URL = "https://hooks.example/services/T000/B000/very-secret-path"


def webhook(tmp_path: Path, **options: object) -> Webhook:
    """A signed JSON webhook to URL."""
    key = tmp_path / "hook.key"
    key.write_text("s3cret-hook-key\n")
    settings = WebhookSettings.model_validate(
        {"url": URL, "secret_file": key, **options}
    )
    return Webhook.from_settings("prod-approvers", settings)


def send(hook: Webhook, handler: httpx.MockTransport) -> tuple[bool, str]:
    """Deliver one notification through a fake transport."""

    async def main() -> tuple[bool, str]:
        async with new_client(handler) as client:
            result = await deliver(
                client,
                hook,
                body={"event": "approval.requested"},
                event="approval.requested",
                delivery_id="7",
                now=NOW,
            )
        return result.delivered, result.reason

    return anyio.run(main)


class TestSecrets:
    """The secret file is read once, at start."""

    def test_trailing_newline_is_stripped(self, tmp_path: Path) -> None:
        """A file written by echo holds the secret without its newline."""
        path = tmp_path / "key"
        path.write_text("abc def\r\n")
        assert load_secret(path).reveal() == "abc def"

    @pytest.mark.parametrize("content", ["", "\n", "   \n"])
    def test_empty_file_is_refused(self, tmp_path: Path, content: str) -> None:
        """An empty secret would sign with a key everyone knows: refused."""
        path = tmp_path / "key"
        path.write_text(content)
        with pytest.raises(ConfigurationError, match="empty"):
            load_secret(path)

    def test_missing_file_is_refused(self, tmp_path: Path) -> None:
        """A secret file that cannot be read stops the start."""
        with pytest.raises(ConfigurationError, match="cannot be read"):
            load_secret(tmp_path / "absent")

    def test_repr_shows_neither_url_nor_secret(self, tmp_path: Path) -> None:
        """A webhook printed or logged shows neither its URL nor its secret."""
        text = repr(webhook(tmp_path))
        assert "very-secret-path" not in text
        assert "s3cret" not in text

    def test_body_follows_the_format(self, tmp_path: Path) -> None:
        """A slack webhook builds a Slack body, a json one gatepass's."""
        approval = make_approval()
        slack = webhook(tmp_path, format="slack").body(
            approval, WebhookEvent.REQUESTED, "https://x/l"
        )
        plain = webhook(tmp_path).body(approval, WebhookEvent.REQUESTED, "https://x/l")
        assert set(slack) == {"text", "blocks"}
        assert plain["approval_id"] == approval.id


class Highest(random.Random):
    """A random source that always draws the top of the range."""

    def uniform(self, a: float, b: float) -> float:
        """Return the top of the range."""
        return max(a, b)


class TestBackoff:
    """Exponential with full jitter, 2 s to 10 min."""

    @given(st.integers(1, 200), st.integers(0, 2**32))
    def test_within_the_ceiling(self, attempts: int, seed: int) -> None:
        """Each wait is between 0 and min(10 min, 2 s x 2^(attempts-1))."""
        wait = backoff(attempts, rng=random.Random(seed))  # noqa: S311 - jitter
        ceiling = min(BACKOFF_CAP.total_seconds(), 2.0 * 2 ** min(attempts - 1, 30))
        assert 0 <= wait.total_seconds() <= ceiling

    def test_grows_then_caps(self) -> None:
        """The largest wait doubles per attempt until the cap."""
        waits = [backoff(n, rng=Highest()).total_seconds() for n in range(1, 12)]
        assert waits[:5] == [2, 4, 8, 16, 32]
        assert max(waits) == BACKOFF_CAP.total_seconds()

    def test_jitter_spreads_retries(self) -> None:
        """Two brokers retrying together do not wait the same time."""
        rng = random.Random(3)  # noqa: S311 - jitter, not a secret
        assert len({backoff(6, rng=rng) for _ in range(20)}) > 15


class TestDeliver:
    """One POST, judged by its status alone."""

    def test_signed_request(self, tmp_path: Path) -> None:
        """The request carries the event, the delivery id and a valid signature."""
        seen: list[httpx.Request] = []

        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(204)

        hook = webhook(tmp_path)
        assert send(hook, httpx.MockTransport(answer)) == (True, "http 204")
        (request,) = seen
        assert str(request.url) == URL
        assert request.headers[EVENT_HEADER] == "approval.requested"
        assert request.headers[DELIVERY_HEADER] == "7"
        assert request.headers["content-type"] == "application/json"
        body = request.content
        assert json.loads(body) == {"event": "approval.requested"}
        signed = verify_signature(
            "s3cret-hook-key", request.headers[SIGNATURE_HEADER], body, NOW
        )
        assert signed == int(NOW.timestamp())

    def test_unsigned_without_secret_file(self) -> None:
        """A group without a secret file sends no signature header."""
        seen: list[httpx.Request] = []
        hook = Webhook.from_settings("g", WebhookSettings(url=URL))

        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200)

        assert send(hook, httpx.MockTransport(answer))[0]
        assert SIGNATURE_HEADER not in seen[0].headers

    @pytest.mark.parametrize("status", [301, 302, 307, 400, 404, 429, 500, 503])
    def test_non_2xx_is_a_failure(self, tmp_path: Path, status: int) -> None:
        """Redirects (never followed), 4xx and 5xx fail with their status only."""
        calls: list[str] = []

        def answer(request: httpx.Request) -> httpx.Response:
            calls.append(str(request.url))
            return httpx.Response(
                status,
                headers={"Location": "https://elsewhere.example/"},
                text="secret body the broker must not keep",
            )

        assert send(webhook(tmp_path), httpx.MockTransport(answer)) == (
            False,
            f"http {status}",
        )
        assert calls == [URL]

    @pytest.mark.parametrize(
        "error", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError]
    )
    def test_transport_error_is_a_failure(
        self, tmp_path: Path, error: type[httpx.TransportError]
    ) -> None:
        """A transport error fails with its class name, never its message."""

        def answer(request: httpx.Request) -> httpx.Response:
            raise error(f"failed talking to {URL}")

        delivered, reason = send(webhook(tmp_path), httpx.MockTransport(answer))
        assert not delivered
        assert reason == error.__name__
