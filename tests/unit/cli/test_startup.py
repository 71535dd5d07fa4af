"""The start-up banner and the SDK-only entry point, in-process (issue 17)."""

from __future__ import annotations

import sys

import pytest

import gatepass.cli
from gatepass import __version__
from gatepass.cli.startup import banner
from gatepass.config import Settings


def _settings(**server: object) -> Settings:
    return Settings.model_validate(
        {
            "server": {"port": 9400, "state_dir": "/srv/gatepass", **server},
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


class TestIssue17Banner:
    """What a person needs to use the broker, and never a secret."""

    def test_issue17_banner_names_issuer_token_file_and_demo(self):
        """Issuer, address, store, admin token file, demo API and docs."""
        lines = banner(_settings(), store="sqlite", with_demo=True)
        text = "\n".join(lines)
        assert lines[0] == f"gatepass {__version__}: broker ready"
        assert "issuer       http://127.0.0.1:9400" in text
        assert "listening    127.0.0.1:9400" in text
        assert "sqlite (/srv/gatepass/gatepass.db)" in text
        assert "admin token  /srv/gatepass/admin.token" in text
        assert "demo API     http://127.0.0.1:9401/ (target tickets)" in text
        assert "docs         https://" in text

    def test_issue17_banner_without_demo_on_postgres(self):
        """No demo line without --with-demo; the store is named by its dialect."""
        lines = banner(
            _settings(service_documentation="https://docs.example/gatepass"),
            store="postgresql",
            with_demo=False,
        )
        assert not any("demo API" in line for line in lines)
        assert "  store        postgresql" in lines
        assert lines[-1] == "  docs         https://docs.example/gatepass"


class TestIssue17SdkOnly:
    """``gatepass`` without the server dependencies says what to install."""

    def test_issue17_missing_server_dependency(self, monkeypatch, capsys):
        """A missing typer is one line naming gatepass[server], exit 69."""
        monkeypatch.delitem(sys.modules, "gatepass.cli.root")
        monkeypatch.setitem(sys.modules, "typer", None)
        with pytest.raises(SystemExit) as caught:
            gatepass.cli.main()
        assert caught.value.code == 69
        error = capsys.readouterr().err
        assert error == (
            "gatepass: the command line needs the server install (typer is missing): "
            "pip install 'gatepass[server]' (see the README's Install)\n"
        )

    def test_a_missing_gatepass_module_is_not_hidden(self, monkeypatch):
        """A broken gatepass module raises as it is: it is a bug, not an install."""
        monkeypatch.setitem(sys.modules, "gatepass.cli.root", None)
        with pytest.raises(ModuleNotFoundError):
            gatepass.cli.main()

    def test_unknown_attribute(self):
        """Only ``app`` is made lazily; anything else is an AttributeError."""
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            gatepass.cli.__getattr__("nothing")
