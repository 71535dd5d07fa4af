import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from gatepass.errors import ConfigurationError
from gatepass.observability import configure_logging, drop_secrets, get_logger

JWT = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJhZ3RfMSIsImF1ZCI6Im9yZGVycyJ9"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)
OPAQUE = "opaque-secret-value-42"
R = "[redacted]"


FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Restore the root and uvicorn loggers and structlog's defaults after a test."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).propagate,
        )
        for name in FOREIGN_LOGGERS
    }
    yield
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for name, (handlers, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate = propagate
    structlog.reset_defaults()


def fail_with_token() -> None:
    """Raise an error whose message carries a JWT."""
    raise ValueError(f"bad assertion {JWT}")


def scrub(**event: Any) -> dict[str, Any]:
    """Run drop_secrets over an event built from keyword arguments."""
    return dict(drop_secrets(None, "info", event))


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Return the captured stdout lines, parsed as JSON."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


class TestDropSecrets:
    """drop_secrets() redacts secret keys and token-shaped text."""

    @pytest.mark.parametrize(
        "key",
        [
            "token",
            "access_token",
            "refresh_token",
            "secret",
            "client_secret",
            "password",
            "Authorization",
            "client_assertion",
            "dpop_proof",
            "cookie",
            "set_cookie",
            "private_key",
            "api_key",
        ],
    )
    def test_redacts_secret_keys(self, key: str) -> None:
        """Any key naming a secret is redacted, whatever its value."""
        assert scrub(**{key: OPAQUE}) == {key: R}

    @pytest.mark.parametrize(
        "key", ["token_hash", "lease_id", "token_id", "token_type", "jti", "event"]
    )
    def test_keeps_reference_keys(self, key: str) -> None:
        """Hashes, ids, token_type and jti are logged as they are."""
        assert scrub(**{key: "abc"}) == {key: "abc"}

    def test_redacts_nested_dicts_and_lists(self) -> None:
        """Secret keys are redacted at any depth, through lists too."""
        event = scrub(
            request={"headers": {"Authorization": OPAQUE, "accept": "json"}},
            items=[{"password": OPAQUE}, ("ok", {"token": OPAQUE})],
        )
        assert event == {
            "request": {"headers": {"Authorization": R, "accept": "json"}},
            "items": [{"password": R}, ["ok", {"token": R}]],
        }

    def test_does_not_modify_nested_input(self) -> None:
        """The caller's nested objects are copied, not edited."""
        headers = {"authorization": OPAQUE}
        scrub(headers=headers)
        assert headers == {"authorization": OPAQUE}

    def test_redacts_jwts_inside_any_string(self) -> None:
        """A JWT is cut out of messages and values under innocent keys."""
        event = scrub(event=f"verified {JWT} ok", note=[JWT], deep={"x": JWT})
        assert event == {"event": f"verified {R} ok", "note": [R], "deep": {"x": R}}

    def test_redacts_query_string_secrets_and_auth_schemes(self) -> None:
        """Secret query parameters and Bearer/DPoP credentials are cut out of text."""
        event = scrub(
            event=f"GET /cb?code=1&access_token={OPAQUE}&state=2",
            header=f"Bearer {OPAQUE}",
            other=f"DPoP {OPAQUE}",
        )
        assert event == {
            "event": f"GET /cb?code=1&access_token={R}&state=2",
            "header": f"Bearer {R}",
            "other": f"DPoP {R}",
        }

    def test_leaves_other_values_alone(self) -> None:
        """Numbers, booleans and ordinary text pass through."""
        event = {"event": "lease.revoked", "count": 3, "ok": True, "ratio": 0.5}
        assert scrub(**event) == event


class TestConfigureLogging:
    """configure_logging() prints scrubbed JSON lines to stdout."""

    def test_writes_json_lines_with_standard_keys(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Each event is one JSON object with timestamp, level, event and logger."""
        configure_logging()
        get_logger("gatepass.test").info("task.opened", task_id="tsk_1")
        (line,) = lines(capsys)
        assert line["event"] == "task.opened"
        assert line["level"] == "info"
        assert line["logger"] == "gatepass.test"
        assert line["task_id"] == "tsk_1"
        assert line["timestamp"].endswith("Z")

    def test_never_prints_a_token(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Tokens passed as fields, nested or in the message are never printed."""
        configure_logging("debug")
        get_logger("gatepass.test").info(
            f"exchanged {JWT}",
            token=OPAQUE,
            subject_token=JWT,
            context={"headers": {"authorization": f"DPoP {OPAQUE}"}},
            token_type="urn:ietf:params:oauth:token-type:jwt",
        )
        out = capsys.readouterr().out
        assert OPAQUE not in out
        assert JWT not in out
        assert "urn:ietf:params:oauth:token-type:jwt" in out

    def test_exception_tracebacks_are_scrubbed(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A token inside an exception message does not reach the output."""
        configure_logging()
        log = get_logger("gatepass.test")
        try:
            fail_with_token()
        except ValueError:
            log.exception("verify.failed")
        (line,) = lines(capsys)
        assert "ValueError" in line["exception"]
        assert JWT not in line["exception"]

    def test_routes_stdlib_logging_through_the_same_renderer(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Stdlib records from uvicorn come out as scrubbed JSON lines too."""
        configure_logging()
        access = logging.getLogger("uvicorn.access")
        access.addHandler(logging.NullHandler())
        configure_logging()
        access.info("%s %s", "GET", f"/v1/x?token={OPAQUE}")
        (line,) = lines(capsys)
        assert line["logger"] == "uvicorn.access"
        assert line["level"] == "info"
        assert line["event"] == f"GET /v1/x?token={R}"
        assert access.handlers == []
        assert access.propagate is True

    def test_filters_by_level(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Events below the configured level are dropped."""
        configure_logging("warning")
        log = get_logger("gatepass.test")
        log.info("quiet")
        log.warning("loud")
        assert [line["event"] for line in lines(capsys)] == ["loud"]

    def test_is_idempotent(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Configuring twice still prints each event once."""
        configure_logging()
        configure_logging()
        get_logger("gatepass.test").info("once")
        assert len(lines(capsys)) == 1
        names = [handler.get_name() for handler in logging.getLogger().handlers]
        assert names.count("gatepass") == 1

    def test_console_mode_is_scrubbed_too(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The human-readable renderer gets the same redaction."""
        configure_logging(json=False)
        get_logger("gatepass.test").info("hello", token=OPAQUE)
        out = capsys.readouterr().out
        assert "hello" in out
        assert f"token={R}" in out
        assert OPAQUE not in out

    def test_rejects_unknown_level(self) -> None:
        """An unknown level name is a configuration error."""
        with pytest.raises(ConfigurationError, match="unknown log level 'loud'"):
            configure_logging("loud")
