"""
An HTTP auth hook that gives every request to one resource a task's DPoP token.

:class:`ResourceAuth` needs nothing but the task and the resource's URL: the first
request goes out without a token, the ``401`` names the resource's RFC 9728
metadata (``resource_metadata``), and the metadata names the resource identifier
(the token's audience) and the broker that guards it. From then on::

    request ──▶ token for (resource, scopes) from task.access_token, fresh proof
      401 use_dpop_nonce     ──▶ retry once with the nonce (RFC 9449 §9)
      401 invalid_token      ──▶ drop the token (revoked, expired), ask the broker
                                 again, retry once
      403 insufficient_scope ──▶ ask the broker for the scopes held plus the ones
                                 the challenge names (RFC 6750 §3), retry once

Each request is retried at most once per reason, and a step-up that would ask for
nothing new is not made, so a server can never make the hook loop. A refusal by
the broker (the policy denies the new scope, the task is closed) is never raised
from inside the HTTP client, where it would tear down a caller such as an MCP
session: the resource's own refusal is returned, and the broker's error is kept in
:attr:`ResourceAuth.last_error` for the agent to read.

The same flow drives ``httpx`` here and ``httpx2`` in :mod:`gatepass.mcp`: it only
reads and sets headers, and it hands the blocking broker calls to its driver,
which runs them in a worker thread under an async client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import anyio.to_thread
import httpx

from gatepass.errors import (
    ConfigurationError,
    GatepassError,
    InvalidRequestError,
    InvalidScopeError,
)
from gatepass.sdk.access import AccessToken
from gatepass.sdk.challenge import Challenge, read_challenge
from gatepass.sdk.discovery import discover_resource, within
from gatepass.sdk.task import REFRESH_MARGIN, Task

__all__ = ["ResourceAuth"]

_log = logging.getLogger("gatepass.sdk")

_UNAUTHORIZED = 401
_FORBIDDEN = 403

T = TypeVar("T")


class _Request(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def url(self) -> Any: ...  # noqa: ANN401
    @property
    def headers(self) -> Any: ...  # noqa: ANN401


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Any: ...  # noqa: ANN401


@dataclass(frozen=True, slots=True)
class _Blocking:
    """A call the driver must make outside the event loop, its result sent back."""

    call: Callable[[], object]


class ResourceAuth(httpx.Auth):
    """
    Authenticate requests to one resource with DPoP tokens from a task.

    Args:
        task: the open task whose key and broker grant the tokens.
        resource: the resource identifier (the target URI, the tokens'
            audience); discovered from the first ``401`` when omitted.
        scopes: the actions to ask for first; the first challenge's ``scope``
            when omitted.
        http: the client for metadata discovery; the task's broker client when
            omitted.
    """

    requires_request_body = True

    def __init__(
        self,
        task: Task,
        *,
        resource: str | None = None,
        scopes: Sequence[str] | str = (),
        http: httpx.Client | None = None,
    ) -> None:
        """Keep the task; nothing is asked of the broker until a request."""
        self._task = task
        self._resource = resource
        names = scopes.split() if isinstance(scopes, str) else list(scopes)
        self._scopes = frozenset(names)
        self._http = http
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self.last_error: GatepassError | None = None

    def __repr__(self) -> str:
        """Show the task, resource and scopes, never a token."""
        return (
            f"ResourceAuth(task={self._task.id!r}, resource={self._resource!r}, "
            f"scopes={sorted(self._scopes)!r})"
        )

    @property
    def resource(self) -> str | None:
        """The resource identifier, once known."""
        return self._resource

    @property
    def scopes(self) -> frozenset[str]:
        """The actions the current token is asked for."""
        return self._scopes

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Drive the flow for ``httpx.Client``, making broker calls inline."""
        request.read()
        flow = self._flow(request)
        step: object = next(flow)
        while True:
            try:
                if isinstance(step, _Blocking):
                    step = flow.send(step.call())
                else:
                    response = yield step  # type: ignore[misc]
                    step = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Drive the flow for ``httpx.AsyncClient``, broker calls in a thread."""
        await request.aread()
        flow = self.drive_async(request)
        sent = await anext(flow)
        while True:
            response = yield sent
            try:
                sent = await flow.asend(response)
            except StopAsyncIteration:
                return

    async def drive_async(self, request: T) -> AsyncGenerator[T, Any]:
        """
        Drive the flow for any httpx-like async client (``httpx2`` among them).

        Args:
            request: the request, its body already read.

        Yields:
            The requests to send; the caller sends back each response.
        """
        flow = self._flow(request)  # type: ignore[arg-type]
        step: object = next(flow)
        while True:
            try:
                if isinstance(step, _Blocking):
                    result = await anyio.to_thread.run_sync(step.call)
                    step = flow.send(result)
                else:
                    response = yield step  # type: ignore[misc]
                    step = flow.send(response)
            except StopIteration:
                return

    def _flow(self, request: _Request) -> Generator[object, Any, None]:
        url = str(request.url)
        if self._resource is not None and not within(url, self._resource):
            # Another server than this hook's resource: it gets no token, nor a
            # token request on its behalf (RFC 8707 §2).
            self.last_error = InvalidRequestError("url is outside the resource")
            yield request
            return
        token = self._fresh_token()
        if token is None and self._resource is not None and self._scopes:
            token = yield _Blocking(lambda: self._obtain(self._scopes))
        response = yield from self._send(request, url, token)
        challenge = read_challenge(response.headers.get("www-authenticate"))
        if response.status_code == _UNAUTHORIZED:
            answered = yield from self._reauthorize(request, url, token, challenge)
            if answered is None:
                return
            response, token = answered
            challenge = read_challenge(response.headers.get("www-authenticate"))
        if (
            response.status_code == _FORBIDDEN
            and challenge.error == "insufficient_scope"
            and token is not None
        ):
            merged = self._scopes | challenge.scopes
            # A step-up that asks for nothing new cannot succeed: never loop.
            if merged == self._scopes:
                return
            stepped = yield _Blocking(lambda: self._obtain(merged))
            if stepped is not None:
                yield from self._send(request, url, stepped)

    def _reauthorize(
        self,
        request: _Request,
        url: str,
        token: AccessToken | None,
        challenge: Challenge,
    ) -> Generator[object, Any, tuple[_Response, AccessToken] | None]:
        if token is not None and challenge.error == "invalid_token":
            token.reject()
        if self._resource is None:
            found = yield _Blocking(lambda: self._discover(url, challenge))
            if not found:
                return None
        wanted = self._scopes or challenge.scopes
        if not wanted:
            self.last_error = InvalidScopeError(
                "the resource named no scope: pass the scopes to ask for"
            )
            return None
        renewed = yield _Blocking(lambda: self._obtain(wanted))
        if not isinstance(renewed, AccessToken) or renewed is token:
            # The broker refused, or had nothing better than what was refused.
            return None
        response = yield from self._send(request, url, renewed)
        return response, renewed

    def _send(
        self, request: _Request, url: str, token: AccessToken | None
    ) -> Generator[object, Any, _Response]:
        if token is not None and not within(url, token.audience):
            # RFC 8707 §2 and RFC 9700 §4.10: a token goes only to the resource it
            # names. The request still goes out, without it, and gets its 401.
            self.last_error = InvalidRequestError("url is outside the token's target")
            token = None
        if token is not None:
            self._sign(request, url, token)
        response: _Response = yield request
        nonce = response.headers.get("dpop-nonce")
        if token is not None and nonce:
            token.remember_nonce(url, nonce)
            challenge = read_challenge(response.headers.get("www-authenticate"))
            if (
                response.status_code == _UNAUTHORIZED
                and challenge.error == "use_dpop_nonce"
            ):
                self._sign(request, url, token)
                response = yield request
        return response

    def _fresh_token(self) -> AccessToken | None:
        # The held token is reused while it is good, so most requests need no
        # thread hop; the task's own cache decides once it is not.
        token = self._token
        if token is None or token.rejected:
            return None
        if self._task.clock.now() >= token.expires_at - REFRESH_MARGIN:
            return None
        return token

    @staticmethod
    def _sign(request: _Request, url: str, token: AccessToken) -> None:
        for name, value in token.headers(request.method, url).items():
            request.headers[name] = value

    def _discover(self, url: str, challenge: Challenge) -> bool:
        try:
            metadata = discover_resource(self._http or self._task.http, url, challenge)
            issuer = self._task.issuer
        except GatepassError as error:
            self.last_error = error
            _log.warning("resource discovery failed: %s", error.detail)
            return False
        if issuer not in metadata.authorization_servers:
            # The resource trusts another authorization server: a token from
            # this broker would be refused, and asking for one leaks intent.
            self.last_error = ConfigurationError(
                "the resource does not name this broker as its authorization server"
            )
            return False
        with self._lock:
            self._resource = metadata.resource
        return True

    def _obtain(self, scopes: frozenset[str]) -> AccessToken | None:
        resource = self._resource
        if resource is None:
            return None
        try:
            token = self._task.access_token(resource, sorted(scopes))
        except GatepassError as error:
            # The broker's answer (policy denial, task closed) is the agent's to
            # read; the resource's refusal is what the HTTP caller gets.
            self.last_error = error
            _log.info("broker refused a token: %s (%s)", error.code, error.detail)
            return None
        with self._lock:
            self._token = token
            self._scopes = scopes
        self.last_error = None
        return token
