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
        # or let the resource say what it is and what it needs (RFC 9728):
        httpx.get("http://127.0.0.1:8401/tickets", auth=ResourceAuth(task))

A task hands part of its work to another agent with a single-use grant; the child
proves its own identity and gets its own, narrower task::

    grant = task.delegate(
        to="agt_…", targets=["tickets"], actions=["read"], purpose="research"
    )
    child_task = child_client.accept_delegation(grant.reveal())  # in the child

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
from gatepass.sdk.challenge import Challenge, read_challenge
from gatepass.sdk.client import GatepassClient
from gatepass.sdk.credential import Credential
from gatepass.sdk.delegation import DelegationGrant
from gatepass.sdk.discovery import ResourceMetadata, discover_resource
from gatepass.sdk.identity import AgentIdentity
from gatepass.sdk.resource_auth import ResourceAuth
from gatepass.sdk.session import error_from_response
from gatepass.sdk.task import REFRESH_MARGIN, Task

__all__ = [
    "REFRESH_MARGIN",
    "AccessToken",
    "AgentIdentity",
    "ApprovalProgress",
    "Challenge",
    "Credential",
    "DPoPAuth",
    "DelegationGrant",
    "GatepassClient",
    "ResourceAuth",
    "ResourceMetadata",
    "Task",
    "discover_resource",
    "error_from_response",
    "read_challenge",
]
