"""The console's CSRF tokens and origin check (issue 13)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from gatepass.console.security import check_csrf, check_same_origin, csrf_token
from gatepass.errors import CSRFError


def request(**headers: str) -> Request:
    """A POST to the console with these headers."""
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("127.0.0.1", 8400),
        "path": "/console/tasks/tsk_1/close",
        "query_string": b"",
        "headers": [
            (k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()
        ],
    }
    return Request(scope)


class TestCSRF:
    """A form's token is bound to its session."""

    def test_issue13_token_matches_its_session_only(self) -> None:
        """The session's token passes; another session's token fails."""
        check_csrf("gps_a", csrf_token("gps_a"))
        with pytest.raises(CSRFError):
            check_csrf("gps_a", csrf_token("gps_b"))

    @given(st.one_of(st.none(), st.text(max_size=80)))
    def test_issue13_anything_but_the_token_fails(self, presented: str | None) -> None:
        """No token, an empty one or any other text is refused."""
        if presented == csrf_token("gps_session"):
            return
        with pytest.raises(CSRFError):
            check_csrf("gps_session", presented)

    def test_issue13_token_is_not_the_cookie(self) -> None:
        """The token shown in pages never reveals the cookie value."""
        assert "gps_secret" not in csrf_token("gps_secret")
        assert len(csrf_token("gps_secret")) == 64


class TestOrigin:
    """Cross-site posts are refused before the token is looked at."""

    def test_issue13_same_origin_passes(self) -> None:
        """Origin equal to the request's own origin, or absent, passes."""
        check_same_origin(
            request(host="127.0.0.1:8400", origin="http://127.0.0.1:8400")
        )
        check_same_origin(request(host="127.0.0.1:8400"))

    @pytest.mark.parametrize(
        "headers",
        [
            {"origin": "https://evil.example"},
            {"origin": "http://127.0.0.1:8401"},
            {"sec_fetch_site": "cross-site"},
        ],
    )
    def test_issue13_other_sites_are_refused(self, headers: dict[str, str]) -> None:
        """Another origin, or Sec-Fetch-Site cross-site, is a CSRF refusal."""
        with pytest.raises(CSRFError):
            check_same_origin(request(host="127.0.0.1:8400", **headers))
