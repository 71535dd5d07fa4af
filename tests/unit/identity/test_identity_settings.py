"""Tests for the [identity] configuration section: presets, sources and rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gatepass.config import IdentitySettings, Settings, load_settings
from gatepass.errors import ConfigurationError
from gatepass.identity import DocumentFetcher

GITHUB_RULE = {"match": {"repository_owner_id": "1234"}, "tenant": "acme"}


def table(**overrides: Any) -> dict[str, Any]:
    """A valid GitHub issuer table with overrides (None removes a member)."""
    value: dict[str, Any] = {
        "name": "github",
        "preset": "github-actions",
        "audience": "https://gatepass.example",
        "rules": [GITHUB_RULE],
    }
    value.update(overrides)
    return {name: member for name, member in value.items() if member is not None}


def settings(*tables: dict[str, Any]) -> IdentitySettings:
    """Validate an identity section."""
    return IdentitySettings.model_validate({"issuers": list(tables)})


class TestPresets:
    """A preset fills defaults; the table wins."""

    def test_github_preset_defaults(self) -> None:
        """The GitHub preset knows the issuer, its keys, RS256 and single use."""
        issuer = settings(table()).issuers[0]
        assert issuer.kind == "oidc"
        assert issuer.issuer == "https://token.actions.githubusercontent.com"
        assert issuer.key_url == (
            "https://token.actions.githubusercontent.com/.well-known/jwks"
        )
        assert issuer.algorithms == ["RS256"]
        assert issuer.single_use
        assert issuer.rules[0].name == "{sub}"
        assert "job_workflow_ref" in issuer.rules[0].labels
        assert issuer.on_unknown_subject == "refuse"

    def test_table_overrides_the_preset(self, tmp_path: Path) -> None:
        """An own key source replaces the preset's; other members override."""
        issuer = settings(
            table(
                jwks_file=str(tmp_path / "jwks.json"),
                issuer="https://ghes.example/_services/token",
                max_token_lifetime_seconds=600,
                rules=[{**GITHUB_RULE, "name": "gh:{repository}", "labels": {}}],
            )
        ).issuers[0]
        assert issuer.key_url is None
        assert issuer.key_file == tmp_path / "jwks.json"
        assert issuer.issuer == "https://ghes.example/_services/token"
        assert issuer.max_token_lifetime_seconds == 600
        assert (issuer.rules[0].name, issuer.rules[0].labels) == ("gh:{repository}", {})

    def test_shared_issuers_must_pin_an_owner_exactly(self) -> None:
        """A github.com rule without an exact owner would trust every repository."""
        for match in ({}, {"repository_owner": "acme*"}, {"environment": "prod"}):
            with pytest.raises(ValidationError, match="must match one of"):
                settings(table(rules=[{"match": match, "tenant": "acme"}]))
        settings(table(rules=[{"match": {"repository": "acme/app"}, "tenant": "a"}]))

    def test_spire_preset_needs_a_trust_domain(self, tmp_path: Path) -> None:
        """A SPIFFE issuer names its trust domain, canonically."""
        base = {
            "name": "spire",
            "preset": "spire",
            "audience": "gatepass",
            "bundle_file": str(tmp_path / "bundle.json"),
            "rules": [{"tenant": "acme"}],
        }
        with pytest.raises(ValidationError, match="trust_domain"):
            settings(base)
        with pytest.raises(ValidationError, match="lower-case"):
            settings({**base, "trust_domain": "Example.org"})
        issuer = settings({**base, "trust_domain": "example.org"}).issuers[0]
        assert issuer.selector == "spiffe://example.org"
        assert issuer.is_spiffe_bundle
        assert issuer.rules[0].labels == {
            "trust_domain": "{$trust_domain}",
            "path": "{$path}",
        }

    def test_unknown_preset(self) -> None:
        """Only the four presets exist."""
        with pytest.raises(ValidationError, match="preset must be one of"):
            settings(table(preset="jenkins"))


