"""
Parsing and validating token-endpoint requests (RFC 6749 §3.2, RFC 8693 §2.1).

Pure functions from raw form parameters to typed requests. Every rejection names
the parameter and uses the OAuth error code the standards define; nothing here
echoes a token.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from gatepass.errors import (
    InvalidAuthorizationDetailsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    UnsupportedGrantTypeError,
)
from gatepass.tokens import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
)

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
    "TXN_TOKEN_TYPE",
    "AccessTokenRequest",
    "OpenTaskRequest",
    "TaskDetails",
    "parse_form",
    "parse_scope",
    "parse_token_exchange",
]


_MAX_TOKEN = 8192
_LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ACTION = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")


def parse_form(body: bytes) -> dict[str, list[str]]:
    """
    Parse an ``application/x-www-form-urlencoded`` body.

    Args:
        body: the raw request body.

    Returns:
        Every parameter with all its values, in order.

    Raises:
        InvalidRequestError: the body is not valid UTF-8 form encoding.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("body is not valid form encoding") from exc
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _single(form: dict[str, list[str]], name: str, *, required: bool) -> str | None:
    values = form.get(name)
    if not values:
        if required:
            raise InvalidRequestError(f"missing parameter {name}")
        return None
    # RFC 6749 §3.2: request parameters must not be included more than once.
    if len(values) > 1:
        raise InvalidRequestError(f"parameter {name} is repeated")
    value = values[0]
    if required and not value:
        raise InvalidRequestError(f"parameter {name} is empty")
    return value or None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDetails:
    """
    The ``agent_task`` authorization details (RFC 9396) of an open-task request.

    Attributes:
        intent: free text describing the work.
        purpose: a label that policies match.
        environment: where the task runs.
        tenant: the tenant it acts for; None means the agent's own.
        targets: target URIs or names, as sent.
        max_ttl: the longest life asked for, if any.
    """

    intent: str
    purpose: str
    environment: str
    tenant: str | None
    targets: tuple[str, ...]
    max_ttl: dt.timedelta | None

    def to_json(self, task_id: str) -> list[dict[str, Any]]:
        """Return the details as echoed in the token response."""
        details: dict[str, Any] = {
            "type": "agent_task",
            "task_id": task_id,
            "intent": self.intent,
            "purpose": self.purpose,
            "environment": self.environment,
            "targets": list(self.targets),
        }
        if self.tenant is not None:
            details["tenant"] = self.tenant
        return [details]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenTaskRequest:
    """An open-task token exchange: a workload identity for a task token."""

    subject_token: str
    subject_token_type: str
    details: TaskDetails
    client_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessTokenRequest:
    """An access-token exchange: a task token for a token scoped to one target."""

    subject_token: str
    resource: str
    actions: tuple[str, ...]
    client_id: str | None


def parse_scope(scope: str | None) -> tuple[str, ...]:
    """
    Split an OAuth scope into actions (RFC 6749 §3.3).

    Raises:
        InvalidScopeError: the scope is missing, empty or malformed.
    """
    if scope is None or not scope.strip():
        raise InvalidScopeError("scope must name at least one action")
    actions: list[str] = []
    for action in scope.split(" "):
        if not action:
            continue
        if not _ACTION.match(action):
            raise InvalidScopeError("scope contains a malformed action")
        if action not in actions:
            actions.append(action)
    if len(actions) > 16:
        raise InvalidScopeError("scope names more than 16 actions")
    return tuple(actions)


def _text(details: dict[str, Any], name: str, *, limit: int) -> str:
    value = details.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidAuthorizationDetailsError(f"agent_task.{name} must be a string")
    if len(value) > limit:
        raise InvalidAuthorizationDetailsError(
            f"agent_task.{name} is longer than {limit} characters"
        )
    return value


