"""
The token endpoint's use case: one RFC 8693 exchange, audited whatever happens.

It dispatches a parsed exchange to :class:`~gatepass.broker.open_task.OpenTask`,
:class:`~gatepass.broker.access_tokens.IssueAccessToken`, or one of the two halves
of a delegation (``broker/delegation_grant.py``, ``broker/delegation_accept.py``),
counts the outcome, and
audits a refusal before raising it (an accepted exchange is audited inside its own
transaction). Requests the API refused before they parsed are audited through
:meth:`TokenEndpoint.reject`.
"""

from __future__ import annotations

from gatepass.broker.access_tokens import IssueAccessToken
from gatepass.broker.context import BrokerContext
from gatepass.broker.delegation_accept import AcceptDelegation
from gatepass.broker.delegation_grant import GrantDelegation
from gatepass.broker.open_task import OpenTask
from gatepass.broker.requests import (
    AcceptDelegationRequest,
    AccessTokenRequest,
    DelegationGrantRequest,
    OpenTaskRequest,
    TokenResponse,
)
from gatepass.broker.reuse import ReuseDetector
from gatepass.broker.trail import Attempt
from gatepass.errors import GatepassError

__all__ = ["TokenEndpoint"]


class TokenEndpoint:
    """
    Serve token-endpoint exchanges.

    Args:
        context: the broker's collaborators.
        reuse: told of refusals that look like credential reuse.
    """

    def __init__(
        self, context: BrokerContext, *, reuse: ReuseDetector | None = None
    ) -> None:
        """Build the exchanges."""
        self._context = context
        self._reuse = reuse
        self._open_task = OpenTask(context)
        self._access_token = IssueAccessToken(context)
        self._grant = GrantDelegation(context)
        self._accept = AcceptDelegation(context)

    async def exchange(
        self,
        request: OpenTaskRequest
        | AccessTokenRequest
        | DelegationGrantRequest
        | AcceptDelegationRequest,
        *,
        dpop_proof: str | None,
        certificate: str | None = None,
    ) -> TokenResponse:
        """
        Open a task, issue an access token, grant or accept a delegation.

        Args:
            request: the parsed exchange.
            dpop_proof: the request's one ``DPoP`` header, or None.
            certificate: the thumbprint of the connection's client certificate,
                when the broker terminates mutual TLS (RFC 8705).

        Returns:
            The token response.

        Raises:
            GatepassError: the request is refused; it has been audited.
        """
        kinds = {
            OpenTaskRequest: "task.open",
            AccessTokenRequest: "credential.issue",
            DelegationGrantRequest: "delegation.grant",
            AcceptDelegationRequest: "task.delegate",
        }
        attempt = Attempt(kind=kinds[type(request)])
        try:
            if isinstance(request, OpenTaskRequest):
                response = await self._open_task(
                    request, dpop_proof, attempt, certificate=certificate
                )
            elif isinstance(request, AccessTokenRequest):
                response = await self._access_token(
                    request, dpop_proof, attempt, certificate=certificate
                )
            elif isinstance(request, DelegationGrantRequest):
                response = await self._grant(
                    request, dpop_proof, attempt, certificate=certificate
                )
            else:
                response = await self._accept(
                    request, dpop_proof, attempt, certificate=certificate
                )
        except GatepassError as error:
            self._count(attempt.kind, error.code)
            if self._reuse is not None:
                # The refusal stands as it is; reuse detection only watches it
                # (its record precedes the refusal's, which stays the last word).
                await self._reuse.observe(attempt, error)
            await self._context.trail.refuse(attempt, error)
            raise
        self._count(attempt.kind, "ok")
        return response

    async def reject(
        self, error: GatepassError, *, kind: str = "token.request"
    ) -> None:
        """
        Audit a request refused before it parsed (size, content type, form).

        Raises:
            StoreError: the refusal could not be audited.
        """
        self._count(kind, error.code)
        await self._context.trail.refuse(Attempt(kind=kind), error)

    def _count(self, kind: str, outcome: str) -> None:
        self._context.metrics.token_requests.labels(kind=kind, outcome=outcome).inc()
