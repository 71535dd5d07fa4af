"""
The broker's shared ground.

Collaborators, caches, audit helpers and the records the use cases return.

``BrokerCore`` holds what every use case needs (store, clock, policy, keys, caches);
``gatepass.broker.service.Broker`` adds the use cases themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import jwt

from gatepass.audit import AuditEntry
from gatepass.broker.caches import ExpiringCache
from gatepass.broker.catalog import TargetCatalog
from gatepass.broker.seal import Seal
from gatepass.clock import Clock
from gatepass.config import Settings
from gatepass.engines.wrappers import GuardedEngine
from gatepass.errors import (
    AccessDeniedError,
    DPoPProofError,
    GatepassError,
    InvalidGrantError,
    InvalidScopeError,
    InvalidTargetError,
)
from gatepass.ids import (
    AgentId,
)
from gatepass.models import (
    Agent,
    AgentStatus,
    Target,
    Task,
    TaskState,
)
from gatepass.observability import Metrics
from gatepass.policy import (
    Decision,
    PolicyEngine,
    PolicyHolder,
    PolicyRequest,
)
from gatepass.single_use import SingleUse
from gatepass.store import Database, audit_log
from gatepass.store import agents as agent_rows
from gatepass.store import tasks as task_rows
from gatepass.tokens import (
    ACCESS_TOKEN_TYP,
    TASK_TOKEN_TYP,
    DPoPProof,
    DPoPVerifier,
    JWTIssuer,
    JWTVerifier,
    KeyRing,
    ReplayCache,
    TaskTokenClaims,
)

__all__ = [
    "ACCESS_TOKEN_TYP",
    "OPEN_TASK_ACTION",
    "TASK_TOKEN_TYP",
    "Attempt",
    "BrokerCore",
    "Introspection",
    "LiveKeys",
    "OneAgent",
    "TokenResponse",
    "replay_error",
    "unverified_issuer",
]

OPEN_TASK_ACTION = "OpenTask"
_AGENT_CACHE_SECONDS = 5


class LiveKeys:
    """
    The key ring in force, swappable at rotation; a ``KeySource`` for verifiers.

    Args:
        ring: the initial ring.
    """

    def __init__(self, ring: KeyRing) -> None:
        """Hold the ring."""
        self.ring = ring

    def key_for(self, kid: str) -> tuple[object, str]:
        """Return the public key and pinned algorithm for ``kid``."""
        return self.ring.key_for(kid)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenResponse:
    """A successful token-endpoint answer (RFC 8693 §2.2.1)."""

    body: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Introspection:
    """An RFC 7662 answer."""

    body: dict[str, Any]


@dataclass(slots=True)
class Attempt:
    """What is known about a request so far, for its audit record."""

    kind: str
    actor: str = "unknown"
    subject: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class OneAgent:
    """
    An AgentDirectory that knows the single agent fetched for this request.

    Args:
        agent: the agent, or None when none was found.
    """

    def __init__(self, agent: Agent | None) -> None:
        """Hold the agent."""
        self._agent = agent

    def get_agent(self, agent_id: AgentId) -> Agent | None:
        """Return the agent if it has this id."""
        if self._agent is not None and self._agent.id == agent_id:
            return self._agent
        return None


def replay_error(replayed: SingleUse) -> GatepassError:
    """Return the refusal for a single-use value found already spent."""
    if replayed.namespace == "dpop":
        return DPoPProofError("dpop proof replayed")
    return InvalidGrantError("assertion replayed")


def unverified_issuer(token: str) -> str | None:
    """Read ``iss`` without verifying, only to find whose key to verify with."""
    # Only to find whose key to verify with; nothing read here is trusted.
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class BrokerCore:
    """
    What every broker use case needs.

    Args:
        settings: the configuration.
        database: the store.
        clock: the time source.
        catalog: the configured targets.
        policies: the live policy set.
        issuer: signs task and access tokens.
        key_source: the live key ring that ``verifier`` reads.
        verifier: verifies the broker's own tokens.
        dpop: verifies DPoP proofs.
        replay: single-use values (assertion ``jti``).
        metrics: Prometheus metrics.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        clock: Clock,
        catalog: TargetCatalog,
        policies: PolicyHolder,
        issuer: JWTIssuer,
        key_source: LiveKeys,
        verifier: JWTVerifier,
        dpop: DPoPVerifier,
        replay: ReplayCache,
        metrics: Metrics,
    ) -> None:
        """Keep the collaborators."""
        self.settings = settings
        self.database = database
        self.clock = clock
        self.catalog = catalog
        self.policies = policies
        self.issuer = issuer
        self.key_source = key_source
        self.verifier = verifier
        self.dpop = dpop
        self.replay = replay
        self.metrics = metrics
        self.seal = Seal(metrics)  # closed by bootstrap's audit anchoring check
        self.token_endpoint = settings.token_endpoint
        self._issuer_url = settings.server.issuer
        self._leeway = dt.timedelta(seconds=settings.tokens.clock_leeway_seconds)
        self._assertion_lifetime = dt.timedelta(
            seconds=settings.tokens.assertion_max_lifetime_seconds
        )
        # Engine mounts by target name, and the hook that drives revocations
        # through them (both set by bootstrap; empty for an http-only broker).
        self.engines: dict[str, GuardedEngine] = {}
        self.revocation_runner: Callable[[], Awaitable[int]] | None = None
        # Leases whose engine call is in flight in this process: their revocation
        # waits until the call returns, so a credential is never created after
        # its lease was reported revoked.
        self.issuing: set[str] = set()
        # Woken whenever this process revokes something, so revocation streams
        # push at once instead of waiting for their next poll of the store.
        self._revoked_event = anyio.Event()
        self._agents: ExpiringCache[str, Agent] = ExpiringCache(10_000)
        self._tasks: ExpiringCache[str, Task] = ExpiringCache(100_000)
        self._task_tokens: ExpiringCache[str, TaskTokenClaims] = ExpiringCache(100_000)

    # ------------------------------------------------------------------ helpers

    def notify_revocations(self) -> None:
        """Wake every revocation stream of this process."""
        event, self._revoked_event = self._revoked_event, anyio.Event()
        event.set()

    async def wait_for_revocations(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return when this process revokes something, or after ``timeout`` s."""
        with anyio.move_on_after(timeout):
            await self._revoked_event.wait()

    async def run_revocations(self) -> None:
        """Drive ``revoking`` leases through their engines now (if any engine)."""
        if self.revocation_runner is not None and self.engines:
            await self.revocation_runner()

    async def audit(self, entry: AuditEntry) -> None:
        """
        Append one audit record in its own transaction.

        Raises:
            StoreError: the record could not be written.
        """
        await self.database.write(lambda conn: audit_log.append_audit(conn, entry))
        self.metrics.audit_events.labels(kind=entry.kind).inc()

    def entry(self, attempt: Attempt, outcome: str) -> AuditEntry:
        """Return the audit entry of an attempt with this outcome."""
        return AuditEntry(
            at=self.clock.now(),
            kind=attempt.kind,
            outcome=outcome,
            actor=attempt.actor,
            subject=attempt.subject,
            data=attempt.data,
        )

    async def audit_failure(self, attempt: Attempt, error: GatepassError) -> None:
        """Audit a refused attempt with its error code and description."""
        attempt.data["error"] = error.code
        attempt.data["detail"] = error.detail
        outcome = "deny" if error.http_status < 500 else "error"
        await self.audit(self.entry(attempt, outcome))

    async def record_rejection(
        self, kind: str, error: GatepassError, *, actor: str = "unknown"
    ) -> None:
        """Audit a request refused before it reached a use case (size, type)."""
        await self.audit_failure(Attempt(kind=kind, actor=actor), error)

    async def agent(self, agent_id: str) -> Agent | None:
        """Return an agent, from a cache that is at most a few seconds old."""
        now = self.clock.now()
        cached = self._agents.get(agent_id, now)
        if cached is not None:
            return cached
        found = await self.database.read(lambda c: agent_rows.get_agent(c, agent_id))
        if found is not None:
            self._agents.put(
                agent_id, found, now + dt.timedelta(seconds=_AGENT_CACHE_SECONDS)
            )
        return found

    def forget_agent(self, agent_id: str) -> None:
        """Drop an agent from the cache after it changed."""
        self._agents.discard(agent_id)

    async def task(self, task_id: str) -> Task | None:
        """Return a task; its immutable fields may come from the cache."""
        now = self.clock.now()
        cached = self._tasks.get(task_id, now)
        if cached is not None:
            return cached
        found = await self.database.read(lambda c: task_rows.get_task(c, task_id))
        if found is not None and found.state is TaskState.OPEN:
            self._tasks.put(task_id, found, found.expires_at)
        return found

    def forget_task(self, task_id: str) -> None:
        """Drop a task from the cache after it ended."""
        self._tasks.discard(task_id)

    def decide(self, requests: list[PolicyRequest]) -> list[Decision]:
        """Ask the live policy set; any evaluation error is already a deny."""
        return self._decide_with(self.policies.current, requests)

    def _decide_with(
        self, policy_set: PolicyEngine, requests: list[PolicyRequest]
    ) -> list[Decision]:
        decisions = policy_set.decide(requests)
        for request, decision in zip(requests, decisions, strict=True):
            outcome = "allow" if decision.allowed else "deny"
            self.metrics.decisions.labels(action=request.action, outcome=outcome).inc()
        return decisions

    def authorize(
        self, requests: list[PolicyRequest], attempt: Attempt
    ) -> list[Decision]:
        """
        Decide, record the decision on the attempt, and raise unless all allow.

        The attempt's audit data gets the deciding policy ids, the digest of the
        policy set that decided (read once, so a reload in between cannot mix two
        sets) and any evaluation errors.

        Raises:
            AccessDeniedError: some decision denied (or failed, which is a deny).
        """
        policy_set = self.policies.current
        decisions = self._decide_with(policy_set, requests)
        policy_ids = sorted({pid for d in decisions for pid in d.policy_ids})
        errors = [error for d in decisions for error in d.errors]
        attempt.data["policy_ids"] = policy_ids
        attempt.data["policy_digest"] = policy_set.digest
        if errors:
            attempt.data["policy_errors"] = errors[:5]
        if not all(decision.allowed for decision in decisions):
            detail = "policy denied the request"
            if errors:
                detail = "policy evaluation failed; denied"
            raise AccessDeniedError(detail)
        return decisions

    # -------------------------------------------------------------- token flow

    async def verify_task_token(self, token: str) -> TaskTokenClaims:
        """
        Verify a task token, from a cache keyed by its hash until it expires.

        Raises:
            TokenError: the token is not a valid task token of this broker.
        """
        now = self.clock.now()
        key = hashlib.sha256(token.encode()).hexdigest()
        claims = self._task_tokens.get(key, now)
        if claims is None:
            claims = TaskTokenClaims.from_claims(
                self.verifier.verify(
                    token, typ=TASK_TOKEN_TYP, audience=self._issuer_url
                )
            )
            self._task_tokens.put(key, claims, claims.expires_at)
        return claims

    async def verify_task_request(
        self,
        access_token: str,
        dpop_proof: str | None,
        *,
        url: str,
        attempt: Attempt,
        subject_is_task: bool = False,
    ) -> tuple[TaskTokenClaims, DPoPProof]:
        """
        Verify a task token used as a DPoP-bound access token (RFC 9449 §7).

        The proof must be for ``POST url``, carry ``ath`` for the token and be
        signed by the task's key. The attempt's actor is set as soon as it is known,
        so a refusal is audited against the agent (and, with ``subject_is_task``,
        against the token's task).

        Returns:
            The task token's claims and the verified proof (whose single-use id the
            caller records with the request's effect).

        Raises:
            TokenError: the task token is invalid.
            DPoPProofError: the proof is missing, replayed or not by the task's key.
        """
        claims = await self.verify_task_token(access_token)
        attempt.actor = claims.agent_id
        if subject_is_task:
            attempt.subject = claims.task_id
        proof = self.dpop.verify(
            dpop_proof,
            method="POST",
            url=url,
            access_token=access_token,
            expected_jkt=claims.jkt,
        )
        return claims, proof

    async def active_agent(self, agent_id: str) -> Agent:
        """
        Return the agent, refusing a disabled or removed one.

        Raises:
            AccessDeniedError: the agent is disabled or unknown.
        """
        agent = await self.agent(agent_id)
        if agent is None or agent.status is not AgentStatus.ACTIVE:
            raise AccessDeniedError("agent is disabled")
        return agent

    def require_target_in_task(
        self, target: Target, task: Task, actions: tuple[str, ...]
    ) -> None:
        """
        Refuse a target the task did not name, or an action the target lacks.

        Raises:
            InvalidTargetError: the target is outside the task.
            InvalidScopeError: an action is not offered by the target.
        """
        if target.name not in task.targets:
            raise InvalidTargetError("target is outside the task")
        if any(action not in target.actions for action in actions):
            raise InvalidScopeError("scope names an action the target does not offer")