def _label(details: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = details.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _LABEL.match(value):
        raise InvalidAuthorizationDetailsError(
            f"agent_task.{name} must match [a-z0-9][a-z0-9._-]{{0,63}}"
        )
    return value


def _parse_details(raw: str) -> TaskDetails:
    try:
        parsed = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidAuthorizationDetailsError(
            "authorization_details is not valid JSON"
        ) from exc
    if not isinstance(parsed, list) or len(parsed) != 1:
        raise InvalidAuthorizationDetailsError(
            "authorization_details must be an array with one agent_task object"
        )
    details = parsed[0]
    if not isinstance(details, dict) or details.get("type") != "agent_task":
        raise InvalidAuthorizationDetailsError(
            "authorization_details type must be agent_task"
        )
    known = {
        "type",
        "intent",
        "purpose",
        "environment",
        "tenant",
        "targets",
        "max_ttl_seconds",
    }
    unknown = sorted(set(details) - known)
    if unknown:
        raise InvalidAuthorizationDetailsError(
            f"agent_task has unknown field {unknown[0][:64]!r}"
        )
    targets = details.get("targets")
    if (
        not isinstance(targets, list)
        or not 1 <= len(targets) <= 32
        or not all(isinstance(t, str) and 0 < len(t) <= 512 for t in targets)
    ):
        raise InvalidAuthorizationDetailsError(
            "agent_task.targets must be a list of 1 to 32 target URIs"
        )
    max_ttl_raw = details.get("max_ttl_seconds")
    max_ttl: dt.timedelta | None = None
    if max_ttl_raw is not None:
        if (
            isinstance(max_ttl_raw, bool)
            or not isinstance(max_ttl_raw, int)
            or not 1 <= max_ttl_raw <= 86_400
        ):
            raise InvalidAuthorizationDetailsError(
                "agent_task.max_ttl_seconds must be an integer from 1 to 86400"
            )
        max_ttl = dt.timedelta(seconds=max_ttl_raw)
    purpose = _label(details, "purpose", required=True)
    environment = _label(details, "environment", required=True)
    if purpose is None or environment is None:  # pragma: no cover - required above
        raise InvalidAuthorizationDetailsError("agent_task is incomplete")
    return TaskDetails(
        intent=_text(details, "intent", limit=1000),
        purpose=purpose,
        environment=environment,
        tenant=_label(details, "tenant", required=False),
        targets=tuple(dict.fromkeys(targets)),
        max_ttl=max_ttl,
    )


def _open_task_request(
    form: dict[str, list[str]],
    subject_token: str,
    requested: str | None,
    client_id: str | None,
) -> OpenTaskRequest:
    if requested not in {None, TXN_TOKEN_TYPE}:
        raise InvalidRequestError(
            "a workload identity can only be exchanged for a txn_token"
        )
    raw_details = _single(form, "authorization_details", required=False)
    if raw_details is None:
        raise InvalidAuthorizationDetailsError(
            "authorization_details with an agent_task is required to open a task"
        )
    return OpenTaskRequest(
        subject_token=subject_token,
        subject_token_type=JWT_TOKEN_TYPE,
        details=_parse_details(raw_details),
        client_id=client_id,
    )


def _access_token_request(
    form: dict[str, list[str]],
    subject_token: str,
    requested: str | None,
    client_id: str | None,
) -> AccessTokenRequest:
    if requested not in {None, ACCESS_TOKEN_TYPE}:
        raise InvalidRequestError(
            "a task token can only be exchanged for an access_token"
        )
    resources = form.get("resource", []) + form.get("audience", [])
    # RFC 8707 §2: gatepass tokens have exactly one audience.
    if len(resources) != 1 or not resources[0]:
        raise InvalidTargetError("name exactly one resource or audience")
    if len(resources[0]) > 512:
        raise InvalidTargetError("resource is too long")
    return AccessTokenRequest(
        subject_token=subject_token,
        resource=resources[0],
        actions=parse_scope(_single(form, "scope", required=False)),
        client_id=client_id,
    )


def parse_token_exchange(
    form: dict[str, list[str]],
) -> OpenTaskRequest | AccessTokenRequest:
    """
    Turn token-endpoint parameters into an open-task or access-token request.

    Args:
        form: the parsed form body.

    Raises:
        UnsupportedGrantTypeError: the grant is not token exchange.
        InvalidRequestError: a parameter is missing, repeated or unsupported.
        InvalidAuthorizationDetailsError: the task description is malformed.
        InvalidTargetError: not exactly one resource was named.
        InvalidScopeError: the scope is malformed.
    """
    grant_type = _single(form, "grant_type", required=True)
    if grant_type != TOKEN_EXCHANGE:
        raise UnsupportedGrantTypeError("only token exchange (RFC 8693) is supported")
    if _single(form, "actor_token", required=False) is not None:
        raise InvalidRequestError("delegation with actor_token is not supported yet")
    subject_token = _single(form, "subject_token", required=True)
    subject_type = _single(form, "subject_token_type", required=True)
    if subject_token is None or subject_type is None:  # pragma: no cover
        raise InvalidRequestError("missing subject token")
    if len(subject_token) > _MAX_TOKEN:
        raise InvalidRequestError("subject_token is too long")
    requested = _single(form, "requested_token_type", required=False)
    client_id = _single(form, "client_id", required=False)
    if subject_type == JWT_TOKEN_TYPE:
        return _open_task_request(form, subject_token, requested, client_id)
    if subject_type in {TXN_TOKEN_TYPE, ACCESS_TOKEN_TYPE}:
        return _access_token_request(form, subject_token, requested, client_id)
    raise InvalidRequestError("unsupported subject_token_type")
