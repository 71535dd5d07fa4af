"""
Context signals: gatepass's own (risk, freeze, incident) and pushed SETs.

Each signal is stored (``gp_context_signals``) with its audit record in one
transaction, put on the in-memory :class:`~gatepass.broker.signal_board.SignalBoard`
every decision reads, and then re-evaluates the live tasks and leases it touches:
``PolicyAdmin.reevaluate`` re-decides each task's ``OpenTask`` and each lease's
actions with the new facts, and closes or revokes what no longer holds through the
usual closing path, so engine credentials are revoked by their engines at once.

A pushed SET (``POST /ssf/push``) is verified by ``ssf/receive.py``; its ``jti`` is
spent in the broker's single-use store in the transaction that records it, so a
replay is refused across restarts and replicas. Its rules (``ssf/rules.py``) are
applied by :mod:`gatepass.broker.signal_rules`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from gatepass.audit import Outcome
from gatepass.broker.callers import Caller
from gatepass.broker.closing import Closing
from gatepass.broker.context import BrokerContext
from gatepass.broker.policy_admin import PolicyAdmin
from gatepass.broker.revocations import RevocationWorker
from gatepass.broker.signal_board import SignalBoard
from gatepass.broker.signal_rules import SignalEffects
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    GatepassError,
    InvalidRequestError,
    NotFoundError,
    SecurityEventError,
)
from gatepass.ids import is_id
from gatepass.models import Agent, Task
from gatepass.single_use import SingleUse
from gatepass.ssf.receive import SET_MEDIA_TYPE, SETVerifier, jti_hash
from gatepass.store import Connection, replay
from gatepass.store import agents as agent_rows
from gatepass.store import context_signals as signal_rows
from gatepass.store.context_signals import StoredSignal
from gatepass.tokens import unverified_issuer

__all__ = ["ContextSignals", "SignalKind", "SignalOutcome", "SignalRequest"]

SignalKind = Literal["risk", "freeze", "incident"]
_LEVELS = frozenset({"low", "medium", "high"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalRequest:
    """
    One of gatepass's own signals (``POST /v1/signals``, ``gatepass signals send``).

    Attributes:
        kind: ``risk`` (of an agent), ``freeze`` (an environment) or ``incident``
            (a tenant).
        scope: the agent's id or name, the environment, or the tenant.
        level: the risk level (``low`` clears a risk).
        until: when it ends by itself; None means until cleared.
        clear: end the signal now.
        reason: why, for the audit record.
    """

    kind: SignalKind
    scope: str
    level: str = "high"
    until: dt.datetime | None = None
    clear: bool = False
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class SignalOutcome:
    """
    What a signal did.

    Attributes:
        signals: the signals it set or cleared.
        closed_tasks: the tasks it closed (directly or on re-evaluation).
        revoked_leases: the leases re-evaluation revoked.
    """

    signals: list[dict[str, Any]] = field(default_factory=list)
    closed_tasks: list[str] = field(default_factory=list)
    revoked_leases: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the outcome as the API answers it."""
        return {
            "signals": self.signals,
            "closed_tasks": self.closed_tasks,
            "revoked_leases": self.revoked_leases,
        }


