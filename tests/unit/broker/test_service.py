"""Broker use cases driven in-process with a frozen clock."""

from __future__ import annotations

import pytest

from gatepass.broker import Caller
from gatepass.errors import ConflictError, InvalidGrantError, NotFoundError
from gatepass.models import LeaseState, TaskState
from gatepass.store import ApiRole, audit_log, leases, tasks
from gatepass.tokens import DPoPKey

from .conftest import Harness


def lease_state(harness: Harness, lease_id: str) -> LeaseState:
    """Return a lease's state from the store."""
    with harness.runtime.database.reading() as conn:
        lease = leases.get_lease(conn, lease_id)
    assert lease is not None
    return lease.state


class TestLifetimes:
    """TTL is the minimum of the policy cap, the target cap and the task's life."""

    def test_task_remaining_life_caps_the_token(self, harness: Harness) -> None:
        """A token asked for near the task's deadline lives only until the deadline."""
        key = DPoPKey.generate()
        task = harness.open_task(key, max_ttl_seconds=400)
        assert task["expires_in"] == 400
        harness.clock.advance(300)
        granted = harness.access_token(key, task["access_token"])
        assert granted["expires_in"] == 100

    def test_policy_cap_applies(self, harness: Harness) -> None:
        """Read is capped by the policy's @ttl("600"), write by @ttl("300")."""
        key = DPoPKey.generate()
        task = harness.open_task(key)
        read = harness.access_token(key, task["access_token"], "read")
        write = harness.access_token(key, task["access_token"], "write")
        assert read["expires_in"] == 600
        assert write["expires_in"] == 300


class TestSweep:
    """Deadlines end tasks and leases without anyone asking."""

    def test_expired_task_revokes_its_leases(self, harness: Harness) -> None:
        """After the deadline the sweep expires the task and revokes its leases."""
        key = DPoPKey.generate()
        task = harness.open_task(key, max_ttl_seconds=120)
        granted = harness.access_token(key, task["access_token"])
        harness.clock.advance(121)
        expired, _ = harness.run(harness.broker.sweeper.sweep)
        assert expired == [task["task_id"]]
        assert lease_state(harness, granted["lease_id"]) is LeaseState.REVOKED
        with pytest.raises(InvalidGrantError):
            harness.access_token(key, task["access_token"])

    def test_expired_lease_is_marked(self, harness: Harness) -> None:
        """A lease past its expiry is marked expired while its task stays open."""
        key = DPoPKey.generate()
        task = harness.open_task(key, max_ttl_seconds=3600)
        granted = harness.access_token(key, task["access_token"])
        harness.clock.advance(granted["expires_in"] + 1)
        expired, count = harness.run(harness.broker.sweeper.sweep)
        assert expired == []
        assert count == 1
        assert lease_state(harness, granted["lease_id"]) is LeaseState.EXPIRED


class TestClosing:
    """Closing is idempotent in effect and precise in its answer."""

    def test_close_twice_conflicts(self, harness: Harness) -> None:
        """A second close is a conflict; an unknown task is not found."""
        key = DPoPKey.generate()
        task = harness.open_task(key)
        closing = harness.broker.closing
        closed = harness.run(
            closing.close_task, task["task_id"], actor="test", reason="done"
        )
        assert closed.state is TaskState.CLOSED
        with pytest.raises(ConflictError):
            harness.run(closing.close_task, task["task_id"], actor="test", reason="x")
        with pytest.raises(NotFoundError):
            harness.run(closing.close_task, "tsk_missing", actor="test", reason="x")

    def test_race_close_wins(self, harness: Harness) -> None:
        """A task closed behind the cache's back refuses the next issuance."""
        key = DPoPKey.generate()
        task = harness.open_task(key)
        with harness.runtime.database.transaction() as conn:
            tasks.close_task(
                conn, task["task_id"], now=harness.clock.now(), reason="elsewhere"
            )
        with pytest.raises(InvalidGrantError, match="task is closed"):
            harness.access_token(key, task["access_token"])
        with harness.runtime.database.reading() as conn:
            assert leases.list_leases(conn, task_id=task["task_id"]) == []


class TestPolicyReload:
    """A policy change re-evaluates what is live (context change)."""

    def test_reload_revokes_what_is_no_longer_allowed(self, harness: Harness) -> None:
        """Removing the write permit revokes live write leases, keeps read ones."""
        key = DPoPKey.generate()
        task = harness.open_task(key)
        read = harness.access_token(key, task["access_token"], "read")
        write = harness.access_token(key, task["access_token"], "write")
        support = harness.policy_dir / "support.cedar"
        text = support.read_text()
        start = text.index('@id("triage-writes-dev")')
        end = text.index("};", start) + 2
        support.write_text(text[:start] + text[end:])
        status = harness.run(harness.broker.policy.reload, "test")
        assert status["revoked_leases"] == [write["lease_id"]]
        assert lease_state(harness, read["lease_id"]) is LeaseState.ACTIVE
        assert lease_state(harness, write["lease_id"]) is LeaseState.REVOKED

    def test_broken_policy_keeps_old_set(self, harness: Harness) -> None:
        """A broken policy file is refused, audited, and the old set stays live."""
        before = harness.runtime.context.policies.current.digest
        (harness.policy_dir / "broken.cedar").write_text("permit (principal, ")
        with pytest.raises(Exception, match="policy set refused"):
            harness.run(harness.broker.policy.reload, "test")
        assert harness.runtime.context.policies.current.digest == before
        with harness.runtime.database.reading() as conn:
            seq, _ = audit_log.read_audit_head(conn)
            last = list(audit_log.iter_audit(conn, after=seq - 1))[-1]
        assert last.kind == "policy.reload"
        assert last.outcome == "error"


class TestKeysAndAudit:
    """Rotation keeps old tokens valid; checkpoints anchor the chain."""

    def test_rotation_keeps_issued_tokens_valid(self, harness: Harness) -> None:
        """A task token signed before rotation still works after it."""
        key = DPoPKey.generate()
        task = harness.open_task(key)
        caller = admin_caller()
        keys_after = harness.run(harness.broker.keys.rotate, caller)
        states = sorted(k["state"] for k in keys_after)
        assert states == ["current", "next", "retired"]
        # Verify the task token again, with the rotated ring.
        harness.runtime.context.task_access.forget_all()
        assert harness.access_token(key, task["access_token"])["scope"] == "read"

    def test_checkpoint_only_when_chain_moved(self, harness: Harness) -> None:
        """A checkpoint is written when the head moved, and not again until it moves."""
        audit = harness.broker.audit
        first = harness.run(audit.checkpoint)
        assert first is not None
        assert harness.run(audit.checkpoint) is None
        harness.open_task(DPoPKey.generate())
        second = harness.run(audit.checkpoint)
        assert second is not None
        assert second.seq > first.seq
        lines = harness.runtime.settings.server.state_dir / "audit-checkpoints.jsonl"
        written = lines.read_text().splitlines()
        assert len([line for line in written if line.startswith('{"checkpoint"')]) == 2


def admin_caller() -> Caller:
    """Return an admin caller for use-case calls."""
    return Caller.of("tok_test", ApiRole.ADMIN)
