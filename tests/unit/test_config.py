"""Configuration: valid files load; every mistake is named with its location."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatepass.config import Settings, load_settings
from gatepass.errors import ConfigurationError

REPO = Path(__file__).resolve().parents[2]


class TestLoadSettings:
    """The TOML file is validated once with precise messages."""

    def test_quickstart_loads(self) -> None:
        """The quickstart configuration is valid."""
        settings = load_settings(REPO / "examples" / "quickstart" / "gatepass.toml")
        assert settings.server.issuer == "http://127.0.0.1:8400"
        assert settings.token_endpoint == "http://127.0.0.1:8400/token"
        assert settings.store_url.startswith("sqlite:///")
        assert [t.name for t in settings.target_list()] == [
            "tickets",
            "tickets-prod",
            "notes-mcp",
            "legacy-tickets",
        ]

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is named."""
        with pytest.raises(ConfigurationError, match="does not exist"):
            load_settings(tmp_path / "nope.toml")

    def test_not_toml(self, tmp_path: Path) -> None:
        """A syntax error is reported as not valid TOML."""
        path = tmp_path / "bad.toml"
        path.write_text("[server\n")
        with pytest.raises(ConfigurationError, match="not valid TOML"):
            load_settings(path)

    @pytest.mark.parametrize(
        ("text", "location"),
        [
            ('[server]\nissuer = "ftp://x"', "server.issuer"),
            ('[server]\nissuer = "https://x/path"', "server.issuer"),
            ("[server]\nport = 0", "server.port"),
            ("[server]\nunknown = 1", "server.unknown"),
            ('[store]\nurl = "mysql://x"', "store.url"),
            ('[tokens]\nalgorithm = "HS256"', "tokens.algorithm"),
            (
                (
                    '[[targets]]\nname = "t"\nuri = "https://t/"\nenvironment = "dev"\n'
                    'tenant = "a"\nactions = []'
                ),
                "targets[0].actions",
            ),
            (
                (
                    '[[targets]]\nname = "Bad Name"\nuri = "https://t/"\n'
                    'environment = "dev"\ntenant = "a"\nactions = ["read"]'
                ),
                "targets[0].name",
            ),
            (
                (
                    '[[targets]]\nname = "t"\nuri = "https://t/#frag"\n'
                    'environment = "dev"\ntenant = "a"\nactions = ["read"]'
                ),
                "targets[0]: Value error, uri",
            ),
        ],
    )
    def test_errors_name_their_location(
        self, tmp_path: Path, text: str, location: str
    ) -> None:
        """Each invalid setting is reported with its dotted location."""
        path = tmp_path / "gatepass.toml"
        path.write_text(text)
        with pytest.raises(ConfigurationError, match=location.replace("[", r"\[")):
            load_settings(path)

    def test_duplicate_targets(self) -> None:
        """Two targets with the same name are refused."""
        target = {
            "name": "t",
            "uri": "https://t/",
            "environment": "dev",
            "tenant": "a",
            "actions": ["read"],
        }
        with pytest.raises(ValueError, match="duplicate target name"):
            Settings.model_validate(
                {"targets": [target, {**target, "uri": "https://u/"}]}
            )

    def test_engine_targets_name_their_system(self) -> None:
        """Engine targets may use their own URI scheme; http targets may not."""
        target = {
            "name": "db",
            "uri": "postgresql://db.internal:5432/orders",
            "environment": "dev",
            "tenant": "a",
            "actions": ["read"],
        }
        settings = Settings.model_validate(
            {"targets": [{**target, "kind": "postgres"}]}
        )
        assert settings.targets[0].kind == "postgres"
        with pytest.raises(ValueError, match="http target"):
            Settings.model_validate({"targets": [target]})

    def test_postgres_url_normalised(self) -> None:
        """A plain postgresql:// URL uses the psycopg 3 driver."""
        settings = Settings.model_validate({"store": {"url": "postgresql://u@h/db"}})
        assert settings.store_url == "postgresql+psycopg://u@h/db"
