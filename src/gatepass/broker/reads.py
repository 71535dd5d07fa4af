"""What operators read: tasks and leases, through the broker, never the store."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from gatepass.broker.context import BrokerContext
from gatepass.errors import NotFoundError
from gatepass.models import Lease, LeaseState, Task, TaskState
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import leases as lease_rows
from gatepass.store import tasks as task_rows

__all__ = ["Reads", "TreeNode"]

# A tree is read whole; past this many tasks (or leases of one task) it is cut,
# and the answer says so.
_TREE_LIMIT = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeNode:
    """
    One task of a delegation tree, with what an operator needs beside it.

    Attributes:
        task: the task.
        agent_name: its agent's name (None if the agent record is gone).
        leases: its leases, newest first.
    """

    task: Task
    agent_name: str | None
    leases: list[Lease]


class Reads:
    """
    Admin reads of tasks and leases.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context

    async def tasks(
        self,
        *,
        state: TaskState | None = None,
        agent_id: str | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Return tasks, newest first, optionally filtered."""
        wanted = None if state is None else state.value
        return await self._context.database.read(
            lambda c: task_rows.list_tasks(
                c, state=wanted, agent_id=agent_id, limit=limit
            )
        )

    async def task(self, task_id: str) -> tuple[Task, list[Lease]]:
        """
        Return a task with its leases.

        Raises:
            NotFoundError: no such task.
        """
        database = self._context.database
        task = await database.read(lambda c: task_rows.get_task(c, task_id))
        if task is None:
            raise NotFoundError("no such task")
        found = await database.read(
            lambda c: lease_rows.list_leases(c, task_id=task_id, limit=1000)
        )
        return task, found

    async def tree(
        self, task_id: str, *, tenants: Collection[str] | None = None
    ) -> list[TreeNode]:
        """
        Return the delegation tree a task belongs to, from its root down.

        Args:
            task_id: any task of the tree.
            tenants: the tenants the caller may see; None for every tenant. A task
                of another tenant is not found, as if it did not exist.

        Returns:
            The root first, then its descendants by depth and creation (each
            node's ``task.parent_id`` names its parent).

        Raises:
            NotFoundError: no such task (or not in the caller's tenants).
        """

        def read(conn: Connection) -> list[TreeNode]:
            task = task_rows.get_task(conn, task_id)
            if task is None or (tenants is not None and task.tenant not in tenants):
                raise NotFoundError("no such task")
            root = task.lineage_id or task.id
            found = task_rows.subtree(conn, root)[:_TREE_LIMIT]
            names: dict[str, str | None] = {}
            for member in found:
                if member.agent_id not in names:
                    agent = agent_rows.get_agent(conn, member.agent_id)
                    names[member.agent_id] = None if agent is None else agent.name
            return [
                TreeNode(
                    task=member,
                    agent_name=names[member.agent_id],
                    leases=lease_rows.list_leases(
                        conn, task_id=member.id, limit=_TREE_LIMIT
                    ),
                )
                for member in found
            ]

        return await self._context.database.read(read)

    async def leases(
        self,
        *,
        state: LeaseState | None = None,
        task_id: str | None = None,
        limit: int = 100,
    ) -> list[Lease]:
        """Return leases, newest first, optionally filtered."""
        wanted = None if state is None else state.value
        return await self._context.database.read(
            lambda c: lease_rows.list_leases(
                c, state=wanted, task_id=task_id, limit=limit
            )
        )

    async def lease(self, lease_id: str) -> Lease:
        """
        Return one lease.

        Raises:
            NotFoundError: no such lease.
        """
        lease = await self._context.database.read(
            lambda c: lease_rows.get_lease(c, lease_id)
        )
        if lease is None:
            raise NotFoundError("no such lease")
        return lease

    def krl(self, target: str) -> bytes:
        """
        Return the key revocation list of an SSH target, for hosts to pull.

        Raises:
            NotFoundError: no SSH target of that name.
            EngineError: the KRL file is gone although certificates were revoked.
        """
        guarded = self._context.engines.get(target)
        krl = getattr(guarded.engine, "krl_bytes", None) if guarded else None
        if krl is None:
            raise NotFoundError("no ssh target of that name")
        body: bytes = krl()
        return body
