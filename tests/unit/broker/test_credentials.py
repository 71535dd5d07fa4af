"""Engine-backed credentials: intent first, revocation retried, orphans reaped."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatepass.api.inputs import credential_request
from gatepass.broker import PresentedTaskToken, build_runtime
from gatepass.clock import FrozenClock
from gatepass.config import Settings
from gatepass.errors import (
    ConflictError,
    EngineUnavailableError,
    InvalidRequestError,
    InvalidTargetError,
    NotFoundError,
    TokenError,
    TokenRevokedError,
)
from gatepass.models import LeaseState
from gatepass.store import audit_log
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows
from gatepass.store.tables import leases as lease_table
from gatepass.testing import MemoryEngine
from gatepass.tokens import DPoPKey

from .conftest import ISSUER, REPO, START, Harness

CREDENTIALS_URL = f"{ISSUER}/v1/credentials"


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[Harness, MemoryEngine]]:
    """A broker with an engine target ``vault`` served by a MemoryEngine."""
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
                },
                {
                    "name": "vault",
                    "uri": "redis://vault.test:6379/",
                    "kind": "redis",
                    "environment": "dev",
                    "tenant": "acme",
                    "actions": ["read", "write"],
                    "max_ttl_seconds": 600,
                    "engine": {
                        "admin_url": "redis://127.0.0.1:1/0",
                        "grants": {
                            "read": {"keys": ["v:*"], "categories": ["+@read"]},
                            "write": {"keys": ["v:*"], "categories": ["+@write"]},
                        },
                    },
                },
            ],
            "demo": {"enabled": True, "tenant": "acme", "labels": {"team": "support"}},
        }
    )
    clock = FrozenClock(START)
    engine = MemoryEngine()
    runtime = build_runtime(settings, clock=clock, engines={"vault": engine})
    identity = json.loads((tmp_path / "state" / "demo-agent.json").read_text())
    try:
        yield Harness(runtime, clock, identity, policy_dir), engine
    finally:
        runtime.database.dispose()


def request_credential(
    harness: Harness,
    key: DPoPKey,
    task_token: str,
    payload: Any,
    *,
    proof: str | None = "auto",
) -> dict[str, Any]:
    """Call the credentials use case as the API does."""
    if proof == "auto":
        proof = key.proof(
            "POST", CREDENTIALS_URL, access_token=task_token, now=harness.clock.now()
        )
    presented = PresentedTaskToken(
        authorization=f"DPoP {task_token}", dpop_proof=proof, url=CREDENTIALS_URL
    )
    # Parsed at the edge, as the API does, then handed to the use case.
    wanted = credential_request(payload, idempotency_key=None)
    answer: dict[str, Any] = harness.run(
        harness.broker.issue_credential, wanted, presented
    )
    return answer


def lease_of(harness: Harness, lease_id: str) -> Any:
    """Return a lease from the store."""
    with harness.runtime.database.reading() as conn:
        return lease_rows.get_lease(conn, lease_id)


def kinds_of_audit(harness: Harness) -> list[str]:
    """Return the audit kinds in order."""
    with harness.runtime.database.reading() as conn:
        return [record.kind for record in audit_log.iter_audit(conn)]


class TestIssue:
    """Intent first: pending, engine, active, then the credential."""

    def test_issue_and_close(self, vault: tuple[Harness, MemoryEngine]) -> None:
        """A credential is recorded, returned once, and removed when the task closes."""
        harness, engine = vault
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["tickets", "vault"])
        answer = request_credential(
            harness, key, task["access_token"], {"target": "vault", "actions": ["read"]}
        )
        assert answer["kind"] == "redis"
        assert answer["credential"]["password"].startswith("pw-gp_")
        assert answer["expires_in"] == 600
        lease = lease_of(harness, answer["lease_id"])
        assert lease.state is LeaseState.ACTIVE
        assert list(engine.credentials) == [lease.handle]
        kinds = kinds_of_audit(harness)
        assert kinds.index("credential.intent") < kinds.index("credential.issue")
        assert "pw-gp_" not in json.dumps(kinds)
        harness.run(
            harness.broker.closing.close_task,
            task["task_id"],
            actor="test",
            reason="done",
        )
        assert engine.credentials == {}
        assert lease_of(harness, answer["lease_id"]).state is LeaseState.REVOKED

    def test_refusals(self, vault: tuple[Harness, MemoryEngine]) -> None:
        """Bad bodies, http targets, missing tokens and closed tasks are refused."""
        harness, engine = vault
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["tickets", "vault"])
        token = task["access_token"]
        with pytest.raises(InvalidRequestError):
            request_credential(harness, key, token, ["not", "an", "object"])
        with pytest.raises(InvalidRequestError):
            request_credential(harness, key, token, {"target": "vault", "x": 1})
        with pytest.raises(InvalidTargetError, match="token endpoint"):
            request_credential(
                harness, key, token, {"target": "tickets", "scope": "read"}
            )
        with pytest.raises(TokenError):
            harness.run(
                harness.broker.issue_credential,
                credential_request(
                    {"target": "vault", "scope": "read"}, idempotency_key=None
                ),
                PresentedTaskToken(
                    authorization=None, dpop_proof=None, url=CREDENTIALS_URL
                ),
            )
        harness.run(
            harness.broker.closing.close_task, task["task_id"], actor="t", reason="x"
        )
        with pytest.raises(TokenRevokedError):
            request_credential(
                harness, key, token, {"target": "vault", "scope": "read"}
            )
        assert engine.credentials == {}

    def test_engine_failure_leaves_nothing(
        self, vault: tuple[Harness, MemoryEngine]
    ) -> None:
        """A failing issue is revoked at once: no credential, lease revoked."""
        harness, engine = vault
        engine.fail_issue = True
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["vault"])
        with pytest.raises(EngineUnavailableError):
            request_credential(
                harness, key, task["access_token"], {"target": "vault", "scope": "read"}
            )
        assert engine.credentials == {}
        with harness.runtime.database.reading() as conn:
            states = {lease.state for lease in lease_rows.list_leases(conn)}
        assert states == {LeaseState.REVOKED}

    def test_close_during_issue(self, vault: tuple[Harness, MemoryEngine]) -> None:
        """A task closed while the engine works: no credential survives."""
        harness, engine = vault
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["vault"])

        def close_behind_the_back() -> None:
            with harness.runtime.database.transaction() as conn:
                task_rows.close_task(
                    conn, task["task_id"], now=harness.clock.now(), reason="race"
                )
                for lease in lease_rows.list_leases(conn, task_id=task["task_id"]):
                    lease_rows.revoke_lease(conn, lease.id, harness.clock.now())

        engine.during_issue = close_behind_the_back
        with pytest.raises(TokenRevokedError):
            request_credential(
                harness, key, task["access_token"], {"target": "vault", "scope": "read"}
            )
        assert engine.credentials == {}


class TestRevocationRetries:
    """A target that refuses revocation is retried; never reported revoked early."""

    def test_backoff_then_success(self, vault: tuple[Harness, MemoryEngine]) -> None:
        """Revocation stays pending with attempts until the target answers."""
        harness, engine = vault
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["vault"])
        answer = request_credential(
            harness, key, task["access_token"], {"target": "vault", "scope": "read"}
        )
        engine.fail_revoke = True
        harness.run(
            harness.broker.closing.close_task, task["task_id"], actor="t", reason="x"
        )
        lease = lease_of(harness, answer["lease_id"])
        assert lease.state is LeaseState.REVOKING
        assert lease.attempts == 1
        assert lease.last_error
        # Not due yet: nothing happens until the backoff passed.
        engine.fail_revoke = False
        harness.run(harness.broker.revocations.run)
        assert lease_of(harness, answer["lease_id"]).state is LeaseState.REVOKING
        harness.clock.advance(dt.timedelta(seconds=3))
        harness.run(harness.broker.revocations.run)
        assert lease_of(harness, answer["lease_id"]).state is LeaseState.REVOKED
        assert engine.credentials == {}

    def test_expired_credentials_are_revoked(
        self, vault: tuple[Harness, MemoryEngine]
    ) -> None:
        """A credential past its expiry is removed from the target by the sweep."""
        harness, engine = vault
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["vault"], max_ttl_seconds=3600)
        answer = request_credential(
            harness, key, task["access_token"], {"target": "vault", "scope": "read"}
        )
        harness.clock.advance(answer["expires_in"] + 1)
        harness.run(harness.broker.sweeper.sweep)
        assert lease_of(harness, answer["lease_id"]).state is LeaseState.REVOKED
        assert engine.credentials == {}


class TestReaper:
    """Credentials no live lease accounts for are removed."""

    def test_orphans_and_abandoned_issuances(
        self, vault: tuple[Harness, MemoryEngine]
    ) -> None:
        """A stray credential is reaped; a live one stays; a stale pending one goes."""
        harness, engine = vault
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["vault"], max_ttl_seconds=3600)
        live = request_credential(
            harness, key, task["access_token"], {"target": "vault", "scope": "read"}
        )
        engine.credentials["gp_strayaaaaaaaaaaaaaaaaaaaaaa"] = START
        removed = harness.run(harness.broker.revocations.reap)
        assert removed == {"vault": ["gp_strayaaaaaaaaaaaaaaaaaaaaaa"]}
        handle = lease_of(harness, live["lease_id"]).handle
        assert handle in engine.credentials
        with harness.runtime.database.transaction() as conn:
            conn.execute(
                lease_table.update()
                .where(lease_table.c.id == live["lease_id"])
                .values(state="pending")
            )
        harness.clock.advance(dt.timedelta(seconds=60))
        harness.run(harness.broker.revocations.reap)
        assert lease_of(harness, live["lease_id"]).state is LeaseState.REVOKED
        assert engine.credentials == {}


class TestRenew:
    """Live credentials are extended within their caps; ended ones are not."""

    def renew(self, harness: Harness, key: DPoPKey, token: str, lease_id: str) -> Any:
        """Call the renew use case as the API does."""
        url = f"{ISSUER}/v1/credentials/{lease_id}/renew"
        presented = PresentedTaskToken(
            authorization=f"DPoP {token}",
            dpop_proof=key.proof(
                "POST", url, access_token=token, now=harness.clock.now()
            ),
            url=url,
        )
        return harness.run(harness.broker.renew_credential, lease_id, presented)

    def test_renew_extends(self, vault: tuple[Harness, MemoryEngine]) -> None:
        """Renewing moves the lease and the credential to a fresh TTL."""
        harness, engine = vault
        key = DPoPKey.generate()
        task = harness.open_task(key, targets=["vault"], max_ttl_seconds=3600)
        token = task["access_token"]
        issued = request_credential(
            harness, key, token, {"target": "vault", "scope": "read"}
        )
        harness.clock.advance(300)
        renewed = self.renew(harness, key, token, issued["lease_id"])
        assert renewed["expires_in"] == 600
        lease = lease_of(harness, issued["lease_id"])
        assert lease.expires_at == harness.clock.now() + dt.timedelta(seconds=600)
        assert engine.credentials[lease.handle] == lease.expires_at

    def test_renew_refusals(self, vault: tuple[Harness, MemoryEngine]) -> None:
        """Unknown, foreign and revoked leases cannot be renewed."""
        harness, _ = vault
        key, other_key = DPoPKey.generate(), DPoPKey.generate()
        task = harness.open_task(key, targets=["vault"])
        other = harness.open_task(other_key, targets=["vault"])
        issued = request_credential(
            harness, key, task["access_token"], {"target": "vault", "scope": "read"}
        )
        with pytest.raises(NotFoundError):
            self.renew(harness, other_key, other["access_token"], issued["lease_id"])
        harness.run(
            harness.broker.closing.revoke_lease,
            issued["lease_id"],
            actor="t",
            reason="x",
        )
        with pytest.raises(ConflictError):
            self.renew(harness, key, task["access_token"], issued["lease_id"])
