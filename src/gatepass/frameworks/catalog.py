"""The mapping catalog (``catalog.toml``): frameworks, items, gatepass's controls."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

from gatepass.errors import ConfigurationError
from gatepass.frameworks.checks import CHECKS

__all__ = ["Catalog", "Control", "Framework", "Item", "load_catalog"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Control:
    """A gatepass control and the live checks that back it."""

    id: str
    title: str
    checks: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One framework item (``ASI03``) and the controls that address it."""

    id: str
    title: str
    controls: tuple[str, ...]
    partial: bool
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Framework:
    """A framework: its id, title and items."""

    id: str
    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    """The whole mapping."""

    controls: dict[str, Control]
    frameworks: tuple[Framework, ...]


def _item(raw: dict[str, object], controls: dict[str, Control]) -> Item:
    named = tuple(str(c) for c in raw.get("controls", []))  # type: ignore[attr-defined]
    unknown = [c for c in named if c not in controls]
    if unknown:
        raise ConfigurationError(f"catalog item {raw.get('id')} names unknown controls")
    return Item(
        id=str(raw["id"]),
        title=str(raw["title"]),
        controls=named,
        partial=raw.get("coverage", "full") == "partial",
        note=str(raw.get("note", "")),
    )


@functools.cache
def load_catalog() -> Catalog:
    """
    Read the catalog shipped in the package.

    Raises:
        ConfigurationError: the catalog names a control or check that does not
            exist (a packaging mistake, caught by the unit tests).
    """
    text = (
        resources.files("gatepass.frameworks")
        .joinpath("catalog.toml")
        .read_text(encoding="utf-8")
    )
    raw = tomllib.loads(text)
    controls = {}
    for control_id, body in raw["controls"].items():
        checks = tuple(body["checks"])
        if any(check not in CHECKS for check in checks):
            raise ConfigurationError(
                f"catalog control {control_id} names an unknown check"
            )
        controls[control_id] = Control(
            id=control_id, title=body["title"], checks=checks
        )
    frameworks = tuple(
        Framework(
            id=framework["id"],
            title=framework["title"],
            items=tuple(_item(item, controls) for item in framework["items"]),
        )
        for framework in raw["frameworks"]
    )
    return Catalog(controls=controls, frameworks=frameworks)
