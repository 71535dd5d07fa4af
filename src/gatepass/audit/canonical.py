"""
The byte encoding that defines the audit hash chain, and the timestamp format it uses.

Every record hash and every checkpoint signature is computed over
:func:`canonical_bytes`. Changing this encoding (or :func:`format_timestamp`) in any
way, even one that produces "equivalent" JSON, makes every existing log fail to verify.
Treat both as frozen wire formats.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

__all__ = ["canonical_bytes", "format_timestamp", "parse_timestamp"]

_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"
)


def canonical_bytes(obj: Any) -> bytes:  # noqa: ANN401 - any JSON value is accepted
    """
    Return the canonical JSON encoding of ``obj``: the input to every audit hash.

    The encoding is Python's ``json`` with sorted keys, no whitespace
    (``","`` and ``":"`` separators), ``ensure_ascii=False``, NaN and infinities
    refused, encoded as UTF-8. It is deliberately simple rather than RFC 8785 (JCS):
    a verifier in another language must reproduce Python's float formatting and
    code-point key order, so audit data should prefer strings, integers and
    booleans.

    This function must never change: it defines the chain, and any change breaks the
    verification of every log already written.

    Args:
        obj: a JSON-compatible value (dicts with string keys, lists, strings, finite
            numbers, booleans, ``None``).

    Returns:
        The UTF-8 bytes of the canonical JSON text.

    Raises:
        TypeError: ``obj`` holds a value JSON cannot represent.
        ValueError: ``obj`` holds NaN, an infinity or an unpaired surrogate.
    """
    text = json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return text.encode("utf-8")


def format_timestamp(moment: dt.datetime) -> str:
    """
    Return ``moment`` as RFC 3339 UTC with microseconds and a ``Z`` suffix.

    The format is fixed (``2026-01-01T00:00:00.000000Z``) because it is hashed; a
    store must therefore keep audit times to the microsecond.

    Args:
        moment: an aware datetime, in any zone.

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    utc = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str) -> dt.datetime:
    """
    Parse a timestamp written by :func:`format_timestamp`, and only that form.

    Args:
        text: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Returns:
        An aware UTC datetime.

    Raises:
        ValueError: ``text`` is not in exactly that form.
    """
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError("timestamp is not rfc 3339 utc with microseconds and z")
    return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)
