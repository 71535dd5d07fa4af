"""A broker assembled in-process on SQLite with a frozen clock: no sockets."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from gatepass.broker import (
    AccessTokenRequest,
    Broker,
    OpenTaskRequest,
    Runtime,
    TaskDetails,
    build_runtime,
)
from gatepass.clock import FrozenClock
from gatepass.config import Settings
from gatepass.tokens import (
    JWT_TOKEN_TYPE,
    DPoPKey,
    create_assertion,
    load_private_key,
)

REPO = Path(__file__).resolve().parents[3]
ISSUER = "http://broker.test"
START = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)  # a Monday, business hours


@dataclass
class Harness:
    """A runtime, its clock, and the demo agent's keys."""

    runtime: Runtime
    clock: FrozenClock
    identity: dict[str, Any]
    policy_dir: Path

    def run(self, coroutine_function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a broker coroutine to completion."""
        return anyio.run(lambda: coroutine_function(*args, **kwargs))

    @property
    def broker(self) -> Broker:
        """The broker's use cases."""
        return self.runtime.broker

    def open_task(self, key: DPoPKey, **details: Any) -> dict[str, Any]:
        """Open a task for the demo agent; return the token response body."""
        private_key, _, algorithm = load_private_key(self.identity["private_jwk"])
        assertion = create_assertion(
            private_key,
            algorithm=algorithm,
            agent_id=self.identity["agent_id"],
            audience=ISSUER,
            now=self.clock.now(),
        )
        max_ttl = details.pop("max_ttl_seconds", None)
        request = OpenTaskRequest(
            subject_token=assertion,
            subject_token_type=JWT_TOKEN_TYPE,
            details=TaskDetails(
                intent=details.pop("intent", "triage"),
                purpose=details.pop("purpose", "support-triage"),
                environment=details.pop("environment", "dev"),
                tenant=details.pop("tenant", None),
                targets=tuple(details.pop("targets", ["tickets"])),
                max_ttl=None if max_ttl is None else dt.timedelta(seconds=max_ttl),
            ),
            client_id=None,
        )
        assert not details, f"unknown task details {sorted(details)}"
        proof = key.proof("POST", f"{ISSUER}/token", now=self.clock.now())
        answer = self.run(self.broker.tokens.exchange, request, dpop_proof=proof)
        result: dict[str, Any] = answer.body
        return result

    def access_token(
        self, key: DPoPKey, task_token: str, scope: str = "read"
    ) -> dict[str, Any]:
        """Exchange a task token for an access token to the tickets target."""
        request = AccessTokenRequest(
            subject_token=task_token,
            resource="tickets",
            actions=tuple(scope.split()),
            client_id=None,
        )
        proof = key.proof("POST", f"{ISSUER}/token", now=self.clock.now())
        answer = self.run(self.broker.tokens.exchange, request, dpop_proof=proof)
        result: dict[str, Any] = answer.body
        return result


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A fresh broker with copied quickstart policies (so tests can edit them)."""
    policy_dir = tmp_path / "policies"
    shutil.copytree(REPO / "examples" / "quickstart" / "policies", policy_dir)
    settings = Settings.model_validate(
        {
            "server": {"issuer": ISSUER, "state_dir": str(tmp_path / "state")},
            "policy": {"directory": str(policy_dir), "reload_interval_seconds": 0},
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
    clock = FrozenClock(START)
    runtime = build_runtime(settings, clock=clock)
    identity = json.loads((tmp_path / "state" / "demo-agent.json").read_text())
    try:
        yield Harness(runtime, clock, identity, policy_dir)
    finally:
        runtime.database.dispose()
