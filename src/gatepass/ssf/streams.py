"""
Stream configurations of the SSF transmitter (OpenID SSF 1.0 §8).

A receiver creates a stream by ``POST``-ing a configuration to the transmitter's
``configuration_endpoint``. Only some members are the receiver's to set
(*receiver-supplied*): ``delivery``, ``events_requested``, ``description`` and
``inactivity_timeout``; ``aud`` is transmitter-supplied in SSF, and gatepass
accepts it only to *narrow* a stream to some of the audiences the receiver is
allowed. The other transmitter-supplied members (``stream_id``, ``iss``,
``events_supported``, ``events_delivered``, ``min_verification_interval``) are
ignored when sent back, so a receiver may ``PUT`` what it read. Anything else is
refused with a precise ``invalid_request``.

:func:`parse_stream_request` turns the JSON body into a :class:`StreamRequest`
or raises; nothing here reads configuration or the store.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from gatepass.errors import InvalidRequestError
from gatepass.secret import Secret

__all__ = [
    "DELIVERY_POLL",
    "DELIVERY_PUSH",
    "MAX_DESCRIPTION",
    "MAX_EVENTS_REQUESTED",
    "DeliveryMethod",
    "StreamRequest",
    "StreamStatus",
    "parse_stream_request",
    "parse_stream_status",
]

# SSF 1.0 §6.1.1: the delivery methods are named by the RFCs that define them.
DELIVERY_PUSH: Final = "urn:ietf:rfc:8935"
DELIVERY_POLL: Final = "urn:ietf:rfc:8936"
MAX_DESCRIPTION: Final = 200
MAX_EVENTS_REQUESTED: Final = 32
_MAX_URI = 2048
_MAX_AUDIENCES = 64
_MAX_AUTHORIZATION = 4096
_MIN_INACTIVITY = 60
_MAX_INACTIVITY = 30 * 86_400
_RECEIVER_SUPPLIED: Final = frozenset(
    {"delivery", "events_requested", "description", "inactivity_timeout", "aud"}
)
# Transmitter-supplied members a receiver may echo back; never taken from it.
_TRANSMITTER_SUPPLIED: Final = frozenset(
    {
        "stream_id",
        "iss",
        "events_supported",
        "events_delivered",
        "min_verification_interval",
    }
)


class DeliveryMethod(enum.StrEnum):
    """How SETs reach a receiver: pushed to it (RFC 8935) or polled (RFC 8936)."""

    PUSH = DELIVERY_PUSH
    POLL = DELIVERY_POLL


class StreamStatus(enum.StrEnum):
    """
    A stream's status (SSF 1.0 §8.1.2).

    ``enabled``: events are made and delivered. ``paused``: events are made and
    held until the stream is enabled again. ``disabled``: no events are made.
    """

    ENABLED = "enabled"
    PAUSED = "paused"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRequest:
    """
    What a receiver asked of a stream, validated; None where it said nothing.

    Attributes:
        method: the delivery method.
        endpoint_url: where pushed SETs go (push only).
        authorization_header: the ``Authorization`` value sent with each push;
            a secret, sealed at rest and never shown again.
        events_requested: the event type URIs the receiver wants.
        description: free text for operators.
        audiences: the audiences (resource URIs) to narrow the stream to.
        inactivity_timeout: seconds without a poll or a stream call after which
            the transmitter disables the stream.
    """

    method: DeliveryMethod | None = None
    endpoint_url: str | None = None
    authorization_header: Secret | None = None
    events_requested: tuple[str, ...] | None = None
    description: str | None = None
    audiences: tuple[str, ...] | None = None
    inactivity_timeout: int | None = None


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidRequestError(f"{name} must be a string of 1 to {limit} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise InvalidRequestError(f"{name} must not contain control characters")
    return value


def _absolute_url(value: object, name: str) -> str:
    url = _text(value, name, _MAX_URI)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidRequestError(f"{name} must be an absolute http(s) url") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidRequestError(f"{name} must be an absolute http(s) url")
    if parts.fragment or parts.username or parts.password:
        raise InvalidRequestError(f"{name} must not carry a fragment or credentials")
    return url


def _uri_list(value: object, name: str, limit: int) -> tuple[str, ...]:
    if isinstance(value, str):
        # SSF 1.0 §8.1.1: aud is "a string or an array of strings".
        value = [value]
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidRequestError(f"{name} must be a list of at most {limit} strings")
    items = tuple(_text(item, name, _MAX_URI) for item in value)
    return tuple(dict.fromkeys(items))


def _delivery(
    value: object,
) -> tuple[DeliveryMethod, str | None, Secret | None]:
    if not isinstance(value, dict):
        raise InvalidRequestError("delivery must be an object")
    unknown = sorted(set(value) - {"method", "endpoint_url", "authorization_header"})
    if unknown:
        raise InvalidRequestError(f"delivery has an unknown member {unknown[0]!r}")
    raw = value.get("method")
    try:
        method = DeliveryMethod(str(raw))
    except ValueError:
        raise InvalidRequestError(
            f"delivery.method must be {DELIVERY_PUSH} or {DELIVERY_POLL}"
        ) from None
    if method is DeliveryMethod.POLL:
        # RFC 8936: the transmitter supplies the poll endpoint; whatever the
        # receiver sends as endpoint_url is ignored, never fetched.
        if "authorization_header" in value:
            raise InvalidRequestError("authorization_header is only for push delivery")
        return method, None, None
    endpoint = _absolute_url(value.get("endpoint_url"), "delivery.endpoint_url")
    authorization = None
    if "authorization_header" in value:
        authorization = Secret(
            _text(
                value["authorization_header"],
                "delivery.authorization_header",
                _MAX_AUTHORIZATION,
            )
        )
    return method, endpoint, authorization


def _inactivity(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not _MIN_INACTIVITY <= value <= _MAX_INACTIVITY
    ):
        raise InvalidRequestError(
            f"inactivity_timeout must be an integer of {_MIN_INACTIVITY} to "
            f"{_MAX_INACTIVITY} seconds"
        )
    return value


def parse_stream_request(body: object, *, require_delivery: bool) -> StreamRequest:
    """
    Validate a stream configuration sent by a receiver.

    Args:
        body: the parsed JSON body.
        require_delivery: whether ``delivery`` must be present (creating or
            replacing a stream); an update may leave it out.

    Returns:
        What the receiver asked for; members it did not send are None.

    Raises:
        InvalidRequestError: the body is not an object, has an unknown member, or
            a member is malformed (the message names it, never its value).
    """
    if not isinstance(body, Mapping):
        raise InvalidRequestError("stream configuration must be a json object")
    unknown = sorted(set(body) - _RECEIVER_SUPPLIED - _TRANSMITTER_SUPPLIED)
    if unknown:
        raise InvalidRequestError(
            f"stream configuration has an unknown member {unknown[0]!r}"
        )
    method = endpoint = authorization = None
    if "delivery" in body:
        method, endpoint, authorization = _delivery(body["delivery"])
    elif require_delivery:
        raise InvalidRequestError("delivery is required")
    events = None
    if "events_requested" in body:
        events = _uri_list(
            body["events_requested"], "events_requested", MAX_EVENTS_REQUESTED
        )
    description = None
    if "description" in body:
        description = _text(body["description"], "description", MAX_DESCRIPTION)
    audiences = None
    if "aud" in body:
        audiences = _uri_list(body["aud"], "aud", _MAX_AUDIENCES)
        if not audiences:
            raise InvalidRequestError("aud must name at least one audience")
    inactivity = None
    if "inactivity_timeout" in body:
        inactivity = _inactivity(body["inactivity_timeout"])
    return StreamRequest(
        method=method,
        endpoint_url=endpoint,
        authorization_header=authorization,
        events_requested=events,
        description=description,
        audiences=audiences,
        inactivity_timeout=inactivity,
    )


def parse_stream_status(body: object) -> tuple[str, StreamStatus, str | None]:
    """
    Validate a status update (SSF 1.0 §8.1.2.2).

    Args:
        body: the parsed JSON body: ``stream_id``, ``status`` and an optional
            ``reason``.

    Returns:
        The stream id, the new status and the reason.

    Raises:
        InvalidRequestError: a member is missing or malformed.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequestError("status update must be a json object")
    unknown = sorted(set(body) - {"stream_id", "status", "reason"})
    if unknown:
        raise InvalidRequestError(f"status update has an unknown member {unknown[0]!r}")
    stream_id = _text(body.get("stream_id"), "stream_id", 64)
    try:
        status = StreamStatus(str(body.get("status")))
    except ValueError:
        raise InvalidRequestError(
            "status must be one of enabled, paused, disabled"
        ) from None
    reason = None
    if body.get("reason") is not None:
        reason = _text(body["reason"], "reason", MAX_DESCRIPTION)
    return stream_id, status, reason
