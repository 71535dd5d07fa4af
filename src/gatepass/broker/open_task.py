"""
Open a task: a workload identity and a task description become a task token.

The agent proves who it is (an RFC 7523 assertion signed by its registered key, or
a federated workload token: ``broker/identities.py``),
says what it is about to do (RFC 9396 ``agent_task`` details), and proves it holds
the DPoP key it generated for this task (RFC 9449). Policy decides ``OpenTask`` on
every target the task names; the task row, the spent single-use values and the
audit record commit together before the task token leaves.
"""

from __future__ import annotations

import datetime as dt

from gatepass.audit import Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.facts import policy_requests, task_facts
from gatepass.broker.identities import WorkloadIdentities, registration_attempt
from gatepass.broker.requests import OpenTaskRequest, TokenResponse
from gatepass.broker.single_use import confirmation, replay_error
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.clock import to_epoch
from gatepass.errors import InvalidClientError
from gatepass.ids import new_task_id, new_token_id
from gatepass.models import Task
from gatepass.policy import OPEN_TASK
from gatepass.single_use import SingleUse
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import replay as replay_rows
from gatepass.store import tasks as task_rows
from gatepass.tokens import TASK_TOKEN_TYP, TXN_TOKEN_TYPE

__all__ = ["OpenTask"]


class OpenTask:
    """
    The open-task exchange.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context
        self._identities = WorkloadIdentities(context)

    async def __call__(
        self,
        request: OpenTaskRequest,
        dpop_proof: str | None,
        attempt: Attempt,
        *,
        certificate: str | None = None,
    ) -> TokenResponse:
        """
        Open a task and return its task token.

        Args:
            request: the parsed open-task exchange.
            dpop_proof: the request's one ``DPoP`` header, or None.
            attempt: the request's audit attempt (filled in as facts are learnt).
            certificate: the thumbprint of the connection's client certificate,
                when the broker terminates mutual TLS; the task's tokens are then
                bound to it as well (RFC 8705).

        Raises:
            GatepassError: the request is refused; the caller audits it.
        """
        context = self._context
        context.seal.require_unsealed()
        details = request.details
        attempt.data.update(
            purpose=details.purpose,
            environment=details.environment,
            targets=list(details.targets)[:32],
        )
        proof = context.dpop.verify(
            dpop_proof, method="POST", url=context.token_endpoint
        )
        proven = await self._identities.prove(request, attempt)
        agent = proven.agent
        if request.client_id is not None and request.client_id != agent.id:
            raise InvalidClientError("client_id does not match the subject")
        targets = context.authority.task_targets(details)
        now = context.clock.now()
        tenant = details.tenant or agent.tenant
        facts = task_facts(
            purpose=details.purpose,
            intent=details.intent,
            environment=details.environment,
            tenant=tenant,
            age=dt.timedelta(0),
        )
        checks = [(OPEN_TASK, target) for target in targets]
        # An approval is asked where a credential is issued (the action is known
        # there); opening a task grants nothing by itself, so NeedsApproval on
        # OpenTask opens the task and only its profile's TTL applies.
        verdict = context.authority.authorize(
            policy_requests(agent, facts, checks, now, labels=proven.labels), attempt
        )
        ttl = context.authority.task_ttl(details, verdict.profile)
        task = Task(
            id=new_task_id(),
            agent_id=agent.id,
            tenant=tenant,
            environment=details.environment,
            purpose=details.purpose,
            intent=details.intent,
            targets=tuple(target.name for target in targets),
            jkt=proof.jkt,
            token_jti=new_token_id(),
            created_at=now,
            expires_at=now + ttl,
            agent_labels=proven.labels,
            x5t=certificate,
        )
        attempt.subject = task.id
        token = context.issuer.sign(
            {
                "sub": agent.id,
                "aud": context.issuer_url,
                "client_id": agent.id,
                "iat": to_epoch(now),
                "exp": to_epoch(task.expires_at),
                "jti": task.token_jti,
                "txn": task.id,
                "tenant": task.tenant,
                "env": task.environment,
                "purpose": task.purpose,
                "cnf": confirmation(proof.jkt, certificate),
            },
            typ=TASK_TOKEN_TYP,
        )
        attempt.data["expires_at"] = task.expires_at.isoformat()
        spent = [proof.single_use, proven.single_use]
        registration = registration_attempt(proven)

        def record(conn: Connection, audit: AuditRecorder) -> SingleUse | None:
            # The proof and the assertion are spent exactly when the task commits,
            # so neither can be accepted again, even after a restart.
            replayed = replay_rows.claim_single_use(conn, spent, now)
            if replayed is None:
                if registration is not None:
                    # A concurrent first use registered it: ConflictError rolls
                    # this transaction back; the agent retries and finds it.
                    agent_rows.insert_agent(conn, agent)
                    audit.record(conn, registration, Outcome.OK)
                task_rows.insert_task(conn, task)
                audit.record(conn, attempt, Outcome.ALLOW)
            return replayed

        replayed = await context.trail.write(record)
        if replayed is not None:
            raise replay_error(replayed)
        context.directory.remember_task(task)
        return TokenResponse(
            body={
                "access_token": token,
                "issued_token_type": TXN_TOKEN_TYPE,
                "token_type": "DPoP",
                "expires_in": int(ttl.total_seconds()),
                "task_id": task.id,
                "authorization_details": details.to_json(task.id),
            }
        )
