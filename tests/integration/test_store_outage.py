"""
The database stops under a live broker: 503 with Retry-After, never 500, no leak.

Issue 7 item 15: with PostgreSQL stopped, every token and credential request used
to answer 500. The broker reaches PostgreSQL through a TCP relay that the test cuts,
as a stopped server would cut it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from tests.conftest import POSTGRES_URL, require_service

from gatepass.api import create_app
from gatepass.broker import build_runtime

from .agents import ProtocolAgent
from .conftest import free_port, quickstart_settings, start_server
from .deadline import poll
from .relay import TCPRelay

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def own_database() -> Iterator[str]:
    """A PostgreSQL database of this test alone, dropped afterwards."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    import psycopg  # noqa: PLC0415 - only when PostgreSQL tests run

    name = f"gatepass_outage_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TestStoreOutage:
    """A stopped database is a 503 the client can retry."""

    def test_issue7_store_down_answers_503_with_retry_after(
        self, own_database: str, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """Token, credential and health requests answer 503, then recover."""
        parts = urlsplit(POSTGRES_URL)
        relay = TCPRelay(
            (parts.hostname or "127.0.0.1", parts.port or 5432), free_port()
        )
        relay.start()
        user = parts.username or "postgres"
        url = f"postgresql+psycopg://{user}@127.0.0.1:{relay.port}/{own_database}"
        state = tmp_path_factory.mktemp("outage") / "state"
        port = free_port()
        settings = quickstart_settings(
            state,
            port=port,
            resource_port=free_port(),
            store={"url": url, "pool_size": 2},
        )
        runtime = build_runtime(settings)
        running = start_server(create_app(runtime, background_jobs=False), port)
        identity = json.loads((state / "demo-agent.json").read_text())
        try:
            with ProtocolAgent(running.url, identity) as agent:
                task = agent.open_task()
                relay.stop()
                refused = [
                    agent.post_token(agent.open_form()),
                    agent.post_token(agent.access_form(task["access_token"])),
                    httpx.get(f"{running.url}/readyz", timeout=10),
                ]
                for response in refused:
                    assert response.status_code == 503, response.text
                    assert int(response.headers["retry-after"]) >= 1
                for response in refused[:2]:
                    assert response.json()["error"] == "store_unavailable"
                assert "password" not in refused[1].text
                relay.start()
                # Recovery needs no restart: the next requests are served again.
                assert poll(
                    lambda: (
                        agent.post_token(
                            agent.access_form(task["access_token"])
                        ).status_code
                        == 200
                    ),
                    within=15,
                )
        finally:
            running.stop()
            relay.stop()
            runtime.database.dispose()
