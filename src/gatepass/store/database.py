"""
Connections, transactions and the thread hop between the event loop and the database.

The store is synchronous SQLAlchemy Core: simple, fast and the same on SQLite and
PostgreSQL. Async callers reach it through :meth:`Database.write`, which groups
concurrent transactions into one commit (on the event loop for SQLite, on a writer
thread for PostgreSQL; see ``store/writer.py``), and :meth:`Database.read`, which
runs on a pool of worker threads.

Both write transactions carry the audit hooks installed by :meth:`Database.anchor_with`:
the MAC keys for the records appended in them, and, once a transaction that ended
something has committed, one line to the anchor journal (``store/anchors.py``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from gatepass.audit import AuditMac
from gatepass.errors import ConfigurationError, GatepassError, StoreError
from gatepass.store.anchors import PendingAnchor, begin_transaction, pending_anchor
from gatepass.store.tables import SCHEMA_VERSION, metadata, settings_kv
from gatepass.store.upgrades import upgrade_schema
from gatepass.store.writer import GroupCommitWriter, LoopGroupCommit

__all__ = ["CommitAnchor", "Database"]

T = TypeVar("T")
CommitAnchor = Callable[[int, str, Mapping[str, Sequence[str]]], None]


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 10},
        pool_size=4,
        max_overflow=4,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front so that two writers never deadlock
        # upgrading a read lock; readers use deferred transactions under WAL.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _private_sqlite_files(path: Path) -> None:
    """
    Create the SQLite database file readable by its owner only (mode 0600).

    The database holds token hashes, sealed keys and the audit log. SQLite creates
    the ``-wal`` and ``-shm`` files with the database file's own mode, so creating
    that file 0600 before SQLite opens it covers all three; files a looser umask
    made before are tightened.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # An empty file is a valid new database to SQLite.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (
        path,
        path.with_name(f"{path.name}-wal"),
        path.with_name(f"{path.name}-shm"),
    ):
        try:
            mode = file.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            file.chmod(mode & 0o700)


