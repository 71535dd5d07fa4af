"""
Reading the console's filters and cursors from a query string, strictly.

Empty fields mean "any" (an HTML form sends every field); anything else must be
well formed or the page answers ``400 invalid_request`` naming the field, never
echoing the value.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from starlette.datastructures import QueryParams

from gatepass.audit import Outcome
from gatepass.broker import AuditFilter, LeaseFilter, TaskFilter
from gatepass.errors import InvalidRequestError
from gatepass.models import LeaseState, TaskState

__all__ = [
    "audit_query",
    "cursor_of",
    "lease_query",
    "reason_of",
    "task_query",
    "text_field",
]

_WORD: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,254}$")
_KIND: Final = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_MAX_REASON: Final = 500
PAGE: Final = 50


def text_field(params: QueryParams | dict[str, str], name: str) -> str | None:
    """
    Return a word-like field (an id, a name, a label), or None when empty.

    Raises:
        InvalidRequestError: it is repeated, too long, or holds other characters.
    """
    if isinstance(params, QueryParams) and len(params.getlist(name)) > 1:
        raise InvalidRequestError(f"{name} is repeated")
    value = (params.get(name) or "").strip()
    if not value:
        return None
    if _WORD.match(value) is None:
        raise InvalidRequestError(f"{name} is not a valid value")
    return value


def _choice(params: QueryParams, name: str, allowed: set[str]) -> str | None:
    value = text_field(params, name)
    if value is not None and value not in allowed:
        raise InvalidRequestError(f"{name} must be one of {', '.join(sorted(allowed))}")
    return value


def cursor_of(params: QueryParams) -> tuple[dt.datetime, str] | None:
    """
    Return a keyset cursor ``before=<iso time>~<id>``, or None.

    Raises:
        InvalidRequestError: it is malformed.
    """
    raw = (params.get("before") or "").strip()
    if not raw:
        return None
    at, _, last = raw.partition("~")
    try:
        moment = dt.datetime.fromisoformat(at)
    except ValueError:
        raise InvalidRequestError("before is not a valid cursor") from None
    if moment.tzinfo is None or _WORD.match(last) is None:
        raise InvalidRequestError("before is not a valid cursor")
    return moment, last


def cursor(at: dt.datetime, last_id: str) -> str:
    """Return the cursor that continues after a row."""
    return f"{at.astimezone(dt.UTC).isoformat()}~{last_id}"


def task_query(params: QueryParams) -> TaskFilter:
    """Return the tasks list's filters."""
    return TaskFilter(
        agent_id=text_field(params, "agent"),
        tenant=text_field(params, "tenant"),
        state=_choice(params, "state", {s.value for s in TaskState}),
        purpose=text_field(params, "purpose"),
        before=cursor_of(params),
        limit=PAGE,
    )


def lease_query(params: QueryParams) -> LeaseFilter:
    """Return the leases list's filters."""
    return LeaseFilter(
        target=text_field(params, "target"),
        kind=text_field(params, "kind"),
        state=_choice(params, "state", {s.value for s in LeaseState}),
        task_id=text_field(params, "task"),
        before=cursor_of(params),
        limit=PAGE,
    )


def _moment(params: QueryParams, name: str) -> dt.datetime | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequestError(f"{name} is not a time (YYYY-MM-DDTHH:MM)") from None
    # A datetime-local field has no zone: the console shows and reads UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def audit_query(
    params: QueryParams,
) -> tuple[AuditFilter, int | None, dt.datetime | None]:
    """
    Return the audit explorer's filters, its ``before`` seq and ``until`` time.

    Raises:
        InvalidRequestError: a field is malformed.
    """
    kind = (params.get("kind") or "").strip() or None
    if kind is not None and _KIND.match(kind) is None:
        raise InvalidRequestError("kind must look like task or task.open")
    outcome = _choice(params, "outcome", {o.value for o in Outcome})
    raw_before = (params.get("before") or "").strip()
    if raw_before and (not raw_before.isdigit() or len(raw_before) > 18):
        raise InvalidRequestError("before must be a sequence number")
    match = AuditFilter(
        agent=text_field(params, "agent"),
        task=text_field(params, "task"),
        kind=kind,
        outcome=None if outcome is None else Outcome(outcome),
        since=_moment(params, "since"),
    )
    return match, int(raw_before) if raw_before else None, _moment(params, "until")


def reason_of(form: dict[str, str]) -> str:
    """
    Return an action's reason: required, one to 500 characters.

    Raises:
        InvalidRequestError: it is empty or too long.
    """
    reason = form.get("reason", "").strip()
    if not reason or len(reason) > _MAX_REASON:
        raise InvalidRequestError(f"give a reason of 1 to {_MAX_REASON} characters")
    return reason
