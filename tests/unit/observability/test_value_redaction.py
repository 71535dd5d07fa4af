"""Log lines are scrubbed of registered secret values, whatever logs them."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from gatepass.observability import (
    configure_logging,
    forget_redacted_values,
    get_logger,
    redact_values,
)

SECRET = "q-secret-Value-0042"
CHATTY = ("httpx", "httpcore", "uvicorn.access")
TOUCHED = ("uvicorn", "uvicorn.error", *CHATTY)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Restore the loggers, structlog and the registered values after a test."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).propagate,
            logging.getLogger(name).level,
        )
        for name in TOUCHED
    }
    yield
    forget_redacted_values()
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)
    structlog.reset_defaults()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Return the captured stdout lines, parsed as JSON."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _fail() -> None:
    raise ValueError(SECRET)


class TestValueRedaction:
    """Issue 7 item 3: scrub by value, not by parameter name."""

    def test_issue7_3_any_library_record_is_scrubbed_by_value(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A stdlib record of any logger loses the value, wherever it appears."""
        configure_logging("info")
        redact_values([SECRET])
        logging.getLogger("some.library").warning(
            "GET https://api.example/v1?page=2&weird=%s", SECRET
        )
        [line] = lines(capsys)
        assert SECRET not in json.dumps(line)
        assert line["event"] == "GET https://api.example/v1?page=2&weird=[redacted]"

    def test_structlog_events_and_tracebacks_are_scrubbed(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Nested values, messages and exception text lose the value too."""
        configure_logging("info")
        redact_values([SECRET])
        log = get_logger("gatepass.test")
        log.info("calling", upstream={"url": f"https://u/?x={SECRET}"})
        try:
            _fail()
        except ValueError:
            log.exception("failed")
        text = capsys.readouterr().out
        assert SECRET not in text
        assert text.count("[redacted]") >= 2

    def test_case_insensitive_values(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Values registered to ignore case (hex, escapes) match in any case."""
        configure_logging("info")
        redact_values([SECRET.encode().hex()], ignore_case=True)
        logging.getLogger("x").warning("dump %s", SECRET.encode().hex().upper())
        assert lines(capsys)[0]["event"] == "dump [redacted]"

    def test_longest_value_is_redacted_whole(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A value containing another is redacted in one piece."""
        configure_logging("info")
        redact_values([SECRET, SECRET + "-longer"])
        logging.getLogger("x").warning("%s-longer!", SECRET)
        assert lines(capsys)[0]["event"] == "[redacted]!"

    def test_issue7_3_request_loggers_quiet_at_info(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """httpx, httpcore and uvicorn.access say nothing below warning at info."""
        configure_logging("info", quiet_libraries=True)
        for name in CHATTY:
            logging.getLogger(name).info("HTTP Request: GET https://u/?key=1")
        logging.getLogger("gatepass.proxy").info("kept")
        assert [line["event"] for line in lines(capsys)] == ["kept"]

    def test_issue7_3_request_loggers_speak_at_debug_scrubbed(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """At debug they log again, and the registered values are scrubbed."""
        configure_logging("info", quiet_libraries=True)
        configure_logging("debug", quiet_libraries=True)
        redact_values([SECRET])
        logging.getLogger("httpx").info("HTTP Request: GET https://u/?key=%s", SECRET)
        [line] = lines(capsys)
        assert line["event"] == "HTTP Request: GET https://u/?key=[redacted]"

    def test_forgetting_values(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Forgotten values are logged as they are (for tests only)."""
        configure_logging("info")
        redact_values(["not-secret-anymore"])
        forget_redacted_values()
        logging.getLogger("x").warning("not-secret-anymore")
        assert lines(capsys)[0]["event"] == "not-secret-anymore"
