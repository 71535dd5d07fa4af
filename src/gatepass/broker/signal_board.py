"""
The context signals in force, in memory, for every policy decision.

Policies read them as ``principal.risk``, ``context.environment_frozen`` and
``context.tenant_incident`` (``policy/facts.py``). The board is reloaded from the
store after every change this process makes and every second by a background job
(changes another replica made); a signal with an ``until`` stops counting at that
moment without a reload.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gatepass.policy import PolicyRequest

__all__ = ["SignalBoard", "SignalEntry"]


@dataclass(frozen=True, slots=True)
class SignalEntry:
    """One signal in force: its value and when it ends (None: until cleared)."""

    value: str
    until: dt.datetime | None

    def live(self, now: dt.datetime) -> bool:
        """Tell whether the signal still holds at ``now``."""
        return self.until is None or now < self.until


_EMPTY: Mapping[str, SignalEntry] = {}


class SignalBoard:
    """What the signals in force say: agents' risk, frozen environments, incidents."""

    def __init__(self) -> None:
        """Start with no signal in force."""
        self._risk: Mapping[str, SignalEntry] = _EMPTY
        self._frozen: Mapping[str, SignalEntry] = _EMPTY
        self._incident: Mapping[str, SignalEntry] = _EMPTY

    def load(self, signals: Iterable[tuple[str, str, str, dt.datetime | None]]) -> None:
        """
        Replace the board with these signals.

        Args:
            signals: ``(kind, scope, value, until)`` of every signal in force.
        """
        risk: dict[str, SignalEntry] = {}
        frozen: dict[str, SignalEntry] = {}
        incident: dict[str, SignalEntry] = {}
        tables = {"risk": risk, "freeze": frozen, "incident": incident}
        for kind, scope, value, until in signals:
            table = tables.get(kind)
            if table is not None:
                table[scope] = SignalEntry(value, until)
        # Each mapping is swapped whole, so a decision reads one load or the next.
        self._risk, self._frozen, self._incident = risk, frozen, incident

    @property
    def empty(self) -> bool:
        """True when no signal is in force."""
        return not (self._risk or self._frozen or self._incident)

    def risk_of(self, agent_id: str, now: dt.datetime) -> str:
        """Return an agent's risk level at ``now`` (``low`` unless a signal says)."""
        entry = self._risk.get(agent_id)
        return entry.value if entry is not None and entry.live(now) else "low"

    def frozen(self, environment: str, now: dt.datetime) -> bool:
        """Tell whether an environment is frozen at ``now``."""
        entry = self._frozen.get(environment)
        return entry is not None and entry.live(now)

    def incident(self, tenant: str, now: dt.datetime) -> bool:
        """Tell whether a tenant has an incident declared at ``now``."""
        entry = self._incident.get(tenant)
        return entry is not None and entry.live(now)

    def enrich(self, requests: list[PolicyRequest]) -> list[PolicyRequest]:
        """
        Return the requests with the signals' facts filled in.

        A request is frozen when its task's or its target's environment is, and
        under incident when its task's or its target's tenant is.
        """
        if self.empty:
            return requests
        enriched = []
        for request in requests:
            now = request.now
            task, target = request.task, request.target
            risk = self.risk_of(request.agent.id, now)
            frozen = self.frozen(task.environment, now) or self.frozen(
                target.environment, now
            )
            incident = self.incident(task.tenant, now) or self.incident(
                target.tenant, now
            )
            agent = request.agent
            if risk != agent.risk:
                agent = dataclasses.replace(agent, risk=risk)
            enriched.append(
                dataclasses.replace(
                    request,
                    agent=agent,
                    environment_frozen=frozen,
                    tenant_incident=incident,
                )
            )
        return enriched
