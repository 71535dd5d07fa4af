"""
A task as the agent holds it: its token, its DPoP key and its access tokens.

Closing the task (``with client.open_task(...) as task:`` does it on exit) revokes
every credential issued for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx
import jwt

from gatepass.clock import Clock
from gatepass.errors import (
    ConflictError,
    GatepassError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from gatepass.ids import LeaseId, TaskId
from gatepass.sdk.access import AccessToken
from gatepass.sdk.approvals import (
    ApprovalParameters,
    ApprovalProgress,
    Waiting,
    WaitOptions,
    obtain,
)
from gatepass.sdk.credential import Credential
from gatepass.sdk.delegation import DelegationGrant, request_grant
from gatepass.sdk.session import BrokerSession
from gatepass.secret import Secret
from gatepass.tokens import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, TXN_TOKEN_TYPE, DPoPKey

__all__ = ["REFRESH_MARGIN", "Task"]

_log = logging.getLogger("gatepass.sdk")

T = TypeVar("T")


# A cached access token is replaced this long before it expires, so a request never
# leaves with a token that dies on the way.
REFRESH_MARGIN = dt.timedelta(seconds=30)


def _actions(actions: Sequence[str] | str) -> tuple[str, ...]:
    names = actions.split() if isinstance(actions, str) else list(actions)
    if not names or not all(names):
        raise InvalidScopeError("name at least one action")
    if any(" " in name for name in names):
        raise InvalidScopeError("an action may not contain a space")
    return tuple(sorted(set(names)))


def _audience_of(token: str, fallback: str) -> str:
    # The SDK reads its own token only to know where it may be sent; the resource
    # server verifies it. Tokens come from the broker over the same connection.
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return fallback
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    return audience if isinstance(audience, str) else fallback


class Task:
    """
    One open task: ask it for access tokens, and close it when the work is done.

    Use :meth:`GatepassClient.open_task <gatepass.sdk.GatepassClient.open_task>`
    to create one.

    Args:
        task_id: the broker's id of the task.
        token: the task token.
        expires_at: when the task expires.
        key: the task's DPoP key, generated in memory for this task only.
        session: the broker connection.
        close_url: the task's close endpoint.
        environment: the task's environment, which its sub-tasks keep.
        parent_id: for a task received by delegation, the task it came from.

    Attributes:
        id: the task id.
        expires_at: when the task expires.
        environment: the task's environment, when known.
        parent_id: the parent task of a delegated task; None for a root task.
    """

    def __init__(
        self,
        *,
        task_id: TaskId,
        token: Secret,
        expires_at: dt.datetime,
        key: DPoPKey,
        session: BrokerSession,
        close_url: str,
        environment: str | None = None,
        parent_id: TaskId | None = None,
    ) -> None:
        """Hold the task's token and key in memory."""
        self.id = task_id
        self.expires_at = expires_at
        self.environment = environment
        self.parent_id = parent_id
        self._token: Secret | None = token
        self._key = key
        self._session = session
        self._close_url = close_url
        self._cache: dict[
            tuple[str, tuple[str, ...], dt.timedelta | None], AccessToken
        ] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """Show the task, never its token."""
        state = "closed" if self.closed else "open"
        return (
            f"Task(id={self.id!r}, expires_at={self.expires_at.isoformat()!r}, {state})"
        )

    def __enter__(self) -> Self:
        """Return the task; it is closed when the block ends."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """
        Close the task, also when the block raised.

        A failure to close is logged; it is raised only when the block itself did
        not raise, so it never hides the original exception.
        """
        try:
            self.close()
        except GatepassError as error:
            _log.warning(
                "closing task %s failed: %s (%s)", self.id, error.code, error.detail
            )
            if exc is None:
                raise

    @property
    def closed(self) -> bool:
        """Whether the task was closed (or has expired)."""
        return self._token is None

    def access_token(
        self,
        target: str,
        actions: Sequence[str] | str,
        *,
        wait: dt.timedelta | None = None,
        justification: str | None = None,
        requested_ttl: dt.timedelta | None = None,
        on_progress: Callable[[ApprovalProgress], None] | None = None,
    ) -> AccessToken:
        """
        Return an access token for a target, reusing one that is still fresh.

        Args:
            target: the target's URI (or name), one of the task's targets.
            actions: the actions, such as ``["read"]`` or ``"read write"``.
            wait: when policy needs a human's approval, wait this long for it,
                polling as the broker says; without it the request raises
                ``ApprovalPendingError`` at once.
            justification: why the agent asks, shown to the approvers as
                agent-supplied text (sent with the first request only).
            requested_ttl: ask for a shorter lifetime than policy allows (whole
                seconds); an approval covers exactly this lifetime.
            on_progress: called with an ``ApprovalProgress`` after every
                "still waiting" answer; raise from it to stop waiting.

        Returns:
            A DPoP-bound token for exactly that target and those actions.

        Raises:
            InvalidGrantError: the task is closed or has expired, or the approval
                was cancelled.
            InvalidTargetError: the target is unknown or outside the task.
            InvalidScopeError: an action is not offered by the target.
            AccessDeniedError: policy denied the request.
            ApprovalPendingError: approval is needed and ``wait`` was not given.
            ApprovalDeniedError: an approver denied the request.
            ApprovalExpiredError: the approval expired, or ``wait`` ran out first
                (``still_pending`` is True then: call again to resume).
            RateLimitedError: too many of the agent's requests wait for approval.
            GatepassError: any other error the broker answered.
        """
        wanted = _actions(actions)
        options = WaitOptions(
            wait=wait,
            justification=justification,
            requested_ttl=requested_ttl,
            on_progress=on_progress,
        )
        key = (target, wanted, requested_ttl)
        now = self._session.clock.now()
        with self._lock:
            cached = self._cache.get(key)
            if (
                cached is not None
                and not cached.rejected
                and now < cached.expires_at - REFRESH_MARGIN
            ):
                return cached
        issued = self._obtain(
            lambda extra: self._request_access_token(target, wanted, extra), options
        )
        with self._lock:
            self._cache[key] = issued
        return issued

    def forget(self, token: AccessToken) -> None:
        """
        Drop an access token from the cache, so the next request asks the broker.

        :class:`~gatepass.sdk.DPoPAuth` calls this (through
        :meth:`AccessToken.reject`) when a resource answers ``invalid_token``.

        Args:
            token: a token this task issued.
        """
        with self._lock:
            for key, cached in list(self._cache.items()):
                if cached is token:
                    del self._cache[key]

    @property
    def issuer(self) -> str:
        """The broker's issuer URL, which resource servers must name."""
        return self._session.metadata().issuer

    @property
    def clock(self) -> Clock:
        """The time source of the broker session."""
        return self._session.clock

    @property
    def http(self) -> httpx.Client:
        """The HTTP client of the broker session, for discovery requests."""
        return self._session.http

    def _obtain(
        self, ask: Callable[[ApprovalParameters], T], options: WaitOptions
    ) -> T:
        session = self._session
        return obtain(ask, options, clock=session.clock, sleep=session.sleep)

    def _live_token(self) -> str:
        token = self._token
        if token is None:
            raise InvalidGrantError("task is closed")
        if self._session.clock.now() >= self.expires_at:
            raise InvalidGrantError("task has expired")
        return token.reveal()

    def _request_access_token(
        self, target: str, actions: tuple[str, ...], extra: ApprovalParameters
    ) -> AccessToken:
        task_token = self._live_token()
        endpoint = self._session.metadata().token_endpoint
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": task_token,
            "subject_token_type": TXN_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "resource": target,
            "scope": " ".join(actions),
            **extra.form(),
        }
        received_at = self._session.clock.now()
        response = self._session.post(endpoint, self._key, data=lambda: form)
        body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not isinstance(expires_in, int):
            raise GatepassError("broker answered without an access token")
        scope = body.get("scope")
        return AccessToken(
            value=Secret(token),
            expires_at=received_at + dt.timedelta(seconds=expires_in),
            scope=scope if isinstance(scope, str) else " ".join(actions),
            lease_id=LeaseId(str(body.get("lease_id", ""))),
            audience=_audience_of(token, target),
            key=self._key,
            clock=self._session.clock,
            on_rejected=self.forget,
        )

    def credential(
        self,
        target: str,
        actions: Sequence[str] | str,
        *,
        public_key: str | None = None,
        idempotency_key: str | None = None,
        wait: dt.timedelta | None = None,
        justification: str | None = None,
        requested_ttl: dt.timedelta | None = None,
        on_progress: Callable[[ApprovalProgress], None] | None = None,
    ) -> Credential:
        """
        Ask for an engine-backed credential (PostgreSQL, Redis, SSH) for a target.

        Args:
            target: the target's name or URI.
            actions: the actions, e.g. ``["read"]``.
            public_key: for SSH targets, the agent's own OpenSSH public key.
            idempotency_key: sent as ``Idempotency-Key``: repeating a request whose
                answer was lost with the same key returns the same lease (its
                ``password`` is None then: a secret is handed over once).
            wait: how long to wait for a human's approval, as for
                :meth:`access_token`.
            justification: why the agent asks, for the approvers.
            requested_ttl: a shorter lifetime than policy allows (whole seconds).
            on_progress: called after every "still waiting" answer.

        Raises:
            ConflictError: the key was used for another request, or its first
                request is still in progress.
            ApprovalPendingError: approval is needed and ``wait`` was not given.
            ApprovalDeniedError: an approver denied the request.
            ApprovalExpiredError: the approval expired, or ``wait`` ran out first.
            GatepassError: the broker refused (the class of its error code).
        """
        payload: dict[str, Any] = {"target": target, "actions": list(_actions(actions))}
        if public_key is not None:
            payload["public_key"] = public_key
        options = WaitOptions(
            wait=wait,
            justification=justification,
            requested_ttl=requested_ttl,
            on_progress=on_progress,
        )
        headers = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self._obtain(
            lambda extra: self._request_credential(
                {**payload, **extra.json()}, headers
            ),
            options,
        )

    def _request_credential(
        self, payload: dict[str, Any], headers: dict[str, str]
    ) -> Credential:
        url = self._close_url.split("/v1/tasks/", 1)[0] + "/v1/credentials"
        response = self._session.post(
            url,
            self._key,
            access_token=self._live_token(),
            json_body=payload,
            headers=headers,
        )
        return Credential.from_answer(response.json())

    def renew(self, credential: Credential) -> Credential:
        """
        Extend a live credential (PostgreSQL role, Redis user) within its caps.

        Raises:
            GatepassError: refused (policy, task closed, an SSH certificate, which
                cannot be extended: ask for a new one).
        """
        base = self._close_url.split("/v1/tasks/", 1)[0]
        url = f"{base}/v1/credentials/{credential.lease_id}/renew"
        response = self._session.post(url, self._key, access_token=self._live_token())
        body = response.json()
        return dataclasses.replace(
            credential,
            expires_at=dt.datetime.fromisoformat(str(body["expires_at"])),
        )

    def postgres(
        self,
        target: str,
        actions: Sequence[str] | str,
        *,
        idempotency_key: str | None = None,
        **waiting: Unpack[Waiting],
    ) -> Credential:
        """
        Return a temporary PostgreSQL role; ``connection_kwargs()`` suits psycopg.

        ``wait``, ``justification``, ``requested_ttl`` and ``on_progress`` work as
        for :meth:`credential`.
        """
        return self.credential(
            target, actions, idempotency_key=idempotency_key, **waiting
        )

    def redis(
        self,
        target: str,
        actions: Sequence[str] | str,
        *,
        idempotency_key: str | None = None,
        **waiting: Unpack[Waiting],
    ) -> Credential:
        """
        Return a temporary Redis ACL user; ``connection_kwargs()`` suits redis-py.

        ``wait``, ``justification``, ``requested_ttl`` and ``on_progress`` work as
        for :meth:`credential`.
        """
        return self.credential(
            target, actions, idempotency_key=idempotency_key, **waiting
        )

    def ssh_certificate(
        self,
        target: str,
        actions: Sequence[str] | str,
        *,
        public_key: str,
        idempotency_key: str | None = None,
        **waiting: Unpack[Waiting],
    ) -> Credential:
        """
        Return an OpenSSH user certificate for ``public_key`` (``.certificate``).

        ``wait``, ``justification``, ``requested_ttl`` and ``on_progress`` work as
        for :meth:`credential`.
        """
        return self.credential(
            target,
            actions,
            public_key=public_key,
            idempotency_key=idempotency_key,
            **waiting,
        )

    def delegate(
        self,
        *,
        to: str,
        targets: Sequence[str],
        actions: Sequence[str],
        purpose: str,
        ttl: dt.timedelta | None = None,
        intent: str | None = None,
    ) -> DelegationGrant:
        """
        Hand part of this task to another agent: ask for a delegation grant.

        The sub-task can only shrink: its targets are among this task's, its
        actions ones this task could be granted, its life within this task's. Pass
        ``grant.reveal()`` to the child, which opens its own task from it with
        :meth:`GatepassClient.accept_delegation
        <gatepass.sdk.GatepassClient.accept_delegation>`. Closing this task closes
        the child's too.

        Args:
            to: the child agent's id (``agt_…``).
            targets: the sub-task's targets (names or URIs).
            actions: the sub-task's actions, such as ``["read"]``.
            purpose: the sub-task's purpose label.
            ttl: the longest the child's task may live; the broker may shorten it.
            intent: free text describing the sub-task; the purpose when omitted.

        Returns:
            The single-use grant, for the child agent only.

        Raises:
            InvalidRequestError: a parameter is malformed (raised locally), or
                the sub-task would leave this task's environment, tenant or
                depth limit.
            InvalidGrantError: this task is closed or has expired.
            InvalidTargetError: a target is outside this task, the child is no
                active agent, or it is already in this task's chain.
            InvalidScopeError: an action this task could not be granted.
            AccessDeniedError: policy denied the delegation.
            GatepassError: any other error the broker answered.
        """
        environment = self.environment
        if environment is None:
            raise InvalidRequestError("this task's environment is not known")
        return request_grant(
            self._session,
            self._key,
            self._live_token(),
            parent_task=self.id,
            to=to,
            targets=targets,
            actions=list(_actions(actions)),
            purpose=purpose,
            environment=environment,
            intent=purpose if intent is None else intent,
            ttl=ttl,
        )

    def close(self) -> None:
        """
        Close the task: the broker revokes every credential issued for it.

        Closing twice, or a task the broker already closed, is not an error.

        Raises:
            GatepassError: the broker refused or could not be reached; the task may
                still be open until it expires.
        """
        token = self._token
        if token is None:
            return
        if self._session.clock.now() >= self.expires_at:
            self._forget()
            return
        # 409: the broker already closed it (an admin did, or a sweep).
        with contextlib.suppress(ConflictError):
            self._session.post(self._close_url, self._key, access_token=token.reveal())
        self._forget()

    def _forget(self) -> None:
        with self._lock:
            self._token = None
            self._cache.clear()
