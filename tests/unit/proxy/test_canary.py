"""The canary secret never appears in a repr, str or error of the proxy primitives."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

import gatepass.proxy
from gatepass.clock import FrozenClock
from gatepass.errors import GatepassError
from gatepass.proxy import (
    BodyLimit,
    Compartment,
    RuleSet,
    TokenBucket,
    UpstreamAuth,
    check_request_framing,
    normalize_path,
)
from gatepass.secret import Secret

from .conftest import CANARY, CANARY_SPELLINGS, CompartmentFactory, SecretFileFactory


def assert_clean(error: BaseException) -> None:
    """Assert no spelling of the canary is in an error, its chain or its traceback."""
    rendered = "".join(traceback.format_exception(error))
    for spelling in CANARY_SPELLINGS:
        assert spelling not in rendered
        assert spelling not in repr(error)
        if isinstance(error, GatepassError):
            assert spelling not in error.detail


def raised_by(action: Callable[[], object]) -> BaseException:
    """Run an action that must fail and return its error."""
    with pytest.raises((GatepassError, ValidationError, TypeError)) as caught:
        action()
    return caught.value


class TestCanary:
    """The secret canary-7f3a9c never leaks from these modules."""

    @pytest.mark.parametrize("method", ["header", "bearer", "basic", "query"])
    def test_compartment_repr_and_str(
        self, make_compartment: CompartmentFactory, method: str
    ) -> None:
        """Repr, str and format of every kind of compartment omit the secret."""
        compartment = make_compartment(
            method, username="svc" if method == "basic" else None
        )
        for text in (repr(compartment), str(compartment), f"{compartment}"):
            assert not [form for form in CANARY_SPELLINGS if form in text]
        assert not hasattr(compartment, "__dict__")

    def test_loaded_compartment_repr(self, secret_file: SecretFileFactory) -> None:
        """A compartment loaded from a file shows only its route."""
        auth = UpstreamAuth(method="bearer", secret_file=secret_file())
        compartment = Compartment.load("tickets", auth)
        assert CANARY not in repr(compartment)
        assert CANARY not in repr(auth)

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
    def test_permission_error(self, secret_file: SecretFileFactory, mode: int) -> None:
        """The too-permissive-file error does not carry the content."""
        path = secret_file(mode=mode)
        auth = UpstreamAuth(method="bearer", secret_file=path)
        assert_clean(raised_by(lambda: Compartment.load("tickets", auth)))

    @pytest.mark.parametrize(
        "content",
        [CANARY.encode() + b"\xff", CANARY.encode() * 6000],
    )
    def test_content_errors(
        self, secret_file: SecretFileFactory, content: bytes
    ) -> None:
        """Undecodable or oversized secret files fail without the content."""
        auth = UpstreamAuth(method="bearer", secret_file=secret_file(content))
        assert_clean(raised_by(lambda: Compartment.load("tickets", auth)))

    @pytest.mark.parametrize("method", ["header", "bearer"])
    def test_unsafe_header_secret_error(self, method: str) -> None:
        """A secret with CRLF is refused without being echoed."""
        auth = UpstreamAuth.model_validate(
            {"method": method, "name": "X-Key" if method == "header" else None,
             "secret_env": "K"}
        )  # fmt: skip
        secret = Secret(CANARY + "\r\nX-Injected: 1")
        assert_clean(raised_by(lambda: Compartment("tickets", auth, secret)))

    def test_pickle_error(self, make_compartment: CompartmentFactory) -> None:
        """The refusal to pickle does not carry the secret."""
        import pickle  # noqa: PLC0415 - only this test pickles

        compartment = make_compartment("bearer")
        assert_clean(raised_by(lambda: pickle.dumps(compartment)))

    def test_request_errors_do_not_echo_input(self) -> None:
        """Path and header rejections never repeat the offending input."""
        errors = [
            raised_by(lambda: normalize_path(b"/" + CANARY.encode() + b"/../x")),
            raised_by(lambda: normalize_path(b"/" + CANARY.encode() + b"%2f")),
            raised_by(lambda: normalize_path(CANARY.encode())),
            raised_by(
                lambda: check_request_framing([(b"x-a", CANARY.encode() + b"\r\n")])
            ),
            raised_by(
                lambda: check_request_framing([(b"content-length", CANARY.encode())])
            ),
            raised_by(
                lambda: check_request_framing([(b"transfer-encoding", CANARY.encode())])
            ),
            raised_by(
                lambda: BodyLimit(1).check_declared([(b"content-length", b"99")])
            ),
        ]
        for error in errors:
            assert_clean(error)

    def test_secret_as_bucket_key_is_not_echoed(self) -> None:
        """The token bucket has no repr or error that could show a key."""
        bucket = TokenBucket(1.0, 1, clock=FrozenClock())
        bucket.take(CANARY)
        assert CANARY not in repr(bucket)

    def test_rule_set_repr(self) -> None:
        """A rule set's repr shows patterns, which are configuration, not secrets."""
        assert CANARY not in repr(RuleSet.from_mapping({"read": ["GET /a"]}))

    def test_applied_request_carries_the_secret_only_where_injected(
        self, make_compartment: CompartmentFactory
    ) -> None:
        """Apply puts the secret in the injected header and nowhere else."""
        compartment = make_compartment("header", name="X-API-Key")
        headers, query = compartment.apply([(b"accept", b"*/*")], "a=1")
        assert query == "a=1"
        assert [name for name, value in headers if CANARY.encode() in value] == [
            b"x-api-key"
        ]


class TestPackage:
    """The package's public names."""

    def test_all_is_sorted_and_importable(self) -> None:
        """__all__ is sorted as ruff RUF022 sorts it and every name resolves."""
        names = gatepass.proxy.__all__

        def isort_key(name: str) -> tuple[int, str]:
            kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
            return kind, name

        assert names == sorted(names, key=isort_key)
        for name in names:
            assert getattr(gatepass.proxy, name) is not None

    def test_only_allowed_imports(self) -> None:
        """The primitives import only the stdlib, pydantic and gatepass leaves."""
        allowed = (
            "gatepass.errors",
            "gatepass.secret",
            "gatepass.clock",
            "gatepass.proxy",
        )
        root = Path(gatepass.proxy.__file__).parent
        for module in ("paths", "rules", "headers", "compartments", "limits"):
            source = (root / f"{module}.py").read_text()
            for line in source.splitlines():
                if line.startswith(("from gatepass", "import gatepass")):
                    assert line.split()[1].startswith(allowed), line
