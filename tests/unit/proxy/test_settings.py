"""The proxy's configuration: plain-http upstreams, codings and methods."""

from __future__ import annotations

from typing import Any

import pytest

from gatepass.errors import ConfigurationError
from gatepass.proxy.settings import parse_proxy_settings


def raw(**route: Any) -> dict[str, Any]:
    """Return a configuration with one route, overridden by ``route``."""
    base = {
        "name": "tickets",
        "prefix": "/tickets/",
        "upstream": "https://api.example",
        "auth": {"method": "bearer", "secret_env": "X"},
        "rules": {"read": ["GET /**"]},
    }
    return {
        "proxy": {"public_url": "https://p.example", "broker": "https://b.example"},
        "routes": [{**base, **route}],
    }


class TestPlainHttp:
    """Issue 7 item 5: the secret never travels unencrypted off the machine."""

    def test_issue7_5_plain_http_upstream_is_refused(self) -> None:
        """An http:// upstream stops the start with the route named."""
        with pytest.raises(ConfigurationError) as caught:
            parse_proxy_settings(raw(upstream="http://127.0.0.1:8080"), source="t")
        assert "routes[0]" in caught.value.detail
        assert "route 'tickets'" in caught.value.detail
        assert "plain http" in caught.value.detail

    @pytest.mark.parametrize(
        "upstream",
        ["http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:80",
         "http://localhost:3000/api"],
    )  # fmt: skip
    def test_opt_in_for_loopback(self, upstream: str) -> None:
        """allow_plain_http is accepted for a loopback upstream."""
        settings = parse_proxy_settings(
            raw(upstream=upstream, allow_plain_http=True), source="t"
        )
        assert settings.routes[0].allow_plain_http

    @pytest.mark.parametrize(
        "upstream",
        ["http://10.0.0.5", "http://api.example", "http://localhost.evil.example",
         "http://0.0.0.0"],
    )  # fmt: skip
    def test_issue7_5_opt_in_refused_off_loopback(self, upstream: str) -> None:
        """The opt-in does not cover an upstream that is not loopback."""
        with pytest.raises(ConfigurationError, match="loopback"):
            parse_proxy_settings(
                raw(upstream=upstream, allow_plain_http=True), source="t"
            )

    def test_https_needs_no_opt_in(self) -> None:
        """An https upstream is the default and needs nothing."""
        settings = parse_proxy_settings(raw(), source="t")
        assert not settings.routes[0].allow_plain_http


class TestCodingsAndMethods:
    """Codings the route may ask for; methods a rule may name."""

    def test_accept_encoding_is_a_closed_set(self) -> None:
        """Only codings the proxy decodes may be asked for."""
        settings = parse_proxy_settings(raw(accept_encoding=["br", "gzip"]), source="t")
        assert settings.routes[0].accept_encoding == ["br", "gzip"]
        with pytest.raises(ConfigurationError, match="accept_encoding"):
            parse_proxy_settings(raw(accept_encoding=["zstd"]), source="t")

    @pytest.mark.parametrize("rule", ["TRACE /**", "CONNECT /x"])
    def test_issue7_4_trace_or_connect_rule_refused_at_start(self, rule: str) -> None:
        """A rule naming TRACE or CONNECT is a configuration error."""
        with pytest.raises(ConfigurationError, match="never forwarded"):
            parse_proxy_settings(raw(rules={"read": [rule]}), source="t")
