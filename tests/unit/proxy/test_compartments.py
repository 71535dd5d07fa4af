"""Tests for upstream authentication settings and secret compartments."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from pydantic import ValidationError

from gatepass.errors import ConfigurationError
from gatepass.proxy import Compartment, UpstreamAuth
from gatepass.secret import Secret

from .conftest import CANARY, CompartmentFactory, SecretFileFactory


def auth(**fields: Any) -> UpstreamAuth:
    """Build upstream auth settings from keyword fields."""
    return UpstreamAuth.model_validate(fields)


class TestUpstreamAuth:
    """The settings of each injection method are validated."""

    @pytest.mark.parametrize(
        "fields",
        [
            {"method": "header", "name": "X-API-Key", "secret_env": "KEY"},
            {"method": "bearer", "secret_file": "/run/secrets/key"},
            {"method": "basic", "username": "svc", "secret_env": "PASSWORD"},
            {"method": "query", "name": "api_key", "secret_env": "KEY"},
        ],
    )
    def test_valid_settings(self, fields: dict[str, Any]) -> None:
        """Each method accepts its own fields."""
        assert auth(**fields).method == fields["method"]

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"method": "header", "secret_env": "K"}, "needs a name"),
            ({"method": "query", "secret_env": "K"}, "needs a name"),
            ({"method": "header", "name": "X Key", "secret_env": "K"}, "header name"),
            ({"method": "header", "name": "X-K\r\n", "secret_env": "K"}, "header name"),
            ({"method": "header", "name": "Host", "secret_env": "K"}, "hop-by-hop"),
            (
                {"method": "header", "name": "Transfer-Encoding", "secret_env": "K"},
                "hop-by-hop",
            ),
            ({"method": "query", "name": "a&b", "secret_env": "K"}, "query parameter"),
            ({"method": "query", "name": "k=v", "secret_env": "K"}, "query parameter"),
            ({"method": "bearer", "name": "X", "secret_env": "K"}, "does not apply"),
            ({"method": "basic", "secret_env": "K"}, "needs a username"),
            (
                {"method": "basic", "username": "a:b", "secret_env": "K"},
                "without a colon",
            ),
            (
                {"method": "bearer", "username": "svc", "secret_env": "K"},
                "basic auth only",
            ),
            ({"method": "bearer"}, "exactly one"),
            (
                {"method": "bearer", "secret_env": "K", "secret_file": "/k"},
                "exactly one",
            ),
            ({"method": "bearer", "secret_env": "1BAD"}, "environment variable"),
            ({"method": "bearer", "secret_env": "K", "extra": 1}, "extra"),
            ({"method": "digest", "secret_env": "K"}, "method"),
        ],
    )
    def test_invalid_settings(self, fields: dict[str, Any], reason: str) -> None:
        """Inconsistent or unsafe settings are refused."""
        with pytest.raises(ValidationError, match=reason):
            auth(**fields)

    def test_frozen(self) -> None:
        """Settings cannot be changed after validation."""
        settings = auth(method="bearer", secret_env="K")
        with pytest.raises(ValidationError):
            settings.secret_env = "OTHER"  # type: ignore[misc]


class TestLoadFromFile:
    """Secrets read from files."""

    def test_reads_and_strips_one_newline(self, secret_file: SecretFileFactory) -> None:
        """The content is the secret, minus one trailing newline."""
        path = secret_file(CANARY + "\n\n")
        compartment = Compartment.load(
            "tickets", auth(method="query", name="k", secret_file=path)
        )
        assert compartment.apply([], "")[1] == f"k={CANARY}%0A"

    @pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
    def test_line_endings(self, secret_file: SecretFileFactory, ending: str) -> None:
        """A missing, LF or CRLF line ending yields the same secret."""
        compartment = Compartment.load(
            "tickets",
            auth(method="query", name="k", secret_file=secret_file(CANARY + ending)),
        )
        assert compartment.apply([], "")[1] == f"k={CANARY}"

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file names the route and the path."""
        path = tmp_path / "absent"
        with pytest.raises(ConfigurationError, match="does not exist") as caught:
            Compartment.load("tickets", auth(method="bearer", secret_file=path))
        assert "'tickets'" in str(caught.value)
        assert str(path) in str(caught.value)

    def test_not_a_regular_file(self, tmp_path: Path) -> None:
        """A directory is refused."""
        directory = tmp_path / "dir"
        directory.mkdir(mode=0o700)
        with pytest.raises(ConfigurationError, match="not a regular file"):
            Compartment.load("tickets", auth(method="bearer", secret_file=directory))

    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o660, 0o601])
    def test_group_or_other_access_refused(
        self, secret_file: SecretFileFactory, mode: int
    ) -> None:
        """A file accessible by group or others is refused without its content."""
        path = secret_file(mode=mode)
        with pytest.raises(ConfigurationError, match="group or others") as caught:
            Compartment.load("tickets", auth(method="bearer", secret_file=path))
        assert CANARY not in str(caught.value)
        assert str(path) in str(caught.value)

    def test_owner_read_only_is_accepted(self, secret_file: SecretFileFactory) -> None:
        """Mode 0400 is accepted."""
        path = secret_file(mode=0o400)
        compartment = Compartment.load("t", auth(method="bearer", secret_file=path))
        assert compartment.contains_secret(CANARY)

    def test_unopenable_path(self, secret_file: SecretFileFactory) -> None:
        """A path that cannot be opened is refused with the system's reason."""
        path = secret_file() / "child"
        with pytest.raises(
            ConfigurationError, match="cannot be opened: Not a directory"
        ):
            Compartment.load("tickets", auth(method="bearer", secret_file=path))

    def test_symlink_to_private_file_is_followed(
        self, secret_file: SecretFileFactory, tmp_path: Path
    ) -> None:
        """A link to a private regular file (a mounted secret) is accepted."""
        link = tmp_path / "link"
        link.symlink_to(secret_file())
        compartment = Compartment.load("t", auth(method="bearer", secret_file=link))
        assert compartment.contains_secret(CANARY)

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            ("", "is empty"),
            ("\n", "is empty"),
            (b"\xff\xfe", "not utf-8"),
            ("x" * 65_537, "larger than 65536 bytes"),
        ],
    )
    def test_bad_content(
        self, secret_file: SecretFileFactory, content: str | bytes, reason: str
    ) -> None:
        """Empty, non-UTF-8 or oversized files are refused."""
        path = secret_file(content)
        with pytest.raises(ConfigurationError, match=reason):
            Compartment.load("tickets", auth(method="bearer", secret_file=path))


