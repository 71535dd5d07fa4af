"""
Structured logging: JSON lines on stdout, with secrets dropped at the one render point.

Both structlog events and stdlib records (uvicorn, libraries) go through the same
:class:`structlog.stdlib.ProcessorFormatter`, so every line has the same shape::

    {"event": "task.opened", "level": "info", "logger": "gatepass.broker",
     "timestamp": "2026-01-01T00:00:00.000000Z", "task_id": "tsk_..."}

:func:`drop_secrets` runs last before rendering, on every line from every source
(CONVENTIONS §8, DESIGN ground rule 9). It is a backstop, not a licence: code still
logs ids and hashes, never credentials.

Names and shapes are not enough when a library logs a value it was handed (httpx
logs every URL it calls, ``?key=...`` included): a component that holds secrets
registers their values with :func:`redact_values`, and every string of every line
is then scrubbed of them, whatever the key or the logger. With
``quiet_libraries=True``, library loggers that log each request (httpx, httpcore,
uvicorn.access) stay at ``warning`` unless the level is ``debug``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from gatepass.errors import ConfigurationError

__all__ = [
    "configure_logging",
    "drop_secrets",
    "forget_redacted_values",
    "get_logger",
    "redact_values",
]

_REDACTED: Final = "[redacted]"
_HANDLER_NAME: Final = "gatepass"
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# Loggers that install their own handlers; they are routed to the root handler.
_FOREIGN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Loggers that write a line per request (with its URL) at info: quiet below debug.
_CHATTY_LOGGERS: Final = ("httpx", "httpcore", "aiohttp", "uvicorn.access")

_SENSITIVE_NAMES = (
    r"secret|password|passwd|token|authorization|assertion|proof|cookie|private"
    r"|api[_-]?key"
)
_SECRET_KEY = re.compile(_SENSITIVE_NAMES, re.IGNORECASE)
_SAFE_SUFFIXES = ("_hash", "_id")
_SAFE_KEYS = frozenset({"token_type", "jti"})
# RFC 7519 §3: a compact JWS is three base64url segments with a JSON header ("eyJ").
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# "access_token=abc" in a query string or a message, and "Bearer abc" in a header dump.
_ASSIGNMENT = re.compile(
    rf"([A-Za-z0-9_.-]*(?:{_SENSITIVE_NAMES})[A-Za-z0-9_.-]*)=([^&\s\"',;]+)",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"\b(bearer|dpop|basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class _ValueRedactor:
    """The secret values registered by their owners, as two compiled patterns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exact: set[str] = set()
        self._folded: set[str] = set()
        self._patterns: tuple[re.Pattern[str], ...] = ()

    def add(self, values: Iterable[str], *, ignore_case: bool) -> None:
        with self._lock:
            (self._folded if ignore_case else self._exact).update(
                value for value in values if value
            )
            self._patterns = tuple(
                _alternation(values, flags)
                for values, flags in (
                    (self._exact, 0),
                    (self._folded, re.IGNORECASE),
                )
                if values
            )

    def clear(self) -> None:
        with self._lock:
            self._exact.clear()
            self._folded.clear()
            self._patterns = ()

    def scrub(self, text: str) -> str:
        # One read of the tuple: a concurrent add() replaces it whole.
        for pattern in self._patterns:
            text = pattern.sub(_REDACTED, text)
        return text


def _alternation(values: set[str], flags: int) -> re.Pattern[str]:
    # Longest first, so a value that contains another is redacted whole.
    ordered = sorted(values, key=lambda value: (-len(value), value))
    return re.compile("|".join(re.escape(value) for value in ordered), flags)


_VALUES = _ValueRedactor()


def redact_values(values: Iterable[str], *, ignore_case: bool = False) -> None:
    """
    Scrub these exact values from every log line from now on.

    For a component that knows its secrets (the proxy registers every spelling of
    each route's secret): the values are replaced by ``[redacted]`` wherever they
    occur in any string of any structlog event or stdlib record, messages and
    tracebacks included.

    Args:
        values: the values, such as a secret and its encoded forms.
        ignore_case: match in any letter case (for hex and percent-encodings).
    """
    _VALUES.add(values, ignore_case=ignore_case)


def forget_redacted_values() -> None:
    """Forget every value registered with :func:`redact_values` (for tests)."""
    _VALUES.clear()


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered in _SAFE_KEYS or lowered.endswith(_SAFE_SUFFIXES):
        return False
    return _SECRET_KEY.search(key) is not None


def _scrub_text(text: str) -> str:
    text = _VALUES.scrub(text)
    text = _JWT.sub(_REDACTED, text)
    text = _ASSIGNMENT.sub(lambda match: f"{match[1]}={_REDACTED}", text)
    return _SCHEME.sub(lambda match: f"{match[1]} {_REDACTED}", text)


def _scrub(value: Any) -> Any:  # noqa: ANN401 - any logged value
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: _REDACTED if _is_secret_key(str(key)) else _scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    return value


def drop_secrets(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """
    Redact secret-looking keys, token-looking text and registered values.

    Every string loses the values registered with :func:`redact_values`. At any
    depth, the value of a key containing (case-insensitively) secret,
    password, passwd, token, authorization, assertion, proof, cookie, private or
    api_key becomes ``"[redacted]"``, except keys ending in ``_hash`` or ``_id`` and
    ``token_type`` and ``jti``. In every string, compact JWTs, ``name=value`` pairs
    whose name is secret-looking (query strings) and ``Bearer``/``DPoP``/``Basic``
    credentials are replaced by ``[redacted]``. Nested containers are copied, never
    modified in place.

    Args:
        logger: the wrapped logger (unused).
        method_name: the log method's name (unused).
        event_dict: the event being rendered.

    Returns:
        The scrubbed event dict.
    """
    del logger, method_name
    for key, value in list(event_dict.items()):
        event_dict[key] = _REDACTED if _is_secret_key(key) else _scrub(value)
    return event_dict


class _Stdout:
    """Write to whatever ``sys.stdout`` is at the time, so redirection is honoured."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure_logging(
    level: str = "info", *, json: bool = True, quiet_libraries: bool = False
) -> None:
    """
    Send structlog and stdlib logging to stdout as JSON lines (or console text).

    Each line carries ``timestamp`` (ISO 8601 UTC), ``level``, ``event`` and
    ``logger``. uvicorn's loggers lose their own handlers and propagate to the root
    handler, so run uvicorn with ``log_config=None``. Calling this again replaces
    the previous configuration: it never adds a second handler.

    Args:
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        json: JSON lines when true, aligned console text (no colours) otherwise.
        quiet_libraries: hold the loggers that write a line per request (httpx,
            httpcore, uvicorn.access) at ``warning`` unless ``level`` is ``debug``;
            when false they follow ``level`` like every other logger.

    Raises:
        ConfigurationError: ``level`` is not a known level name.
    """
    numeric = _LEVELS.get(level.lower())
    if numeric is None:
        raise ConfigurationError(f"unknown log level {level!r}")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before drop_secrets, so they are scrubbed too.
            structlog.processors.format_exc_info,
            drop_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(_Stdout())
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
    quiet = quiet_libraries and numeric > logging.DEBUG
    for name in _CHATTY_LOGGERS:
        # NOTSET defers to the root level.
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """
    Return a structlog logger named ``name`` (use the module's ``__name__``).

    Args:
        name: the logger name, rendered as ``logger``.
    """
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
