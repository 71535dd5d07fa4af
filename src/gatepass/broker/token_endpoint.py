"""
The token endpoint's use case: one RFC 8693 exchange, audited whatever happens.

It dispatches a parsed exchange to :class:`~gatepass.broker.open_task.OpenTask` or
:class:`~gatepass.broker.access_tokens.IssueAccessToken`, counts the outcome, and
audits a refusal before raising it (an accepted exchange is audited inside its own
transaction). Requests the API refused before they parsed are audited through
:meth:`TokenEndpoint.reject`.
"""

from __future__ import annotations

from gatepass.broker.access_tokens import IssueAccessToken
from gatepass.broker.context import BrokerContext
from gatepass.broker.open_task import OpenTask
from gatepass.broker.requests import AccessTokenRequest, OpenTaskRequest, TokenResponse
from gatepass.broker.trail import Attempt
from gatepass.errors import GatepassError

__all__ = ["TokenEndpoint"]


class TokenEndpoint:
    """
    Serve token-endpoint exchanges.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Build the two exchanges."""
        self._context = context
        self._open_task = OpenTask(context)
        self._access_token = IssueAccessToken(context)

    async def exchange(
        self,
        request: OpenTaskRequest | AccessTokenRequest,
        *,
        dpop_proof: str | None,
        certificate: str | None = None,
    ) -> TokenResponse:
        """
        Open a task or issue an access token.

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
        if isinstance(request, OpenTaskRequest):
            attempt = Attempt(kind="task.open")
        else:
            attempt = Attempt(kind="credential.issue")
        try:
            if isinstance(request, OpenTaskRequest):
                response = await self._open_task(
                    request, dpop_proof, attempt, certificate=certificate
                )
            else:
                response = await self._access_token(
                    request, dpop_proof, attempt, certificate=certificate
                )
        except GatepassError as error:
            self._count(attempt.kind, error.code)
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
