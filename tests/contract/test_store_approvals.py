"""The approvals store on SQLite and PostgreSQL: conditional transitions (issue 9)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import delete
from tests.integration.deadline import poll

from gatepass.errors import ConflictError
from gatepass.ids import AgentId, OperatorId, TaskId, new_approval_id, new_lease_id
from gatepass.models import Approval, ApprovalState, Vote, VoteChoice
from gatepass.store import Connection, Database, agents, anchors, tasks
from gatepass.store import approvals as approval_rows
from gatepass.store.tables import metadata

from .test_store import T0, make_agent, make_task

NOW = T0


def _approval(
    agent_id: str, task_id: str, *, max_uses: int = 1, wait: int = 300
) -> Approval:
    return Approval(
        id=new_approval_id(),
        state=ApprovalState.PENDING,
        request_hash="ab" * 32,
        request={"v": "gatepass.approval.v1"},
        agent_id=AgentId(agent_id),
        task_id=TaskId(task_id),
        tenant="acme",
        environment="prod",
        target="db",
        kind="postgres",
        actions=("write",),
        groups=("ops",),
        quorum=1,
        exclude_owners=False,
        max_uses=max_uses,
        ttl=dt.timedelta(seconds=60),
        created_at=NOW,
        expires_at=NOW + dt.timedelta(seconds=wait),
    )


def _stored(database: Database, **kwargs: int) -> Approval:
    agent = make_agent(name=f"agent-{uuid.uuid4().hex[:8]}")
    task = make_task(agent)
    approval = _approval(agent.id, task.id, **kwargs)
    with database.transaction() as conn:
        agents.insert_agent(conn, agent)
        tasks.insert_task(conn, task)
        approval_rows.insert_approval(conn, approval)
    return approval


def _approve(database: Database, approval: Approval, window: int = 300) -> None:
    with database.transaction() as conn:
        assert approval_rows.mark_approved(
            conn, approval.id, now=NOW, redeem_by=NOW + dt.timedelta(seconds=window)
        )


def _get(database: Database, approval_id: str) -> Approval:
    with database.reading() as conn:
        found = approval_rows.get_approval(conn, approval_id)
    assert found is not None
    return found


class TestRoundTrip:
    """What is stored is what is read."""

    def test_insert_and_get(self, database: Database) -> None:
        """Every field survives the store."""
        approval = _stored(database)
        assert _get(database, approval.id) == approval

    def test_find_open_by_task_and_hash(self, database: Database) -> None:
        """The task's open approval of one request is found; an ended one is not."""
        approval = _stored(database)
        with database.reading() as conn:
            found = approval_rows.find_open_approval(
                conn, approval.task_id, approval.request_hash
            )
            other = approval_rows.find_open_approval(conn, approval.task_id, "cd" * 32)
        assert found is not None
        assert found.id == approval.id
        assert other is None
        with database.transaction() as conn:
            approval_rows.end_approval(
                conn, approval.id, ApprovalState.CANCELLED, now=NOW, reason="x"
            )
        with database.reading() as conn:
            assert (
                approval_rows.find_open_approval(
                    conn, approval.task_id, approval.request_hash
                )
                is None
            )


class TestVotes:
    """One vote per operator; what each counts towards."""

    def test_second_vote_of_one_operator_conflicts(self, database: Database) -> None:
        """The table's key makes a quorum count distinct operators."""
        approval = _stored(database)
        vote = Vote(
            operator_id=OperatorId("opr_a"),
            operator_name="a",
            choice=VoteChoice.APPROVE,
            reason="ok",
            at=NOW,
        )
        with database.transaction() as conn:
            approval_rows.record_vote(conn, approval.id, vote, groups={"ops"})
        with database.transaction() as conn, pytest.raises(ConflictError):
            approval_rows.record_vote(conn, approval.id, vote, groups={"ops"})
        with database.reading() as conn:
            assert approval_rows.vote_groups(conn, approval.id) == {"ops": {"opr_a"}}
        assert _get(database, approval.id).votes == (vote,)


