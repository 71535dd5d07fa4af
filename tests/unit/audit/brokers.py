"""
A real broker in-process on SQLite, restartable on its state directory.

The anchoring tests "restart" a broker by building a new runtime on the same state
directory, and tamper with its database the way an attacker with write access to
it would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import sqlite3
import warnings
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import anyio
import httpx
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner, Result

from gatepass.api import create_app
from gatepass.api.forms import parse_form, parse_token_exchange
from gatepass.audit import AuditRecord
from gatepass.broker import RevocationRequest, Runtime, build_runtime
from gatepass.cli import app as cli_app
from gatepass.cli.client import Connector
from gatepass.clock import FrozenClock
from gatepass.config import Settings
from gatepass.store.tables import audit_events
from gatepass.tokens import DPoPKey, create_assertion, load_private_key

REPO = Path(__file__).resolve().parents[3]
ISSUER = "http://broker.test"
START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # a Monday, business hours
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclasses.dataclass
class Broker:
    """One broker process: a runtime on a state directory, and a clock."""

    runtime: Runtime
    clock: FrozenClock
    state: Path

    def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a broker coroutine to completion."""
        return anyio.run(lambda: function(*args, **kwargs))

    @property
    def identity(self) -> dict[str, Any]:
        """The demo agent's identity file."""
        data: dict[str, Any] = json.loads((self.state / "demo-agent.json").read_text())
        return data

    def _token(self, key: DPoPKey, form: dict[str, str]) -> dict[str, Any]:
        proof = key.proof("POST", f"{ISSUER}/token", now=self.clock.now())
        exchange = parse_token_exchange(parse_form(urlencode(form).encode()))
        answer = self.run(
            self.runtime.broker.tokens.exchange, exchange, dpop_proof=proof
        )
        body: dict[str, Any] = answer.body
        return body

    def open_task(self, key: DPoPKey) -> dict[str, Any]:
        """Open a task as the demo agent."""
        private_key, _, algorithm = load_private_key(self.identity["private_jwk"])
        assertion = create_assertion(
            private_key,
            algorithm=algorithm,
            agent_id=self.identity["agent_id"],
            audience=ISSUER,
            now=self.clock.now(),
        )
        details = {
            "type": "agent_task",
            "intent": "triage",
            "purpose": "support-triage",
            "environment": "dev",
            "targets": ["tickets"],
        }
        return self._token(
            key,
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": assertion,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "requested_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "authorization_details": json.dumps([details]),
            },
        )

    def access_token(self, key: DPoPKey, task_token: str) -> dict[str, Any]:
        """Exchange a task token for a read token on the tickets target."""
        return self._token(
            key,
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": task_token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "resource": "tickets",
                "scope": "read",
            },
        )

    def introspect(self, token: str) -> bool:
        """Return the ``active`` answer of RFC 7662 introspection."""
        answer = self.run(self.runtime.broker.token_status.introspect, token)
        return bool(answer.body["active"])

    def revoke(self, token: str) -> None:
        """Revoke a token (RFC 7009)."""
        self.run(
            self.runtime.broker.token_status.revoke, RevocationRequest(token=token)
        )

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.state / "gatepass.db"

    def snapshot(self, to: Path) -> None:
        """Take a consistent copy of the database (SQLite online backup)."""
        source = sqlite3.connect(self.db_path)
        target = sqlite3.connect(to)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()


def settings_for(state: Path) -> Settings:
    """Quickstart-like settings with one http target, on ``state``."""
    return Settings.model_validate(
        {
            "server": {"issuer": ISSUER, "state_dir": str(state)},
            "policy": {
                "directory": str(REPO / "examples" / "quickstart" / "policies"),
                "reload_interval_seconds": 0,
            },
            "targets": [
                {
                    "name": "tickets",
                    "uri": "https://tickets.test/",
                    "environment": "dev",
                    "tenant": "acme",
                    "actions": ["read", "write"],
                    "max_ttl_seconds": 600,
                }
            ],
            "demo": {"enabled": True, "tenant": "acme", "labels": {"team": "support"}},
        }
    )


class Brokers:
    """Start and restart brokers on one state directory; dispose them all."""

    def __init__(self, state: Path) -> None:
        """Remember the state directory."""
        self.state = state
        self.clock = FrozenClock(START)
        self._started: list[Runtime] = []

    def start(self) -> Broker:
        """Start a broker (a restart when one ran before)."""
        for runtime in self._started:
            runtime.database.dispose()
        self._started.clear()
        runtime = build_runtime(settings_for(self.state), clock=self.clock)
        self._started.append(runtime)
        return Broker(runtime=runtime, clock=self.clock, state=self.state)

    def stop(self) -> None:
        """Stop every broker started."""
        for runtime in self._started:
            runtime.database.dispose()
        self._started.clear()

    def restore(self, snapshot: Path) -> None:
        """Put a database snapshot back in place of the live file (broker stopped)."""
        self.stop()
        for suffix in ("-wal", "-shm"):
            (self.state / f"gatepass.db{suffix}").unlink(missing_ok=True)
        shutil.copyfile(snapshot, self.state / "gatepass.db")


def issue(broker: Broker, tasks: int, tokens_per_task: int) -> list[dict[str, Any]]:
    """Open ``tasks`` tasks, each with ``tokens_per_task`` read tokens."""
    issued = []
    for _ in range(tasks):
        key = DPoPKey.generate()
        task = broker.open_task(key)
        tokens = [
            broker.access_token(key, task["access_token"])["access_token"]
            for _ in range(tokens_per_task)
        ]
        issued.append({"key": key, "task": task, "tokens": tokens})
    return issued


def seal_expected(broker: Broker, match: str) -> None:
    """Assert the broker is sealed, unready, and says ``match`` in its reason."""
    seal = broker.runtime.context.seal
    assert seal.sealed
    assert seal.reason is not None
    assert match in seal.reason
    assert broker.runtime.context.seal.unready() is not None


def audit_cli(broker: Broker, *args: str) -> Result:
    """Run ``gatepass audit ...`` against the broker's app, in-process."""
    with warnings.catch_warnings():
        # Starlette's TestClient warns on import only (see tests/unit/cli/conftest).
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient  # noqa: PLC0415

    with TestClient(create_app(broker.runtime, background_jobs=False)) as http:
        # With httpx2 installed (the mcp extra) the TestClient is an httpx2.Client.
        client = cast("httpx.Client", http)
        connector = Connector(open_http=lambda _address: client, owns_http=False)
        admin = (broker.state / "admin.token").read_text().strip()
        environment = {
            "GATEPASS_TOKEN": admin,
            "GATEPASS_ADDR": "http://testserver",
            "GATEPASS_STATE_DIR": str(broker.state),
        }
        return CliRunner().invoke(
            cli_app, ["audit", *args], obj=connector, env=environment
        )


def insert_forged(conn: Any, record: AuditRecord) -> AuditRecord:
    """Write a record as an attacker would: correct hash, no valid MAC."""
    values = record.to_json()
    values.update(at=record.at, data=dict(record.data), mac=record.mac)
    conn.execute(audit_events.insert().values(**values))
    return record
