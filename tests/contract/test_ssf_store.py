"""The SSF transmitter's rows behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt

from gatepass.ids import new_lease_id, new_task_id, new_token_id
from gatepass.models import Lease, LeaseState
from gatepass.store import Database, leases, ssf

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
EVENT = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
LEASE = dt.timedelta(seconds=90)


def _stream(
    stream_id: str = "sst_1", method: str = "urn:ietf:rfc:8936"
) -> ssf.StoredStream:
    return ssf.StoredStream(
        id=stream_id,
        token_id="tok_1",
        config={
            "method": method,
            "audiences": ["tickets"],
            "events_requested": [EVENT],
        },
        sealed_authorization=None,
        status="enabled",
        reason=None,
        cursor=T0 - dt.timedelta(minutes=15),
        created_at=T0,
        updated_at=T0,
        active_at=T0,
    )


def _revoked_lease(
    database: Database, target: str = "tickets", *, live: int = 300
) -> str:
    lease = Lease(
        id=new_lease_id(),
        task_id=new_task_id(),
        agent_id="agt_1",  # type: ignore[arg-type]
        target=target,
        kind="access_token",
        actions=("read",),
        handle=new_token_id(),
        state=LeaseState.ACTIVE,
        issued_at=T0,
        expires_at=T0 + dt.timedelta(seconds=live),
        policy_ids=("p1",),
    )
    with database.transaction() as conn:
        leases.insert_lease(conn, lease)
        assert leases.revoke_lease(conn, lease.id, T0 + dt.timedelta(seconds=1))
    return lease.handle


def _add(database: Database, stream_id: str, subject: str, jti: str) -> int:
    with database.transaction() as conn:
        return ssf.add_events(conn, stream_id, [(jti, EVENT, subject, f"t.{jti}")], T0)


class TestSSFStore:
    """Streams, revoked tokens without events, dedupe, claims and acks."""

    def test_revoked_for_skips_announced_other_targets_and_expired(
        self, database: Database
    ) -> None:
        """Only unexpired revoked tokens of the stream's targets without an event."""
        with database.transaction() as conn:
            ssf.insert_stream(conn, _stream())
        mine = _revoked_lease(database)
        _revoked_lease(database, target="other")
        _revoked_lease(database, live=1)
        now = T0 + dt.timedelta(seconds=2)

        def found() -> list[str]:
            with database.reading() as conn:
                return [
                    token.jti
                    for token in ssf.revoked_for(
                        conn,
                        stream_id="sst_1",
                        event=EVENT,
                        targets=["tickets"],
                        since=T0 - dt.timedelta(seconds=5),
                        now=now,
                    )
                ]

        assert found() == [mine]
        assert _add(database, "sst_1", mine, "set_1") == 1
        assert found() == []

    def test_same_subject_is_stored_once(self, database: Database) -> None:
        """A second event about the same token on the same stream is skipped."""
        with database.transaction() as conn:
            ssf.insert_stream(conn, _stream())
            ssf.insert_stream(conn, _stream("sst_2"))
        assert _add(database, "sst_1", "jti-a", "set_1") == 1
        assert _add(database, "sst_1", "jti-a", "set_2") == 0
        assert _add(database, "sst_2", "jti-a", "set_3") == 1

    def test_poll_ack(self, database: Database) -> None:
        """Pending SETs come oldest first until acked; acks of others do nothing."""
        with database.transaction() as conn:
            ssf.insert_stream(conn, _stream())
        for n in range(3):
            _add(database, "sst_1", f"jti-{n}", f"set_{n}")
        with database.transaction() as conn:
            assert ssf.ack_events(conn, "sst_2", ["set_0"], T0) == 0
            assert ssf.ack_events(conn, "sst_1", ["set_0", "set_9"], T0) == 1
        with database.reading() as conn:
            pending = ssf.pending_events(conn, "sst_1", 10)
        assert [event.jti for event in pending] == ["set_1", "set_2"]

    def test_push_claim_is_a_lease_then_retry_and_fail(
        self, database: Database
    ) -> None:
        """A claimed SET is not due again until its lease ends or its retry is due."""
        with database.transaction() as conn:
            ssf.insert_stream(conn, _stream(method="urn:ietf:rfc:8935"))
        _add(database, "sst_1", "jti-a", "set_a")
        _add(database, "sst_1", "jti-b", "set_b")
        with database.transaction() as conn:
            claimed = ssf.claim_push(conn, ["sst_1"], T0, limit=10, lease=LEASE)
        assert [event.jti for event in claimed] == ["set_a", "set_b"]
        with database.transaction() as conn:
            assert ssf.claim_push(conn, ["sst_1"], T0, limit=10, lease=LEASE) == []
            later = T0 + dt.timedelta(seconds=5)
            assert ssf.mark_retry(
                conn,
                claimed[0].id,
                attempts=1,
                next_attempt_at=later,
                error="status 503",
            )
            assert ssf.mark_failed(
                conn, "sst_1", ["set_b"], error="receiver refused", now=T0, attempts=1
            )
        with database.transaction() as conn:
            again = ssf.claim_push(
                conn, ["sst_1"], T0 + dt.timedelta(seconds=5), limit=10, lease=LEASE
            )
            assert [(event.jti, event.attempts) for event in again] == [("set_a", 1)]
            assert ssf.mark_delivered(conn, again[0].id, attempts=2, now=T0)
            assert not ssf.mark_delivered(conn, again[0].id, attempts=3, now=T0)

    def test_update_delete_and_prune(self, database: Database) -> None:
        """Streams change and go with their SETs; old SETs are pruned."""
        with database.transaction() as conn:
            ssf.insert_stream(conn, _stream())
            assert ssf.update_stream(conn, "sst_1", status="paused", reason="x")
            assert not ssf.update_stream(conn, "sst_9", status="paused")
        _add(database, "sst_1", "jti-a", "set_a")
        with database.reading() as conn:
            stream = ssf.get_stream(conn, "sst_1")
            assert stream is not None
            assert (
                dataclasses.replace(stream, status="enabled", reason=None) == _stream()
            )
            assert ssf.count_streams(conn, "tok_1") == 1
            assert [s.id for s in ssf.list_streams(conn, statuses=["paused"])] == [
                "sst_1"
            ]
        with database.transaction() as conn:
            assert ssf.prune_events(conn, before=T0) == 0
            assert ssf.prune_events(conn, before=T0 + dt.timedelta(seconds=1)) == 1
            assert ssf.delete_stream(conn, "sst_1")
            assert ssf.get_stream(conn, "sst_1") is None
