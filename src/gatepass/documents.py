"""
Configuration documents: read a TOML file, validate it, report every problem.

Shared by the broker's and the proxy's configuration, so both report problems the
same way: each with its location (``targets[1].max_ttl_seconds``) and rule, never
the value, which could be a secret someone put in the wrong place.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gatepass.errors import ConfigurationError

__all__ = ["read_toml", "validate_document"]

M = TypeVar("M", bound=BaseModel)


def _location(error: Mapping[str, object]) -> str:
    loc = error.get("loc", ())
    parts = [str(part) for part in loc] if isinstance(loc, tuple | list) else []
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "(top level)"


def read_toml(path: Path) -> dict[str, Any]:
    """
    Read a TOML configuration file.

    Raises:
        ConfigurationError: the file is missing or not TOML.
    """
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from exc


def validate_document(model: type[M], raw: Mapping[str, Any], *, source: str) -> M:
    """
    Validate a parsed configuration document into ``model``.

    Every problem is named with its location and rule; input values (which could
    be a secret someone put in the wrong place) are never repeated, and the
    pydantic error, which holds them, is not chained.

    Raises:
        ConfigurationError: the document is invalid.
    """
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{_location(error)}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        problems = re.sub(r"\s+", " ", problems)
        raise ConfigurationError(f"{source}: {problems}") from None
