"""
Driver statements (issue 15): the token path's writes, run on the DBAPI cursor.

They must store exactly what SQLAlchemy Core would store, on SQLite and PostgreSQL,
and fail exactly as Core statements fail (a ``StoreError``, a broken connection
dropped), since the rest of the store reads and compares those values.
"""

from __future__ import annotations

import datetime as dt

import anyio
import pytest
from sqlalchemy import insert, select, text

from gatepass.errors import StoreError
from gatepass.single_use import SingleUse
from gatepass.store import Connection, Database, leases, replay, tasks
from gatepass.store.prepared import DriverStatement
from gatepass.store.tables import leases as lease_table
from gatepass.store.tables import seen_values

from .test_store import T0, make_agent, make_lease, make_task

_CORE_INSERT = insert(lease_table)
_DRIVER_INSERT = DriverStatement(insert(lease_table))


def _raw_row(database: Database, lease_id: str) -> tuple[object, ...]:
    # As the database holds it, before any result processing.
    with database.reading() as conn:
        row = conn.execute(
            text(
                "SELECT actions, issued_at, expires_at, policy_ids, attempts "
                "FROM gp_leases WHERE id = :id"
            ),
            {"id": lease_id},
        ).one()
    return tuple(row)


class TestDriverStatement:
    """The same rows as Core, the same errors."""

    def test_issue15_stores_what_core_stores(self, database: Database) -> None:
        """A row inserted on the driver is byte-for-byte the row Core inserts."""
        task = make_task(make_agent())
        by_core, by_driver = make_lease(task), make_lease(task)
        with database.transaction() as conn:
            core = leases._lease_params(by_core)
            conn.execute(_CORE_INSERT, {**core, "attempts": 0})
            driver = leases._lease_params(by_driver)
            assert _DRIVER_INSERT.rowcount(conn, {**driver, "attempts": 0}) == 1
        assert _raw_row(database, by_core.id) == _raw_row(database, by_driver.id)
        with database.reading() as conn:
            stored = leases.get_lease(conn, by_driver.id)
        assert stored == by_driver

    def test_issue15_lease_insert_reads_back(self, database: Database) -> None:
        """The lease inserted if its task is open reads back equal, times aware."""
        agent = make_agent()
        task = make_task(agent)
        lease = make_lease(task)
        with database.transaction() as conn:
            tasks.insert_task(conn, task)
            assert leases.insert_lease_if_task_open(conn, lease, T0)
        with database.reading() as conn:
            stored = leases.get_lease(conn, lease.id)
        assert stored == lease
        assert stored is not None
        assert stored.issued_at.tzinfo is dt.UTC

    def test_issue15_claim_compares_times_as_core(self, database: Database) -> None:
        """A claimed value's expiry is stored as Core stores it and compared so."""
        value = SingleUse("dpop", "k:1", T0 + dt.timedelta(seconds=60))
        with database.transaction() as conn:
            assert replay.claim_single_use(conn, [value], T0) is None
        with database.reading() as conn:
            stored = conn.execute(
                select(seen_values.c.expires_at).where(seen_values.c.key == value.key)
            ).scalar_one()
        assert stored == value.expires_at
        later = T0 + dt.timedelta(seconds=61)
        with database.transaction() as conn:
            # Expired by then: the row is taken over, not a replay.
            assert replay.claim_single_use(conn, [value], later) is None

    def test_issue15_driver_error_is_store_error(self, database: Database) -> None:
        """A constraint violation on the driver is a StoreError and rolls back."""
        task = make_task(make_agent())
        lease = make_lease(task)
        params = {**leases._lease_params(lease), "attempts": 0}

        def twice() -> None:
            with database.transaction() as conn:
                _DRIVER_INSERT.rowcount(conn, params)
                _DRIVER_INSERT.rowcount(conn, params)

        with pytest.raises(StoreError):
            twice()
        with database.reading() as conn:
            assert leases.get_lease(conn, lease.id) is None

    def test_issue15_writer_survives_driver_error(self, database: Database) -> None:
        """After a failed driver statement the group writer serves the next job."""
        task = make_task(make_agent())
        lease = make_lease(task)
        params = {**leases._lease_params(lease), "attempts": 0}

        def twice(conn: Connection) -> None:
            _DRIVER_INSERT.rowcount(conn, params)
            _DRIVER_INSERT.rowcount(conn, params)

        def once(conn: Connection) -> int:
            return _DRIVER_INSERT.rowcount(conn, params)

        async def run() -> int:
            with pytest.raises(StoreError):
                await database.write(twice)
            return await database.write(once)

        assert anyio.run(run) == 1
