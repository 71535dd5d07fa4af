"""
Opening tasks with federated workload tokens through the real token endpoint (issue 11).

A GitHub Actions issuer (keys served by a real local HTTP server) registers its
agents on first use; a Kubernetes issuer refuses unknown subjects. The agent is a
plain OAuth client: its subject token is the platform's token, its DPoP key its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.unit.identity.jose import IssuerKey
from tests.unit.identity.kit import TestIssuer, github_issuer, kubernetes_issuer

from gatepass.api import create_app
from gatepass.broker import Runtime, build_runtime
from gatepass.clock import FrozenClock, SystemClock
from gatepass.store import agents as agent_rows
from gatepass.store import audit_log
from gatepass.store import tasks as task_rows
from gatepass.tokens import ID_TOKEN_TYPE

from .agents import ProtocolAgent
from .conftest import (
    QUICKSTART_POLICIES,
    RunningServer,
    free_port,
    quickstart_settings,
    start_server,
)
from .key_servers import KeyServer

pytestmark = pytest.mark.slow

FEDERATED_POLICY = """
@id("deployers-read-dev-tickets")
permit (principal, action == Gatepass::Action::"read", resource)
when {
  principal has issuer &&
  principal.issuer == "https://token.actions.githubusercontent.com" &&
  principal.hasTag("environment") && principal.getTag("environment") == "prod" &&
  resource.environment == "dev"
};
"""


@dataclass
class Federated:
    """A broker trusting two federated issuers, and their key server."""

    runtime: Runtime
    server: RunningServer
    keys: KeyServer
    attacker: KeyServer
    github: TestIssuer
    kubernetes: TestIssuer

    @property
    def url(self) -> str:
        """The broker's URL."""
        return self.server.url

    def agent(self) -> ProtocolAgent:
        """A client with a fresh DPoP key (its identity is the platform token)."""
        return ProtocolAgent(
            self.url, {"agent_id": "unused", "private_jwk": _any_jwk()}
        )

    def last_audit(self) -> dict[str, Any]:
        """The newest audit record."""
        with self.runtime.database.reading() as conn:
            (record,) = audit_log.last_audit(conn, 1)
        return record.to_json()


def _any_jwk() -> dict[str, Any]:
    from gatepass.tokens import DPoPKey, private_jwk  # noqa: PLC0415

    return private_jwk(DPoPKey.generate().private_key)


@pytest.fixture(scope="module")
def federated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federated]:
    """A live broker with a GitHub (register) and a Kubernetes (refuse) issuer."""
    github, kubernetes = github_issuer(), kubernetes_issuer()
    keys = KeyServer().start()
    attacker = KeyServer().start()
    keys.serve_json("/github", github.key_document())
    keys.serve_json("/k8s", kubernetes.key_document())
    root = tmp_path_factory.mktemp("federated")
    policies = root / "policies"
    shutil.copytree(
        QUICKSTART_POLICIES, policies, ignore=shutil.ignore_patterns("tests")
    )
    (policies / "federated.cedar").write_text(FEDERATED_POLICY)
    port = free_port()
    loopback = {"allow_http_loopback": True, "allowed_networks": ["127.0.0.1/32"]}
    settings = quickstart_settings(
        root / "state",
        port=port,
        resource_port=free_port(),
        policy={"directory": str(policies)},
        identity={
            "issuers": [
                github.table(
                    jwks_uri=keys.url("/github"),
                    on_unknown_subject="register",
                    **loopback,
                ),
                kubernetes.table(jwks_uri=keys.url("/k8s"), **loopback),
            ]
        },
    )
    runtime = build_runtime(settings)
    running = start_server(create_app(runtime, background_jobs=False), port)
    try:
        yield Federated(runtime, running, keys, attacker, github, kubernetes)
    finally:
        running.stop()
        runtime.database.dispose()
        keys.stop()
        attacker.stop()


def _now() -> FrozenClock:
    return FrozenClock(SystemClock().now())


class TestFederatedTasks:
    """Platform tokens open tasks; policies see the issuer and the token's labels."""

    def test_issue11_github_token_registers_and_opens_a_task(
        self, federated: Federated
    ) -> None:
        """A first GitHub token registers its agent; the next one finds it."""
        github = federated.github
        with federated.agent() as agent:
            first = agent.post_token(
                agent.open_form(assertion=github.token(_now(), jti="run-1"))
            )
            assert first.status_code == 200, first.text
            with federated.runtime.database.reading() as conn:
                registered = agent_rows.get_agent_by_name(conn, github.expected_name)
            assert registered is not None
            assert registered.issuer == "https://token.actions.githubusercontent.com"
            assert registered.public_jwk == {}
            opened = federated.last_audit()
            assert opened["kind"] == "task.open"
            assert opened["actor"] == registered.id
            assert opened["data"]["identity_issuer"] == "github"
            # As an id_token this time; the agent is found, not registered again.
            form = agent.open_form(assertion=github.token(_now(), jti="run-2"))
            form["subject_token_type"] = ID_TOKEN_TYPE
            second = agent.post_token(form)
            assert second.status_code == 200, second.text
            with federated.runtime.database.reading() as conn:
                task = task_rows.get_task(conn, second.json()["task_id"])
            # Policy decides on the labels this task's token proved.
            assert task is not None
            assert task.agent_labels == github.expected_labels
            granted = agent.post_token(agent.access_form(second.json()["access_token"]))
            assert granted.status_code == 200, granted.text
            assert (
                "deployers-read-dev-tickets"
                in federated.last_audit()["data"]["policy_ids"]
            )

    def test_issue11_refusals_are_invalid_grant_and_audited(
        self, federated: Federated
    ) -> None:
        """Replays, unknown subjects and key-naming headers are refused and audited."""
        github, kubernetes = federated.github, federated.kubernetes
        evil = federated.attacker.url("/keys")
        federated.attacker.serve_json(
            "/keys", github.key_document([IssuerKey.generate("evil", "ES256")])
        )
        with federated.agent() as agent:
            token = github.token(_now(), jti="run-replayed")
            assert agent.post_token(agent.open_form(assertion=token)).status_code == 200
            cases = [
                (token, "identity token replayed"),
                (kubernetes.token(_now()), "unknown agent"),
                (github.token(_now(), jti="x", header={"jku": evil}), "carries a key"),
                (github.token(_now(), jti="y", aud="https://other"), "audience"),
                (_unknown_issuer(github), "not trusted"),
            ]
            for subject, message in cases:
                refused = agent.post_token(agent.open_form(assertion=subject))
                assert refused.status_code == 400, refused.text
                assert refused.json()["error"] == "invalid_grant"
                assert message in refused.json()["error_description"]
                record = federated.last_audit()
                assert record["outcome"] == "deny"
                assert record["data"]["error"] == "invalid_grant"
        assert federated.attacker.paths() == []

    def test_issue11_readyz_reports_the_issuers(self, federated: Federated) -> None:
        """Readiness names each issuer's key state."""
        body = httpx.get(f"{federated.url}/readyz").json()
        assert body["status"] == "ready"
        assert set(body["identity"]) == {"github", "prod-cluster"}


def _unknown_issuer(github: TestIssuer) -> str:
    return github.token(_now(), jti="z", iss="https://issuer.unknown.example")
