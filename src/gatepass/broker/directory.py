"""
Agents and tasks as the token path reads them: from short-lived caches.

Only what is safe to serve slightly stale is cached: agent records for a few
seconds (a disable also drops the entry at once in this process) and a task's
immutable fields until it expires. Whether a task is still open is always decided
again in the write transaction that records a lease.
"""

from __future__ import annotations

import datetime as dt

from gatepass.broker.caches import ExpiringCache
from gatepass.clock import Clock
from gatepass.errors import AccessDeniedError
from gatepass.ids import AgentId
from gatepass.models import Agent, AgentStatus, Task, TaskState
from gatepass.store import Database
from gatepass.store import agents as agent_rows
from gatepass.store import tasks as task_rows

__all__ = ["AGENT_CACHE_SECONDS", "Directory", "OneAgent"]

AGENT_CACHE_SECONDS = 5


class Directory:
    """
    Cached lookups of agents and tasks.

    Args:
        database: the store.
        clock: the time caches expire by.
    """

    def __init__(self, database: Database, *, clock: Clock) -> None:
        """Start with empty caches."""
        self._database = database
        self._clock = clock
        self._agents: ExpiringCache[str, Agent] = ExpiringCache(10_000)
        self._tasks: ExpiringCache[str, Task] = ExpiringCache(100_000)

    async def agent(self, agent_id: str) -> Agent | None:
        """Return an agent, from a cache that is at most a few seconds old."""
        now = self._clock.now()
        cached = self._agents.get(agent_id, now)
        if cached is not None:
            return cached
        found = await self._database.read(lambda c: agent_rows.get_agent(c, agent_id))
        if found is not None:
            self._agents.put(
                agent_id, found, now + dt.timedelta(seconds=AGENT_CACHE_SECONDS)
            )
        return found

    async def agent_by_name(self, name: str) -> Agent | None:
        """Return the agent of this name (federated agents are found by name)."""
        return await self._database.read(
            lambda c: agent_rows.get_agent_by_name(c, name)
        )

    async def active_agent(self, agent_id: str) -> Agent:
        """
        Return the agent, refusing a disabled or removed one.

        Raises:
            AccessDeniedError: the agent is disabled or unknown.
        """
        agent = await self.agent(agent_id)
        if agent is None or agent.status is not AgentStatus.ACTIVE:
            raise AccessDeniedError("agent is disabled")
        return agent

    def forget_agent(self, agent_id: str) -> None:
        """Drop an agent from the cache after it changed."""
        self._agents.discard(agent_id)

    async def task(self, task_id: str) -> Task | None:
        """Return a task; its immutable fields may come from the cache."""
        now = self._clock.now()
        cached = self._tasks.get(task_id, now)
        if cached is not None:
            return cached
        found = await self._database.read(lambda c: task_rows.get_task(c, task_id))
        if found is not None and found.state is TaskState.OPEN:
            self._tasks.put(task_id, found, found.expires_at)
        return found

    def remember_task(self, task: Task) -> None:
        """Cache a task this process just opened."""
        self._tasks.put(task.id, task, task.expires_at)

    def forget_task(self, task_id: str) -> None:
        """Drop a task from the cache after it ended."""
        self._tasks.discard(task_id)

    def forget_tasks(self, task_ids: list[str]) -> None:
        """Drop several tasks from the cache."""
        for task_id in task_ids:
            self._tasks.discard(task_id)


class OneAgent:
    """
    An ``AgentDirectory`` that knows the single agent fetched for this request.

    The agent was read without blocking the event loop; the assertion verifier,
    which is synchronous, sees a directory of that one agent.

    Args:
        agent: the agent, or None when none was found.
    """

    def __init__(self, agent: Agent | None) -> None:
        """Hold the agent."""
        self._agent = agent

    def get_agent(self, agent_id: AgentId) -> Agent | None:
        """Return the agent if it has this id."""
        if self._agent is not None and self._agent.id == agent_id:
            return self._agent
        return None