class Database:
    """
    The broker's database.

    Args:
        url: ``sqlite:///path`` or ``postgresql+psycopg://...``.
        pool_size: connections kept for PostgreSQL.
    """

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        """Create the engines; no connection is made until first use."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                _private_sqlite_files(Path(path))
            self._write_engine = _sqlite_engine(url, immediate=True)
            self._read_engine = _sqlite_engine(url, immediate=False)
            read_threads = 4
        else:
            self._write_engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
            )
            self._read_engine = self._write_engine
            read_threads = pool_size
        self._read_limiter = anyio.CapacityLimiter(read_threads)
        self._held: Connection | None = None
        self._mac: AuditMac | None = None
        self._on_commit: CommitAnchor | None = None
        self._writer: GroupCommitWriter | LoopGroupCommit = (
            LoopGroupCommit(self._writer_transaction)
            if self.is_sqlite
            else GroupCommitWriter(self._writer_transaction)
        )

    @property
    def dialect(self) -> str:
        """Return ``sqlite`` or ``postgresql``."""
        return self._write_engine.dialect.name

    def create_schema(self) -> None:
        """
        Create the tables if they are missing and check the schema version.

        Raises:
            ConfigurationError: the database holds a schema of another version.
            StoreError: the database cannot be reached.
        """
        with self.transaction() as conn:
            metadata.create_all(conn)
            version_row = settings_kv.c.name == "schema_version"
            row = conn.execute(
                select(settings_kv.c.value).where(version_row)
            ).scalar_one_or_none()
            if row is None:
                conn.execute(
                    settings_kv.insert().values(
                        name="schema_version", value=str(SCHEMA_VERSION).encode()
                    )
                )
            elif 2 <= int(row) < SCHEMA_VERSION:
                # In place, in this transaction: no manual step, nothing half done.
                upgrade_schema(conn, int(row))
                conn.execute(
                    settings_kv.update()
                    .where(version_row)
                    .values(value=str(SCHEMA_VERSION).encode())
                )
            elif int(row) != SCHEMA_VERSION:
                raise ConfigurationError(
                    f"database schema version {int(row)} is not {SCHEMA_VERSION}"
                )

    def anchor_with(
        self, *, mac: AuditMac, on_commit: CommitAnchor | None = None
    ) -> None:
        """
        Install the audit hooks of every write transaction from now on.

        The broker calls this once at start, as soon as it has opened the sealed
        audit key, which lives in this very database (so it cannot be a
        constructor argument).

        Args:
            mac: the keys appended records are MACed with.
            on_commit: called after each commit that ended something, with the
                chain head and the ended ids (the anchor journal's
                ``record_commit``); it must not raise.
        """
        self._mac = mac
        self._on_commit = on_commit

    def _anchor(self, pending: PendingAnchor | None) -> None:
        if pending is not None and self._on_commit is not None:
            self._on_commit(pending.seq, pending.hash, pending.ended)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """
        Run a write transaction: commit on success, roll back on any error.

        Raises:
            StoreError: the database failed; the message names no data.
        """
        try:
            with self._write_engine.begin() as conn:
                begin_transaction(conn, self._mac)
                yield conn
                pending = pending_anchor(conn)
        except GatepassError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(_describe(exc)) from exc
        # After the commit: the journal may lag the database, never lead it.
        self._anchor(pending)

    @contextlib.contextmanager
    def _writer_transaction(self) -> Iterator[Connection]:
        """
        Run a write transaction on the writer's own long-lived connection.

        The group-commit writer is the only user, one batch at a time, so keeping
        its connection saves a pool checkout and return per commit. A connection
        that failed is dropped and a fresh one is opened for the next batch.
        """
        try:
            if self._held is None or self._held.closed:
                self._held = self._write_engine.connect()
        except SQLAlchemyError as exc:
            # A database that is down fails here, before any transaction: it must
            # still be a StoreError (503), never an unhandled driver error (500).
            raise StoreError(_describe(exc)) from exc
        conn = self._held
        try:
            with conn.begin():
                begin_transaction(conn, self._mac)
                yield conn
                pending = pending_anchor(conn)
        except GatepassError:
            raise
        except SQLAlchemyError as exc:
            conn.invalidate()
            self._held = None
            raise StoreError(_describe(exc)) from exc
        # One journal line per commit, before any job of the batch is answered.
        self._anchor(pending)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """
        Open a read-only transaction.

        Raises:
            StoreError: the database failed.
        """
        try:
            with self._read_engine.connect() as conn:
                yield conn
        except GatepassError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(_describe(exc)) from exc

    async def write(self, work: Callable[[Connection], T]) -> T:
        """
        Run ``work`` in a committed write transaction on the writer thread.

        Concurrent writes are grouped into one commit (see ``store/writer.py``), so
        ``work`` must only touch the database and be safe to run twice.

        Args:
            work: a function of the connection; its return value is returned.
        """
        result: T = await self._writer.submit(work)
        return result

    async def read(self, work: Callable[[Connection], T]) -> T:
        """
        Run ``work`` inside one read transaction on a worker thread.

        Args:
            work: a function of the connection; its return value is returned.
        """

        def run() -> T:
            with self.reading() as conn:
                return work(conn)

        return await anyio.to_thread.run_sync(run, limiter=self._read_limiter)

    async def check(self) -> None:
        """
        Check that the database answers, without blocking the event loop.

        Raises:
            StoreError: it does not.
        """
        await self.read(lambda conn: conn.exec_driver_sql("SELECT 1"))

    def ping(self) -> None:
        """
        Check that the database answers.

        Raises:
            StoreError: it does not.
        """
        with self.reading() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        """Stop the writer thread and close every pooled connection."""
        self._writer.close()
        if self._held is not None:
            self._held.close()
            self._held = None
        self._write_engine.dispose()
        self._read_engine.dispose()


def _describe(exc: SQLAlchemyError) -> str:
    # Never include statement parameters: they may hold hashes or labels we do not
    # want in logs, and the driver's message can echo values.
    if isinstance(exc, OperationalError):
        return "database unavailable"
    return f"database error ({type(exc).__name__})"
