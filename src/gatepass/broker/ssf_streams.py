"""
The SSF transmitter's management side: discovery, receivers, streams (SSF 1.0).

An administrator registers a **receiver**: an ``ssf_receiver`` API token limited to
some http targets (its *audiences*). The receiver then manages its own streams at
the ``configuration_endpoint`` (create, read, update, replace, delete), their
status and verification; each stream covers some or all of its audiences and is
never visible to another token. Every change is audited (``ssf.stream.*``), and so
is every refusal. The push ``authorization_header`` is sealed at rest with the
master key and never shown again.

Making and delivering the events is ``broker/ssf_delivery.py``.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from gatepass.audit import Outcome
from gatepass.broker.callers import Caller
from gatepass.broker.context import BrokerContext
from gatepass.broker.service_tokens import IssuedToken, mint_token, token_attempt
from gatepass.broker.trail import Attempt, AuditRecorder
from gatepass.errors import (
    AccessDeniedError,
    ConflictError,
    GatepassError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
)
from gatepass.models import ApiRole
from gatepass.secret import Secret
from gatepass.ssf import streams as model
from gatepass.ssf import transmit
from gatepass.store import Connection
from gatepass.store import ssf as rows

__all__ = ["SSFStreams", "poll_path"]

_MIN_VERIFICATION_INTERVAL: Final = 1
_MAX_RECEIVER_AUDIENCES: Final = 64


def poll_path(stream_id: str) -> str:
    """Return the path of a poll stream's RFC 8936 endpoint."""
    return f"/v1/ssf/poll/{stream_id}"


