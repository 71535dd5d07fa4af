"""
JSON bodies and query strings, validated at the edge into the broker's typed requests.

One way for every input that is not an OAuth form (``api/forms.py``): a frozen
pydantic model per body or query, and :func:`validated`, which turns any
validation failure into one ``invalid_request`` naming the field and never the
value (a value may be a key or a token someone pasted in the wrong place).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gatepass.api.forms import (
    parse_approval_id,
    parse_justification,
    parse_requested_ttl,
    parse_scope,
)
from gatepass.audit import Outcome
from gatepass.broker import (
    AgentRegistration,
    AuditFilter,
    CredentialRequest,
    PolicyQuestion,
    ProxyCall,
)
from gatepass.errors import InvalidRequestError
from gatepass.models import AgentStatus, LeaseState, TaskState
from gatepass.tokens import algorithm_for, load_public_jwk

__all__ = [
    "AgentQuery",
    "AuditQuery",
    "LeaseQuery",
    "TaskQuery",
    "agent_registration",
    "audit_filter",
    "close_reason",
    "credential_request",
    "name_list",
    "policy_question",
    "proxy_calls",
    "validated",
]

M = TypeVar("M", bound=BaseModel)

_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_MAX_PUBLIC_KEY = 16_384
_MAX_PROXY_EVENTS = 500
_MAX_OWNERS = 16


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Query(BaseModel):
    # Query strings tolerate parameters they do not know (caches, tracing).
    model_config = ConfigDict(extra="ignore", frozen=True)


def validated(model: type[M], data: object) -> M:
    """
    Validate ``data`` (a parsed JSON body or a query mapping) into ``model``.

    Raises:
        InvalidRequestError: naming the first problem's field, never its value.
    """
    if not isinstance(data, Mapping):
        raise InvalidRequestError("body must be a JSON object")
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        problem = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            raise InvalidRequestError(f"unknown field {where[:64]!r}") from None
        if problem["type"] == "missing":
            raise InvalidRequestError(f"missing field {where}") from None
        if message.startswith(f"{where} "):
            raise InvalidRequestError(message[:300]) from None
        raise InvalidRequestError(f"{where}: {message.lower()}"[:300]) from None


def _choice(values: list[str]) -> str:
    return ", ".join(sorted(values))


# ----------------------------------------------------------------- queries


def _member_of(kind: type[enum.StrEnum], name: str) -> Callable[[object], object]:
    """Return a validator accepting only the values of ``kind``, named in the error."""
    values = {member.value for member in kind}

    def check(value: object) -> object:
        if value is not None and value not in values:
            raise ValueError(f"{name} must be one of {_choice(list(values))}")
        return value

    return check


def _bounded(maximum: int) -> Callable[[object], int]:
    """Return a validator of a page size from 1 to ``maximum``."""

    def check(value: object) -> int:
        text = str(value)
        if not text.isdigit() or not 1 <= int(text) <= maximum:
            raise ValueError(f"limit must be an integer from 1 to {maximum}")
        return int(text)

    return check


def _count(
    name: str, *, minimum: int, maximum: int | None = None
) -> Callable[[object], int]:
    """Return a validator of a whole number in range, named in the error."""

    def check(value: object) -> int:
        text = str(value)
        if (
            not text.isdigit()
            or int(text) < minimum
            or (maximum is not None and int(text) > maximum)
        ):
            if maximum is None:
                raise ValueError(f"{name} must be a non-negative integer")
            raise ValueError(f"{name} must be an integer from {minimum} to {maximum}")
        return int(text)

    return check


class AgentQuery(_Query):
    """``GET /v1/agents?tenant=&status=``."""

    tenant: str | None = None
    status: Annotated[
        AgentStatus | None, BeforeValidator(_member_of(AgentStatus, "status"))
    ] = None


class TaskQuery(_Query):
    """``GET /v1/tasks?state=&agent_id=&limit=``."""

    state: Annotated[
        TaskState | None, BeforeValidator(_member_of(TaskState, "state"))
    ] = None
    agent_id: str | None = Field(default=None, max_length=64)
    limit: Annotated[int, BeforeValidator(_bounded(1000))] = 100


class LeaseQuery(_Query):
    """``GET /v1/leases?state=&task_id=&limit=``."""

    state: Annotated[
        LeaseState | None, BeforeValidator(_member_of(LeaseState, "state"))
    ] = None
    task_id: str | None = Field(default=None, max_length=64)
    limit: Annotated[int, BeforeValidator(_bounded(1000))] = 100


def _moment(name: str) -> Callable[[object], object]:
    """Return a validator of an aware ISO 8601 time, named in the error."""

    def check(value: object) -> object:
        if value is None:
            return None
        try:
            moment = dt.datetime.fromisoformat(str(value))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise ValueError(
                f"{name} must be an ISO 8601 time with a zone, such as "
                "2026-01-06T10:00:00Z"
            )
        return moment.astimezone(dt.UTC)

    return check


class AuditQuery(_Query):
    """
    ``GET /v1/audit/events?after=&limit=`` or ``?last=``, with optional filters.

    The filters (``agent``, ``task``, ``kind``, ``outcome``, ``since``) apply to
    both forms; every one given must hold.
    """

    after: Annotated[int, BeforeValidator(_count("after", minimum=0))] = 0
    limit: Annotated[int, BeforeValidator(_bounded(1000))] = 500
    last: Annotated[
        int | None, BeforeValidator(_count("last", minimum=1, maximum=1000))
    ] = None
    agent: str | None = Field(default=None, max_length=64)
    task: str | None = Field(default=None, max_length=64)
    kind: str | None = Field(default=None, max_length=64)
    outcome: Annotated[
        Outcome | None, BeforeValidator(_member_of(Outcome, "outcome"))
    ] = None
    since: Annotated[dt.datetime | None, BeforeValidator(_moment("since"))] = None


def audit_filter(query: AuditQuery) -> AuditFilter:
    """Return the filters of an audit query."""
    return AuditFilter(
        agent=query.agent,
        task=query.task,
        kind=query.kind,
        outcome=query.outcome,
        since=query.since,
    )


# ----------------------------------------------------------------- bodies


def name_list(
    value: object, field: str, *, maximum: int, wildcard: bool = False
) -> object:
    """
    Check a list of at most ``maximum`` distinct names (``*`` too, with ``wildcard``).

    A pydantic ``before`` validator's body: it raises ValueError, which
    :func:`validated` turns into ``invalid_request`` naming ``field``.
    """
    if not isinstance(value, list) or len(value) > maximum:
        raise ValueError(f"{field} must be a list of at most {maximum} names")
    for item in value:
        if not isinstance(item, str) or not (
            (wildcard and item == "*") or re.match(_NAME, item)
        ):
            also = " or *" if wildcard else ""
            raise ValueError(
                f"{field} must hold names matching [a-z0-9][a-z0-9._-]{{0,63}}{also}"
            )
    if len(set(value)) != len(value):
        raise ValueError(f"{field} must not repeat a name")
    return value


class _AgentBody(_Input):
    name: Annotated[StrictStr, Field(pattern=_NAME)]
    tenant: Annotated[StrictStr, Field(pattern=_NAME)]
    public_key: StrictStr | dict[str, Any]
    labels: dict[str, StrictStr] = Field(default_factory=dict)
    owners: list[StrictStr] = Field(default_factory=list)

    @field_validator("name", "tenant", mode="before")
    @classmethod
    def _named(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str) or re.match(_NAME, value) is None:
            raise ValueError(
                f"{info.field_name} must match [a-z0-9][a-z0-9._-]{{0,63}}"
            )
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> object:
        if not isinstance(value, dict) or len(value) > 32:
            raise ValueError("labels must be an object of at most 32 entries")
        for key, item in value.items():
            if not isinstance(key, str) or not _LABEL_KEY.match(key):
                raise ValueError("label keys must match [a-z][a-z0-9_.-]{0,63}")
            if not isinstance(item, str) or len(item) > 256:
                raise ValueError("label values must be strings of ≤ 256 chars")
        return value

    @field_validator("owners", mode="before")
    @classmethod
    def _owners(cls, value: object) -> object:
        return name_list(value, "owners", maximum=_MAX_OWNERS)

    @field_validator("public_key", mode="before")
    @classmethod
    def _key(cls, value: object) -> object:
        if not isinstance(value, str | dict):
            # pydantic turns only ValueError into a validation error.
            raise ValueError("public_key must be a JWK object or a PEM string")  # noqa: TRY004
        return value


def agent_registration(payload: object) -> AgentRegistration:
    """
    Validate ``{"name", "tenant", "public_key", "labels"?}`` into a registration.

    Raises:
        InvalidRequestError: a field is missing or malformed, or the key is not a
            usable public key.
    """
    body = validated(_AgentBody, payload)
    jwk = load_public_jwk(body.public_key)
    return AgentRegistration(
        name=body.name,
        tenant=body.tenant,
        public_jwk=jwk,
        algorithm=algorithm_for(jwk),
        labels=dict(body.labels),
        owners=tuple(body.owners),
    )


class _CredentialBody(_Input):
    target: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    actions: list[StrictStr] | None = None
    scope: StrictStr | None = None
    public_key: (
        Annotated[StrictStr, Field(min_length=1, max_length=_MAX_PUBLIC_KEY)] | None
    ) = None
    # Checked by the same functions as the token endpoint's form parameters.
    requested_ttl: object = None
    approval_id: object = None
    justification: object = None

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, value: object) -> object:
        if not isinstance(value, str) or not 0 < len(value) <= 512:
            raise ValueError("target must be a target name or URI")
        return value

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, value: object) -> object:
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(a, str) for a in value)
        ):
            raise ValueError("actions must be a list of strings")
        return value

    @field_validator("scope", mode="before")
    @classmethod
    def _scope(cls, value: object) -> object:
        if value is not None and not isinstance(value, str):
            raise ValueError("scope must be a string")
        return value

    @field_validator("public_key", mode="before")
    @classmethod
    def _public_key(cls, value: object) -> object:
        if value is not None and (
            not isinstance(value, str) or not 0 < len(value) <= _MAX_PUBLIC_KEY
        ):
            raise ValueError("public_key must be an OpenSSH public key line")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> _CredentialBody:
        if self.actions is not None and self.scope is not None:
            raise ValueError("give actions or scope, not both")
        return self


def credential_request(
    payload: object, *, idempotency_key: str | None
) -> CredentialRequest:
    """
    Validate a ``POST /v1/credentials`` body into a request.

    The body is ``{"target", "actions" | "scope", "public_key"?, "requested_ttl"?,
    "approval_id"?, "justification"?}``.

    Raises:
        InvalidRequestError: a field is missing or malformed.
        InvalidScopeError: the actions are empty or malformed.
    """
    body = validated(_CredentialBody, payload)
    scope = " ".join(body.actions) if body.actions is not None else body.scope
    return CredentialRequest(
        target=body.target,
        actions=parse_scope(scope),
        public_key=body.public_key,
        idempotency_key=idempotency_key,
        requested_ttl=None
        if body.requested_ttl is None
        else parse_requested_ttl(body.requested_ttl),
        approval_id=parse_approval_id(body.approval_id),
        justification=parse_justification(body.justification),
    )


_WORD = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


class _QuestionBody(_Input):
    agent: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    target: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    action: Annotated[StrictStr, Field(pattern=_WORD)]
    purpose: Annotated[StrictStr, Field(max_length=64)] = ""
    environment: Annotated[StrictStr, Field(pattern=_NAME)] | None = None
    tenant: Annotated[StrictStr, Field(pattern=_NAME)] | None = None
    intent: Annotated[StrictStr, Field(max_length=500)] = ""
    at: Annotated[dt.datetime | None, BeforeValidator(_moment("at"))] = None


def policy_question(payload: object) -> PolicyQuestion:
    """
    Validate a what-if ``{"agent", "target", "action", "purpose"?, ...}``.

    Raises:
        InvalidRequestError: a field is missing or malformed.
    """
    body = validated(_QuestionBody, payload)
    return PolicyQuestion(
        agent=body.agent,
        target=body.target,
        action=body.action,
        purpose=body.purpose,
        environment=body.environment,
        tenant=body.tenant,
        intent=body.intent,
        at=body.at,
    )


class _CloseBody(_Input):
    reason: StrictStr = "closed by admin"

    @field_validator("reason", mode="before")
    @classmethod
    def _reason(cls, value: object) -> object:
        if not isinstance(value, str) or not 0 < len(value) <= 200:
            raise ValueError("reason must be a string of 1 to 200 characters")
        return value


def close_reason(payload: object) -> str:
    """
    Validate an admin's ``{"reason": ...}`` (optional, at most 200 characters).

    Raises:
        InvalidRequestError: the reason is not a string of 1 to 200 characters.
    """
    return validated(_CloseBody, payload).reason


class _ProxyEvent(_Input):
    jti: Annotated[StrictStr, Field(max_length=512)] = ""
    task_id: Annotated[StrictStr, Field(max_length=512)] = ""
    agent_id: Annotated[StrictStr, Field(max_length=512)] = ""
    route: Annotated[StrictStr, Field(max_length=512)] = ""
    method: Annotated[StrictStr, Field(max_length=512)] = ""
    path: Annotated[StrictStr, Field(max_length=512)] = ""
    status: StrictInt | None = None
    bytes_in: StrictInt | None = None
    bytes_out: StrictInt | None = None
    latency_ms: StrictInt | StrictFloat | None = None
    outcome: Literal["ok", "deny", "error"] = "ok"
    error: Annotated[StrictStr, Field(max_length=512)] = ""


class _ProxyBatch(_Input):
    events: Annotated[
        list[_ProxyEvent], Field(min_length=1, max_length=_MAX_PROXY_EVENTS)
    ]


def proxy_calls(payload: object) -> list[ProxyCall]:
    """
    Validate the proxy's ``{"events": [...]}`` batch (1 to 500 typed events).

    Raises:
        InvalidRequestError: the batch or an event is malformed.
    """
    if not isinstance(payload, Mapping) or set(payload) != {"events"}:
        raise InvalidRequestError('body must be {"events": [...]}')
    events = payload["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= _MAX_PROXY_EVENTS:
        raise InvalidRequestError(f"events must be a list of 1 to {_MAX_PROXY_EVENTS}")
    batch = validated(_ProxyBatch, payload)
    calls: list[ProxyCall] = []
    for event, raw in zip(batch.events, events, strict=True):
        sent = {name: value for name, value in raw.items() if value != ""}
        details = {name: getattr(event, name) for name in sent}
        calls.append(
            ProxyCall(
                outcome=Outcome(event.outcome),
                agent_id=event.agent_id,
                task_id=event.task_id,
                details=details,
            )
        )
    return calls
