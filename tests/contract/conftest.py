"""The store contract runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from gatepass.store import Database
from gatepass.store.tables import metadata


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty gatepass database on each backend; emptied after the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    db = Database(url, pool_size=4)
    db.create_schema()
    with db.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "gp_settings":
                conn.execute(delete(table))
    try:
        yield db
    finally:
        with db.transaction() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(delete(table))
        db.dispose()
