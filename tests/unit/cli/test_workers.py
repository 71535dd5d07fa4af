"""``gatepass serve --workers N``: which configurations may run several processes."""

from __future__ import annotations

from typing import Any

import pytest

from gatepass.cli.workers import check_workers
from gatepass.config import Settings
from gatepass.errors import ConfigurationError

POSTGRES = "postgresql+psycopg://gatepass@db.example/gatepass"


def _settings(**sections: Any) -> Settings:
    return Settings.model_validate(sections)


class TestCheckWorkers:
    """Several workers only where every guarantee holds across processes."""

    def test_one_worker_is_always_allowed(self) -> None:
        """The SQLite default serves one process."""
        check_workers(_settings(), 1)

    @pytest.mark.parametrize("workers", [0, -1])
    def test_fewer_than_one_is_refused(self, workers: int) -> None:
        """Zero or negative workers is a configuration error."""
        with pytest.raises(ConfigurationError, match="at least 1"):
            check_workers(_settings(), workers)

    def test_sqlite_with_several_workers_is_refused(self) -> None:
        """Several workers on SQLite exit 78 (misconfigured), naming PostgreSQL."""
        with pytest.raises(ConfigurationError, match="needs PostgreSQL") as caught:
            check_workers(_settings(), 2)
        assert caught.value.exit_code == 78
        assert caught.value.code == "misconfigured"

    def test_postgres_with_several_workers_is_allowed(self) -> None:
        """The shared database carries what the workers must agree on."""
        check_workers(_settings(store={"url": POSTGRES}), 4)

    def test_an_ssh_target_with_several_workers_is_refused(self) -> None:
        """One process writes an SSH target's KRL file."""
        target = {
            "name": "bastion",
            "uri": "ssh://bastion.example/",
            "kind": "ssh",
            "environment": "dev",
            "tenant": "acme",
            "actions": ["read"],
            "engine": {"principals": {"read": ["readonly"]}},
        }
        settings = _settings(store={"url": POSTGRES}, targets=[target])
        with pytest.raises(ConfigurationError, match="bastion"):
            check_workers(settings, 2)