class SSFStreams:
    """
    Discovery, receivers and stream management of the SSF transmitter.

    Args:
        context: the broker's collaborators.
    """

    def __init__(self, context: BrokerContext) -> None:
        """Keep the context."""
        self._context = context
        self._verified_at: dict[str, dt.datetime] = {}

    @property
    def _issuer(self) -> str:
        return self._context.issuer_url

    def configuration(self) -> dict[str, Any]:
        """Return the transmitter configuration metadata (SSF 1.0 §7.1)."""
        base = self._issuer
        return {
            "spec_version": "1_0",
            "issuer": base,
            "jwks_uri": f"{base}/jwks.json",
            "delivery_methods_supported": [model.DELIVERY_PUSH, model.DELIVERY_POLL],
            "configuration_endpoint": f"{base}/v1/ssf/streams",
            "status_endpoint": f"{base}/v1/ssf/status",
            "verification_endpoint": f"{base}/v1/ssf/verify",
            # RFC 6750 bearer: the receiver's ssf_receiver API token.
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
            # Every token of the receiver's audiences is covered; subjects are not
            # added one by one.
            "default_subjects": "ALL",
        }

    # -- receivers (administrators) ---------------------------------------------

    def _audience_names(self, references: Sequence[str]) -> tuple[str, ...]:
        names: list[str] = []
        for reference in references:
            target = self._context.catalog.resolve(reference)
            if target.kind != "http":
                raise InvalidRequestError(
                    f"target {target.name} is not an http target: only access "
                    "tokens are announced"
                )
            names.append(target.name)
        return tuple(dict.fromkeys(names))

    async def add_receiver(
        self, caller: Caller, description: str, audiences: Sequence[str]
    ) -> tuple[IssuedToken, rows.Receiver]:
        """
        Make an ``ssf_receiver`` token limited to some targets.

        Args:
            caller: an administrator.
            description: what the receiver is (shown in token lists).
            audiences: target names or URIs its streams may cover.

        Returns:
            The token (shown once) and the receiver record.

        Raises:
            InvalidRequestError: no audience, too many, a non-http target, or a
                bad description.
            InvalidTargetError: an unknown target.
        """
        attempt = Attempt(kind="ssf.receiver.create", actor=caller.actor)
        try:
            if not audiences or len(audiences) > _MAX_RECEIVER_AUDIENCES:
                raise InvalidRequestError(
                    f"audiences must name 1 to {_MAX_RECEIVER_AUDIENCES} targets"
                )
            if not 0 < len(description) <= model.MAX_DESCRIPTION:
                raise InvalidRequestError("description must be 1 to 200 characters")
            names = self._audience_names(audiences)
        except GatepassError as error:
            await self._context.trail.refuse(attempt, error)
            raise
        now = self._context.clock.now()

        def change(
            conn: Connection, audit: AuditRecorder
        ) -> tuple[IssuedToken, rows.Receiver]:
            issued = mint_token(
                conn,
                role=ApiRole.SSF_RECEIVER,
                description=description,
                context=self._context,
            )
            rows.insert_receiver(conn, issued.record.id, names, now)
            record = token_attempt(caller, issued)
            record.data["audiences"] = list(names)
            audit.record(conn, record, Outcome.OK)
            receiver = rows.Receiver(
                token_id=issued.record.id,
                audiences=names,
                created_at=now,
                description=issued.record.description,
            )
            return issued, receiver

        return await self._context.trail.write(change)

    async def receivers(self) -> list[rows.Receiver]:
        """Return every receiver (for administrators)."""
        return await self._context.database.read(rows.list_receivers)

    async def overview(self) -> list[dict[str, Any]]:
        """
        Return every stream as operators see it: owner, status, SETs not delivered.

        Never the push authorization; the push endpoint only as its host.
        """

        def read(
            conn: Connection,
        ) -> tuple[list[rows.StoredStream], dict[str, int]]:
            return rows.list_streams(conn), rows.open_counts(conn)

        found, pending = await self._context.database.read(read)
        shown = []
        for stream in found:
            config = stream.config
            item: dict[str, Any] = {
                "stream_id": stream.id,
                "token_id": stream.token_id,
                "method": "push" if config["method"] == model.DELIVERY_PUSH else "poll",
                "audiences": list(config["audiences"]),
                "status": stream.status,
                "reason": stream.reason,
                "events_delivered": delivered_events(config["events_requested"]),
                "undelivered": pending.get(stream.id, 0),
                "created_at": stream.created_at.isoformat(),
                "active_at": stream.active_at.isoformat(),
            }
            if config.get("endpoint_url"):
                item["endpoint_host"] = urlsplit(config["endpoint_url"]).hostname
            shown.append(item)
        return shown

    # -- streams (receivers) ----------------------------------------------------

    def render(self, stream: rows.StoredStream) -> dict[str, Any]:
        """Return a stream's configuration as SSF 1.0 §8.1.1 shows it."""
        config = stream.config
        requested = list(config["events_requested"])
        delivery: dict[str, Any] = {"method": config["method"]}
        if config["method"] == model.DELIVERY_POLL:
            delivery["endpoint_url"] = self._issuer + poll_path(stream.id)
        else:
            delivery["endpoint_url"] = config["endpoint_url"]
        shown: dict[str, Any] = {
            "stream_id": stream.id,
            "iss": self._issuer,
            "aud": self.audiences_of(stream),
            "events_supported": list(transmit.EVENTS_SUPPORTED),
            "events_requested": requested,
            "events_delivered": delivered_events(requested),
            "delivery": delivery,
            "min_verification_interval": _MIN_VERIFICATION_INTERVAL,
            "inactivity_timeout": config["inactivity_timeout"],
        }
        if config.get("description"):
            shown["description"] = config["description"]
        return shown

    def audiences_of(self, stream: rows.StoredStream) -> list[str]:
        """Return a stream's audiences as URIs (its SETs' ``aud``)."""
        uris = []
        for name in stream.config["audiences"]:
            target = self._context.catalog.get(name)
            if target is not None:
                uris.append(target.uri)
        return uris

    async def _refused(self, attempt: Attempt, error: GatepassError) -> GatepassError:
        await self._context.trail.refuse(attempt, error)
        return error

    async def _owned(
        self, caller: Caller, stream_id: str, kind: str
    ) -> rows.StoredStream:
        stream = await self._context.database.read(
            lambda conn: rows.get_stream(conn, stream_id)
        )
        # Another receiver's stream is "not found": its existence is not shown.
        if stream is None or stream.token_id != caller.token_id:
            attempt = Attempt(kind=kind, actor=caller.actor, subject=stream_id[:80])
            raise await self._refused(attempt, NotFoundError("unknown stream"))
        return stream

    async def _allowed(self, caller: Caller) -> tuple[str, ...]:
        receiver = await self._context.database.read(
            lambda conn: rows.get_receiver(conn, caller.token_id)
        )
        return () if receiver is None else receiver.audiences

    def _check_push_url(self, url: str) -> None:
        settings = self._context.settings.ssf
        host = (urlsplit(url).hostname or "").lower()
        plain = {name.lower() for name in settings.push_http_hosts}
        listed = {name.lower() for name in settings.push_hosts} | plain
        if url.lower().startswith("http://") and host not in plain:
            raise InvalidRequestError(
                "delivery.endpoint_url must be https (or a host in ssf.push_http_hosts)"
            )
        # Deny by default: the broker POSTs to what a receiver names, so only hosts
        # the operator listed are reachable (no internal service by accident).
        if host not in listed:
            raise AccessDeniedError(
                "delivery.endpoint_url host is not in ssf.push_hosts"
            )

    def _config(
        self,
        request: model.StreamRequest,
        allowed: tuple[str, ...],
        base: dict[str, Any] | None,
    ) -> dict[str, Any]:
        config = dict(base or {})
        if request.method is not None:
            config["method"] = request.method.value
            config["endpoint_url"] = request.endpoint_url
            if request.method is model.DeliveryMethod.PUSH and request.endpoint_url:
                self._check_push_url(request.endpoint_url)
        if request.events_requested is not None or base is None:
            requested = request.events_requested
            # Absent: everything supported; an empty list: verification only.
            config["events_requested"] = list(
                transmit.EVENTS_SUPPORTED if requested is None else requested
            )
        if request.description is not None:
            config["description"] = request.description
        if request.inactivity_timeout is not None or base is None:
            config["inactivity_timeout"] = (
                request.inactivity_timeout
                or self._context.settings.ssf.inactivity_timeout_seconds
            )
        if request.audiences is not None or base is None:
            if request.audiences is None:
                names = allowed
            else:
                try:
                    names = self._audience_names(request.audiences)
                except GatepassError:
                    raise AccessDeniedError(
                        "aud names an audience this receiver is not allowed"
                    ) from None
            if not names or not set(names) <= set(allowed):
                raise AccessDeniedError(
                    "aud names an audience this receiver is not allowed"
                )
            config["audiences"] = list(names)
        return config

    def _seal(self, secret: Secret | None) -> bytes | None:
        if secret is None:
            return None
        return self._context.sealer.seal(secret.reveal().encode())

    async def create(self, caller: Caller, body: object) -> dict[str, Any]:
        """
        Create a stream for the caller (SSF 1.0 §8.1.1.1).

        Raises:
            InvalidRequestError: a malformed configuration.
            AccessDeniedError: an audience the receiver is not allowed, or a push
                host not allowed.
            ConflictError: the receiver has ``ssf.max_streams_per_receiver``.
        """
        attempt = Attempt(kind="ssf.stream.create", actor=caller.actor)
        try:
            request = model.parse_stream_request(body, require_delivery=True)
            config = self._config(request, await self._allowed(caller), None)
        except GatepassError as error:
            raise await self._refused(attempt, error) from None
        now = self._context.clock.now()
        backfill = dt.timedelta(
            seconds=self._context.settings.tokens.access_max_ttl_seconds
        )
        stream = rows.StoredStream(
            id=f"sst_{secrets.token_hex(10)}",
            token_id=caller.token_id,
            config=config,
            sealed_authorization=self._seal(request.authorization_header),
            status=model.StreamStatus.ENABLED.value,
            reason=None,
            # A new stream starts with the revocations of every token that may
            # still be live, so a resource server that (re)subscribes misses none.
            cursor=now - backfill,
            created_at=now,
            updated_at=now,
            active_at=now,
        )
        limit = self._context.settings.ssf.max_streams_per_receiver
        attempt.subject = stream.id
        attempt.data = _summary(config)

        def change(conn: Connection, audit: AuditRecorder) -> None:
            if rows.count_streams(conn, caller.token_id) >= limit:
                raise ConflictError(f"a receiver may have at most {limit} streams")
            rows.insert_stream(conn, stream)
            audit.record(conn, attempt, Outcome.OK)

        try:
            await self._context.trail.write(change)
        except ConflictError as error:
            raise await self._refused(attempt, error) from None
        return self.render(stream)

    async def read(
        self, caller: Caller, stream_id: str | None
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Return one of the caller's streams, or all of them (SSF 1.0 §8.1.1.2)."""
        if stream_id is not None:
            return self.render(await self._owned(caller, stream_id, "ssf.stream.read"))
        found = await self._context.database.read(
            lambda conn: rows.list_streams(conn, token_id=caller.token_id)
        )
        return [self.render(stream) for stream in found]

    async def update(
        self, caller: Caller, body: object, *, replace: bool
    ) -> dict[str, Any]:
        """
        Update (``PATCH``) or replace (``PUT``) a stream (SSF 1.0 §8.1.1.3/4).

        Raises:
            InvalidRequestError: no ``stream_id`` or a malformed configuration.
            NotFoundError: not one of the caller's streams.
            AccessDeniedError: an audience or push host not allowed.
        """
        attempt = Attempt(kind="ssf.stream.update", actor=caller.actor)
        raw_id = body.get("stream_id") if isinstance(body, dict) else None
        if not isinstance(raw_id, str) or not raw_id:
            raise await self._refused(
                attempt, InvalidRequestError("stream_id is required")
            )
        stream = await self._owned(caller, raw_id, attempt.kind)
        attempt.subject = stream.id
        try:
            request = model.parse_stream_request(body, require_delivery=replace)
            config = self._config(
                request, await self._allowed(caller), None if replace else stream.config
            )
        except GatepassError as error:
            raise await self._refused(attempt, error) from None
        sealed = stream.sealed_authorization
        if request.method is not None:
            sealed = self._seal(request.authorization_header)
        now = self._context.clock.now()
        attempt.data = _summary(config)

        def change(conn: Connection, audit: AuditRecorder) -> None:
            rows.update_stream(
                conn,
                stream.id,
                config=config,
                sealed_authorization=sealed,
                updated_at=now,
                active_at=now,
            )
            audit.record(conn, attempt, Outcome.OK)

        await self._context.trail.write(change)
        return self.render(
            rows.StoredStream(
                id=stream.id,
                token_id=stream.token_id,
                config=config,
                sealed_authorization=sealed,
                status=stream.status,
                reason=stream.reason,
                cursor=stream.cursor,
                created_at=stream.created_at,
                updated_at=now,
                active_at=now,
            )
        )

    async def delete(self, caller: Caller, stream_id: str) -> None:
        """Delete one of the caller's streams and the SETs it holds (§8.1.1.5)."""
        stream = await self._owned(caller, stream_id, "ssf.stream.delete")
        attempt = Attempt(
            kind="ssf.stream.delete", actor=caller.actor, subject=stream.id
        )

        def change(conn: Connection, audit: AuditRecorder) -> None:
            if rows.delete_stream(conn, stream.id):
                audit.record(conn, attempt, Outcome.OK)

        await self._context.trail.write(change)
        self._verified_at.pop(stream.id, None)

    async def status(self, caller: Caller, stream_id: str) -> dict[str, Any]:
        """Return a stream's status (SSF 1.0 §8.1.2.1)."""
        stream = await self._owned(caller, stream_id, "ssf.stream.status")
        return _status(stream.id, stream.status, stream.reason)

    async def set_status(self, caller: Caller, body: object) -> dict[str, Any]:
        """
        Enable, pause or disable one of the caller's streams (SSF 1.0 §8.1.2.2).

        Raises:
            InvalidRequestError: a malformed update.
            NotFoundError: not one of the caller's streams.
        """
        attempt = Attempt(kind="ssf.stream.status", actor=caller.actor)
        try:
            stream_id, status, reason = model.parse_stream_status(body)
        except GatepassError as error:
            raise await self._refused(attempt, error) from None
        stream = await self._owned(caller, stream_id, attempt.kind)
        now = self._context.clock.now()
        attempt.subject = stream.id
        attempt.data = {"from": stream.status, "status": status.value}
        if reason:
            attempt.data["reason"] = reason

        def change(conn: Connection, audit: AuditRecorder) -> None:
            values: dict[str, object] = {
                "status": status.value,
                "reason": reason,
                "updated_at": now,
                "active_at": now,
            }
            if model.StreamStatus.DISABLED in (status, stream.status):
                # SSF 1.0 §8.1.2: a disabled stream holds nothing, so neither
                # disabling nor enabling again announces what happened meanwhile.
                values["cursor"] = now
            rows.update_stream(conn, stream.id, **values)
            audit.record(conn, attempt, Outcome.OK)

        await self._context.trail.write(change)
        return _status(stream.id, status.value, reason)

    async def request_verification(self, caller: Caller, body: object) -> str:
        """
        Queue a verification SET on one of the caller's streams (SSF 1.0 §8.1.4).

        Returns:
            The verification SET's ``jti``.

        Raises:
            InvalidRequestError: no ``stream_id`` or a malformed ``state``.
            NotFoundError: not one of the caller's streams.
            RateLimitedError: asked again within ``min_verification_interval``.
        """
        attempt = Attempt(kind="ssf.stream.verify", actor=caller.actor)
        if not isinstance(body, dict) or not isinstance(body.get("stream_id"), str):
            raise await self._refused(
                attempt, InvalidRequestError("stream_id is required")
            )
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > 256):
            raise await self._refused(
                attempt, InvalidRequestError("state must be a string of at most 256")
            )
        stream = await self._owned(caller, body["stream_id"], attempt.kind)
        attempt.subject = stream.id
        now = self._context.clock.now()
        last = self._verified_at.get(stream.id)
        if last is not None and now - last < dt.timedelta(
            seconds=_MIN_VERIFICATION_INTERVAL
        ):
            raise await self._refused(
                attempt, RateLimitedError("verification asked too often")
            )
        self._verified_at[stream.id] = now
        event = transmit.verification(
            stream_id=stream.id,
            audiences=self.audiences_of(stream),
            state=state,
            now=now,
        )
        token = transmit.sign_event(self._context.issuer, event)
        attempt.data = {"jti": event.jti}

        def change(conn: Connection, audit: AuditRecorder) -> None:
            rows.add_events(
                conn,
                stream.id,
                [(event.jti, event.event_type, event.subject, token)],
                now,
            )
            rows.update_stream(conn, stream.id, active_at=now)
            audit.record(conn, attempt, Outcome.OK)

        await self._context.trail.write(change)
        # Wakes long polls and the push loop now rather than at their next tick.
        self._context.signals.revoked()
        return event.jti


def delivered_events(requested: Sequence[str]) -> list[str]:
    """Return the events a stream delivers: what it asked for that is supported."""
    return [uri for uri in transmit.EVENTS_SUPPORTED if uri in requested]


def _status(stream_id: str, status: str, reason: str | None) -> dict[str, Any]:
    shown: dict[str, Any] = {"stream_id": stream_id, "status": status}
    if reason:
        shown["reason"] = reason
    return shown


def _summary(config: dict[str, Any]) -> dict[str, Any]:
    # What the audit keeps of a configuration: never the push authorization (it
    # is not in the config), and the endpoint only as its host.
    summary: dict[str, Any] = {
        "method": config["method"],
        "audiences": list(config["audiences"]),
        "events": delivered_events(config["events_requested"]),
    }
    if config.get("endpoint_url"):
        summary["endpoint_host"] = urlsplit(config["endpoint_url"]).hostname
    return summary
