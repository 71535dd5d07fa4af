"""
Reading a policy directory: files, parse and validation errors, annotations.

A policy directory holds one ``schema.cedarschema`` and any number of ``*.cedar``
files (not recursive, read in name order). Everything wrong with it becomes one
:class:`~gatepass.errors.ConfigurationError` that names the file and, where it can
be found, the line of the offending policy: cedarpy's parse errors carry no
position, so each file is split into its policy statements and the statement that
fails on its own is the one reported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from gatepass.errors import ConfigurationError
from gatepass.policy.profiles import (
    NO_PROFILE,
    IssuanceProfile,
    ProfileError,
    parse_profile,
)

__all__ = ["SCHEMA_FILE", "PolicyInfo", "PolicySources", "read_sources"]

SCHEMA_FILE = "schema.cedarschema"
"""The schema's file name inside a policy directory."""

_POLICY_GLOB = "*.cedar"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyInfo:
    """
    What gatepass knows about one loaded policy.

    Attributes:
        display_id: its ``@id``, or ``<file>:<index>`` without one.
        ttl: its ``@ttl`` cap, if it has one.
        effect: ``permit`` or ``forbid``.
        file: the file it came from.
        line: the line its statement starts on (1-based; 0 when unknown).
        profile: its issuance profile (``policy/profiles.py``); ``ttl`` is the
            profile's.
    """

    display_id: str
    ttl: dt.timedelta | None
    effect: str
    file: str
    line: int
    profile: IssuanceProfile = NO_PROFILE


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySources:
    """
    A policy directory, read and checked, ready to hand to cedarpy.

    Attributes:
        schema: the parsed schema.
        policy_text: every policy file joined in name order; cedarpy numbers its
            policies ``policy0``, ``policy1``... in this order.
        policies: one entry per policy, indexed by that number.
        policy_json: each policy in Cedar's JSON policy format, in the same order
            (what the slicing index reads; see ``policy/shapes.py``).
        digest: ``sha256:`` hex of the file names and contents.
    """

    schema: cedarpy.Schema
    policy_text: str
    policies: tuple[PolicyInfo, ...]
    policy_json: tuple[Mapping[str, Any], ...]
    digest: str


