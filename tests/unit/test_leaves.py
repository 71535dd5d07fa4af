"""The leaves: error table, ids, Secret, sealing, clock."""

from __future__ import annotations

import datetime as dt
import os
import pickle
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gatepass import errors
from gatepass.clock import FrozenClock, SystemClock, to_epoch
from gatepass.ids import is_id, new_agent_id, new_lease_id, new_task_id, new_token_id
from gatepass.sealing import MASTER_KEY_ENV, Sealer, load_sealer
from gatepass.secret import Secret, token_hash


class TestErrorTable:
    """One table gives every surface its code, status and exit code."""

    def test_every_error_has_distinct_class_per_code(self) -> None:
        """error_for_code returns the most general class for each code."""
        assert errors.error_for_code("invalid_grant") is errors.InvalidGrantError
        assert errors.error_for_code("invalid_token") is errors.TokenError
        assert errors.error_for_code("no_such_code") is errors.GatepassError

    def test_statuses_and_exit_codes(self) -> None:
        """OAuth codes map to their HTTP status; configuration errors exit 78."""
        assert errors.InvalidClientError.http_status == 401
        assert errors.AccessDeniedError.http_status == 403
        assert errors.PayloadTooLargeError.http_status == 413
        assert errors.PayloadTooLargeError.code == "invalid_request"
        assert errors.ConfigurationError.exit_code == 78

    def test_detail_defaults_to_code(self) -> None:
        """An error without detail describes itself by its code."""
        assert errors.NotFoundError().detail == "not_found"
        nonce = errors.DPoPNonceRequiredError("fresh nonce needed", nonce="n1")
        assert nonce.nonce == "n1"
        assert nonce.code == "use_dpop_nonce"

    def test_all_is_sorted(self) -> None:
        """The public names are listed in sorted order."""
        assert errors.__all__ == sorted(errors.__all__)


class TestIds:
    """Ids are random, prefixed and validated."""

    def test_prefixes_and_validation(self) -> None:
        """Each generator yields a well-formed id of its kind."""
        assert is_id(new_agent_id(), "agt")
        assert is_id(new_task_id(), "tsk")
        assert is_id(new_lease_id(), "lse")
        assert not is_id(new_task_id(), "agt")
        assert not is_id("agt_short", "agt")
        assert not is_id(42, "agt")
        assert new_token_id() != new_token_id()


class TestSecret:
    """A Secret never shows its value."""

    def test_redacted(self) -> None:
        """repr, str and f-strings show a mask; reveal shows the value."""
        secret = Secret("hunter2")
        assert "hunter2" not in repr(secret)
        assert "hunter2" not in f"{secret}"
        assert secret.reveal() == "hunter2"

    def test_equality_and_hash(self) -> None:
        """Secrets compare by value and can key a dict."""
        assert Secret("a") == Secret("a")
        assert Secret("a") != Secret("b")
        assert Secret("a").__eq__("a") is NotImplemented
        assert {Secret("a"): 1}[Secret("a")] == 1

    def test_not_picklable(self) -> None:
        """Pickling a secret is refused."""
        with pytest.raises(TypeError):
            pickle.dumps(Secret("x"))

    def test_token_hash(self) -> None:
        """token_hash is the hex SHA-256."""
        assert token_hash("abc").startswith("ba7816bf")


