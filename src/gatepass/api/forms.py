"""
OAuth form requests parsed at the edge (RFC 6749, RFC 8693, RFC 7009, RFC 7662).

Pure functions from raw form bodies to the broker's typed requests. The form
parser is written by hand rather than declared with pydantic because each
parameter has its own OAuth error code (``invalid_target`` for ``resource``,
``invalid_scope`` for ``scope``, ``invalid_authorization_details`` ...) and
repeated parameters must be refused (RFC 6749 §3.2); every rejection names the
parameter, and nothing here echoes a token.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from gatepass.broker import (
    AcceptDelegationRequest,
    AccessTokenRequest,
    DelegationGrantRequest,
    OpenTaskRequest,
    RevocationRequest,
    TaskDetails,
)
from gatepass.errors import (
    InvalidAuthorizationDetailsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    UnsupportedGrantTypeError,
    UnsupportedTokenTypeError,
)
from gatepass.ids import is_id
from gatepass.tokens import (
    ACCESS_TOKEN_TYPE,
    DELEGATION_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
)

__all__ = [
    "parse_approval_id",
    "parse_form",
    "parse_introspection",
    "parse_justification",
    "parse_requested_ttl",
    "parse_revocation",
    "parse_scope",
    "parse_token_exchange",
]

_MAX_TOKEN = 8192
_MAX_REQUESTED_TTL = 86_400
_MAX_JUSTIFICATION = 1000
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
        "actions",
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
        actions=_task_actions(details.get("actions")),
    )


def _task_actions(raw: object) -> tuple[str, ...] | None:
    """The ``actions`` of an ``agent_task``: 1 to 16 action names, if given."""
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= 16
        or not all(isinstance(a, str) and _ACTION.match(a) for a in raw)
    ):
        raise InvalidAuthorizationDetailsError(
            "agent_task.actions must be a list of 1 to 16 action names"
        )
    return tuple(dict.fromkeys(raw))


def _open_task_request(
    form: dict[str, list[str]],
    subject_token: str,
    subject_type: str,
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
        subject_token_type=subject_type,
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
    ttl = _single(form, "requested_ttl", required=False)
    return AccessTokenRequest(
        subject_token=subject_token,
        resource=resources[0],
        actions=parse_scope(_single(form, "scope", required=False)),
        client_id=client_id,
        requested_ttl=None if ttl is None else parse_requested_ttl(ttl),
        approval_id=parse_approval_id(_single(form, "approval_id", required=False)),
        justification=parse_justification(
            _single(form, "justification", required=False)
        ),
    )


def parse_requested_ttl(value: object) -> dt.timedelta:
    """
    Read a requested TTL: whole seconds, 1 to 86400 (a form's digits or a JSON int).

    Raises:
        InvalidRequestError: anything else.
    """
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if type(value) is not int or not 1 <= value <= _MAX_REQUESTED_TTL:
        raise InvalidRequestError(
            f"requested_ttl must be whole seconds from 1 to {_MAX_REQUESTED_TTL}"
        )
    return dt.timedelta(seconds=value)


def parse_approval_id(value: object) -> str | None:
    """
    Read the ``approval_id`` of a repeated request (``apr_…``), if any.

    Raises:
        InvalidRequestError: it is not an approval id.
    """
    if value is None:
        return None
    if not is_id(value, "apr"):
        raise InvalidRequestError("approval_id must be an approval id (apr_...)")
    return str(value)


def parse_justification(value: object) -> str | None:
    """
    Read the agent's justification for approvers: 1 to 1000 characters, if any.

    Approvers see it as inert, agent-supplied text (escaped where it is shown).

    Raises:
        InvalidRequestError: not a string, empty, too long or with a NUL.
    """
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_JUSTIFICATION
        or "\0" in value
    ):
        raise InvalidRequestError(
            f"justification must be 1 to {_MAX_JUSTIFICATION} characters of text"
        )
    return value


def parse_token_exchange(
    form: dict[str, list[str]],
) -> (
    OpenTaskRequest
    | AccessTokenRequest
    | DelegationGrantRequest
    | AcceptDelegationRequest
):
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
    subject_token = _single(form, "subject_token", required=True)
    subject_type = _single(form, "subject_token_type", required=True)
    if subject_token is None or subject_type is None:  # pragma: no cover
        raise InvalidRequestError("missing subject token")
    if len(subject_token) > _MAX_TOKEN:
        raise InvalidRequestError("subject_token is too long")
    requested = _single(form, "requested_token_type", required=False)
    client_id = _single(form, "client_id", required=False)
    if subject_type == DELEGATION_TOKEN_TYPE:
        return _accept_delegation_request(form, subject_token, requested, client_id)
    if (
        _single(form, "actor_token", required=False) is not None
        or _single(form, "actor_token_type", required=False) is not None
    ):
        raise InvalidRequestError(
            "actor_token is accepted only with a delegation token as subject_token"
        )
    # RFC 8693 §3: an agent assertion or a federated workload token is a jwt; a
    # CI or Kubernetes token may also be sent as an id_token.
    if subject_type in {JWT_TOKEN_TYPE, ID_TOKEN_TYPE}:
        return _open_task_request(
            form, subject_token, subject_type, requested, client_id
        )
    if subject_type in {TXN_TOKEN_TYPE, ACCESS_TOKEN_TYPE}:
        if requested == DELEGATION_TOKEN_TYPE:
            return _delegation_grant_request(form, subject_token, client_id)
        return _access_token_request(form, subject_token, requested, client_id)
    raise InvalidRequestError("unsupported subject_token_type")


def _delegation_grant_request(
    form: dict[str, list[str]], subject_token: str, client_id: str | None
) -> DelegationGrantRequest:
    if form.get("resource"):
        raise InvalidRequestError(
            "a delegation names its child agent as audience, and no resource"
        )
    audience = _single(form, "audience", required=False)
    if not is_id(audience, "agt"):
        raise InvalidTargetError("audience must be the child agent's id (agt_...)")
    raw_details = _single(form, "authorization_details", required=False)
    if raw_details is None:
        raise InvalidAuthorizationDetailsError(
            "authorization_details with the sub-task's agent_task is required"
        )
    details = _parse_details(raw_details)
    if details.actions is None:
        raise InvalidAuthorizationDetailsError(
            "a delegated sub-task must name its actions"
        )
    return DelegationGrantRequest(
        subject_token=subject_token,
        child=str(audience),
        details=details,
        client_id=client_id,
    )


def _accept_delegation_request(
    form: dict[str, list[str]],
    subject_token: str,
    requested: str | None,
    client_id: str | None,
) -> AcceptDelegationRequest:
    if requested not in {None, TXN_TOKEN_TYPE}:
        raise InvalidRequestError("a delegation token is exchanged for a txn_token")
    actor_token = _single(form, "actor_token", required=False)
    actor_type = _single(form, "actor_token_type", required=False)
    if actor_token is None:
        raise InvalidRequestError(
            "accepting a delegation needs actor_token: your own workload identity"
        )
    if len(actor_token) > _MAX_TOKEN:
        raise InvalidRequestError("actor_token is too long")
    # RFC 8693 §2.1: actor_token_type is required with an actor_token.
    if actor_type not in {JWT_TOKEN_TYPE, ID_TOKEN_TYPE}:
        raise InvalidRequestError("actor_token_type must be the jwt or id_token type")
    if form.get("authorization_details") or form.get("resource"):
        raise InvalidRequestError(
            "the sub-task is the delegation token's: send no authorization_details"
        )
    return AcceptDelegationRequest(
        delegation_token=subject_token,
        actor_token=actor_token,
        actor_token_type=actor_type,
        client_id=client_id,
    )


def _one_token(form: dict[str, list[str]]) -> str:
    tokens = form.get("token", [])
    if len(tokens) != 1 or not tokens[0]:
        raise InvalidRequestError("name exactly one token")
    return tokens[0]


def parse_revocation(body: bytes) -> RevocationRequest:
    """
    Parse an RFC 7009 revocation form.

    Raises:
        InvalidRequestError: not exactly one token, or a repeated client_id.
        UnsupportedTokenTypeError: the hint names a type gatepass cannot revoke.
    """
    form = parse_form(body)
    token = _one_token(form)
    hints = form.get("token_type_hint", [])
    if hints and hints[0] not in {"access_token", "refresh_token"}:
        raise UnsupportedTokenTypeError("unsupported token_type_hint")
    client_ids = form.get("client_id", [])
    if len(client_ids) > 1:
        raise InvalidRequestError("parameter client_id is repeated")
    return RevocationRequest(
        token=token, client_id=client_ids[0] if client_ids else None
    )


def parse_introspection(body: bytes) -> str:
    """
    Parse an RFC 7662 introspection form; return the token.

    Raises:
        InvalidRequestError: not exactly one token.
    """
    return _one_token(parse_form(body))
