"""
Typed identifiers with readable prefixes (``agt_…``, ``tsk_…``, ``lse_…``).

Identifiers are random (128 bits, base32 without padding, lower case) so that they
reveal nothing about order or volume, and are validated on every boundary.
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import NewType

__all__ = [
    "AgentId",
    "ApprovalId",
    "EventId",
    "LeaseId",
    "OperatorId",
    "TaskId",
    "TokenId",
    "is_id",
    "new_agent_id",
    "new_approval_id",
    "new_lease_id",
    "new_operator_id",
    "new_task_id",
    "new_token_id",
]

AgentId = NewType("AgentId", str)
TaskId = NewType("TaskId", str)
LeaseId = NewType("LeaseId", str)
TokenId = NewType("TokenId", str)
EventId = NewType("EventId", int)
OperatorId = NewType("OperatorId", str)
ApprovalId = NewType("ApprovalId", str)

_BODY = re.compile(r"^[a-z2-7]{26}$")


def _random_body() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def new_agent_id() -> AgentId:
    """Return a fresh agent id."""
    return AgentId(f"agt_{_random_body()}")


def new_task_id() -> TaskId:
    """Return a fresh task id."""
    return TaskId(f"tsk_{_random_body()}")


def new_lease_id() -> LeaseId:
    """Return a fresh lease id."""
    return LeaseId(f"lse_{_random_body()}")


def new_operator_id() -> OperatorId:
    """Return a fresh operator id."""
    return OperatorId(f"opr_{_random_body()}")


def new_approval_id() -> ApprovalId:
    """Return a fresh approval id."""
    return ApprovalId(f"apr_{_random_body()}")


def new_token_id() -> TokenId:
    """Return a fresh token id (a JWT ``jti``)."""
    return TokenId(_random_body())


def is_id(value: object, prefix: str) -> bool:
    """
    Tell whether ``value`` is a well-formed id with the given prefix.

    Args:
        value: anything received from outside.
        prefix: ``"agt"``, ``"tsk"`` or ``"lse"``.

    Returns:
        True when the value has the prefix and a 26-character random body.
    """
    if not isinstance(value, str) or not value.startswith(f"{prefix}_"):
        return False
    return _BODY.match(value[len(prefix) + 1 :]) is not None