class TestSealing:
    """Private keys are sealed under a master key kept outside the database."""

    def test_round_trip_and_rotation(self) -> None:
        """Data sealed under an old key opens after a new key is put in front."""
        old, new = Fernet.generate_key(), Fernet.generate_key()
        sealed = Sealer([old]).seal(b"private")
        assert Sealer([new, old]).unseal(sealed) == b"private"
        with pytest.raises(errors.ConfigurationError):
            Sealer([new]).unseal(sealed)

    def test_bad_keys(self) -> None:
        """No key or a malformed key is a configuration error."""
        with pytest.raises(errors.ConfigurationError):
            Sealer([])
        with pytest.raises(errors.ConfigurationError):
            Sealer([b"short"])

    def test_file_created_private(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On first start the key file is created with mode 0600 and reused."""
        monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
        path = tmp_path / "state" / "master.key"
        sealed = load_sealer(path).seal(b"x")
        assert path.stat().st_mode & 0o777 == 0o600
        assert load_sealer(path).unseal(sealed) == b"x"

    def test_file_readable_by_others_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A master key file others can read stops the start."""
        monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
        path = tmp_path / "master.key"
        path.write_bytes(Fernet.generate_key())
        os.chmod(path, 0o644)  # noqa: PTH101
        with pytest.raises(errors.ConfigurationError, match="chmod 600"):
            load_sealer(path)

    def test_missing_without_create(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without create, a missing key is a configuration error naming the env var."""
        monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
        with pytest.raises(errors.ConfigurationError, match=MASTER_KEY_ENV):
            load_sealer(tmp_path / "none.key", create=False)

    def test_environment_wins(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """GATEPASS_MASTER_KEY takes precedence and no file is written."""
        monkeypatch.setenv(MASTER_KEY_ENV, Fernet.generate_key().decode())
        load_sealer(tmp_path / "unused.key")
        assert not (tmp_path / "unused.key").exists()


class TestClock:
    """Clocks give aware UTC time."""

    def test_frozen_advances_only_when_told(self) -> None:
        """FrozenClock moves by seconds or timedeltas."""
        clock = FrozenClock()
        start = clock.now()
        clock.advance(5)
        clock.advance(dt.timedelta(seconds=5))
        assert clock.now() - start == dt.timedelta(seconds=10)
        assert to_epoch(start) == 1767225600

    def test_system_clock_is_aware(self) -> None:
        """The system clock is UTC-aware."""
        assert SystemClock().now().tzinfo is dt.UTC


class _Dial:
    """A hand-set reading for the wall and the elapsed clocks of a SystemClock."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


class TestSystemClockSteps:
    """Issue 7 item 16: a stepped wall clock does not move the broker's time."""

    def test_issue7_wall_clock_stepped_back_does_not_rewind(self) -> None:
        """Stepping the wall back an hour leaves now() advancing with real time."""
        wall, elapsed = _Dial(1_800_000_000.0), _Dial(100.0)
        clock = SystemClock(wall=wall, elapsed=elapsed)
        start = clock.now()
        wall.value -= 3600
        elapsed.value += 30
        assert clock.now() - start == dt.timedelta(seconds=30)
        assert clock.wall_offset() == pytest.approx(-3630)

    def test_issue7_wall_clock_stepped_forward_does_not_jump(self) -> None:
        """Stepping the wall forward an hour expires nothing early."""
        wall, elapsed = _Dial(1_800_000_000.0), _Dial(5.0)
        clock = SystemClock(wall=wall, elapsed=elapsed)
        start = clock.now()
        wall.value += 3600
        elapsed.value += 1
        assert clock.now() - start == dt.timedelta(seconds=1)
        assert clock.wall_offset() == pytest.approx(3599)

    def test_anchor_and_floor(self) -> None:
        """The clock starts at the anchor, never before the floor."""
        wall = _Dial(1_800_000_000.0)
        anchor = dt.datetime.fromtimestamp(1_800_000_010, dt.UTC)
        floor = dt.datetime.fromtimestamp(1_800_000_020, dt.UTC)
        assert SystemClock(anchor=anchor, wall=wall).now() >= anchor
        assert SystemClock(floor=floor, wall=wall, elapsed=_Dial(0)).now() == floor
        assert SystemClock(anchor=floor, floor=anchor, wall=wall).now() >= floor

    def test_real_clock_tracks_the_wall(self) -> None:
        """Unstepped, the system clock agrees with the wall clock."""
        assert abs(SystemClock().wall_offset()) < 1
