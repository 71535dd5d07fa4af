"""Token-exchange request parsing: each refusal has its OAuth code; nothing escapes."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.api.forms import (
    parse_form,
    parse_introspection,
    parse_revocation,
    parse_scope,
    parse_token_exchange,
)
from gatepass.broker import AccessTokenRequest, OpenTaskRequest, RevocationRequest
from gatepass.errors import (
    GatepassError,
    InvalidAuthorizationDetailsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    UnsupportedGrantTypeError,
    UnsupportedTokenTypeError,
)
from gatepass.tokens import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
)

DETAILS = {
    "type": "agent_task",
    "intent": "triage",
    "purpose": "support-triage",
    "environment": "dev",
    "targets": ["tickets"],
}


def open_form(**overrides: object) -> dict[str, list[str]]:
    """Return a valid open-task form with overrides."""
    form: dict[str, object] = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": "assertion",
        "subject_token_type": JWT_TOKEN_TYPE,
        "authorization_details": json.dumps([DETAILS]),
    }
    form.update(overrides)
    return {k: [str(v)] for k, v in form.items() if v is not None}


def access_form(**overrides: object) -> dict[str, list[str]]:
    """Return a valid access-token form with overrides."""
    form: dict[str, object] = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": "task-token",
        "subject_token_type": TXN_TOKEN_TYPE,
        "resource": "https://tickets/",
        "scope": "read write",
    }
    form.update(overrides)
    return {k: [str(v)] for k, v in form.items() if v is not None}


class TestParseForm:
    """Form bodies parse strictly."""

    def test_keeps_repeats(self) -> None:
        """Repeated parameters are kept so they can be refused."""
        assert parse_form(b"a=1&a=2&b=") == {"a": ["1", "2"], "b": [""]}

    def test_empty_body(self) -> None:
        """An empty body is an empty form."""
        assert parse_form(b"") == {}

    def test_not_utf8(self) -> None:
        """Bytes that are not UTF-8 are invalid_request."""
        with pytest.raises(InvalidRequestError):
            parse_form(b"\xff=1")

    @given(st.binary(max_size=300))
    def test_any_bytes_parse_or_refuse(self, body: bytes) -> None:
        """Arbitrary bytes either parse or raise invalid_request, nothing else."""
        with contextlib.suppress(InvalidRequestError):
            parse_form(body)


class TestOpenTask:
    """Open-task requests."""

    def test_valid(self) -> None:
        """A valid request yields typed details."""
        request = parse_token_exchange(open_form())
        assert isinstance(request, OpenTaskRequest)
        assert request.details.targets == ("tickets",)
        assert request.details.max_ttl is None

    def test_wrong_grant(self) -> None:
        """Other grants are unsupported_grant_type."""
        with pytest.raises(UnsupportedGrantTypeError):
            parse_token_exchange(open_form(grant_type="client_credentials"))

    def test_repeated_parameter(self) -> None:
        """A repeated parameter is invalid_request naming it."""
        form = open_form()
        form["subject_token"].append("again")
        with pytest.raises(InvalidRequestError, match="subject_token is repeated"):
            parse_token_exchange(form)

    def test_wrong_requested_type(self) -> None:
        """An identity cannot be exchanged for an access token directly."""
        with pytest.raises(InvalidRequestError):
            parse_token_exchange(open_form(requested_token_type=ACCESS_TOKEN_TYPE))

    def test_missing_details(self) -> None:
        """Opening a task needs details."""
        with pytest.raises(InvalidAuthorizationDetailsError):
            parse_token_exchange(open_form(authorization_details=None))

    def test_actor_token_refused(self) -> None:
        """Delegation is not supported yet and says so."""
        with pytest.raises(InvalidRequestError, match="actor_token"):
            parse_token_exchange(open_form(actor_token="x"))

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("intent", ""),
            ("intent", "x" * 1001),
            ("purpose", "Has Spaces"),
            ("environment", 3),
            ("tenant", "UPPER"),
            ("targets", "tickets"),
            ("targets", [f"t{n}" for n in range(33)]),
            ("max_ttl_seconds", 0),
            ("max_ttl_seconds", True),
            ("unexpected", "x"),
        ],
    )
    def test_bad_detail_fields(self, field: str, value: object) -> None:
        """Each malformed detail field is invalid_authorization_details."""
        details = {**DETAILS, field: value}
        form = open_form(authorization_details=json.dumps([details]))
        with pytest.raises(InvalidAuthorizationDetailsError):
            parse_token_exchange(form)

    def test_duplicate_targets_collapse(self) -> None:
        """The same target named twice is one target."""
        details = {**DETAILS, "targets": ["a", "a", "b"], "max_ttl_seconds": 60}
        request = parse_token_exchange(
            open_form(authorization_details=json.dumps([details]))
        )
        assert isinstance(request, OpenTaskRequest)
        assert request.details.targets == ("a", "b")
        assert request.details.to_json("tsk_x")[0]["task_id"] == "tsk_x"


class TestAccessToken:
    """Access-token requests."""

    def test_valid(self) -> None:
        """A valid request yields the resource and actions."""
        request = parse_token_exchange(access_form())
        assert isinstance(request, AccessTokenRequest)
        assert request.actions == ("read", "write")

    def test_audience_accepted(self) -> None:
        """``audience`` may stand for ``resource``."""
        request = parse_token_exchange(access_form(resource=None, audience="tickets"))
        assert isinstance(request, AccessTokenRequest)
        assert request.resource == "tickets"

    def test_two_resources(self) -> None:
        """One audience per token: two resources are invalid_target."""
        with pytest.raises(InvalidTargetError):
            parse_token_exchange(access_form(audience="other"))

    def test_no_resource(self) -> None:
        """No resource is invalid_target."""
        with pytest.raises(InvalidTargetError):
            parse_token_exchange(access_form(resource=None))

    def test_unknown_subject_type(self) -> None:
        """Unknown subject token types are invalid_request."""
        with pytest.raises(InvalidRequestError):
            parse_token_exchange(access_form(subject_token_type="urn:x"))

    def test_token_too_long(self) -> None:
        """Oversized subject tokens are refused before any parsing."""
        with pytest.raises(InvalidRequestError):
            parse_token_exchange(access_form(subject_token="x" * 9000))


class TestScope:
    """Scopes split into unique, well-formed actions."""

    def test_split_and_dedupe(self) -> None:
        """Extra spaces and repeats are tolerated."""
        assert parse_scope(" read  write read ") == ("read", "write")

    @pytest.mark.parametrize(
        "scope", [None, "", "  ", "READ", "a;b", " ".join("abcdefghijklmnopq")]
    )
    def test_refused(self, scope: str | None) -> None:
        """Empty, malformed and oversized scopes are invalid_scope."""
        with pytest.raises(InvalidScopeError):
            parse_scope(scope)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "grant_type",
                "subject_token",
                "subject_token_type",
                "requested_token_type",
                "resource",
                "audience",
                "scope",
                "authorization_details",
                "client_id",
                "actor_token",
            ]
        ),
        st.lists(st.text(max_size=40), min_size=1, max_size=2),
    )
)
def test_any_form_parses_or_raises_gatepass_error(form: dict[str, list[str]]) -> None:
    """Whatever the parameters, parsing returns a request or raises a 400 error."""
    status = 200
    try:
        parse_token_exchange(form)
    except GatepassError as error:
        status = error.http_status
    assert status in {200, 400}


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_details_parse_or_refuse(details: object) -> None:
    """Arbitrary JSON as authorization_details is accepted or refused, never crashes."""
    form = open_form(authorization_details=json.dumps(details))
    with contextlib.suppress(InvalidAuthorizationDetailsError):
        parse_token_exchange(form)


def test_urlencoded_round_trip() -> None:
    """A body produced by a standard encoder parses back to the same request."""
    body = urlencode({k: v[0] for k, v in access_form().items()}).encode()
    request = parse_token_exchange(parse_form(body))
    assert isinstance(request, AccessTokenRequest)


class TestRevocationAndIntrospectionForms:
    """RFC 7009 and RFC 7662 forms name one token."""

    def test_revocation_with_client_id(self) -> None:
        """A revocation names its token and, optionally, a client."""
        body = urlencode({"token": "t", "client_id": "agt_x"}).encode()
        assert parse_revocation(body) == RevocationRequest(token="t", client_id="agt_x")

    @pytest.mark.parametrize(
        "body",
        [b"", b"token=", b"token=a&token=b", b"token=a&client_id=x&client_id=y"],
    )
    def test_revocation_refusals(self, body: bytes) -> None:
        """No token, two tokens or a repeated client are invalid requests."""
        with pytest.raises(InvalidRequestError):
            parse_revocation(body)

    def test_unsupported_hint(self) -> None:
        """A hint gatepass cannot revoke is unsupported_token_type."""
        with pytest.raises(UnsupportedTokenTypeError):
            parse_revocation(b"token=a&token_type_hint=id_token")

    def test_introspection(self) -> None:
        """Introspection names exactly one token."""
        assert parse_introspection(b"token=abc") == "abc"
        with pytest.raises(InvalidRequestError):
            parse_introspection(b"token=a&token=b")