class TestIssuerTables:
    """Key sources, URLs, algorithms and uniqueness are checked at load."""

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"jwks_uri": "https://k.example/j", "jwks_file": "/x"}, "exactly one of"),
            ({"jwks_uri": "http://keys.example/jwks"}, "must be https"),
            ({"jwks_uri": "https://u:p@keys.example/jwks"}, "user info"),
            ({"algorithms": ["RS256", "PS256"]}, "one RSA algorithm"),
            ({"algorithms": ["HS256"]}, "algorithms"),
            ({"allowed_networks": ["10.0.0.1/8"]}, "host bits"),
            ({"trust_domain": "example.org"}, "for spiffe issuers"),
            ({"audience": ""}, "audience"),
            ({"max_token_lifetime_seconds": 10}, "max_token_lifetime_seconds"),
            ({"rules": []}, "rules"),
            ({"rules": [{"match": {"repository_owner_id": "1"}}]}, "tenant"),
            ({"rules": [{**GITHUB_RULE, "name": "{"}]}, "brace"),
            ({"jku": "https://x"}, "jku"),
        ],
    )
    def test_invalid_tables(
        self, overrides: dict[str, Any], message: str | None
    ) -> None:
        """Each misconfiguration is refused with its location's reason."""
        if message is None:
            # jwks_file beside the preset's jwks_uri is an override, and the
            # preset supplies the issuer: both are valid.
            settings(table(**overrides))
            return
        with pytest.raises(ValidationError, match=message):
            settings(table(**overrides))

    def test_plain_http_needs_the_loopback_allowance(self) -> None:
        """http:// is accepted only with allow_http_loopback."""
        url = "http://127.0.0.1:9000/jwks"
        issuer = settings(table(jwks_uri=url, allow_http_loopback=True)).issuers[0]
        assert issuer.key_url == url

    def test_oidc_issuer_needs_its_iss(self) -> None:
        """A custom OIDC issuer must say which iss it is."""
        custom = {
            "name": "corp",
            "kind": "oidc",
            "audience": "gatepass",
            "algorithms": ["ES256"],
            "jwks_uri": "https://idp.example/jwks",
            "rules": [{"tenant": "acme"}],
        }
        with pytest.raises(ValidationError, match="needs issuer"):
            settings(custom)
        issuer = settings({**custom, "issuer": "https://idp.example"}).issuers[0]
        assert issuer.rules[0].name == "{sub}"
        assert not issuer.single_use

    def test_names_and_selectors_are_unique(self) -> None:
        """Two tables may not share a name or select the same tokens."""
        with pytest.raises(ValidationError, match="duplicate issuer name"):
            settings(table(), table())
        with pytest.raises(ValidationError, match="select tokens of"):
            settings(table(), table(name="github-2"))

    def test_from_a_toml_file(self, tmp_path: Path) -> None:
        """The section loads from the config file, errors with their location."""
        path = tmp_path / "gatepass.toml"
        path.write_text(
            """
[[identity.issuers]]
name = "github"
preset = "github-actions"
audience = "https://gatepass.example"

[[identity.issuers.rules]]
match = { repository_owner_id = "1234", environment = ["prod", "staging"] }
tenant = "acme"
""",
            encoding="utf-8",
        )
        loaded = load_settings(path)
        assert loaded.identity.issuers[0].rules[0].match["environment"] == [
            "prod",
            "staging",
        ]
        path.write_text(
            '[[identity.issuers]]\nname = "x"\npreset = "spire"\n', encoding="utf-8"
        )
        with pytest.raises(ConfigurationError, match=r"identity\.issuers\[0\]"):
            load_settings(path)

    def test_default_is_no_federation(self) -> None:
        """Without the section, no issuer is trusted."""
        assert Settings().identity.issuers == []
        assert Settings().identity.max_document_bytes == 65_536
        assert Settings().identity.fetch_timeout_seconds == 2.0


class TestFetcherConfiguration:
    """Problems found while building the fetchers stop the start."""

    def test_unreadable_ca_file(self, tmp_path: Path) -> None:
        """A ca_file that is not PEM CAs is a configuration error."""
        bad = tmp_path / "ca.pem"
        bad.write_text("not a certificate", encoding="utf-8")
        with pytest.raises(ConfigurationError, match="ca_file"):
            DocumentFetcher(ca_file=bad)
        with pytest.raises(ConfigurationError, match="ca_file"):
            DocumentFetcher(ca_file=tmp_path / "missing.pem")