class TestLoadFromEnvironment:
    """Secrets read from environment variables."""

    def test_reads_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The variable's value is the secret."""
        monkeypatch.setenv("GATEPASS_TEST_UPSTREAM", CANARY)
        compartment = Compartment.load(
            "tickets", auth(method="bearer", secret_env="GATEPASS_TEST_UPSTREAM")
        )
        assert compartment.apply([], "")[0] == [
            (b"authorization", f"Bearer {CANARY}".encode())
        ]

    @pytest.mark.parametrize("value", [None, ""])
    def test_missing_or_empty(
        self, monkeypatch: pytest.MonkeyPatch, value: str | None
    ) -> None:
        """An unset or empty variable names the route and the variable."""
        if value is None:
            monkeypatch.delenv("GATEPASS_TEST_UPSTREAM", raising=False)
        else:
            monkeypatch.setenv("GATEPASS_TEST_UPSTREAM", value)
        with pytest.raises(ConfigurationError, match="not set or is empty") as caught:
            Compartment.load(
                "tickets", auth(method="bearer", secret_env="GATEPASS_TEST_UPSTREAM")
            )
        assert "GATEPASS_TEST_UPSTREAM" in str(caught.value)
        assert "'tickets'" in str(caught.value)


class TestSecretShape:
    """A secret that a header cannot carry is refused."""

    @pytest.mark.parametrize("method", ["header", "bearer"])
    @pytest.mark.parametrize(
        "secret", [CANARY + "\r\nX-Injected: 1", CANARY + "\x00", "caf\u00e9" + CANARY]
    )
    def test_header_secret_must_be_printable_ascii(
        self, make_compartment: CompartmentFactory, method: str, secret: str
    ) -> None:
        """CR, LF, NUL or non-ASCII in a header secret is a configuration error."""
        with pytest.raises(ConfigurationError, match="printable ascii") as caught:
            make_compartment(method, secret=secret)
        assert CANARY not in str(caught.value)

    @pytest.mark.parametrize("method", ["basic", "query"])
    def test_encoded_methods_carry_any_secret(
        self, make_compartment: CompartmentFactory, method: str
    ) -> None:
        """Basic and query encode the secret, so any characters are allowed."""
        username = "svc" if method == "basic" else None
        secret = "p\u00e4ss &=\r\n"
        compartment = make_compartment(method, username=username, secret=secret)
        assert compartment.contains_secret(secret)

    def test_empty_secret_refused(self, make_compartment: CompartmentFactory) -> None:
        """A compartment cannot hold an empty secret."""
        with pytest.raises(ConfigurationError, match="empty"):
            make_compartment("bearer", secret="")


