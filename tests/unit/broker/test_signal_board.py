"""The board of context signals every decision reads (issue 14)."""

from __future__ import annotations

import datetime as dt

from gatepass.broker.signal_board import SignalBoard
from gatepass.policy import AgentFacts, PolicyRequest, TargetFacts, TaskFacts

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def request(environment: str = "dev", tenant: str = "acme") -> PolicyRequest:
    """Return a request of agent a1 in ``environment`` for ``tenant``."""
    return PolicyRequest(
        agent=AgentFacts(id="a1", name="a", tenant=tenant, labels={}),
        action="read",
        target=TargetFacts(
            name="t",
            uri="https://t",
            kind="http",
            environment=environment,
            tenant=tenant,
            risk="low",
        ),
        task=TaskFacts(
            purpose="p",
            intent="i",
            environment=environment,
            tenant=tenant,
            age_seconds=0,
        ),
        now=NOW,
    )


class TestBoard:
    """Loaded signals become facts; ended ones do not."""

    def test_empty_board_leaves_requests_alone(self) -> None:
        """With no signal the very same requests come back."""
        requests = [request()]
        assert SignalBoard().enrich(requests) is requests

    def test_facts(self) -> None:
        """Risk, freeze and incident reach the request they touch."""
        board = SignalBoard()
        board.load(
            [
                ("risk", "a1", "high", None),
                ("freeze", "prod", "on", None),
                ("incident", "globex", "on", None),
            ]
        )
        dev, prod, globex = board.enrich(
            [request(), request("prod"), request(tenant="globex")]
        )
        assert dev.agent.risk == "high"
        assert (dev.environment_frozen, dev.tenant_incident) == (False, False)
        assert prod.environment_frozen
        assert globex.tenant_incident

    def test_until_ends_a_signal_without_a_reload(self) -> None:
        """A signal whose until has passed no longer counts."""
        board = SignalBoard()
        board.load([("freeze", "dev", "on", NOW - dt.timedelta(seconds=1))])
        (enriched,) = board.enrich([request()])
        assert not enriched.environment_frozen
        assert board.risk_of("a1", NOW) == "low"
