"""Each port is written once: the issuer and the demo port are derived (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatepass.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


class TestIssue17PortsInOnePlace:
    """The issuer follows [server] port; the demo port follows its target's uri."""

    def test_issue17_issuer_follows_host_and_port(self):
        """Without an issuer, the broker is named by its listening address."""
        settings = Settings.model_validate({"server": {"port": 9400}})
        assert settings.server.issuer == "http://127.0.0.1:9400"
        assert settings.token_endpoint == "http://127.0.0.1:9400/token"

    def test_issue17_ipv6_host_is_bracketed(self):
        """An IPv6 listening address makes a valid origin."""
        settings = Settings.model_validate({"server": {"host": "::1", "port": 9400}})
        assert settings.server.issuer == "http://[::1]:9400"

    def test_issue17_explicit_issuer_wins(self):
        """An issuer written in the file is kept (behind TLS, on 0.0.0.0)."""
        settings = Settings.model_validate(
            {"server": {"issuer": "https://gatepass.example", "port": 9400}}
        )
        assert settings.server.issuer == "https://gatepass.example"

    def test_issue17_demo_port_from_its_target(self):
        """The demo resource listens on the port of its target's uri."""
        settings = Settings.model_validate(
            {
                "targets": [
                    {
                        "name": "tickets",
                        "uri": "http://127.0.0.1:9401/",
                        "environment": "dev",
                        "tenant": "acme",
                        "actions": ["read"],
                    }
                ],
                "demo": {"enabled": True},
            }
        )
        assert settings.demo.resource_port == 9401

    @pytest.mark.parametrize(
        "targets",
        [
            [],
            [
                {
                    "name": "tickets",
                    "uri": "https://tickets.example/",
                    "environment": "dev",
                    "tenant": "acme",
                    "actions": ["read"],
                }
            ],
        ],
    )
    def test_issue17_demo_port_default_without_a_port_in_a_uri(self, targets):
        """No such target, or a uri without a port: the default 8401."""
        settings = Settings.model_validate({"targets": targets, "demo": {}})
        assert settings.demo.resource_port == 8401

    def test_issue17_quickstart_writes_each_port_once(self):
        """The quickstart file holds 8400, 8401 and 8402 exactly once each."""
        path = REPO / "examples" / "quickstart" / "gatepass.toml"
        text = path.read_text()
        for port in ("8400", "8401", "8402"):
            assert text.count(port) == 1, port
        settings = load_settings(path)
        assert settings.server.issuer == "http://127.0.0.1:8400"
        assert settings.demo.resource_port == 8401
