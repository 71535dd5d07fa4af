"""The agent's entry point: open tasks at a gatepass broker."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

import httpx

from gatepass.clock import Clock, SystemClock
from gatepass.clock import sleep as pause
from gatepass.errors import ConfigurationError, GatepassError, InvalidRequestError
from gatepass.ids import TaskId, is_id
from gatepass.sdk.delegation import DelegationGrant
from gatepass.sdk.identity import AgentIdentity
from gatepass.sdk.session import BrokerSession
from gatepass.sdk.task import Task
from gatepass.secret import Secret
from gatepass.tokens import (
    DELEGATION_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
    DPoPKey,
)

__all__ = ["GatepassClient"]


class GatepassClient:
    """
    An agent's connection to its broker.

    Args:
        identity: the agent's identity.
        broker_url: the broker's issuer URL; the identity's broker when omitted.
        http: the HTTP client; one with a 10 s timeout is created (and closed by
            :meth:`close`) when omitted.
        clock: the time source for assertions and proofs, and for waits.
        sleep: pauses between polls while waiting for an approval; a real pause
            when omitted (tests pass one that advances a frozen clock).

    Raises:
        ConfigurationError: no broker URL is known.
    """

    def __init__(
        self,
        identity: AgentIdentity,
        broker_url: str | None = None,
        *,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = pause,
    ) -> None:
        """Prepare the session; the broker is contacted on first use."""
        url = broker_url or identity.broker_url
        if not url:
            raise ConfigurationError("no broker url: pass one or use an identity file")
        self.identity = identity
        self._owns_http = http is None
        client = http or httpx.Client(timeout=10.0, follow_redirects=False)
        self._session = BrokerSession(
            url, http=client, clock=clock or SystemClock(), sleep=sleep
        )

    def __repr__(self) -> str:
        """Show the agent and broker."""
        return (
            f"GatepassClient(agent_id={self.identity.agent_id!r}, "
            f"broker_url={self._session.broker_url!r})"
        )

    def __enter__(self) -> Self:
        """Return the client; its HTTP client is closed when the block ends."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()

    @property
    def broker_url(self) -> str:
        """The broker's issuer URL."""
        return self._session.broker_url

    def close(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            self._session.http.close()

    def open_task(
        self,
        *,
        intent: str,
        purpose: str,
        environment: str,
        targets: Sequence[str],
        tenant: str | None = None,
        ttl: dt.timedelta | None = None,
    ) -> Task:
        """
        Open a task: say what the agent is about to do, and get a task token.

        Args:
            intent: free text describing the work, up to 1000 characters.
            purpose: the label policies match, such as ``support-triage``.
            environment: the environment of every target, such as ``dev``.
            targets: the URIs (or names) of the targets the task will touch.
            tenant: the tenant; the agent's own when omitted.
            ttl: the longest the task may live; the broker may shorten it.

        Returns:
            The open task; use it as a context manager so that it is closed.

        Raises:
            InvalidRequestError: a parameter is malformed (raised locally).
            InvalidTargetError: a target is unknown or in another environment.
            AccessDeniedError: policy denied the task.
            InvalidGrantError: the broker did not accept the agent's identity.
            GatepassError: any other error the broker answered.
        """
        if isinstance(targets, str):
            raise InvalidRequestError("targets must be a list of target uris")
        details: dict[str, object] = {
            "type": "agent_task",
            "intent": intent,
            "purpose": purpose,
            "environment": environment,
            "targets": list(targets),
        }
        if tenant is not None:
            details["tenant"] = tenant
        if ttl is not None:
            details["max_ttl_seconds"] = max(1, int(ttl.total_seconds()))
        session = self._session
        metadata = session.metadata()
        key = DPoPKey.generate()

        def form() -> dict[str, str]:
            return {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": self.identity.assertion(
                    metadata.issuer, now=session.clock.now()
                ),
                "subject_token_type": JWT_TOKEN_TYPE,
                "requested_token_type": TXN_TOKEN_TYPE,
                "authorization_details": json.dumps([details]),
            }

        return self._task_from(form, key, environment=environment)

    def accept_delegation(self, grant: DelegationGrant | Secret | str) -> Task:
        """
        Open this agent's task from a delegation grant another agent handed over.

        The agent proves its own identity (``actor_token``) and binds the new task
        to a key generated for it here (DPoP); the sub-task is the grant's. The
        grant is single use and names this agent only.

        Args:
            grant: the grant, or the string the parent's ``grant.reveal()`` gave.

        Returns:
            The child task (``parent_id`` set); use it as a context manager.

        Raises:
            InvalidGrantError: the grant is invalid, expired, already used, for
                another agent, or its parent task has ended.
            AccessDeniedError: policy denied the child's task.
            GatepassError: any other error the broker answered.
        """
        token = grant if isinstance(grant, str) else grant.reveal()
        if not token:
            raise InvalidRequestError("grant must be a delegation token")
        session = self._session
        metadata = session.metadata()

        def form() -> dict[str, str]:
            return {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": token,
                "subject_token_type": DELEGATION_TOKEN_TYPE,
                "requested_token_type": TXN_TOKEN_TYPE,
                "actor_token": self.identity.assertion(
                    metadata.issuer, now=session.clock.now()
                ),
                "actor_token_type": JWT_TOKEN_TYPE,
            }

        return self._task_from(form, DPoPKey.generate(), environment=None)

    def _task_from(
        self,
        form: Callable[[], dict[str, str]],
        key: DPoPKey,
        *,
        environment: str | None,
    ) -> Task:
        """Post a task-opening exchange and hold the task it answers."""
        session = self._session
        metadata = session.metadata()
        received_at = session.clock.now()
        response = session.post(metadata.token_endpoint, key, data=form)
        body = response.json()
        if not isinstance(body, dict):
            raise GatepassError("broker answered without a task token")
        token = body.get("access_token")
        task_id = body.get("task_id")
        expires_in = body.get("expires_in")
        if (
            not isinstance(token, str)
            or not is_id(task_id, "tsk")
            or not isinstance(expires_in, int)
        ):
            raise GatepassError("broker answered without a task token")
        parent = body.get("parent_task_id")
        details = body.get("authorization_details")
        if environment is None and isinstance(details, list) and details:
            echoed = (
                details[0].get("environment") if isinstance(details[0], dict) else None
            )
            environment = echoed if isinstance(echoed, str) else None
        return Task(
            task_id=TaskId(str(task_id)),
            token=Secret(token),
            expires_at=received_at + dt.timedelta(seconds=expires_in),
            key=key,
            session=session,
            close_url=f"{metadata.issuer.rstrip('/')}/v1/tasks/{task_id}/close",
            environment=environment,
            parent_id=TaskId(str(parent)) if is_id(parent, "tsk") else None,
        )
