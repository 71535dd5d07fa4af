"""Fixtures for the policy tests: the quickstart set and request factories."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gatepass.policy import (
    AgentFacts,
    CedarPolicySet,
    PolicyRequest,
    TargetFacts,
    TaskFacts,
)

QUICKSTART = Path(__file__).resolve().parents[3] / "examples/quickstart/policies"
# A Tuesday, inside business hours.
TUESDAY_10 = dt.datetime(2026, 1, 6, 10, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def quickstart_dir() -> Path:
    """The quickstart policy directory."""
    return QUICKSTART


@pytest.fixture(scope="session")
def quickstart() -> CedarPolicySet:
    """The quickstart policies, loaded once."""
    return CedarPolicySet.from_directory(QUICKSTART)


@pytest.fixture(scope="session")
def schema_text() -> str:
    """The quickstart schema, for policy directories built in tests."""
    return (QUICKSTART / "schema.cedarschema").read_text(encoding="utf-8")


@pytest.fixture
def make_request() -> Callable[..., PolicyRequest]:
    """Build a request for the demo agent on dev tickets; override any part."""

    def make(
        *,
        action: str = "read",
        now: dt.datetime = TUESDAY_10,
        agent: dict[str, Any] | None = None,
        target: dict[str, Any] | None = None,
        task: dict[str, Any] | None = None,
    ) -> PolicyRequest:
        agent_fields: dict[str, Any] = {
            "id": "agt_demo",
            "name": "demo-agent",
            "tenant": "acme",
            "labels": {"team": "support"},
        }
        target_fields: dict[str, Any] = {
            "name": "tickets",
            "uri": "http://127.0.0.1:8401/",
            "kind": "http",
            "environment": "dev",
            "tenant": "acme",
            "risk": "low",
        }
        task_fields: dict[str, Any] = {
            "purpose": "support-triage",
            "intent": "triage the queue",
            "environment": "dev",
            "tenant": "acme",
            "age_seconds": 5,
        }
        return PolicyRequest(
            agent=AgentFacts(**{**agent_fields, **(agent or {})}),
            action=action,
            target=TargetFacts(**{**target_fields, **(target or {})}),
            task=TaskFacts(**{**task_fields, **(task or {})}),
            now=now,
        )

    return make


@pytest.fixture
def make_policy_dir(tmp_path: Path, schema_text: str) -> Callable[..., Path]:
    """Write a policy directory with the quickstart schema and the given files."""

    def make(files: dict[str, str], *, schema: str | None = None) -> Path:
        directory = tmp_path / "policies"
        directory.mkdir(exist_ok=True)
        (directory / "schema.cedarschema").write_text(
            schema_text if schema is None else schema, encoding="utf-8"
        )
        for name, text in files.items():
            (directory / name).write_text(text, encoding="utf-8")
        return directory

    return make