class TestTransitions:
    """Conditional updates: a transition happens once, from the right state."""

    def test_approved_once_and_ended_once(self, database: Database) -> None:
        """mark_approved needs pending; end_approval needs an open state."""
        approval = _stored(database)
        _approve(database, approval)
        with database.transaction() as conn:
            assert not approval_rows.mark_approved(
                conn, approval.id, now=NOW, redeem_by=NOW
            )
            assert approval_rows.end_approval(
                conn, approval.id, ApprovalState.DENIED, now=NOW, reason="no"
            )
            assert not approval_rows.end_approval(
                conn, approval.id, ApprovalState.CANCELLED, now=NOW, reason="late"
            )
        ended = _get(database, approval.id)
        assert (ended.state, ended.end_reason) == (ApprovalState.DENIED, "no")

    def test_consume_spends_each_use_once(self, database: Database) -> None:
        """Two uses, then nothing: the last use turns it redeemed."""
        approval = _stored(database, max_uses=2)
        _approve(database, approval)
        results = []
        for _ in range(3):
            with database.transaction() as conn:
                results.append(
                    approval_rows.consume_approval(
                        conn, approval.id, lease_id=new_lease_id(), now=NOW
                    )
                )
        assert results == [True, True, False]
        spent = _get(database, approval.id)
        assert (spent.state, spent.uses) == (ApprovalState.REDEEMED, 2)

    def test_consume_refuses_pending_and_past_window(self, database: Database) -> None:
        """Only an approved approval inside its window can be spent."""
        approval = _stored(database)
        with database.transaction() as conn:
            assert not approval_rows.consume_approval(
                conn, approval.id, lease_id=new_lease_id(), now=NOW
            )
        _approve(database, approval, window=10)
        with database.transaction() as conn:
            assert not approval_rows.consume_approval(
                conn,
                approval.id,
                lease_id=new_lease_id(),
                now=NOW + dt.timedelta(seconds=10),
            )

    def test_expire_pending_and_unredeemed(self, database: Database) -> None:
        """Overdue pending and approved-but-unredeemed approvals expire; others wait."""
        late = _stored(database, wait=10)
        unredeemed = _stored(database, wait=600)
        _approve(database, unredeemed, window=20)
        fresh = _stored(database, wait=600)
        with database.transaction() as conn:
            expired = approval_rows.expire_approvals(
                conn, NOW + dt.timedelta(seconds=30)
            )
        assert sorted(expired) == sorted([late.id, unredeemed.id])
        assert _get(database, late.id).end_reason == "not approved in time"
        assert _get(database, unredeemed.id).end_reason == "not redeemed in time"
        assert _get(database, fresh.id).state is ApprovalState.PENDING

    def test_cancel_by_task_and_by_agent(self, database: Database) -> None:
        """Cancelling names the task's (or the agent's) open approvals only."""
        first, second = _stored(database), _stored(database)
        with database.transaction() as conn:
            by_task = approval_rows.cancel_approvals(
                conn, now=NOW, reason="task closed", task_ids=[first.task_id]
            )
            by_agent = approval_rows.cancel_approvals(
                conn, now=NOW, reason="agent disabled", agent_id=second.agent_id
            )
            nothing = approval_rows.cancel_approvals(conn, now=NOW, reason="none")
        assert (by_task, by_agent, nothing) == ([first.id], [second.id], [])

    def test_final_states_are_noted_for_the_anchor_journal(
        self, database: Database
    ) -> None:
        """The chain view reports an ended approval as not live."""
        approval = _stored(database)
        with database.reading() as conn:
            view = anchors.SqlChainView(conn)
            assert view.still_live("approvals", [approval.id]) == {approval.id}
        _approve(database, approval)
        with database.transaction() as conn:
            approval_rows.consume_approval(
                conn, approval.id, lease_id=new_lease_id(), now=NOW
            )
        with database.reading() as conn:
            assert anchors.SqlChainView(conn).still_live(
                "approvals", [approval.id]
            ) == (set())


@pytest.fixture
def postgres_store(postgres_database: str) -> Iterator[Database]:
    """The PostgreSQL store alone: SQLite runs one write transaction at a time."""
    db = Database(postgres_database, pool_size=8)
    db.create_schema()
    try:
        yield db
    finally:
        with db.transaction() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name != "gp_settings":
                    conn.execute(delete(table))
        db.dispose()


@pytest.mark.postgres
class TestConcurrency:
    """Concurrent redemptions and votes on PostgreSQL."""

    def test_concurrent_consumes_spend_one_use(self, postgres_store: Database) -> None:
        """Eight threads redeem a single-use approval at once: one wins."""
        database = postgres_store
        approval = _stored(database)
        _approve(database, approval)
        start = threading.Barrier(8)

        def redeem(_: int) -> bool:
            start.wait(timeout=10)
            with database.transaction() as conn:
                return approval_rows.consume_approval(
                    conn, approval.id, lease_id=new_lease_id(), now=NOW
                )

        with ThreadPoolExecutor(max_workers=8) as pool:
            won = list(pool.map(redeem, range(8)))
        assert won.count(True) == 1
        assert _get(database, approval.id).uses == 1

    def test_locked_votes_see_each_other(self, postgres_store: Database) -> None:
        """A vote waits for a concurrent one on the same approval, then counts it."""
        database = postgres_store
        approval = _stored(database)
        first_voted, second_counted = threading.Event(), threading.Event()

        def vote(conn: Connection, index: int) -> int:
            approval_rows.lock_approval(conn, approval.id)
            approval_rows.record_vote(
                conn,
                approval.id,
                Vote(
                    operator_id=OperatorId(f"opr_{index}"),
                    operator_name=f"op{index}",
                    choice=VoteChoice.APPROVE,
                    reason="ok",
                    at=NOW,
                ),
                groups={"ops"},
            )
            return len(approval_rows.vote_groups(conn, approval.id)["ops"])

        def first() -> int:
            with database.transaction() as conn:
                count = vote(conn, 1)
                first_voted.set()
                # Stay open until the second voter either counted (no lock: the
                # lost update this test catches) or waits on the row lock.
                poll(
                    lambda: second_counted.is_set() or _lock_waiters(database) > 0,
                    within=10,
                )
                return count

        def second() -> int:
            assert first_voted.wait(timeout=10)
            with database.transaction() as conn:
                count = vote(conn, 2)
                second_counted.set()
                return count

        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = [pool.submit(first), pool.submit(second)]
            results = sorted(future.result(timeout=30) for future in counts)
        # Without the lock the second would count only its own vote: [1, 1].
        assert results == [1, 2]


def _lock_waiters(database: Database) -> int:
    """How many sessions of this database wait for a lock right now."""
    with database.reading() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
        )