def _time(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def signal_json(signal: StoredSignal) -> dict[str, Any]:
    """Return a stored signal as the API shows it."""
    return {
        "kind": signal.kind,
        "scope": signal.scope,
        "value": signal.value,
        "reason": signal.reason,
        "source": signal.source,
        "set_at": _time(signal.set_at),
        "until": _time(signal.until),
    }


def touches(kind: str, scope: str) -> Callable[[Task], bool]:
    """Return which tasks a signal of ``kind`` on ``scope`` can change."""
    if kind == "risk":
        return lambda task: task.agent_id == scope
    if kind == "freeze":
        return lambda task: task.environment == scope
    return lambda task: task.tenant == scope


class ContextSignals:
    """
    Set, clear, receive and list context signals.

    Args:
        context: the broker's collaborators.
        closing: closes tasks a SET revokes.
        policy: re-evaluates what a signal touches.
        revocations: drives engine revocations at once.
        verifier: verifies pushed SETs.
    """

    def __init__(
        self,
        context: BrokerContext,
        *,
        closing: Closing,
        policy: PolicyAdmin,
        revocations: RevocationWorker,
        verifier: SETVerifier,
    ) -> None:
        """Keep the collaborators."""
        self._context = context
        self._closing = closing
        self._policy = policy
        self._revocations = revocations
        self._verifier = verifier
        self._effects = SignalEffects(context, closing)

    @property
    def board(self) -> SignalBoard:
        """The signals in force, as decisions read them."""
        return self._context.signal_board

    async def refresh(self) -> None:
        """Reload the board from the store (signals another replica set)."""
        now = self._context.clock.now()
        stored = await self._context.database.read(
            lambda conn: signal_rows.list_signals(conn, now)
        )
        self.board.load((s.kind, s.scope, s.value, s.until) for s in stored)

    async def refresh_keys(self) -> None:
        """Reload the transmitters' keys that are due."""
        await self._verifier.refresh_keys()

    async def in_force(self) -> list[dict[str, Any]]:
        """Return the signals in force."""
        now = self._context.clock.now()
        stored = await self._context.database.read(
            lambda conn: signal_rows.list_signals(conn, now)
        )
        return [signal_json(signal) for signal in stored]

    async def reject(self, caller: Caller, error: GatepassError) -> None:
        """
        Audit a signal refused before it parsed (a malformed body).

        Raises:
            StoreError: the refusal could not be audited.
        """
        await self._context.trail.refuse(
            Attempt(kind="signal.set", actor=caller.actor), error
        )

    async def send(self, caller: Caller, request: SignalRequest) -> SignalOutcome:
        """
        Set or clear one of gatepass's own signals, then re-evaluate what it touches.

        Raises:
            InvalidRequestError: a bad level, an ``until`` in the past.
            NotFoundError: no such agent (a risk signal).
        """
        context = self._context
        now = context.clock.now()
        attempt = Attempt(kind="signal.set", actor=caller.actor)
        attempt.data.update(kind=request.kind, reason=request.reason[:200])
        try:
            scope = await self._scope(request)
            attempt.subject = scope
            if request.until is not None and request.until <= now:
                raise InvalidRequestError("until must be in the future")
        except GatepassError as error:
            await context.trail.refuse(attempt, error)
            raise
        clear = request.clear or (request.kind == "risk" and request.level == "low")
        stored = StoredSignal(
            kind=request.kind,
            scope=scope,
            value=request.level if request.kind == "risk" else "on",
            reason=request.reason[:200] or f"{request.kind} set by {caller.actor}",
            source=caller.actor,
            set_at=now,
            until=request.until,
        )
        if clear:
            attempt.kind = "signal.clear"
        else:
            attempt.data.update(value=stored.value, until=_time(request.until))

        def change(conn: Connection, audit: AuditRecorder) -> bool:
            if clear:
                changed = signal_rows.clear_signal(conn, request.kind, scope)
            else:
                signal_rows.put_signal(conn, stored)
                changed = True
            attempt.data["changed"] = changed
            audit.record(conn, attempt, Outcome.OK)
            return changed

        await context.trail.write(change)
        outcome = SignalOutcome(signals=[signal_json(stored)])
        if clear:
            outcome.signals = []
        await self.refresh()
        if not clear:
            reason = f"context signal {request.kind} {scope}"
            await self._reevaluate(
                outcome, caller.actor, [(request.kind, scope)], reason
            )
        return outcome

    async def _scope(self, request: SignalRequest) -> str:
        if request.kind == "risk":
            if request.level not in _LEVELS:
                raise InvalidRequestError("level must be low, medium or high")
            agent = await self._find_agent(request.scope)
            if agent is None:
                raise NotFoundError(f"no agent {request.scope[:64]!r}")
            return agent.id
        if request.kind not in {"freeze", "incident"}:
            raise InvalidRequestError("kind must be risk, freeze or incident")
        if not request.scope or len(request.scope) > 64:
            raise InvalidRequestError("scope must be 1 to 64 characters")
        return request.scope

    async def _find_agent(self, reference: str) -> Agent | None:
        if is_id(reference, "agt"):
            return await self._context.directory.agent(reference)
        return await self._context.database.read(
            lambda conn: agent_rows.get_agent_by_name(conn, reference)
        )

    async def _reevaluate(
        self,
        outcome: SignalOutcome,
        actor: str,
        scopes: list[tuple[str, str]],
        reason: str,
    ) -> None:
        for kind, scope in scopes:
            revoked, closed = await self._policy.reevaluate(
                actor, touches=touches(kind, scope), because=reason
            )
            outcome.revoked_leases.extend(revoked)
            outcome.closed_tasks.extend(closed)
        if outcome.revoked_leases or outcome.closed_tasks:
            # Engine credentials are removed now, not at the next background pass.
            await self._revocations.run()

    async def receive(
        self, body: str, *, authorization: str | None, content_type: str | None
    ) -> SignalOutcome:
        """
        Accept one pushed SET (RFC 8935), apply its rules, re-evaluate.

        Raises:
            SecurityEventError: the SET is refused (audited as ``signal.refused``).
        """
        context = self._context
        attempt = Attempt(kind="signal.received", actor="ssf")
        claimed = unverified_issuer(body.strip()) if body else None
        if claimed is not None:
            # Unverified until the signature checks: a detail, never the actor.
            attempt.data["claimed_issuer"] = claimed[:200]
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != SET_MEDIA_TYPE:
            wrong = SecurityEventError(
                "invalid_request", "content type must be application/secevent+jwt"
            )
            await self._refused(attempt, wrong)
            raise wrong
        try:
            verified = await self._verifier.verify(body, authorization=authorization)
        except SecurityEventError as error:
            await self._refused(attempt, error)
            raise
        attempt.actor = f"ssf:{verified.issuer[:200]}"
        attempt.data.pop("claimed_issuer", None)
        attempt.subject = jti_hash(verified.issuer, verified.jti)
        attempt.data.update(
            issuer=verified.issuer,
            event=verified.event_type,
            subject_format=verified.subject.format,
        )
        now = context.clock.now()
        actions = self._effects.plan(verified, now)
        spent = SingleUse(
            "set", f"{verified.issuer}|{verified.jti}", verified.expires_at
        )
        # Spent only in the store, with the receipt: a SET whose receipt failed
        # to commit (a 5xx) is accepted when the transmitter retries it.
        replayed = SecurityEventError("invalid_request", "jti was already received")

        def change(
            conn: Connection, audit: AuditRecorder
        ) -> list[tuple[str, str]] | None:
            if replay.claim_single_use(conn, [spent], now) is not None:
                return None
            scopes = self._effects.store(conn, actions, verified, now)
            attempt.data["rules"] = sorted({action.rule for action in actions})
            attempt.data["effects"] = [
                {"effect": a.effect, "match": a.match} for a in actions
            ]
            attempt.data["signals"] = [f"{kind}:{scope}" for kind, scope in scopes]
            audit.record(conn, attempt, Outcome.OK)
            return scopes

        stored = await context.trail.write(change)
        if stored is None:
            await self._refused(attempt, replayed)
            raise replayed
        scopes = stored
        outcome = SignalOutcome(
            signals=[{"kind": kind, "scope": scope} for kind, scope in scopes]
        )
        if scopes:
            await self.refresh()
        actor = attempt.actor
        reason = f"context signal {verified.event_type.rsplit('/', 1)[-1]}"
        outcome.closed_tasks.extend(
            await self._effects.revoke_tasks(actions, actor=actor, reason=reason)
        )
        await self._reevaluate(outcome, actor, scopes, reason)
        return outcome

    async def _refused(self, attempt: Attempt, error: SecurityEventError) -> None:
        refusal = Attempt(
            kind="signal.refused",
            actor=attempt.actor,
            subject=attempt.subject,
            data={**attempt.data, "err": error.err, "reason": error.detail},
        )
        await self._context.trail.refuse(refusal, error)