def read_sources(directory: Path) -> PolicySources:
    """
    Read, parse and validate the policy directory.

    Args:
        directory: the directory holding ``schema.cedarschema`` and ``*.cedar``.

    Returns:
        The checked sources.

    Raises:
        ConfigurationError: the directory is missing or empty, the schema is missing
            or broken, a policy does not parse or validate, an ``@id`` repeats, or
            an annotation is malformed.
    """
    if not directory.is_dir():
        raise ConfigurationError(f"{directory}: policy directory not found")
    schema_path = directory / SCHEMA_FILE
    policy_paths = sorted(directory.glob(_POLICY_GLOB))
    if not policy_paths:
        raise ConfigurationError(f"{directory}: no {_POLICY_GLOB} policy files")
    if not schema_path.is_file():
        raise ConfigurationError(f"{schema_path}: schema file missing")
    schema_text = _read_text(schema_path)
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        raise ConfigurationError(f"{schema_path}: invalid schema: {exc}") from exc

    digest = hashlib.sha256()
    digest.update(f"{SCHEMA_FILE}\0{schema_text}\0".encode())
    texts: list[str] = []
    policies: list[PolicyInfo] = []
    policy_json: list[Mapping[str, Any]] = []
    seen: dict[str, PolicyInfo] = {}
    for path in policy_paths:
        text = _read_text(path)
        digest.update(f"{path.name}\0{text}\0".encode())
        infos, documents = _check_file(path, text, schema)
        policy_json.extend(documents)
        for info in infos:
            previous = seen.get(info.display_id)
            if previous is not None:
                raise ConfigurationError(
                    f"{path}:{info.line}: duplicate @id {info.display_id!r}, "
                    f"first used in {previous.file}:{previous.line}"
                )
            seen[info.display_id] = info
            policies.append(info)
        texts.append(text)
    return PolicySources(
        schema=schema,
        policy_text="\n".join(texts),
        policies=tuple(policies),
        policy_json=tuple(policy_json),
        digest=f"sha256:{digest.hexdigest()}",
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read: {exc}") from exc


def _check_file(
    path: Path, text: str, schema: cedarpy.Schema
) -> tuple[list[PolicyInfo], list[Mapping[str, Any]]]:
    """Parse and validate one file; return its policies, and their JSON, in order."""
    lines = statement_lines(text)
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise ConfigurationError(
            f"{path}:{_failing_line(text)}: cannot parse policy: {exc}"
        ) from exc
    if parsed["templates"]:
        raise ConfigurationError(
            f"{path}: templates (policies with ?principal or ?resource slots) are "
            "not supported; write the entity into the policy"
        )
    static: dict[str, dict[str, Any]] = parsed["staticPolicies"]
    # Statement splitting and cedarpy agree whenever the file parses; the padding
    # only keeps a disagreement from becoming an IndexError.
    lines = [*lines, *([0] * len(static))]
    policies = [
        _policy_info(path, index, lines[index], static[f"policy{index}"])
        for index in range(len(static))
    ]
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        problems = []
        for error in result.errors:
            info = policies[int(error.policy_id.removeprefix("policy"))]
            # Cedar names the policy by its position in this file; use our name.
            message = error.error.replace(
                f"`{error.policy_id}`", f"`{info.display_id}`"
            )
            problems.append(
                f"{path}:{info.line}: policy {info.display_id!r} does not validate "
                f"against {SCHEMA_FILE}: {message}"
            )
        raise ConfigurationError("; ".join(problems))
    return policies, [static[f"policy{index}"] for index in range(len(static))]


def _policy_info(
    path: Path, index: int, line: int, policy: dict[str, Any]
) -> PolicyInfo:
    annotations: dict[str, str] = policy.get("annotations", {})
    where = f"{path}:{line}"
    display_id = annotations.get("id")
    if display_id is None:
        display_id = f"{path.name}:{index}"
    elif not display_id.strip():
        raise ConfigurationError(f"{where}: @id must not be empty")
    effect = str(policy["effect"])
    try:
        profile = parse_profile(annotations, effect=effect)
    except ProfileError as error:
        raise ConfigurationError(f"{where}: policy {display_id!r}: {error}") from None
    return PolicyInfo(
        display_id=display_id,
        ttl=profile.ttl,
        effect=effect,
        file=path.name,
        line=line,
        profile=profile,
    )


def _failing_line(text: str) -> int:
    """
    Return the line of the first statement that does not parse on its own.

    When each statement parses alone, the last one is blamed: the whole file failed
    to parse, and the usual culprit is an unterminated final statement.
    """
    starts = _statement_offsets(text) or [0]
    spans = itertools.pairwise([*starts, len(text)])
    failing = next(
        (start for start, end in spans if not _parses(text[start:end])), starts[-1]
    )
    return _line_of(text, failing)


def _parses(text: str) -> bool:
    try:
        cedarpy.PolicySet.from_str(text)
    except ValueError:
        return False
    return True


def statement_lines(text: str) -> list[int]:
    """
    Return the 1-based line on which each policy statement of ``text`` starts.

    A statement runs to its terminating ``;``; ``;`` inside strings and comments
    does not count. A trailing statement without ``;`` is included.

    Args:
        text: Cedar policy text.

    Returns:
        One line number per statement, in order.
    """
    lines: list[int] = []
    line, counted = 1, 0
    for offset in _statement_offsets(text):
        # Count only the newlines since the previous statement: counting from the
        # start each time made loading 10,000 policies take seconds.
        line += text.count("\n", counted, offset)
        counted = offset
        lines.append(line)
    return lines


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _statement_offsets(text: str) -> list[int]:
    """Return the offset of the first significant character of each statement."""
    offsets: list[int] = []
    in_statement = False
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if text.startswith("//", index):
            newline = text.find("\n", index)
            index = length if newline < 0 else newline
            continue
        if char.isspace():
            index += 1
            continue
        if not in_statement:
            offsets.append(index)
            in_statement = True
        if char == '"':
            index = _skip_string(text, index)
            continue
        if char == ";":
            in_statement = False
        index += 1
    return offsets


def _skip_string(text: str, start: int) -> int:
    """Return the offset just past the string literal opening at ``start``."""
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == '"':
            return index + 1
        index += 1
    return index
