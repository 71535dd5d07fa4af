"""
Agent names beside agent ids: tables show who, not just ``agt_…``.

The names come from ``GET /v1/agents``, fetched once per command (again only when
an id it has not seen turns up, as ``audit tail --follow`` may meet new agents).
JSON output is the API's answer as is, without names added.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gatepass.cli.client import AdminClient
from gatepass.errors import NotFoundError
from gatepass.ids import is_id

__all__ = ["AgentNames", "with_agent_names"]


class AgentNames:
    """
    Look agent names up by id, and ids up by name.

    Args:
        client: the admin client of the running command.
    """

    def __init__(self, client: AdminClient) -> None:
        """Fetch nothing until a name is needed."""
        self._client = client
        self._names: dict[str, str] | None = None
        self._missed: set[str] = set()

    def _fetch(self) -> dict[str, str]:
        answer = self._client.get("/v1/agents")
        self._names = {
            str(agent["id"]): str(agent["name"]) for agent in answer.get("items", [])
        }
        return self._names

    def name(self, agent_id: str) -> str | None:
        """Return the name of an agent id, or None for an id no agent has."""
        if self._names is None:
            names = self._fetch()
        else:
            names = self._names
            if agent_id not in names and agent_id not in self._missed:
                # Perhaps registered since the names were fetched: ask once per id.
                self._missed.add(agent_id)
                if is_id(agent_id, "agt"):
                    names = self._fetch()
        return names.get(agent_id)

    def resolve(self, reference: str) -> str:
        """
        Return the id of an agent given by id or by name.

        Raises:
            NotFoundError: no agent has this name.
        """
        if is_id(reference, "agt"):
            return reference
        names = self._names if self._names is not None else self._fetch()
        for agent_id, name in names.items():
            if name == reference:
                return agent_id
        raise NotFoundError(f"no agent named {reference!r}")


def with_agent_names(
    rows: Iterable[Mapping[str, Any]], names: AgentNames, *, key: str = "agent_id"
) -> list[dict[str, Any]]:
    """
    Return copies of ``rows`` with an ``agent`` field: the name of ``row[key]``.

    An id no agent has (or a value that is no agent id) is shown as it is.
    """
    named: list[dict[str, Any]] = []
    for row in rows:
        value = row.get(key)
        copy = dict(row)
        found = names.name(value) if isinstance(value, str) and value else None
        copy["agent"] = found if found is not None else value
        named.append(copy)
    return named
