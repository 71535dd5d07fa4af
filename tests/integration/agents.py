"""A test agent that speaks the protocol with gatepass.tokens primitives."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Self

import httpx

from gatepass.clock import SystemClock
from gatepass.tokens import DPoPKey, create_assertion, load_private_key

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
TXN_TYPE = "urn:ietf:params:oauth:token-type:txn_token"


class ProtocolAgent:
    """Builds assertions, proofs and token requests for one agent identity."""

    def __init__(self, broker_url: str, identity: dict[str, Any]) -> None:
        """Load the identity's private key."""
        self.url = broker_url
        self.agent_id = identity["agent_id"]
        self.private_key, _, self.algorithm = load_private_key(identity["private_jwk"])
        self.key = DPoPKey.generate()
        self.http = httpx.Client(timeout=10)

    def __enter__(self) -> Self:
        """Use as a context manager that closes the HTTP client."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the HTTP client."""
        self.http.close()

    @property
    def token_endpoint(self) -> str:
        """Return the broker's token endpoint."""
        return f"{self.url}/token"

    def assertion(
        self, *, now: dt.datetime | None = None, lifetime: int = 60, **kwargs: Any
    ) -> str:
        """Return a fresh identity assertion."""
        return create_assertion(
            self.private_key,
            algorithm=self.algorithm,
            agent_id=kwargs.pop("agent_id", self.agent_id),
            audience=kwargs.pop("audience", self.url),
            now=now or SystemClock().now(),
            lifetime=dt.timedelta(seconds=lifetime),
            **kwargs,
        )

    def proof(self, url: str | None = None, **kwargs: Any) -> str:
        """Return a DPoP proof for POST to the token endpoint (or ``url``)."""
        return self.key.proof("POST", url or self.token_endpoint, **kwargs)

    def open_form(
        self,
        *,
        assertion: str | None = None,
        targets: list[str] | None = None,
        environment: str = "dev",
        purpose: str = "support-triage",
        **details: Any,
    ) -> dict[str, str]:
        """Return the form of an open-task request."""
        task = {
            "type": "agent_task",
            "intent": "triage new tickets",
            "purpose": purpose,
            "environment": environment,
            "targets": targets or ["tickets"],
            **details,
        }
        return {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": assertion or self.assertion(),
            "subject_token_type": JWT_TYPE,
            "requested_token_type": TXN_TYPE,
            "authorization_details": json.dumps([task]),
        }

    def post_token(
        self, form: dict[str, str] | bytes, *, proof: str | None = "auto", **kw: Any
    ) -> httpx.Response:
        """POST to the token endpoint with a fresh proof unless told otherwise."""
        headers = dict(kw.pop("headers", {}))
        if proof == "auto":
            headers["DPoP"] = self.proof()
        elif proof is not None:
            headers["DPoP"] = proof
        if isinstance(form, bytes):
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            return self.http.post(self.token_endpoint, content=form, headers=headers)
        return self.http.post(self.token_endpoint, data=form, headers=headers, **kw)

    def open_task(self, **kwargs: Any) -> dict[str, Any]:
        """Open a task and return the token response."""
        response = self.post_token(self.open_form(**kwargs))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def access_form(
        self, task_token: str, resource: str = "tickets", scope: str = "read"
    ) -> dict[str, str]:
        """Return the form of an access-token request."""
        return {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": task_token,
            "subject_token_type": TXN_TYPE,
            "resource": resource,
            "scope": scope,
        }
