"""``gatepass demo --approval``: the step-up tour against a real broker (issue 9)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from rich.console import Console

from gatepass.demo.approval_tour import run_approval_tour

from .conftest import LiveBroker

pytestmark = pytest.mark.slow


def _approver_token(live_broker: LiveBroker) -> str:
    with httpx.Client(
        base_url=live_broker.url,
        headers={"Authorization": f"Bearer {live_broker.admin_token}"},
    ) as admin:
        answer = admin.post(
            "/v1/admin/operators",
            json={
                "name": "tour-approver",
                "roles": ["approver"],
                "groups": ["prod-approvers"],
                "tenants": ["acme"],
            },
        )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def test_issue9_tour_waits_is_approved_and_refuses_a_second_redemption(
    live_broker: LiveBroker,
) -> None:
    """The tour prints the approval id, gets a <= 60 s token, and is refused again."""
    token = _approver_token(live_broker)
    console = Console(record=True, width=200)
    votes: list[Any] = []

    def approve_while_waiting(_seconds: float) -> None:
        # The tour's pause between polls: an approver acts, then the agent polls.
        if votes:
            return
        found = re.search(r"apr_[a-z2-7]{26}", console.export_text(clear=False))
        assert found is not None
        with httpx.Client(
            base_url=live_broker.url, headers={"Authorization": f"Bearer {token}"}
        ) as approver:
            votes.append(
                approver.post(
                    f"/v1/admin/approvals/{found.group()}/approve",
                    json={"reason": "CHG-1234"},
                )
            )

    run_approval_tour(
        live_broker.runtime.settings, console=console, sleep=approve_while_waiting
    )
    text = console.export_text()
    assert votes[0].status_code == 200, votes[0].text
    assert "gatepass approvals approve apr_" in text
    # How long the approval may wait, for people: minutes and seconds.
    assert re.search(r"\(expires in 1[45]m \d\ds\)", text), text  # of 15 minutes
    seconds = int(re.search(r"expires in ~(\d+)s", text).group(1))  # type: ignore[union-attr]
    assert 0 < seconds <= 60
    assert "refused: invalid_grant: the approval was already redeemed" in text
    assert "Approval tour complete" in text
