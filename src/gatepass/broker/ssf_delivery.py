"""
The SSF transmitter's delivery side: revocations become SETs, pushed or polled.

**Making events.** Every revoked access token whose target is one of a stream's
audiences becomes one signed CAEP ``session-revoked`` SET on that stream
(``ssf/transmit.py``), stored in ``gp_ssf_events``. Streams are caught up from the
store (revocations of other replicas included) by :meth:`SSFDelivery.catch_up`:
the push loop does it the moment this process revokes something (the in-process
:class:`~gatepass.broker.signals.Signals`) and at least every second, and a poll
does it before it answers. Each look reaches a few seconds behind the stream's
cursor, so a revocation that committed late is not missed; the unique (stream,
event, subject) key keeps it from being stored twice.

**Push** (RFC 8935): due SETs are claimed like the approval outbox (a lease in
``next_attempt_at``; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), ``POST``-ed one per
request as ``application/secevent+jwt`` with the stream's sealed ``Authorization``,
never following a redirect. ``2xx`` delivers; a ``400`` with an RFC 8935 error is
the receiver refusing that SET (given up at once); anything else is retried with
exponential backoff and full jitter up to ``ssf.push_max_attempts``. Every failed
attempt and every SET given up is audited (``ssf.delivery_failed``).

**Poll** (RFC 8936): :meth:`SSFDelivery.poll` acknowledges what the receiver
``ack``-ed (and records its ``setErrs``), then answers up to ``maxEvents`` SETs,
waiting up to ``ssf.poll_wait_seconds`` for one unless ``returnImmediately``.

A stream no receiver touched for its ``inactivity_timeout`` is disabled (and
audited), so an abandoned poll stream stops collecting SETs.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx

from gatepass.approvals.webhooks import backoff
from gatepass.audit import Outcome
from gatepass.broker.callers import Caller
from gatepass.broker.context import BrokerContext
from gatepass.broker.ssf_streams import SSFStreams, delivered_events
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import GatepassError, InvalidRequestError, NotFoundError
from gatepass.observability import get_logger
from gatepass.ssf import streams as model
from gatepass.ssf import transmit
from gatepass.store import Connection
from gatepass.store import ssf as rows

__all__ = ["PollRequest", "SSFDelivery", "parse_poll_request"]

_log = get_logger("gatepass.ssf")
# How far behind its cursor a stream looks again for revocations that committed
# after later ones it already announced (transactions of other replicas).
_OVERLAP: Final = dt.timedelta(seconds=5)
_LEASE: Final = dt.timedelta(seconds=90)
_PRUNE_EVERY: Final = dt.timedelta(hours=1)
_TOUCH_EVERY: Final = dt.timedelta(seconds=60)
_TICK_SECONDS: Final = 1.0
_PUSH_BATCH: Final = 64
_MAX_ERR = 64
# CAEP 1.0 initiating_entity from why a task ended: a policy decision, an
# administrator (agents are disabled by one), the agent itself (the "user" of its
# task), or the broker (expiry, and closes whose initiator is not recorded here).
_INITIATORS: Final = (
    ("policy", "policy"),
    ("agent disabled", "admin"),
    ("closed by admin", "admin"),
    ("closed by agent", "user"),
    ("task token revoked", "user"),
)


def _initiator(reason: str | None) -> str:
    for prefix, entity in _INITIATORS:
        if reason and reason.startswith(prefix):
            return entity
    return "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class PollRequest:
    """
    An RFC 8936 poll.

    Attributes:
        ack: SETs the receiver took.
        errors: SETs the receiver could not take, with its error code.
        max_events: the most SETs to return (0: acknowledge only).
        return_immediately: answer at once even when there is nothing.
    """

    ack: tuple[str, ...] = ()
    errors: Mapping[str, str] | None = None
    max_events: int | None = None
    return_immediately: bool = False


def _jti_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 1000:
        raise InvalidRequestError("ack must be a list of at most 1000 strings")
    if not all(isinstance(item, str) and 0 < len(item) <= 64 for item in value):
        raise InvalidRequestError("ack must hold set jti strings")
    return tuple(value)


def _set_errors(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 1000:
        raise InvalidRequestError("setErrs must be an object of at most 1000 members")
    errors: dict[str, str] = {}
    for jti, error in value.items():
        if not 0 < len(jti) <= 64 or not isinstance(error, dict):
            raise InvalidRequestError("setErrs must map set jti to an error object")
        code = error.get("err")
        if not isinstance(code, str) or not 0 < len(code) <= _MAX_ERR:
            raise InvalidRequestError("setErrs entries need an err code")
        errors[jti] = code
    return errors


def parse_poll_request(body: object) -> PollRequest:
    """
    Validate an RFC 8936 §2.4 poll body.

    Raises:
        InvalidRequestError: not an object, an unknown member, or a malformed one.
    """
    if body is None:
        return PollRequest()
    if not isinstance(body, dict):
        raise InvalidRequestError("poll request must be a json object")
    unknown = sorted(set(body) - {"ack", "setErrs", "maxEvents", "returnImmediately"})
    if unknown:
        raise InvalidRequestError(f"poll request has an unknown member {unknown[0]!r}")
    max_events = body.get("maxEvents")
    if max_events is not None and (
        isinstance(max_events, bool)
        or not isinstance(max_events, int)
        or max_events < 0
    ):
        raise InvalidRequestError("maxEvents must be a non-negative integer")
    immediately = body.get("returnImmediately", False)
    if not isinstance(immediately, bool):
        raise InvalidRequestError("returnImmediately must be a boolean")
    return PollRequest(
        ack=_jti_list(body["ack"]) if "ack" in body else (),
        errors=_set_errors(body["setErrs"]) if "setErrs" in body else None,
        max_events=max_events,
        return_immediately=immediately,
    )


class SSFDelivery:
    """
    Make SETs from revocations and deliver them by push or poll.

    Args:
        context: the broker's collaborators.
        streams: the stream management use case (renders audiences).
        transport: an httpx transport for pushes (tests); the network by default.
        rng: the backoff's random source.
    """

    def __init__(
        self,
        context: BrokerContext,
        streams: SSFStreams,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Keep the collaborators; nothing runs until :meth:`run`."""
        self._context = context
        self._streams = streams
        self._transport = transport
        # Jitter only spreads retries out; it protects no secret.
        self._rng = rng or random.Random()  # noqa: S311
        self._lock = anyio.Lock()
        self._pruned_at: dt.datetime | None = None

    @property
    def _settings(self) -> Any:  # noqa: ANN401 - the [ssf] section
        return self._context.settings.ssf

    # -- making events -----------------------------------------------------------

    async def live_streams(self) -> list[rows.StoredStream]:
        """
        Return the enabled and paused streams, disabling those left inactive.

        Returns:
            The streams that are still enabled or paused.
        """
        found = await self._context.database.read(
            lambda conn: rows.list_streams(
                conn,
                statuses=(model.StreamStatus.ENABLED, model.StreamStatus.PAUSED),
            )
        )
        return [
            stream for stream in found if not await self._expire_if_inactive(stream)
        ]

    async def catch_up(self, stream: rows.StoredStream | None = None) -> int:
        """
        Make the SETs of revocations not yet announced, on one stream or all.

        Returns:
            How many SETs were stored.
        """
        if stream is not None:
            return await self._catch_up(stream)
        added = 0
        for each in await self.live_streams():
            added += await self._catch_up(each)
        return added

    async def _catch_up(self, stream: rows.StoredStream) -> int:
        if transmit.CAEP_SESSION_REVOKED not in delivered_events(
            stream.config["events_requested"]
        ):
            return 0
        now = self._context.clock.now()
        found = await self._context.database.read(
            lambda conn: rows.revoked_for(
                conn,
                stream_id=stream.id,
                event=transmit.CAEP_SESSION_REVOKED,
                targets=stream.config["audiences"],
                since=stream.cursor - _OVERLAP,
                now=now,
            )
        )
        if not found:
            return 0
        audiences = self._streams.audiences_of(stream)
        made = []
        for token in found:
            event = transmit.session_revoked(
                token_id=token.jti,
                task_id=token.task_id,
                audiences=audiences,
                revoked_at=token.revoked_at,
                now=now,
                initiating_entity=_initiator(token.reason),
                reason=token.reason,
            )
            signed = transmit.sign_event(self._context.issuer, event)
            made.append((event.jti, event.event_type, event.subject, signed))
        cursor = max(stream.cursor, *(token.revoked_at for token in found))

        def change(conn: Connection) -> int:
            added = rows.add_events(conn, stream.id, made, now)
            rows.update_stream(conn, stream.id, cursor=cursor)
            return added

        return await self._context.database.write(change)

    async def _expire_if_inactive(self, stream: rows.StoredStream) -> bool:
        now = self._context.clock.now()
        idle = dt.timedelta(seconds=int(stream.config["inactivity_timeout"]))
        if now - stream.active_at <= idle:
            return False
        attempt = Attempt(
            kind="ssf.stream.status",
            actor="system",
            subject=stream.id,
            data={"from": stream.status, "status": "disabled", "reason": "inactive"},
        )

        def change(conn: Connection, audit: AuditRecorder) -> None:
            rows.update_stream(
                conn,
                stream.id,
                status=model.StreamStatus.DISABLED.value,
                reason="inactive",
                updated_at=now,
                cursor=now,
            )
            audit.record(conn, attempt, Outcome.OK)

        await self._context.trail.write(change)
        _log.warning("ssf stream disabled for inactivity", stream=stream.id)
        return True

    # -- poll (RFC 8936) ---------------------------------------------------------

    async def poll(
        self, caller: Caller, stream_id: str, request: PollRequest
    ) -> dict[str, Any]:
        """
        Answer one poll of one of the caller's poll streams.

        Returns:
            ``{"sets": {jti: SET}, "moreAvailable": bool}``.

        Raises:
            NotFoundError: not one of the caller's poll streams (audited).
        """
        stream = await self._context.database.read(
            lambda conn: rows.get_stream(conn, stream_id)
        )
        if (
            stream is None
            or stream.token_id != caller.token_id
            or stream.config["method"] != model.DELIVERY_POLL
        ):
            attempt = Attempt(
                kind="ssf.poll", actor=caller.actor, subject=stream_id[:80]
            )
            error = NotFoundError("unknown poll stream")
            await self._context.trail.refuse(attempt, error)
            raise error
        await self._acknowledge(caller, stream, request)
        limit = min(
            self._settings.max_poll_events,
            self._settings.max_poll_events
            if request.max_events is None
            else request.max_events,
        )
        if limit == 0:
            return {"sets": {}, "moreAvailable": False}
        deadline = anyio.current_time() + float(self._settings.poll_wait_seconds)
        signals = self._context.signals
        while True:
            # Taken before looking at the store: a revocation committed while it
            # looks still wakes the wait below.
            watch = signals.next_revocation()
            found: list[rows.PendingEvent] = []
            if stream.status == model.StreamStatus.ENABLED:
                await self.catch_up(stream)
                found = await self._context.database.read(
                    lambda conn: rows.pending_events(conn, stream.id, limit + 1)
                )
            remaining = deadline - anyio.current_time()
            if found or request.return_immediately or remaining <= 0:
                break
            await signals.wait_for_revocations(
                min(remaining, _TICK_SECONDS), after=watch
            )
        return {
            "sets": {event.jti: event.token for event in found[:limit]},
            "moreAvailable": len(found) > limit,
        }

    async def _acknowledge(
        self, caller: Caller, stream: rows.StoredStream, request: PollRequest
    ) -> None:
        now = self._context.clock.now()
        errors = dict(request.errors or {})
        stale = now - stream.active_at >= _TOUCH_EVERY
        if not request.ack and not errors and not stale:
            return
        attempts = [
            Attempt(
                kind="ssf.set_error",
                actor=caller.actor,
                subject=stream.id,
                data={"jti": jti[:64], "err": code},
            )
            for jti, code in sorted(errors.items())
        ]

        def change(conn: Connection, audit: AuditRecorder) -> None:
            rows.ack_events(conn, stream.id, request.ack, now)
            for attempt in attempts:
                jti = str(attempt.data["jti"])
                error = f"receiver: {attempt.data['err']}"
                if rows.mark_failed(conn, stream.id, [jti], error=error, now=now):
                    audit.record(conn, attempt, Outcome.ERROR)
            rows.update_stream(conn, stream.id, active_at=now)

        await self._context.trail.write(change)

    # -- push (RFC 8935) ---------------------------------------------------------

    async def deliver_push(self, streams: list[rows.StoredStream] | None = None) -> int:
        """
        Push every due SET of every enabled push stream, once each.

        Args:
            streams: the streams as just read (by :meth:`tick`); read when omitted.

        Returns:
            How many were delivered in this pass.
        """
        async with self._lock:
            if streams is None:
                streams = await self._context.database.read(
                    lambda conn: rows.list_streams(
                        conn, statuses=(model.StreamStatus.ENABLED,)
                    )
                )
            push = {
                stream.id: stream
                for stream in streams
                if stream.config["method"] == model.DELIVERY_PUSH
                and stream.status == model.StreamStatus.ENABLED
            }
            if not push:
                return 0
            now = self._context.clock.now()
            claimed = await self._context.database.write(
                lambda conn: rows.claim_push(
                    conn, list(push), now, limit=_PUSH_BATCH, lease=_LEASE
                )
            )
            if not claimed:
                return 0
            by_stream: dict[str, list[rows.PendingEvent]] = {}
            for event in claimed:
                by_stream.setdefault(event.stream_id, []).append(event)
            delivered: list[rows.PendingEvent] = []
            timeout = float(self._settings.push_timeout_seconds)
            async with (
                httpx.AsyncClient(
                    transport=self._transport,
                    follow_redirects=False,
                    timeout=timeout,
                    headers={"User-Agent": "gatepass-ssf"},
                ) as client,
                anyio.create_task_group() as group,
            ):
                for stream_id, events in by_stream.items():
                    group.start_soon(
                        self._push_stream, client, push[stream_id], events, delivered
                    )
            if delivered:
                done = self._context.clock.now()

                def change(conn: Connection) -> None:
                    for event in delivered:
                        rows.mark_delivered(
                            conn, event.id, attempts=event.attempts + 1, now=done
                        )

                await self._context.database.write(change)
            return len(delivered)

    async def _push_stream(
        self,
        client: httpx.AsyncClient,
        stream: rows.StoredStream,
        events: list[rows.PendingEvent],
        delivered: list[rows.PendingEvent],
    ) -> None:
        headers = {
            "Content-Type": "application/secevent+jwt",
            "Accept": "application/json",
        }
        if stream.sealed_authorization is not None:
            headers["Authorization"] = self._context.sealer.unseal(
                stream.sealed_authorization
            ).decode()
        url = str(stream.config["endpoint_url"])
        # In order, one SET per request (RFC 8935 §2); a failure does not hold up
        # the SETs behind it, each has its own retries.
        for event in events:
            reason, permanent = await self._push_one(client, url, headers, event)
            if reason is None:
                delivered.append(event)
                continue
            try:
                await self._failed(stream, event, reason, permanent=permanent)
            except GatepassError as error:
                # The claim's lease runs out and the SET is tried again.
                _log.warning("recording a push failure failed", error=error.code)

    async def _push_one(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        event: rows.PendingEvent,
    ) -> tuple[str | None, bool]:
        try:
            response = await client.post(url, content=event.token, headers=headers)
        except httpx.TimeoutException:
            return "timeout", False
        except httpx.HTTPError:
            return "connection failed", False
        if response.is_success:
            return None, False
        if response.status_code == httpx.codes.BAD_REQUEST:
            # RFC 8935 §2.3: the receiver refused this SET; sending it again would
            # be refused again.
            code = "invalid_request"
            try:
                body = response.json()
                if isinstance(body, dict) and isinstance(body.get("err"), str):
                    code = body["err"][:_MAX_ERR]
            except ValueError:
                pass
            return f"receiver refused: {code}", True
        return f"status {response.status_code}", False

    async def _failed(
        self,
        stream: rows.StoredStream,
        event: rows.PendingEvent,
        reason: str,
        *,
        permanent: bool,
    ) -> None:
        attempts = event.attempts + 1
        give_up = permanent or attempts >= self._settings.push_max_attempts
        now = self._context.clock.now()
        retry_at = now + backoff(attempts, rng=self._rng)
        attempt = Attempt(
            kind="ssf.delivery_failed",
            actor="system",
            subject=stream.id,
            data={
                "jti": event.jti,
                "attempts": attempts,
                "reason": reason,
                "retry": not give_up,
            },
        )

        def change(conn: Connection, audit: AuditRecorder) -> None:
            if give_up:
                changed = rows.mark_failed(
                    conn,
                    stream.id,
                    [event.jti],
                    error=reason,
                    now=now,
                    attempts=attempts,
                )
            else:
                changed = rows.mark_retry(
                    conn,
                    event.id,
                    attempts=attempts,
                    next_attempt_at=retry_at,
                    error=reason,
                )
            if changed:
                audit.record(conn, attempt, Outcome.ERROR)

        await self._context.trail.write(change)
        log = _log.error if give_up else _log.warning
        log(
            "ssf push failed",
            stream=stream.id,
            jti=event.jti,
            attempts=attempts,
            reason=reason,
            given_up=give_up,
        )

    # -- the loop ----------------------------------------------------------------

    async def tick(self) -> None:
        """Catch push streams up and push, then catch poll streams up; prune."""
        live = await self.live_streams()
        pushed = [s for s in live if s.config["method"] == model.DELIVERY_PUSH]
        # Push streams first: a poll stream's own long poll catches it up the
        # moment it wakes, so only pushes wait on this loop.
        for stream in pushed:
            await self._catch_up(stream)
        await self.deliver_push(pushed)
        for stream in live:
            if stream.config["method"] != model.DELIVERY_PUSH:
                await self._catch_up(stream)
        now = self._context.clock.now()
        if self._pruned_at is None or now - self._pruned_at >= _PRUNE_EVERY:
            self._pruned_at = now
            keep = dt.timedelta(
                seconds=self._context.settings.tokens.access_max_ttl_seconds
            )
            before = now - keep - _PRUNE_EVERY
            await self._context.database.write(
                lambda conn: rows.prune_events(conn, before=before)
            )

    async def run(self) -> None:
        """Run :meth:`tick` on every revocation of this process and every second."""
        signals = self._context.signals
        while True:
            watch = signals.next_revocation()
            try:
                await self.tick()
            except GatepassError as error:
                _log.warning(
                    "ssf delivery failed", error=error.code, detail=error.detail
                )
            except Exception as error:  # noqa: BLE001 - the loop must never die
                _log.error("ssf delivery crashed", error=type(error).__name__)
            await signals.wait_for_revocations(_TICK_SECONDS, after=watch)
