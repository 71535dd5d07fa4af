"""
The token endpoint's own ASGI path (issue 15): the same answers as the framework route.

``create_app`` sends ``POST /token`` straight to ``TokenEndpointApp``; these tests
hold it to what the framework route did, over a real server on 127.0.0.1, for what
the rest of the token-endpoint tests do not reach.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from gatepass.broker.token_endpoint import TokenEndpoint
from gatepass.store import audit_log

from .agents import ProtocolAgent
from .conftest import LiveBroker

pytestmark = pytest.mark.slow


@pytest.fixture
def agent(live_broker: LiveBroker) -> Iterator[ProtocolAgent]:
    """The demo agent, with a fresh task key."""
    with ProtocolAgent(live_broker.url, live_broker.demo_identity) as protocol_agent:
        yield protocol_agent


def newest_record(live_broker: LiveBroker) -> dict[str, object]:
    """Return the newest audit record as JSON."""
    with live_broker.runtime.database.reading() as conn:
        seq, _ = audit_log.read_audit_head(conn)
        records = list(audit_log.iter_audit(conn, after=seq - 1))
    return records[-1].to_json()


def test_issue15_token_response_shape(
    live_broker: LiveBroker, agent: ProtocolAgent
) -> None:
    """An issued token comes back as compact JSON that no cache may keep."""
    task = agent.open_task()
    response = agent.post_token(agent.access_form(task["access_token"]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert int(response.headers["content-length"]) == len(response.content)
    assert json.loads(response.content)["token_type"] == "DPoP"
    assert b", " not in response.content


def test_issue15_other_methods_still_routed(live_broker: LiveBroker) -> None:
    """GET /token is refused by the framework's router with 405, as before."""
    response = httpx.get(f"{live_broker.url}/token", timeout=10)
    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


def test_issue15_chunked_body_over_limit(live_broker: LiveBroker) -> None:
    """A body without Content-Length is cut off at the limit with 413, audited."""
    limit = live_broker.runtime.settings.server.max_body_bytes

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 4096 + 2):
            yield b"a" * 4096

    response = httpx.post(
        f"{live_broker.url}/token",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"
    record = newest_record(live_broker)
    assert record["kind"] == "token.request"
    assert record["outcome"] == "deny"


def test_issue15_content_type_with_parameters(
    live_broker: LiveBroker, agent: ProtocolAgent
) -> None:
    """The form media type is matched case-insensitively, parameters ignored."""
    task = agent.open_task()
    response = httpx.post(
        agent.token_endpoint,
        content=urlencode(agent.access_form(task["access_token"])),
        headers={
            "Content-Type": "Application/X-WWW-Form-Urlencoded; charset=utf-8",
            "DPoP": agent.proof(),
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_issue15_unexpected_error_is_a_json_500(
    live_broker: LiveBroker, agent: ProtocolAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug behind the endpoint answers the server_error JSON, never its text."""

    async def broken(*_args: object, **_kwargs: object) -> None:
        msg = "secret-looking detail eyJhbGciOi"
        raise RuntimeError(msg)

    monkeypatch.setattr(TokenEndpoint, "exchange", broken)
    task_token = "x" * 40
    response = agent.post_token(agent.access_form(task_token))
    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "internal error",
    }
    assert "eyJ" not in response.text
