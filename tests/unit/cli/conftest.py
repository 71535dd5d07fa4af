"""
A real broker in-process and a runner that points the CLI at it.

The broker runs on a :class:`FrozenClock` set to a Tuesday morning, so the
quickstart's business-hours policy never depends on when the suite runs.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner, Result

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.cli import app
from gatepass.cli.client import Connector
from gatepass.clock import FrozenClock
from gatepass.config import Settings
from gatepass.tokens import DPoPKey, create_assertion, load_private_key

# Starlette 1.x prefers httpx2 for its TestClient but still builds it on httpx, which
# is what the CLI speaks; only the import warns, so only the import is excused.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

REPOSITORY = Path(__file__).resolve().parents[3]
QUICKSTART_POLICIES = REPOSITORY / "examples" / "quickstart" / "policies"
ISSUER = "http://127.0.0.1:8400"
TUESDAY_MORNING = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@dataclass
class LiveBroker:
    """A broker app served in-process, with its state directory and clock."""

    runtime: Runtime
    http: TestClient
    state_dir: Path
    policy_dir: Path
    clock: FrozenClock

    @property
    def admin_token(self) -> str:
        """Return the bootstrap admin token the broker wrote."""
        return (self.state_dir / "admin.token").read_text(encoding="utf-8").strip()

    @property
    def demo_agent_id(self) -> str:
        """Return the demo agent's id."""
        identity = json.loads((self.state_dir / "demo-agent.json").read_text())
        return str(identity["agent_id"])

    def checkpoint(self) -> None:
        """Sign the audit chain head now, as the background job would."""
        anyio.run(self.runtime.broker.audit.checkpoint)

    def open_lease(self) -> tuple[str, str]:
        """Open a task as the demo agent and get a read lease on tickets."""
        identity = json.loads((self.state_dir / "demo-agent.json").read_text())
        private_key, _, algorithm = load_private_key(identity["private_jwk"])
        key = DPoPKey.generate()
        now = self.clock.now()
        assertion = create_assertion(
            private_key,
            algorithm=algorithm,
            agent_id=identity["agent_id"],
            audience=ISSUER,
            now=now,
        )
        details = {
            "type": "agent_task",
            "intent": "triage new tickets",
            "purpose": "support-triage",
            "environment": "dev",
            "targets": ["tickets"],
        }
        task = self._token(
            key,
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": assertion,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "requested_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "authorization_details": json.dumps([details]),
            },
        )
        access = self._token(
            key,
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": task["access_token"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "resource": "tickets",
                "scope": "read",
            },
        )
        return str(task["task_id"]), str(access["lease_id"])

    def _token(self, key: DPoPKey, form: dict[str, str]) -> dict[str, Any]:
        proof = key.proof("POST", f"{ISSUER}/token", now=self.clock.now())
        response = self.http.post("/token", data=form, headers={"DPoP": proof})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


def _settings(state_dir: Path, policy_dir: Path) -> Settings:
    return Settings.model_validate(
        {
            "server": {"issuer": ISSUER, "state_dir": str(state_dir)},
            "policy": {"directory": str(policy_dir)},
            "targets": [
                {
                    "name": "tickets",
                    "uri": "http://127.0.0.1:8401/",
                    "environment": "dev",
                    "tenant": "acme",
                    "risk": "low",
                    "actions": ["read", "write"],
                    "max_ttl_seconds": 600,
                },
                {
                    "name": "tickets-prod",
                    "uri": "https://tickets.example.internal/",
                    "environment": "prod",
                    "tenant": "acme",
                    "risk": "high",
                    "actions": ["read", "write", "admin"],
                    "max_ttl_seconds": 300,
                },
            ],
            "demo": {"enabled": True, "tenant": "acme", "labels": {"team": "support"}},
        }
    )


