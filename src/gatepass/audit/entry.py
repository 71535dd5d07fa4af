"""
What happened: the audit entry a use case writes, with secrets scrubbed out.

Scrubbing rule (the same one :func:`scrub` documents):

* a key whose name contains, case-insensitively, ``secret``, ``password``,
  ``passwd``, ``token``, ``authorization``, ``assertion``, ``proof``, ``private``,
  ``credential``, ``cookie``, ``api_key``, ``api-key`` or ``apikey`` has its value
  replaced by ``"[redacted]"``, whatever the value's type;
* except keys ending in ``_hash``, ``_id`` or ``_type`` and the keys ``token_type``
  and ``jti``, which name non-secret references (DESIGN ground rule 9: lease ids
  and hashes only);
* any string that contains something shaped like a compact JWT (three base64url
  segments, the first starting ``eyJ``) is replaced by ``"[redacted]"``, wherever
  it appears: under any key, in lists, at any depth, and even as a key.

Name fields accordingly: ``tokens_issued`` would be redacted, ``issued_count`` not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gatepass.audit.canonical import canonical_bytes

__all__ = ["OUTCOMES", "REDACTED", "AuditEntry", "Outcome", "looks_like_jwt", "scrub"]

REDACTED: Final = "[redacted]"


class Outcome(enum.StrEnum):
    """
    How an audited event ended.

    ``allow`` and ``deny`` are decisions (a policy, an approval, a check said yes or
    no); ``ok`` and ``error`` are actions (a task closed, a revocation confirmed, or
    a failure on the broker's side).
    """

    ALLOW = "allow"
    DENY = "deny"
    OK = "ok"
    ERROR = "error"


OUTCOMES: Final = frozenset(outcome.value for outcome in Outcome)

_SECRET_KEY = re.compile(
    r"secret|password|passwd|token|authorization|assertion|proof|private"
    r"|credential|cookie|api[_-]?key",
    re.IGNORECASE,
)
_SAFE_SUFFIXES = ("_hash", "_id", "_type")
_SAFE_KEYS = frozenset({"token_type", "jti"})
# RFC 7519 §3: a compact JWS is three base64url segments; the header is a JSON
# object, so its encoding starts "eyJ". The signature may be empty (alg "none").
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


def looks_like_jwt(text: str) -> bool:
    """
    Tell whether ``text`` contains something shaped like a compact JWT.

    Args:
        text: any string.
    """
    return _JWT.search(text) is not None


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered in _SAFE_KEYS or lowered.endswith(_SAFE_SUFFIXES):
        return False
    return _SECRET_KEY.search(key) is not None


def _scrub_value(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    if isinstance(value, Mapping):
        return scrub(value)
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    if isinstance(value, str) and looks_like_jwt(value):
        return REDACTED
    return value


def scrub(data: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return a deep copy of ``data`` with secret-looking keys and JWTs redacted.

    The rule: a key containing (case-insensitively) secret, password, passwd, token,
    authorization, assertion, proof, private, credential, cookie, api_key, api-key or
    apikey gets the value ``"[redacted]"``, unless it ends in ``_hash``, ``_id`` or
    ``_type`` or is ``token_type`` or ``jti``. Any string containing a compact-JWT
    shape is replaced by ``"[redacted]"`` wherever it appears, keys included.
    Mappings become dicts and tuples become lists, so the result is plain JSON data.
    Scrubbing is idempotent.

    Args:
        data: a JSON-compatible mapping.

    Returns:
        A new dict; ``data`` is not modified.
    """
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        # str() so that a non-string key reaches the clear TypeError of AuditEntry.
        if looks_like_jwt(str(key)):
            cleaned[REDACTED] = REDACTED
        elif _is_secret_key(str(key)):
            cleaned[key] = REDACTED
        else:
            cleaned[key] = _scrub_value(value)
    return cleaned


def _require_json(value: Any, path: str) -> None:  # noqa: ANN401 - any value
    if value is None or isinstance(value, str | int | float):
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _require_json(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit data key at {path} is not a string")
            _require_json(item, f"{path}.{key}")
        return
    raise TypeError(f"audit data at {path} is not json: {type(value).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """
    One thing that happened, before it is chained into the log.

    Construction normalizes ``at`` to UTC and runs :func:`scrub` on ``data``, so an
    entry can never carry a secret-looking field into the log.

    Args:
        at: when it happened; aware, stored in UTC.
        kind: dotted event name such as ``task.open`` or ``credential.issue``.
        outcome: ``allow``, ``deny``, ``error`` or ``ok``.
        actor: an agent id, ``admin:<token id>`` or ``system``.
        subject: the task, lease or agent id acted on, or ``""``.
        data: JSON-compatible details: reasons, policy ids, target, error code.

    Raises:
        ValueError: ``at`` is naive, ``kind`` is not dotted, ``outcome`` is unknown,
            ``actor`` is empty, or ``data`` holds NaN or an unencodable string.
        TypeError: ``data`` holds a value JSON cannot represent.
    """

    at: dt.datetime
    kind: str
    outcome: str
    actor: str
    subject: str = ""
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the fields, normalize the time and scrub the data."""
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("audit entry time must be timezone-aware")
        if not _KIND.fullmatch(self.kind):
            raise ValueError(
                f"audit kind {self.kind!r} is not a dotted lower-case name"
            )
        if self.outcome not in OUTCOMES:
            raise ValueError(
                f"audit outcome {self.outcome!r} is not one of {sorted(OUTCOMES)}"
            )
        if not self.actor:
            raise ValueError("audit actor must not be empty")
        cleaned = scrub(self.data)
        _require_json(cleaned, "data")
        canonical_bytes(
            cleaned
        )  # Refuse NaN and unpaired surrogates now, not at chain time.
        object.__setattr__(self, "at", self.at.astimezone(dt.UTC))
        object.__setattr__(self, "data", cleaned)
