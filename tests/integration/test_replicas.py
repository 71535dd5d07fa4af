"""
Three broker replicas on one PostgreSQL database (issue 16).

Each replica is its own ``gatepass serve`` process on its own port, with the same
issuer, state directory and database, as replicas behind a load balancer are.
Single use and task state hold across them: a DPoP proof or an assertion sent to
all three at once is accepted exactly once, and a task closed at one replica is
refused at the others.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tests.conftest import POSTGRES_URL, require_service

from gatepass.config import Settings

from .agents import ProtocolAgent
from .conftest import free_port, quickstart_settings
from .processes import GATEPASS, serve, stop, write_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass
class Replicas:
    """Three running replicas and the identity of the quickstart agent."""

    issuer: str
    urls: list[str]
    identity: dict[str, Any]
    state: Path

    def admin_token(self) -> str:
        """Return the admin API token the first start wrote."""
        return (self.state / "admin.token").read_text().strip()


def _settings(state: Path, issuer_port: int, port: int, store: str) -> Settings:
    base = quickstart_settings(state, port=port, resource_port=free_port())
    raw = base.model_dump(mode="json", exclude_none=True)
    raw["server"]["issuer"] = f"http://127.0.0.1:{issuer_port}"
    raw["store"] = {"url": store, "pool_size": 4}
    # One state directory for all: no SSH target (its KRL file has one writer).
    raw["targets"] = [t for t in raw["targets"] if t.get("kind") != "ssh"]
    return Settings.model_validate(raw)


@pytest.fixture
def replicas(tmp_path: Path, database: str) -> Iterator[Replicas]:
    """Start three replicas one after the other (the first does the first start)."""
    state = tmp_path / "state"
    ports = [free_port() for _ in range(3)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for index, port in enumerate(ports):
            config = tmp_path / f"replica{index}.toml"
            write_config(config, _settings(state, ports[0], port, database))
            processes.append(serve(config, f"http://127.0.0.1:{port}"))
        identity = json.loads((state / "demo-agent.json").read_text())
        yield Replicas(
            issuer=f"http://127.0.0.1:{ports[0]}",
            urls=[f"http://127.0.0.1:{port}" for port in ports],
            identity=identity,
            state=state,
        )
    finally:
        for process in processes:
            stop(process)


@pytest.fixture
def database() -> Iterator[str]:
    """Create a database of its own for one test's brokers; drop it after."""
    require_service("PostgreSQL", POSTGRES_URL, 5432)
    import psycopg  # noqa: PLC0415 - only when PostgreSQL tests run

    name = f"gatepass_replicas_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{urlsplit(POSTGRES_URL).netloc}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _post_everywhere(
    urls: list[str], path: str, form: dict[str, str], headers: dict[str, str]
) -> list[httpx.Response]:
    """Send one request to every replica at the same moment."""

    def send(url: str) -> httpx.Response:
        return httpx.post(f"{url}{path}", data=form, headers=headers, timeout=30)

    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(send, urls))


class TestReplicas:
    """Guarantees that must hold across broker processes sharing a database."""

    def test_one_dpop_proof_is_accepted_exactly_once(self, replicas: Replicas) -> None:
        """The same access-token request with one proof, sent to all three: one 200."""
        with ProtocolAgent(replicas.issuer, replicas.identity) as agent:
            task_token = agent.open_task()["access_token"]
            form = agent.access_form(task_token)
            answers = _post_everywhere(
                replicas.urls, "/token", form, {"DPoP": agent.proof()}
            )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 400, 400], [a.text for a in answers]
        refused = [a.json() for a in answers if a.status_code == 400]
        assert {body["error"] for body in refused} == {"invalid_dpop_proof"}

    def test_one_assertion_is_accepted_exactly_once(self, replicas: Replicas) -> None:
        """One assertion, each replica given its own fresh proof: one task opens."""
        with ProtocolAgent(replicas.issuer, replicas.identity) as agent:
            form = agent.open_form()
            proofs = [agent.proof() for _ in replicas.urls]

            def send(pair: tuple[str, str]) -> httpx.Response:
                url, proof = pair
                return httpx.post(
                    f"{url}/token", data=form, headers={"DPoP": proof}, timeout=30
                )

            with ThreadPoolExecutor(3) as pool:
                answers = list(pool.map(send, zip(replicas.urls, proofs, strict=True)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 400, 400], [a.text for a in answers]
        refused = [a.json() for a in answers if a.status_code == 400]
        assert {body["error"] for body in refused} == {"invalid_grant"}
        assert all("replayed" in body["error_description"] for body in refused)

    def test_a_task_closed_at_one_replica_is_refused_at_the_others(
        self, replicas: Replicas
    ) -> None:
        """Close at the third replica; the first and second refuse the task token."""
        first, second, third = replicas.urls
        with ProtocolAgent(replicas.issuer, replicas.identity) as agent:
            opened = agent.open_task()
            task_token = opened["access_token"]
            form = agent.access_form(task_token)
            for url in (first, second):
                # Each replica has served (and cached) the task token before.
                served = httpx.post(
                    f"{url}/token", data=form, headers={"DPoP": agent.proof()}
                )
                assert served.status_code == 200, served.text
            task_id = _task_id(task_token)
            closed = httpx.post(
                f"{third}/v1/tasks/{task_id}/close",
                headers={"Authorization": f"Bearer {replicas.admin_token()}"},
                json={"reason": "replica test"},
            )
            assert closed.status_code == 200, closed.text
            for url in (first, second):
                refused = httpx.post(
                    f"{url}/token", data=form, headers={"DPoP": agent.proof()}
                )
                assert refused.status_code == 400, refused.text
                assert refused.json()["error"] == "invalid_grant"


def _task_id(task_token: str) -> str:
    import base64  # noqa: PLC0415

    payload = task_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    task: str = claims["txn"]
    return task


class TestWorkers:
    """``gatepass serve --workers N``."""

    def test_workers_on_sqlite_are_refused(self, tmp_path: Path) -> None:
        """Two workers on the SQLite default exit 78 with a misconfigured message."""
        config = tmp_path / "gatepass.toml"
        write_config(
            config,
            quickstart_settings(
                tmp_path / "state", port=free_port(), resource_port=free_port()
            ),
        )
        done = subprocess.run(  # noqa: S603 - our own entry point
            [GATEPASS, "serve", "-c", str(config), "--workers", "2"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 78
        assert b"needs PostgreSQL" in done.stderr
        assert not (tmp_path / "state" / "gatepass.db").exists()

    def test_two_workers_on_postgres_serve_one_port(
        self, tmp_path: Path, database: str
    ) -> None:
        """Two workers answer on one port, and a proof is still spent once."""
        port = free_port()
        config = tmp_path / "gatepass.toml"
        state = tmp_path / "state"
        write_config(config, _settings(state, port, port, database))
        url = f"http://127.0.0.1:{port}"
        process = serve(config, url, args=("--workers", "2"))
        try:
            identity = json.loads((state / "demo-agent.json").read_text())
            with ProtocolAgent(url, identity) as agent:
                task_token = agent.open_task()["access_token"]
                form = agent.access_form(task_token)
                answers = _post_everywhere(
                    [url] * 4, "/token", form, {"DPoP": agent.proof()}
                )
            assert sorted(a.status_code for a in answers) == [200, 400, 400, 400], [
                a.text for a in answers
            ]
        finally:
            stop(process)