@pytest.fixture(scope="session")
def first_start_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    The state directory of a broker's first start, made once per session.

    Each test's broker starts from a copy, which halves the setup time: keys,
    tokens, the demo agent and the schema already exist.
    """
    state_dir = tmp_path_factory.mktemp("first-start") / "state"
    runtime = build_runtime(
        _settings(state_dir, QUICKSTART_POLICIES), clock=FrozenClock(TUESDAY_MORNING)
    )
    runtime.database.dispose()
    return state_dir


@pytest.fixture
def broker(tmp_path: Path, first_start_state: Path) -> Iterator[LiveBroker]:
    """A quickstart-like broker with two targets and the demo agent."""
    state_dir = tmp_path / "state"
    shutil.copytree(first_start_state, state_dir)
    # A copy, so that a test can break the live policies and reload them.
    policy_dir = tmp_path / "live-policies"
    shutil.copytree(QUICKSTART_POLICIES, policy_dir)
    clock = FrozenClock(TUESDAY_MORNING)
    runtime = build_runtime(_settings(state_dir, policy_dir), clock=clock)
    try:
        with TestClient(create_app(runtime, background_jobs=False)) as http:
            yield LiveBroker(
                runtime=runtime,
                http=http,
                state_dir=state_dir,
                policy_dir=policy_dir,
                clock=clock,
            )
    finally:
        runtime.database.dispose()


@dataclass
class Cli:
    """Runs ``gatepass`` commands against one broker with the admin token."""

    broker: LiveBroker
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(
        self,
        *args: str,
        token: str | None = "admin",  # noqa: S107 - a placeholder, not a secret
        env: dict[str, str | None] | None = None,
        wait: Callable[[float], None] | None = None,
        http: httpx.Client | None = None,
    ) -> Result:
        """
        Run one command; ``token="admin"`` means the broker's admin token.

        ``token=None`` leaves GATEPASS_TOKEN unset so the token file is used.
        """
        chosen = self.broker.admin_token if token == "admin" else token
        environment: dict[str, str | None] = {
            "GATEPASS_TOKEN": chosen,
            "GATEPASS_ADDR": "http://testserver",
            "GATEPASS_STATE_DIR": str(self.broker.state_dir / "absent"),
            "GATEPASS_CONFIG": None,
            "COLUMNS": "250",
            **(env or {}),
        }
        connector = Connector(
            # With httpx2 installed (the mcp extra brings it) Starlette's
            # TestClient is an httpx2.Client: the same API, another class.
            open_http=lambda _address: cast("httpx.Client", http or self.broker.http),
            owns_http=False,
            wait=wait or _never_wait,
            clock=self.broker.clock,
        )
        return self.runner.invoke(app, list(args), obj=connector, env=environment)

    def json(self, *args: str) -> Any:
        """Run a command with ``--json``, insist on success, return the document."""
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def _never_wait(_seconds: float) -> None:
    pytest.fail("the command waited although the test gave it no wait")


def _no_broker(address: str) -> httpx.Client:
    pytest.fail(f"a local command tried to reach the broker at {address}")


@dataclass
class LocalCli:
    """
    Runs ``gatepass`` commands with no broker behind them.

    Without ``http`` there is no token either and any attempt to connect fails
    the test; with ``http`` (a fake admin API) a placeholder token is set.
    """

    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, http: httpx.Client | None = None) -> Result:
        """Run one command."""
        environment: dict[str, str | None] = {
            "GATEPASS_TOKEN": None if http is None else "gp_admin_fake",
            "GATEPASS_ADDR": "http://broker",
            "GATEPASS_STATE_DIR": "/nonexistent",
            "GATEPASS_CONFIG": None,
            "COLUMNS": "250",
        }
        connector = Connector(
            open_http=_no_broker if http is None else (lambda _address: http),
            owns_http=False,
            wait=_never_wait,
        )
        return self.runner.invoke(app, list(args), obj=connector, env=environment)


@pytest.fixture
def cli(broker: LiveBroker) -> Cli:
    """The CLI pointed at the in-process broker."""
    return Cli(broker)


@pytest.fixture
def local_cli() -> LocalCli:
    """The CLI with no broker behind it."""
    return LocalCli()


@pytest.fixture
def broken_policies(tmp_path: Path) -> Path:
    """A copy of the quickstart policies with a syntax error in one file."""
    directory = tmp_path / "broken-policies"
    shutil.copytree(QUICKSTART_POLICIES, directory)
    (directory / "support.cedar").write_text(
        'permit (principal, action, resource) when { principal.tenant == "acme" ',
        encoding="utf-8",
    )
    return directory
