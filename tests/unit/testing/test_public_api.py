"""gatepass.testing: its public names, and that gatepass itself never imports it."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import gatepass
import gatepass.testing
from gatepass import clock

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


class TestPublicNames:
    """The test kit exports a sorted, importable set of names."""

    def test_all_is_sorted_and_importable(self) -> None:
        """__all__ is sorted and every name in it exists."""
        names = gatepass.testing.__all__
        assert names == sorted(names)
        for name in names:
            assert getattr(gatepass.testing, name) is not None, name

    def test_the_kit_offers_what_an_engine_author_needs(self) -> None:
        """The fakes, the contract and the builders are all there."""
        assert {
            "FrozenClock",
            "MemoryEngine",
            "SecretEngineContract",
            "EngineProbe",
            "make_engine_context",
            "make_target",
        } <= set(gatepass.testing.__all__)

    def test_frozen_clock_is_the_one_of_gatepass_clock(self) -> None:
        """FrozenClock is re-exported, not a second implementation."""
        assert gatepass.testing.FrozenClock is clock.FrozenClock


class TestImportContract:
    """import-linter forbids every package of gatepass to import gatepass.testing."""

    def test_the_forbidden_contract_names_every_package(self) -> None:
        """A new top-level package of gatepass is covered the day it appears."""
        settings = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
        contracts = settings["tool"]["importlinter"]["contracts"]
        forbidding = [
            contract
            for contract in contracts
            if contract.get("forbidden_modules") == ["gatepass.testing"]
        ]
        assert len(forbidding) == 1
        packages = {
            f"gatepass.{module.name}"
            for module in pkgutil.iter_modules(gatepass.__path__)
            if module.name != "testing"
        }
        assert set(forbidding[0]["source_modules"]) == packages
