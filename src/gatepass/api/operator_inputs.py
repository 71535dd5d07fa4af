"""
JSON bodies and queries of the operator and API-token routes (``/v1/admin/``).

The same way as ``api/inputs.py``: a frozen pydantic model per body, validated
with :func:`~gatepass.api.inputs.validated` into the broker's typed requests. The
broker checks the rules across fields again (an approver needs a group and a
tenant), so every face shares them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    field_validator,
)

from gatepass.api.inputs import name_list, validated
from gatepass.broker import OperatorRegistration, ServiceTokenRequest
from gatepass.models import AgentStatus, ApiRole, OperatorRole

__all__ = [
    "OperatorQuery",
    "operator_registration",
    "operator_token_description",
    "service_token_request",
]

_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_MAX_MEMBERSHIPS = 64
_MAX_DESCRIPTION = 200


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_of(values: set[str], field: str) -> str:
    return f"{field} must be one of {', '.join(sorted(values))}"


def _status(value: object) -> object:
    known = {status.value for status in AgentStatus}
    if value is not None and value not in known:
        raise ValueError(_one_of(known, "status"))
    return value


class OperatorQuery(BaseModel):
    """``GET /v1/admin/operators?status=``."""

    # Query strings tolerate parameters they do not know (caches, tracing).
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Annotated[AgentStatus | None, BeforeValidator(_status)] = None


class _OperatorBody(_Input):
    name: StrictStr
    roles: list[OperatorRole]
    groups: list[StrictStr] = Field(default_factory=list)
    tenants: list[StrictStr] = Field(default_factory=list)
    description: Annotated[StrictStr, Field(max_length=_MAX_DESCRIPTION)] = ""

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: object) -> object:
        if not isinstance(value, str) or re.match(_NAME, value) is None:
            raise ValueError("name must match [a-z0-9][a-z0-9._-]{0,63}")
        return value

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, value: object) -> object:
        known = {role.value for role in OperatorRole}
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(role, str) and role in known for role in value)
        ):
            raise ValueError(
                f"roles must be a non-empty list of {', '.join(sorted(known))}"
            )
        return value

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, value: object) -> object:
        return name_list(value, "groups", maximum=_MAX_MEMBERSHIPS)

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenants(cls, value: object) -> object:
        return name_list(value, "tenants", maximum=_MAX_MEMBERSHIPS, wildcard=True)

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: object) -> object:
        return _description_text(value, required=False)


def _description_text(value: object, *, required: bool) -> object:
    """Check a description: at most 200 characters (and at least 1 if required)."""
    low = 1 if required else 0
    if not isinstance(value, str) or not low <= len(value) <= _MAX_DESCRIPTION:
        raise ValueError(
            f"description must be a string of {low} to {_MAX_DESCRIPTION} characters"
        )
    return value


def operator_registration(payload: object) -> OperatorRegistration:
    """
    Validate ``{"name", "roles", "groups"?, "tenants"?, "description"?}``.

    Raises:
        InvalidRequestError: a field is missing or malformed (the broker then
            checks the rules across fields: an approver needs a group and a tenant).
    """
    body = validated(_OperatorBody, payload)
    return OperatorRegistration(
        name=body.name,
        roles=frozenset(body.roles),
        groups=frozenset(body.groups),
        tenants=frozenset(body.tenants),
        description=body.description,
    )


class _TokenBody(_Input):
    description: StrictStr = ""

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: object) -> object:
        return _description_text(value, required=False)


def operator_token_description(payload: object) -> str:
    """
    Validate an operator token request, ``{"description"?}``.

    Raises:
        InvalidRequestError: the description is not text of at most 200 characters.
    """
    return validated(_TokenBody, payload).description


_SERVICE_ROLES = frozenset(
    {ApiRole.ADMIN.value, ApiRole.INTROSPECT.value, ApiRole.PROXY.value}
)


class _ServiceTokenBody(_Input):
    role: StrictStr
    description: StrictStr

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: object) -> object:
        if value not in _SERVICE_ROLES:
            raise ValueError(_one_of(set(_SERVICE_ROLES), "role"))
        return value

    @field_validator("description", mode="before")
    @classmethod
    def _description(cls, value: object) -> object:
        return _description_text(value, required=True)


def service_token_request(payload: object) -> ServiceTokenRequest:
    """
    Validate ``{"role": "introspect" | "proxy" | "admin", "description"}``.

    Raises:
        InvalidRequestError: a field is missing or malformed.
    """
    body = validated(_ServiceTokenBody, payload)
    return ServiceTokenRequest(role=ApiRole(body.role), description=body.description)
