"""
Accept a delegation: the child agent turns a delegation token into its own task.

RFC 8693 token exchange with the delegation token as ``subject_token`` and the
child's own workload identity as ``actor_token`` (an assertion, or any federated
token the broker accepts), with a DPoP proof by a key the child generated for its
task. The token must name this child (``may_act.sub``), be unused (it is spent in
the task's transaction) and its parent task still open: the child task is inserted
under a share lock on the parent row, so a concurrent close of the parent waits,
then closes the child with the rest of the tree. Policy decides ``OpenTask`` for
the child on every target, with ``context.delegation`` set. The child's task token
carries the verified chain in ``act``, its ``parent`` and ``lineage``.
"""

from __future__ import annotations

import datetime as dt

from gatepass.audit import Outcome
from gatepass.broker.context import BrokerContext
from gatepass.broker.delegation_grant import chain_of
from gatepass.broker.facts import policy_requests, task_facts
from gatepass.broker.identities import WorkloadIdentities, registration_attempt
from gatepass.broker.requests import AcceptDelegationRequest, TaskDetails, TokenResponse
from gatepass.broker.single_use import confirmation, replay_error
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.clock import to_epoch
from gatepass.errors import InvalidClientError, InvalidGrantError, TokenError
from gatepass.ids import TaskId, new_task_id, new_token_id
from gatepass.models import Agent, Task, TaskState
from gatepass.policy import OPEN_TASK, DelegationFacts
from gatepass.single_use import SingleUse
from gatepass.store import Connection
from gatepass.store import agents as agent_rows
from gatepass.store import replay as replay_rows
from gatepass.store import tasks as task_rows
from gatepass.tokens import (
    DELEGATION_TOKEN_TYP,
    TASK_TOKEN_TYP,
    TXN_TOKEN_TYPE,
    DelegationClaims,
    actor_chain,
)

__all__ = ["AcceptDelegation"]

_PARENT_ENDED = "the delegating task has ended"


