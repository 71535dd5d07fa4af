"""
Who opens a task: a registered agent's assertion, or a federated workload's token.

The unverified ``iss`` only decides *which* verifier runs: an agent id selects the
RFC 7523 assertion path (the agent's registered key); anything else is a federated
token, whose issuer must be configured (``[[identity.issuers]]``) before anything is
fetched. A federated identity is mapped by the issuer's claim rules to an agent
name: a registered federated agent of that name must have been registered by the
same issuer (and never has a key of its own); an unknown name is registered on
first use when the issuer allows it, in the same transaction as the task it opens.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gatepass.broker.context import BrokerContext
from gatepass.broker.directory import OneAgent
from gatepass.broker.requests import OpenTaskRequest
from gatepass.broker.trail import Attempt
from gatepass.errors import InvalidGrantError, InvalidRequestError
from gatepass.identity import (
    AgentAssertionVerifier,
    FederatedIdentity,
    check_federated_agent,
    federated_agent_fields,
)
from gatepass.ids import is_id, new_agent_id
from gatepass.models import Agent
from gatepass.single_use import SingleUse
from gatepass.tokens import JWT_TOKEN_TYPE, unverified_issuer

__all__ = ["ProvenAgent", "WorkloadIdentities", "registration_attempt"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenAgent:
    """
    The agent a subject token proved.

    Attributes:
        agent: the agent (not yet stored when :attr:`register` is true).
        single_use: the presented credential's id, spent with the task.
        labels: the labels this proof carries for the task (a federated token's);
            None for a registered agent (its record's labels apply).
        register: whether the agent must be registered with the task (first use).
        method: how it proved itself (``jwt-assertion``, ``oidc``,
            ``spiffe-jwt-svid``).
    """

    agent: Agent
    single_use: SingleUse | None
    labels: dict[str, str] | None
    register: bool
    method: str


def registration_attempt(proven: ProvenAgent) -> Attempt | None:
    """The audit attempt of registering a federated agent on first use, if due."""
    if not proven.register:
        return None
    agent = proven.agent
    return Attempt(
        kind="agent.add",
        actor="system:federation",
        subject=agent.id,
        data={
            "name": agent.name,
            "tenant": agent.tenant,
            "issuer": agent.issuer,
            "method": proven.method,
        },
    )


class WorkloadIdentities:
    """
    Verify the workload identity that opens a task.

    Args:
        context: the broker's collaborators (its ``federation`` may be None).
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context and the assertion limits."""
        self._context = context
        tokens = context.settings.tokens
        self._assertion_lifetime = dt.timedelta(
            seconds=tokens.assertion_max_lifetime_seconds
        )
        self._leeway = dt.timedelta(seconds=tokens.clock_leeway_seconds)

    async def prove(self, request: OpenTaskRequest, attempt: Attempt) -> ProvenAgent:
        """
        Verify the request's subject token and return the agent it proves.

        Raises:
            InvalidGrantError: the token is invalid, replayed, of an unknown issuer
                or agent, or names an agent another issuer registered.
            InvalidRequestError: an agent assertion sent as another token type.
            AccessDeniedError: the agent is disabled.
        """
        return await self.prove_token(
            request.subject_token, request.subject_token_type, attempt
        )

    async def prove_token(
        self, token: str, token_type: str, attempt: Attempt
    ) -> ProvenAgent:
        """
        Verify a workload identity token (a subject or an actor token).

        Raises:
            InvalidGrantError: as :meth:`prove`.
            InvalidRequestError: as :meth:`prove`.
            AccessDeniedError: as :meth:`prove`.
        """
        issuer = unverified_issuer(token)
        federation = self._context.federation
        if federation is None or (issuer is not None and is_id(issuer, "agt")):
            # Without federation every subject token is an agent assertion, and the
            # assertion verifier says precisely what is wrong with it.
            if token_type != JWT_TOKEN_TYPE:
                raise InvalidRequestError("an agent assertion is a token of type jwt")
            return await self._assertion(token, issuer, attempt)
        identity = await federation.verify(token, token_type)
        attempt.data.update(
            identity_issuer=identity.issuer_name,
            identity_subject=identity.subject[:256],
            identity_method=identity.method,
        )
        return await self._federated(identity, attempt)

    async def _assertion(
        self, assertion: str, agent_id: str | None, attempt: Attempt
    ) -> ProvenAgent:
        context = self._context
        agent = (
            await context.directory.agent(agent_id)
            if agent_id is not None and is_id(agent_id, "agt")
            else None
        )
        verifier = AgentAssertionVerifier(
            directory=OneAgent(agent),
            audiences=frozenset({context.issuer_url, context.token_endpoint}),
            clock=context.clock,
            replay=context.replay,
            max_lifetime=self._assertion_lifetime,
            leeway=self._leeway,
        )
        identity = verifier.verify(assertion)
        attempt.actor = identity.agent.id
        return ProvenAgent(
            agent=identity.agent,
            single_use=identity.single_use,
            labels=None,
            register=False,
            method=identity.method,
        )

    async def _federated(
        self, identity: FederatedIdentity, attempt: Attempt
    ) -> ProvenAgent:
        context = self._context
        found = await context.directory.agent_by_name(identity.name)
        if found is not None:
            check_federated_agent(found, found.issuer, identity)
            attempt.actor = found.id
            return ProvenAgent(
                agent=found,
                single_use=identity.single_use,
                labels=dict(identity.labels),
                register=False,
                method=identity.method,
            )
        if not identity.register_on_first_use:
            raise InvalidGrantError("unknown agent; its issuer registers none")
        fields = federated_agent_fields(identity)
        agent = fields.to_agent(new_agent_id(), context.clock.now())
        agent = Agent(
            id=agent.id,
            name=agent.name,
            tenant=agent.tenant,
            labels=agent.labels,
            public_jwk=agent.public_jwk,
            algorithm=agent.algorithm,
            created_at=agent.created_at,
            issuer=fields.issuer,
        )
        attempt.actor = agent.id
        return ProvenAgent(
            agent=agent,
            single_use=identity.single_use,
            labels=dict(identity.labels),
            register=True,
            method=identity.method,
        )
