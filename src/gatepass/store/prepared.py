"""
Statements of the token path, compiled once and run on the driver's own cursor.

Every access-token request runs the same three writes (spend the DPoP proof, insert
the lease if its task is open, append the audit record). Through
``Connection.execute`` each costs some 60 to 100 µs of SQLAlchemy's Python around
10 to 20 µs of database work, even with the compiled statement cached. A
:class:`DriverStatement` keeps the statement in SQLAlchemy Core, so the SQL is
written and reviewed once, for both dialects, and compiles it **once per dialect**;
each call then only converts its parameters with the column types' own bind
processors (the same conversions SQLAlchemy would apply, so stored values are
identical) and runs the SQL on the DBAPI cursor, inside the caller's transaction.
The drivers keep the prepared statement: sqlite3 caches it by its text per
connection, psycopg prepares it after its first executions.

Driver errors are raised as SQLAlchemy's ``DBAPIError`` family, with parameters
hidden, so :class:`~gatepass.store.Database` turns them into ``StoreError`` and
drops a broken connection exactly as it does for any other statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

__all__ = ["DriverStatement"]

_Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # The parameter names in placeholder order (positional drivers such as
    # sqlite3), or None for drivers that take a mapping (psycopg's pyformat).
    positions: tuple[str, ...] | None
    defaults: Mapping[str, Any]
    processors: Mapping[str, _Processor]


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    defaults = dict(compiled.params)
    processors: dict[str, _Processor] = {}
    for name, bind in compiled.binds.items():
        # ``binds`` also holds anonymous keys of literal values; ``params`` names
        # exactly the parameters the SQL text takes.
        if name not in defaults:
            continue
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    positions = compiled.positiontup
    return _Compiled(
        sql=str(compiled),
        positions=None if positions is None else tuple(positions),
        defaults=defaults,
        processors=processors,
    )


class DriverStatement:
    """
    A Core statement compiled once per dialect and executed on the DBAPI cursor.

    Only for statements whose every parameter is a ``bindparam`` or a literal
    value of the statement (no expanding ``IN`` lists, no executemany).

    Args:
        statement: the SQLAlchemy Core statement.
    """

    def __init__(self, statement: Executable) -> None:
        """Keep the statement; it is compiled on first use for each dialect."""
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = _compile(self._statement, dialect)
            self._compiled[key] = compiled
        return compiled

    def _parameters(
        self, compiled: _Compiled, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | dict[str, Any]:
        values = {**compiled.defaults, **params}
        for name, processor in compiled.processors.items():
            values[name] = processor(values[name])
        if compiled.positions is None:
            return values
        return tuple(values[name] for name in compiled.positions)

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:  # noqa: ANN401
        """
        Execute in the caller's transaction; return the first row or None.

        Args:
            conn: a connection inside a transaction.
            params: a value for every ``bindparam`` of the statement.

        Raises:
            DBAPIError: the driver failed (parameters are not shown).
        """
        return self._execute(conn, params, rows=True)

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """
        Execute in the caller's transaction; return how many rows it changed.

        Raises:
            DBAPIError: the driver failed (parameters are not shown).
        """
        count: int = self._execute(conn, params, rows=False)
        return count

    def _execute(
        self, conn: Connection, params: Mapping[str, Any], *, rows: bool
    ) -> Any:  # noqa: ANN401
        dialect = conn.dialect
        compiled = self._for(dialect)
        parameters = self._parameters(compiled, params)
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection is None:  # pragma: no cover - a closed connection
            msg = "connection is closed"
            raise RuntimeError(msg)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(compiled.sql, parameters)
            return cursor.fetchone() if rows else cursor.rowcount
        except dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(
                compiled.sql,
                None,
                error,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()
