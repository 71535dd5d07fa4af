"""
The agent SDK: open a task at the broker, get short-lived access tokens, use them.

::

    identity = AgentIdentity.load(".gatepass/demo-agent.json")
    with GatepassClient(identity) as client, client.open_task(
        intent="triage new support tickets",
        purpose="support-triage",
        environment="dev",
        targets=["http://127.0.0.1:8401/"],
    ) as task:
        token = task.access_token("http://127.0.0.1:8401/", "read")
        httpx.get("http://127.0.0.1:8401/tickets", auth=token.auth())

A request that policy says needs a human's approval raises
:class:`~gatepass.errors.ApprovalPendingError`, unless the call is asked to wait:
``task.access_token(uri, "write", wait=timedelta(minutes=5))`` polls the broker until
an approver decides (see :mod:`gatepass.sdk.approvals`).

The SDK talks to the broker over HTTP only and never imports server code. Tokens
live in memory, wrapped in :class:`~gatepass.secret.Secret`, and are never logged.
Every error the broker answers is raised as the gatepass error of its code.
"""

from __future__ import annotations

from gatepass.sdk.access import AccessToken, DPoPAuth
from gatepass.sdk.approvals import ApprovalProgress
from gatepass.sdk.client import GatepassClient
from gatepass.sdk.credential import Credential
from gatepass.sdk.identity import AgentIdentity
from gatepass.sdk.session import error_from_response
from gatepass.sdk.task import REFRESH_MARGIN, Task

__all__ = [
    "REFRESH_MARGIN",
    "AccessToken",
    "AgentIdentity",
    "ApprovalProgress",
    "Credential",
    "DPoPAuth",
    "GatepassClient",
    "Task",
    "error_from_response",
]