class TestApply:
    """The secret is injected, replacing any client-supplied credential."""

    def test_header(self, make_compartment: CompartmentFactory) -> None:
        """The header method adds the lower-case name with the secret."""
        compartment = make_compartment("header", name="X-API-Key")
        headers = [(b"accept", b"*/*"), (b"X-Api-Key", b"client-supplied")]
        assert compartment.apply(headers, "a=1") == (
            [(b"accept", b"*/*"), (b"x-api-key", CANARY.encode())],
            "a=1",
        )
        assert headers[1] == (b"X-Api-Key", b"client-supplied")

    def test_bearer(self, make_compartment: CompartmentFactory) -> None:
        """The bearer method replaces Authorization."""
        headers, _ = make_compartment("bearer").apply(
            [(b"Authorization", b"Bearer agent-token")], ""
        )
        assert headers == [(b"authorization", f"Bearer {CANARY}".encode())]

    def test_basic(self, make_compartment: CompartmentFactory) -> None:
        """The basic method sends base64 of username:secret."""
        headers, _ = make_compartment("basic", username="svc").apply([], "")
        expected = base64.b64encode(f"svc:{CANARY}".encode())
        assert headers == [(b"authorization", b"Basic " + expected)]

    def test_query_appends_encoded_secret(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """The query method appends the percent-encoded secret."""
        compartment = make_compartment("query", name="api_key", secret="a b&c=d/+")
        headers, query = compartment.apply([(b"accept", b"*/*")], "page=2")
        assert headers == [(b"accept", b"*/*")]
        assert query == "page=2&api_key=a%20b%26c%3Dd%2F%2B"
        assert parse_qsl(query)[-1] == ("api_key", "a b&c=d/+")

    @pytest.mark.parametrize(
        ("query", "kept"),
        [
            ("", ""),
            ("api_key=evil", ""),
            ("api_key", ""),
            ("a=1&api_key=evil&b=2", "a=1&b=2&"),
            ("API_KEY=evil&a=1", "a=1&"),
            ("api%5Fkey=evil&a=1", "a=1&"),
            ("api_key=x&api_key=y", ""),
            ("a=1;api_key=evil&b=2", "b=2&"),
            ("&&a=1&", "a=1&"),
        ],
    )
    def test_query_removes_client_parameter(
        self, make_compartment: CompartmentFactory, query: str, kept: str
    ) -> None:
        """Any client parameter of the same name, however spelled, is removed."""
        compartment = make_compartment("query", name="api_key")
        assert compartment.apply([], query)[1] == f"{kept}api_key={CANARY}"


class TestContainsSecret:
    """Upstream bodies that echo the secret are recognised."""

    @pytest.mark.parametrize(
        "data",
        [
            CANARY,
            f'{{"error": "bad key {CANARY}"}}',
            f'{{"error": "bad key {CANARY}"}}'.encode(),
        ],
    )
    def test_raw_secret(self, make_compartment: CompartmentFactory, data: Any) -> None:
        """The raw secret is found in text and bytes."""
        assert make_compartment("header").contains_secret(data)

    def test_encoded_spellings(self, make_compartment: CompartmentFactory) -> None:
        """The percent-encoded and basic-credential spellings are found too."""
        query = make_compartment("query", secret="a b/c")
        assert query.contains_secret(b"url was /x?api_key=a%20b%2Fc")
        basic = make_compartment("basic", username="svc")
        credentials = base64.b64encode(f"svc:{CANARY}".encode())
        assert basic.contains_secret(b"got Basic " + credentials)

    def test_absent(self, make_compartment: CompartmentFactory) -> None:
        """Data without the secret is clean."""
        assert not make_compartment("header").contains_secret(b"canary-7f3a9")


class TestRedaction:
    """The compartment never shows its secret."""

    def test_repr_shows_only_the_route(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """Repr and str show the route only."""
        compartment = make_compartment("bearer")
        assert repr(compartment) == "Compartment(route='tickets')"
        assert str(compartment) == repr(compartment)
        assert compartment.route == "tickets"
        assert compartment.auth.method == "bearer"

    def test_not_picklable(self, make_compartment: CompartmentFactory) -> None:
        """Pickling is refused so the secret never lands in a cache."""
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(make_compartment("bearer"))

    def test_direct_construction(self) -> None:
        """A compartment can be built from a Secret for tests."""
        compartment = Compartment(
            "r", UpstreamAuth(method="bearer", secret_env="K"), Secret("s3")
        )
        assert compartment.contains_secret("s3")
