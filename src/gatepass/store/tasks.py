"""Persistence of tasks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Row, select, update

from gatepass.ids import AgentId, TaskId
from gatepass.models import Task, TaskState
from gatepass.store.anchors import note_ended
from gatepass.store.tables import tasks

__all__ = [
    "close_task",
    "expire_tasks",
    "get_task",
    "hold_open_task",
    "insert_task",
    "list_tasks",
    "open_descendants",
    "open_task_ids_of_agent",
    "subtree",
]


def _to_task(row: Row[Any]) -> Task:
    return Task(
        id=TaskId(row.id),
        agent_id=AgentId(row.agent_id),
        tenant=row.tenant,
        environment=row.environment,
        purpose=row.purpose,
        intent=row.intent,
        targets=tuple(row.targets),
        jkt=row.jkt,
        token_jti=row.token_jti,
        state=TaskState(row.state),
        created_at=row.created_at,
        expires_at=row.expires_at,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
        agent_labels=None if row.agent_labels is None else dict(row.agent_labels),
        parent_id=None if row.parent_id is None else TaskId(row.parent_id),
        lineage_id=None if row.lineage_id is None else TaskId(row.lineage_id),
        depth=int(row.depth or 0),
        actors=tuple(row.actors or ()),
        x5t=row.x5t,
        actions=None if row.actions is None else tuple(row.actions),
        root_purpose=row.root_purpose,
    )


def insert_task(conn: Connection, task: Task) -> None:
    """Record a newly opened task."""
    conn.execute(
        tasks.insert().values(
            id=task.id,
            agent_id=task.agent_id,
            tenant=task.tenant,
            environment=task.environment,
            purpose=task.purpose,
            intent=task.intent,
            targets=list(task.targets),
            jkt=task.jkt,
            token_jti=task.token_jti,
            state=task.state.value,
            created_at=task.created_at,
            expires_at=task.expires_at,
            agent_labels=task.agent_labels,
            parent_id=task.parent_id,
            lineage_id=task.lineage_id or task.id,
            depth=task.depth,
            actors=list(task.actors) or None,
            x5t=task.x5t,
            actions=None if task.actions is None else list(task.actions),
            root_purpose=task.root_purpose,
        )
    )


def get_task(conn: Connection, task_id: str) -> Task | None:
    """Return the task with this id, or None."""
    row = conn.execute(select(tasks).where(tasks.c.id == task_id)).one_or_none()
    return None if row is None else _to_task(row)


def list_tasks(
    conn: Connection,
    *,
    state: str | None = None,
    agent_id: str | None = None,
    limit: int = 100,
) -> list[Task]:
    """Return tasks, newest first, optionally filtered."""
    query = select(tasks).order_by(tasks.c.created_at.desc(), tasks.c.id).limit(limit)
    if state is not None:
        query = query.where(tasks.c.state == state)
    if agent_id is not None:
        query = query.where(tasks.c.agent_id == agent_id)
    return [_to_task(row) for row in conn.execute(query)]


def close_task(
    conn: Connection,
    task_id: str,
    *,
    now: dt.datetime,
    reason: str,
    state: TaskState = TaskState.CLOSED,
) -> bool:
    """
    End an open task.

    Returns:
        True if this call closed it; False if it was already closed or expired.
    """
    result = conn.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.state == TaskState.OPEN.value)
        .values(state=state.value, closed_at=now, close_reason=reason[:200])
    )
    note_ended(conn, "tasks", [task_id] if result.rowcount > 0 else [])
    return result.rowcount > 0


def open_task_ids_of_agent(conn: Connection, agent_id: str) -> list[TaskId]:
    """Return the ids of an agent's open tasks."""
    rows = conn.execute(
        select(tasks.c.id).where(
            tasks.c.agent_id == agent_id, tasks.c.state == TaskState.OPEN.value
        )
    )
    return [TaskId(row.id) for row in rows]


def expire_tasks(
    conn: Connection, now: dt.datetime, *, limit: int = 500
) -> list[TaskId]:
    """
    Mark open tasks past their deadline as expired.

    Returns:
        The ids of the tasks this call expired.
    """
    ids = [
        TaskId(row.id)
        for row in conn.execute(
            select(tasks.c.id)
            .where(tasks.c.state == TaskState.OPEN.value, tasks.c.expires_at <= now)
            .limit(limit)
        )
    ]
    return [
        task_id
        for task_id in ids
        if close_task(
            conn, task_id, now=now, reason="deadline passed", state=TaskState.EXPIRED
        )
    ]


def hold_open_task(conn: Connection, task_id: str, now: dt.datetime) -> Task | None:
    """
    Return the task if it is open and unexpired, share-locked until commit.

    A delegated task is inserted only under this lock on its parent: a concurrent
    close of the parent waits for this transaction, then finds the child and closes
    it with the rest of the tree (the same pattern as leases).
    """
    row = conn.execute(
        select(tasks)
        .where(
            tasks.c.id == task_id,
            tasks.c.state == TaskState.OPEN.value,
            tasks.c.expires_at > now,
        )
        .with_for_update(read=True)
    ).one_or_none()
    return None if row is None else _to_task(row)


def _descendant_ids(task_id: str) -> Any:  # noqa: ANN401 - a SQLAlchemy CTE
    # Recursive over parent_id (indexed): every task delegated from task_id, at any
    # depth, whatever its state.
    tree = (
        select(tasks.c.id)
        .where(tasks.c.parent_id == task_id)
        .cte("gp_task_tree", recursive=True)
    )
    return tree.union_all(select(tasks.c.id).where(tasks.c.parent_id == tree.c.id))


def open_descendants(conn: Connection, task_id: str) -> list[TaskId]:
    """Return the ids of the open tasks delegated (at any depth) from a task."""
    tree = _descendant_ids(task_id)
    rows = conn.execute(
        select(tasks.c.id).where(
            tasks.c.id.in_(select(tree.c.id)), tasks.c.state == TaskState.OPEN.value
        )
    )
    return [TaskId(row.id) for row in rows]


def subtree(conn: Connection, task_id: str) -> list[Task]:
    """Return a task and every task delegated from it, by depth then creation."""
    tree = _descendant_ids(task_id)
    rows = conn.execute(
        select(tasks)
        .where((tasks.c.id == task_id) | tasks.c.id.in_(select(tree.c.id)))
        .order_by(tasks.c.depth, tasks.c.created_at, tasks.c.id)
    )
    return [_to_task(row) for row in rows]