class AcceptDelegation:
    """
    The accept-delegation exchange.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context
        self._identities = WorkloadIdentities(context)

    async def __call__(
        self,
        request: AcceptDelegationRequest,
        dpop_proof: str | None,
        attempt: Attempt,
        *,
        certificate: str | None = None,
    ) -> TokenResponse:
        """
        Open the child's task from a delegation token.

        Raises:
            GatepassError: refused (``invalid_grant`` for a bad, used, foreign or
                orphaned grant...); the caller audits it.
        """
        context = self._context
        context.seal.require_unsealed()
        grant = self._grant(request.delegation_token)
        attempt.data.update(parent_task=grant.parent_task, grant_id=grant.jti)
        proof = context.dpop.verify(
            dpop_proof, method="POST", url=context.token_endpoint
        )
        proven = await self._identities.prove_token(
            request.actor_token, request.actor_token_type, attempt
        )
        child = proven.agent
        if child.id != grant.child_agent:
            raise InvalidGrantError("the delegation token is for another agent")
        if request.client_id is not None and request.client_id != child.id:
            raise InvalidClientError("client_id does not match the actor")
        now = context.clock.now()
        parent = await self._open_parent(grant.parent_task, now)
        chain = chain_of(parent)
        if child.id in chain:  # pragma: no cover - refused when granted
            raise InvalidGrantError("the child agent is already in this chain")
        details = self._details(grant, parent)
        targets = context.authority.task_targets(details)
        position = DelegationFacts(
            depth=parent.depth + 1,
            parent_agent=parent.agent_id,
            root_agent=chain[-1],
            root_purpose=parent.root_purpose or parent.purpose,
            root_tenant=parent.tenant,
        )
        facts = task_facts(
            purpose=details.purpose,
            intent=details.intent,
            environment=parent.environment,
            tenant=parent.tenant,
            age=dt.timedelta(0),
        )
        verdict = context.authority.authorize(
            policy_requests(
                child,
                facts,
                [(OPEN_TASK, target) for target in targets],
                now,
                labels=proven.labels,
                delegation=position,
            ),
            attempt,
        )
        ttl = min(
            context.authority.task_ttl(details, verdict.profile),
            parent.expires_at - now,
        )
        ttl = dt.timedelta(seconds=int(ttl.total_seconds()))
        if ttl <= dt.timedelta(0):
            raise InvalidGrantError(_PARENT_ENDED)
        task = Task(
            id=new_task_id(),
            agent_id=child.id,
            tenant=parent.tenant,
            environment=parent.environment,
            purpose=details.purpose,
            intent=details.intent,
            targets=tuple(target.name for target in targets),
            jkt=proof.jkt,
            token_jti=new_token_id(),
            created_at=now,
            expires_at=now + ttl,
            agent_labels=proven.labels,
            parent_id=parent.id,
            lineage_id=parent.lineage_id or parent.id,
            depth=parent.depth + 1,
            actors=(child.id, *chain),
            x5t=certificate,
            actions=details.actions,
            root_purpose=position.root_purpose,
        )
        attempt.subject = task.id
        attempt.data.update(
            parent_agent=parent.agent_id,
            lineage_id=task.lineage_id,
            depth=task.depth,
            actors=list(task.actors),
            expires_at=task.expires_at.isoformat(),
        )
        token = self._task_token(task, proof.jkt, certificate)
        spent = [
            proof.single_use,
            proven.single_use,
            SingleUse("delegation", grant.jti, grant.expires_at),
        ]
        await self._commit(
            task,
            spent=spent,
            registration=registration_attempt(proven),
            child=child,
            now=now,
            attempt=attempt,
        )
        context.directory.remember_task(task)
        return TokenResponse(
            body={
                "access_token": token,
                "issued_token_type": TXN_TOKEN_TYPE,
                "token_type": "DPoP",
                "expires_in": int(ttl.total_seconds()),
                "task_id": task.id,
                "parent_task_id": parent.id,
                "authorization_details": details.to_json(task.id),
            }
        )

    async def _open_parent(self, parent_id: str, now: dt.datetime) -> Task:
        parent = await self._context.directory.task(parent_id)
        if (
            parent is None
            or parent.state is not TaskState.OPEN
            or parent.expires_at <= now
        ):
            raise InvalidGrantError(_PARENT_ENDED)
        return parent

    async def _commit(
        self,
        task: Task,
        *,
        spent: list[SingleUse | None],
        registration: Attempt | None,
        child: Agent,
        now: dt.datetime,
        attempt: Attempt,
    ) -> None:
        """Spend the single-use values and insert the task under its parent's lock."""
        context = self._context
        parent_id = task.parent_id or ""

        def record(conn: Connection, audit: AuditRecorder) -> SingleUse | bool:
            replayed = replay_rows.claim_single_use(conn, spent, now)
            if replayed is not None:
                return replayed
            if task_rows.hold_open_task(conn, parent_id, now) is None:
                return False
            if registration is not None:
                agent_rows.insert_agent(conn, child)
                audit.record(conn, registration, Outcome.OK)
            task_rows.insert_task(conn, task)
            audit.record(conn, attempt, Outcome.ALLOW)
            return True

        recorded = await context.trail.write(record)
        if isinstance(recorded, SingleUse):
            raise replay_error(recorded)
        if not recorded:
            context.directory.forget_task(parent_id)
            raise InvalidGrantError(_PARENT_ENDED)

    def _grant(self, token: str) -> DelegationClaims:
        context = self._context
        try:
            return DelegationClaims.from_claims(
                context.verifier.verify(
                    token, typ=DELEGATION_TOKEN_TYP, audience=context.issuer_url
                )
            )
        except TokenError as error:
            raise InvalidGrantError(
                f"delegation token rejected: {error.detail}"
            ) from None

    @staticmethod
    def _details(grant: DelegationClaims, parent: Task) -> TaskDetails:
        """The sub-task as granted (the broker signed it; still typed strictly)."""
        raw = grant.details
        targets = raw.get("targets")
        actions = raw.get("actions")
        ttl = raw.get("max_ttl_seconds")
        if (
            not isinstance(targets, list)
            or not all(isinstance(t, str) for t in targets)
            or not isinstance(actions, list)
            or not all(isinstance(a, str) for a in actions)
            or type(ttl) is not int
        ):
            raise InvalidGrantError("delegation token has a malformed sub-task")
        purpose, intent = raw.get("purpose"), raw.get("intent", "")
        if not isinstance(purpose, str) or not isinstance(intent, str):
            raise InvalidGrantError("delegation token has a malformed sub-task")
        return TaskDetails(
            intent=intent,
            purpose=purpose,
            environment=parent.environment,
            tenant=parent.tenant,
            targets=tuple(targets),
            max_ttl=dt.timedelta(seconds=ttl),
            actions=tuple(actions),
        )

    def _task_token(self, task: Task, jkt: str, certificate: str | None) -> str:
        context = self._context
        return context.issuer.sign(
            {
                "sub": task.agent_id,
                "aud": context.issuer_url,
                "client_id": task.agent_id,
                "iat": to_epoch(task.created_at),
                "exp": to_epoch(task.expires_at),
                "jti": task.token_jti,
                "txn": task.id,
                "tenant": task.tenant,
                "env": task.environment,
                "purpose": task.purpose,
                "cnf": confirmation(jkt, certificate),
                "act": actor_chain(task.actors),
                "parent": task.parent_id,
                "lineage": task.lineage_id or TaskId(task.id),
            },
            typ=TASK_TOKEN_TYP,
        )
