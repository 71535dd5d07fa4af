"""The lease state machine, and the store obeying it."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    rule,
)

from gatepass.ids import new_agent_id, new_lease_id, new_task_id, new_token_id
from gatepass.leases import (
    ACCESS_TOKEN_KIND,
    TRANSITIONS,
    can_move,
    ended_state,
    expired_state,
    is_live,
)
from gatepass.models import Lease, LeaseState, Task
from gatepass.store import Database, leases, tasks

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
ENGINE_KIND = "postgres"


class TestMoves:
    """The written-down rules."""

    @pytest.mark.parametrize("kind", [ACCESS_TOKEN_KIND, ENGINE_KIND])
    def test_endings_are_allowed_moves(self, kind: str) -> None:
        """Revoking or expiring a live lease is an allowed move for its kind."""
        for state in (LeaseState.ACTIVE,):
            assert can_move(state, ended_state(kind), kind=kind)
            assert can_move(state, expired_state(kind), kind=kind)

    def test_engine_leases_are_revoked_only_after_confirmation(self) -> None:
        """An engine lease reaches revoked only from revoking."""
        for state in LeaseState:
            allowed = can_move(state, LeaseState.REVOKED, kind=ENGINE_KIND)
            assert allowed == (state is LeaseState.REVOKING)

    def test_tokens_never_wait_for_an_engine(self) -> None:
        """An access token never passes through revoking."""
        for state in LeaseState:
            assert not can_move(state, LeaseState.REVOKING, kind=ACCESS_TOKEN_KIND)

    def test_ended_states_are_not_live(self) -> None:
        """Only pending and active are live; expired is final."""
        assert {s for s in LeaseState if is_live(s)} == {
            LeaseState.PENDING,
            LeaseState.ACTIVE,
        }
        assert TRANSITIONS[LeaseState.EXPIRED] == frozenset()


class LeaseStore(RuleBasedStateMachine):
    """Random issue/activate/revoke/expire/confirm runs against the real store."""

    leases = Bundle("leases")

    def __init__(self) -> None:
        """Start with an empty SQLite store holding one open task."""
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.db = Database(f"sqlite:///{Path(self._dir.name) / 'leases.db'}")
        self.db.create_schema()
        self.now = T0
        self.task = Task(
            id=new_task_id(),
            agent_id=new_agent_id(),
            tenant="acme",
            environment="dev",
            purpose="p",
            intent="i",
            targets=("t",),
            jkt="k",
            token_jti=new_token_id(),
            created_at=T0,
            expires_at=T0 + dt.timedelta(days=1),
        )
        with self.db.transaction() as conn:
            tasks.insert_task(conn, self.task)
        self.seen: dict[str, LeaseState] = {}

    def teardown(self) -> None:
        """Close and remove the store."""
        self.db.dispose()
        self._dir.cleanup()

    def _state(self, lease_id: str) -> tuple[LeaseState, str]:
        with self.db.reading() as conn:
            lease = leases.get_lease(conn, lease_id)
        assert lease is not None
        return lease.state, lease.kind

    def _observe(self, lease_id: str) -> None:
        state, kind = self._state(lease_id)
        before = self.seen.get(lease_id)
        if before is not None and before is not state:
            assert can_move(before, state, kind=kind), (kind, before, state)
        self.seen[lease_id] = state

    @rule(
        target=leases,
        kind=st.sampled_from([ACCESS_TOKEN_KIND, ENGINE_KIND]),
        ttl=st.integers(1, 120),
    )
    def issue(self, kind: str, ttl: int) -> str:
        """Record a lease the way the broker does (tokens active, engines pending)."""
        pending = kind != ACCESS_TOKEN_KIND
        lease = Lease(
            id=new_lease_id(),
            task_id=self.task.id,
            agent_id=self.task.agent_id,
            target="t",
            kind=kind,
            actions=("read",),
            handle=new_token_id(),
            state=LeaseState.PENDING if pending else LeaseState.ACTIVE,
            issued_at=self.now,
            expires_at=self.now + dt.timedelta(seconds=ttl),
        )
        with self.db.transaction() as conn:
            assert leases.insert_lease_if_task_open(conn, lease, self.now)
        self._observe(lease.id)
        return lease.id

    @rule(lease_id=leases)
    def activate(self, lease_id: str) -> None:
        """Activate (a no-op unless pending)."""
        with self.db.transaction() as conn:
            leases.activate_lease(
                conn, lease_id, handle=lease_id, expires_at=self.now + dt.timedelta(60)
            )
        self._observe(lease_id)

    @rule(lease_id=leases)
    def revoke(self, lease_id: str) -> None:
        """Revoke (a no-op unless live)."""
        with self.db.transaction() as conn:
            leases.revoke_lease(conn, lease_id, self.now)
        self._observe(lease_id)

    @rule(lease_id=leases)
    def confirm(self, lease_id: str) -> None:
        """Confirm an engine's revocation (a no-op unless revoking)."""
        with self.db.transaction() as conn:
            leases.mark_revoked(conn, lease_id, self.now)
        self._observe(lease_id)

    @rule(lease_id=consumes(leases))
    def reopen(self, lease_id: str) -> None:
        """Reopen a revocation: a credential appeared after its lease ended."""
        with self.db.transaction() as conn:
            leases.reopen_revocation(conn, lease_id, self.now)
        self._observe(lease_id)

    @rule(seconds=st.integers(1, 90))
    def sweep(self, seconds: int) -> None:
        """Let time pass and sweep: nothing stays live past its expiry."""
        self.now += dt.timedelta(seconds=seconds)
        with self.db.transaction() as conn:
            leases.expire_leases(conn, self.now)
        with self.db.reading() as conn:
            for lease in leases.list_leases(conn, limit=10_000):
                assert not (is_live(lease.state) and lease.expires_at <= self.now)
        for lease_id in list(self.seen):
            self._observe(lease_id)


TestLeaseStore = LeaseStore.TestCase
TestLeaseStore.settings = settings(
    max_examples=10, stateful_step_count=15, deadline=None
)
