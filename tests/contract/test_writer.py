"""Group commit: many writes per commit, each caller getting its own outcome."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import Connection

from gatepass.errors import ConflictError
from gatepass.store import Database, agents, audit_log

from .test_store import make_agent


class TestGroupCommit:
    """Concurrent writes share commits; a failing job fails alone."""

    def test_concurrent_writes_all_commit(self, database: Database) -> None:
        """Fifty concurrent writes all land, in fewer commits than jobs."""
        with database.transaction() as conn:
            audit_log.ensure_audit_head(conn)
        records = [make_agent(name=f"agent-{n}") for n in range(50)]

        async def main() -> list[str]:
            results: list[str] = []

            async def add(index: int) -> None:
                def work(conn: Connection) -> str:
                    agents.insert_agent(conn, records[index])
                    return records[index].id

                results.append(await database.write(work))

            async with anyio.create_task_group() as group:
                for index in range(50):
                    group.start_soon(add, index)
            return results

        assert sorted(anyio.run(main)) == sorted(r.id for r in records)
        writer = database._writer
        assert writer.jobs == 50
        assert writer.batches < 50
        with database.reading() as conn:
            assert len(agents.list_agents(conn)) == 50

    def test_failing_job_is_isolated(self, database: Database) -> None:
        """One job raising does not undo the other jobs of its batch."""
        first, duplicate = make_agent(name="same"), make_agent(name="same")
        other = make_agent(name="other")

        async def main() -> list[object]:
            outcomes: list[object] = []

            async def add(record: object) -> None:
                try:
                    await database.write(
                        lambda conn: agents.insert_agent(conn, record)  # type: ignore[arg-type]
                    )
                    outcomes.append("ok")
                except ConflictError as error:
                    outcomes.append(error)

            async with anyio.create_task_group() as group:
                for record in (first, duplicate, other):
                    group.start_soon(add, record)
            return outcomes

        outcomes = anyio.run(main)
        assert outcomes.count("ok") == 2
        assert sum(isinstance(o, ConflictError) for o in outcomes) == 1
        with database.reading() as conn:
            assert {a.name for a in agents.list_agents(conn)} == {"same", "other"}

    def test_error_reaches_caller(self, database: Database) -> None:
        """An exception inside a job is raised to its caller."""
        message = "job failed"

        def work(conn: Connection) -> None:
            raise ValueError(message)

        with pytest.raises(ValueError, match=message):
            anyio.run(database.write, work)
