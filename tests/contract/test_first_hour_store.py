"""
The store's part of issue 17 on SQLite and PostgreSQL: audit filters, API tokens.

The audit filters read JSON details (``data->>'task_id'``), which the two
databases spell differently, so they run on both.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from gatepass.audit import AuditEntry
from gatepass.models import ApiRole
from gatepass.store import Database, anchors, api_tokens, audit_log

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _entry(
    kind: str,
    *,
    actor: str = "system",
    subject: str = "",
    outcome: str = "ok",
    minutes: int = 0,
    **data: object,
) -> AuditEntry:
    return AuditEntry(
        at=T0 + dt.timedelta(minutes=minutes),
        kind=kind,
        outcome=outcome,
        actor=actor,
        subject=subject,
        data=dict(data),
    )


def _fill(database: Database) -> None:
    with database.transaction() as conn:
        audit_log.ensure_audit_head(conn)
        for item in (
            _entry("agent.add", subject="agt_a", name="a"),
            _entry("task.open", actor="agt_a", subject="tsk_1", outcome="allow"),
            _entry("credential.issue", actor="agt_a", subject="tsk_1", outcome="allow"),
            _entry(
                "lease.revoke", actor="admin:tok_1", subject="lse_1", task_id="tsk_1"
            ),
            _entry("task_open.x", subject="tsk_2", minutes=5),
            _entry("proxy.call", actor="x", subject="", agent_id="agt_a", minutes=10),
            _entry(
                "task.open", actor="agt_b", subject="tsk_3", outcome="deny", minutes=20
            ),
        ):
            audit_log.append_audit(conn, item)


def _kinds(database: Database, **filters: object) -> list[str]:
    with database.reading() as conn:
        records, _ = audit_log.audit_page(conn, limit=100, **filters)  # type: ignore[arg-type]
    return [record.kind for record in records]


class TestAuditPage:
    """Every filter given must hold; the cursor never skips a match."""

    def test_filters(self, database: Database) -> None:
        """Agent, task, kind family, outcome and since, on either database."""
        _fill(database)
        assert _kinds(database, agent="agt_a") == [
            "agent.add",
            "task.open",
            "credential.issue",
            "proxy.call",
        ]
        assert _kinds(database, task="tsk_1") == [
            "task.open",
            "credential.issue",
            "lease.revoke",
        ]
        assert _kinds(database, kind="task") == ["task.open", "task.open"]
        assert _kinds(database, kind="task_open") == ["task_open.x"]
        assert _kinds(database, kind="task%") == []
        assert _kinds(database, outcome="deny") == ["task.open"]
        assert _kinds(database, since=T0 + dt.timedelta(minutes=5)) == [
            "task_open.x",
            "proxy.call",
            "task.open",
        ]
        assert _kinds(database, agent="agt_a", kind="task", outcome="allow") == [
            "task.open"
        ]

    def test_newest_and_cursor(self, database: Database) -> None:
        """The newest matches end at the head; a partial page ends at the head too."""
        _fill(database)
        with database.reading() as conn:
            newest, head_cursor = audit_log.audit_page(
                conn, limit=1, newest=True, kind="agent"
            )
            full, full_cursor = audit_log.audit_page(conn, limit=2, agent="agt_a")
            rest, rest_cursor = audit_log.audit_page(
                conn, limit=10, after=full_cursor, agent="agt_a"
            )
            head, _ = audit_log.read_audit_head(conn)
        assert [record.kind for record in newest] == ["agent.add"]
        assert head_cursor == head
        assert full_cursor == full[-1].seq
        assert [record.kind for record in rest] == ["credential.issue", "proxy.call"]
        assert rest_cursor == head


class TestApiTokens:
    """Revoking an API token keeps its row, stops it, and notes the ending."""

    def test_revoke_notes_the_ending(self, database: Database) -> None:
        """After revoke the hash matches nothing and the journal note names the id."""
        with database.transaction() as conn:
            api_tokens.insert_api_token(
                conn,
                token_id="tok_1",
                token_hash="a" * 64,
                role=ApiRole.PROXY,
                description="edge",
                now=T0,
            )
        with database.transaction() as conn:
            assert api_tokens.revoke_api_token(conn, "tok_1", T0)
            pending = anchors.pending_anchor(conn)
        assert pending is not None
        assert pending.ended == {"api_tokens": ["tok_1"]}
        with database.reading() as conn:
            assert api_tokens.find_api_token(conn, "a" * 64) is None
            assert api_tokens.list_api_tokens(conn, include_revoked=False) == []
            assert (
                anchors.SqlChainView(conn).still_live("api_tokens", {"tok_1"}) == set()
            )
        with database.transaction() as conn:
            assert not api_tokens.revoke_api_token(conn, "tok_1", T0)

    def test_still_live_sees_an_unrevoked_row(self, database: Database) -> None:
        """A token row without revoked_at is live to the journal comparison."""
        with database.transaction() as conn:
            api_tokens.insert_api_token(
                conn,
                token_id="tok_2",
                token_hash="b" * 64,
                role=ApiRole.ADMIN,
                description="ops",
                now=T0,
            )
        with database.reading() as conn:
            live = anchors.SqlChainView(conn).still_live(
                "api_tokens", {"tok_2", "tok_x"}
            )
            listed = api_tokens.list_api_tokens(conn)
        assert live == {"tok_2"}
        assert [(t.id, t.description, t.created_at) for t in listed] == [
            ("tok_2", "ops", T0)
        ]


class TestIssue17FileModes:
    """The SQLite database and its -wal and -shm files are private, like the keys."""

    def test_issue17_new_database_files_are_0600(self, tmp_path: Path) -> None:
        """Under a permissive umask the three files are still created 0600."""
        path = tmp_path / "state" / "gatepass.db"
        previous = os.umask(0o022)
        try:
            database = Database(f"sqlite:///{path}")
            database.create_schema()
            with database.transaction() as conn:
                audit_log.ensure_audit_head(conn)
            with database.reading() as conn:
                audit_log.read_audit_head(conn)
            modes = {
                file.name: file.stat().st_mode & 0o777 for file in path.parent.iterdir()
            }
            database.dispose()
        finally:
            os.umask(previous)
        assert modes == {
            "gatepass.db": 0o600,
            "gatepass.db-wal": 0o600,
            "gatepass.db-shm": 0o600,
        }
        assert path.parent.stat().st_mode & 0o777 == 0o700

    def test_issue17_loose_existing_files_are_tightened(self, tmp_path: Path) -> None:
        """A database made readable by others before is tightened at open."""
        path = tmp_path / "gatepass.db"
        first = Database(f"sqlite:///{path}")
        first.create_schema()
        first.dispose()
        for suffix in ("", "-wal"):
            loose = path.with_name(path.name + suffix)
            if loose.exists():
                loose.chmod(0o644)
        Database(f"sqlite:///{path}").dispose()
        assert path.stat().st_mode & 0o777 == 0o600
