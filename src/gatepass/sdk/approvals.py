"""
Waiting for a step-up approval: one polling loop for every kind of credential.

A request that policy says needs a human's approval is answered
``authorization_pending`` with an ``approval_id``, an ``interval`` and an
``expires_in`` (the RFC 8628 §3.5 / CIBA polling vocabulary). Asked to ``wait``,
the SDK repeats the *same* request with that ``approval_id`` (each time with a fresh
DPoP proof, which the session makes) every ``interval`` seconds until

* the broker hands over the credential: it is returned;
* an approver denied it (``access_denied``):
  :class:`~gatepass.errors.ApprovalDeniedError`;
* it expired unapproved or unredeemed (``expired_token``):
  :class:`~gatepass.errors.ApprovalExpiredError`;
* the caller's own ``wait`` ran out: :class:`~gatepass.errors.ApprovalExpiredError`
  with ``still_pending=True`` and the approval id. Repeating the same call resumes:
  the broker finds the open approval of the same request by its hash.

Any other answer (``invalid_grant`` for a cancelled approval or a closed task,
``rate_limited`` for too many pending approvals) is raised as it is. The access-token
path and the engine-credential path hand their own request to :func:`obtain`, so the
loop exists once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypedDict, TypeVar

from gatepass.clock import Clock
from gatepass.errors import (
    AccessDeniedError,
    ApprovalDeniedError,
    ApprovalExpiredError,
    ApprovalPendingError,
    GatepassError,
    InvalidRequestError,
    SlowDownError,
)

__all__ = [
    "ApprovalParameters",
    "ApprovalProgress",
    "WaitOptions",
    "Waiting",
    "obtain",
]

T = TypeVar("T")

# RFC 8628 §3.5: "slow_down ... the interval MUST be increased by 5 seconds for this
# and all subsequent requests".
SLOW_DOWN_STEP = 5
# Never poll faster than this, whatever the broker says (an interval of 0 would spin).
_MIN_INTERVAL = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalProgress:
    """
    Where a wait for approval stands, given to ``on_progress`` after every answer.

    Attributes:
        approval_id: the approval being waited for (``apr_…``); show it to the
            humans who approve.
        elapsed: time since the first request of this wait.
        expires_in: how long the approval may still wait, as the broker last said.
        attempt: how many requests this wait has made (1 is the first ask).
    """

    approval_id: str
    elapsed: dt.timedelta
    expires_in: dt.timedelta
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalParameters:
    """
    What one request of the loop adds to the caller's own request.

    Attributes:
        approval_id: the approval the repeated request names; None the first time.
        justification: the agent's words for the approvers; sent the first time only.
        requested_ttl: the lifetime asked for, in whole seconds; part of the request
            the approval is bound to, so it is sent every time.
    """

    approval_id: str | None = None
    justification: str | None = None
    requested_ttl: int | None = None

    def form(self) -> dict[str, str]:
        """Return the parameters as token-endpoint form fields."""
        fields: dict[str, str] = {}
        if self.approval_id is not None:
            fields["approval_id"] = self.approval_id
        if self.justification is not None:
            fields["justification"] = self.justification
        if self.requested_ttl is not None:
            fields["requested_ttl"] = str(self.requested_ttl)
        return fields

    def json(self) -> dict[str, object]:
        """Return the parameters as ``POST /v1/credentials`` JSON members."""
        fields: dict[str, object] = {}
        if self.approval_id is not None:
            fields["approval_id"] = self.approval_id
        if self.justification is not None:
            fields["justification"] = self.justification
        if self.requested_ttl is not None:
            fields["requested_ttl"] = self.requested_ttl
        return fields


class Waiting(TypedDict, total=False):
    """The approval keywords of the credential methods, as ``**kwargs``."""

    wait: dt.timedelta | None
    justification: str | None
    requested_ttl: dt.timedelta | None
    on_progress: Callable[[ApprovalProgress], None] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitOptions:
    """
    How a credential request treats approval.

    Attributes:
        wait: how long to wait for approval; None raises
            :class:`~gatepass.errors.ApprovalPendingError` at once.
        justification: why the agent asks, for the approvers (shown as inert,
            agent-supplied text; 1 to 1000 characters).
        requested_ttl: a lifetime shorter than policy allows, in whole seconds.
        on_progress: called after every answer that says "still waiting"; an
            exception it raises stops the wait and propagates.

    Raises:
        InvalidRequestError: ``wait`` is negative, or ``requested_ttl`` is not a
            whole number of seconds of at least one.
    """

    wait: dt.timedelta | None = None
    justification: str | None = None
    requested_ttl: dt.timedelta | None = None
    on_progress: Callable[[ApprovalProgress], None] | None = None

    def __post_init__(self) -> None:
        """Refuse values the broker would refuse, before anything is sent."""
        if self.wait is not None and self.wait < dt.timedelta(0):
            raise InvalidRequestError("wait must not be negative")
        if self.requested_ttl is not None:
            seconds = self.requested_ttl.total_seconds()
            if seconds < 1 or seconds != int(seconds):
                raise InvalidRequestError(
                    "requested_ttl must be a whole number of seconds, at least 1"
                )

    def first(self) -> ApprovalParameters:
        """Return the parameters of the first request."""
        return ApprovalParameters(
            justification=self.justification,
            requested_ttl=None
            if self.requested_ttl is None
            else int(self.requested_ttl.total_seconds()),
        )


def obtain(
    ask: Callable[[ApprovalParameters], T],
    options: WaitOptions,
    *,
    clock: Clock,
    sleep: Callable[[float], None],
) -> T:
    """
    Make a credential request, waiting for its approval when policy needs one.

    Args:
        ask: sends the caller's request with these parameters and returns the
            credential, or raises the broker's answer as a gatepass error.
        options: whether and how long to wait.
        clock: the time the wait is measured on.
        sleep: pauses between polls, in seconds (tests pass a fake).

    Returns:
        What ``ask`` returned once the broker handed the credential over.

    Raises:
        ApprovalPendingError: approval is needed and ``options.wait`` is None.
        ApprovalDeniedError: an approver denied the request.
        ApprovalExpiredError: the approval expired, or the wait ran out first
            (``still_pending`` is then True).
        GatepassError: any other answer of the broker, as ``ask`` raised it.
    """
    started = clock.now()
    first = options.first()
    try:
        return ask(first)
    except ApprovalPendingError as pending:
        if options.wait is None:
            raise
        answer = pending
    poll: _Poll[T] = _Poll(
        ask=ask,
        options=options,
        clock=clock,
        sleep=sleep,
        started=started,
        repeat=replace(first, approval_id=answer.approval_id, justification=None),
    )
    return poll.run(answer)


@dataclass(slots=True, kw_only=True)
class _Poll(Generic[T]):
    """The state of one wait: the approval, the interval, the deadline."""

    ask: Callable[[ApprovalParameters], T]
    options: WaitOptions
    clock: Clock
    sleep: Callable[[float], None]
    started: dt.datetime
    repeat: ApprovalParameters
    attempt: int = 1
    interval: int = _MIN_INTERVAL
    expires_at: dt.datetime | None = None

    @property
    def approval_id(self) -> str:
        """The approval this wait is for."""
        return str(self.repeat.approval_id)

    def run(self, answer: ApprovalPendingError) -> T:
        """Poll until the broker says something other than "pending"."""
        self._pending(answer)
        wait = self.options.wait or dt.timedelta(0)
        deadline = self.started + wait
        while True:
            step = dt.timedelta(seconds=self.interval)
            # A poll sooner than the interval would break the protocol, so the wait
            # ends at the last poll that fits in it rather than at its exact end.
            if self.clock.now() + step > deadline:
                raise ApprovalExpiredError(
                    f"stopped waiting for approval {self.approval_id} after "
                    f"{wait.total_seconds():g} s; it may still be approved: repeat "
                    "the same request to resume waiting",
                    approval_id=self.approval_id,
                    still_pending=True,
                )
            self.sleep(self.interval)
            self.attempt += 1
            try:
                return self.ask(self.repeat)
            except ApprovalPendingError as pending:
                self._pending(pending)
            except SlowDownError:
                self.interval += SLOW_DOWN_STEP
                self._report()
            except AccessDeniedError as denied:
                # After a pending answer, access_denied is an approver's deny
                # (RFC 8628 §3.5); a policy deny would have come first.
                if denied.code != AccessDeniedError.code:
                    raise
                raise ApprovalDeniedError(
                    denied.detail, approval_id=self.approval_id
                ) from denied
            except ApprovalExpiredError as expired:
                raise ApprovalExpiredError(
                    expired.detail, approval_id=self.approval_id
                ) from expired

    def _pending(self, answer: ApprovalPendingError) -> None:
        """Take in a pending answer: its interval, its expiry; report progress."""
        if answer.approval_id != self.approval_id:
            raise GatepassError("broker answered for another approval")
        # Never faster than the broker asks; a larger interval is kept if the broker
        # raises it (or a slow_down did), since RFC 8628 only ever slows polling down.
        self.interval = max(self.interval, answer.interval, _MIN_INTERVAL)
        self.expires_at = self.clock.now() + dt.timedelta(seconds=answer.expires_in)
        self._report()

    def _report(self) -> None:
        callback = self.options.on_progress
        if callback is None:
            return
        now = self.clock.now()
        left = dt.timedelta(0) if self.expires_at is None else self.expires_at - now
        callback(
            ApprovalProgress(
                approval_id=self.approval_id,
                elapsed=now - self.started,
                expires_in=max(left, dt.timedelta(0)),
                attempt=self.attempt,
            )
        )
