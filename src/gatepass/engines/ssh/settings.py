"""
The ``[targets.engine]`` table of an ``ssh`` target, validated into a typed mount.

Principals are login names as ``useradd(8)`` accepts them; ``source_address`` is
normalised to networks; ``force_command`` is one line. Every value ends up in a
certificate the CA signs, so nothing outside these shapes is accepted.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, field_validator

from gatepass.engines.settings import EngineTable, parse_engine_table
from gatepass.models import Target

__all__ = [
    "CAAlgorithm",
    "Extension",
    "SSHConfig",
    "SSHSettings",
    "parse_settings",
]

# A login name as useradd(8) accepts it (NAME_REGEX), capped at 32 characters.
_PRINCIPAL: Final = r"^[a-z_][a-z0-9_.-]{0,31}$"
Principal = Annotated[str, Field(pattern=_PRINCIPAL)]
Extension = Literal[
    "permit-pty",
    "permit-port-forwarding",
    "permit-agent-forwarding",
    "permit-X11-forwarding",
    "permit-user-rc",
]
CAAlgorithm = Literal["ed25519", "ecdsa-p256"]
_DEFAULT_EXTENSIONS: Final[tuple[Extension, ...]] = ("permit-pty",)
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class SSHSettings(EngineTable):
    """
    The ``[targets.engine]`` table of an ``ssh`` target.

    Attributes:
        principals: for each action, the principals (host login names or names in
            ``AuthorizedPrincipalsFile``) its certificate carries.
        source_address: CIDRs the certificate may be used from (critical option).
        force_command: the command the host runs instead of the agent's (critical
            option).
        extensions: the OpenSSH extensions granted; ``permit-pty`` by default.
        ca_algorithm: the CA key type, fixed when the CA key is first generated.
    """

    action_field: ClassVar[str] = "principals"

    principals: dict[str, list[Principal]] = Field(min_length=1, max_length=32)
    source_address: list[str] | None = Field(default=None, min_length=1, max_length=32)
    force_command: str | None = Field(default=None, min_length=1, max_length=1024)
    extensions: list[Extension] = Field(
        default_factory=lambda: list(_DEFAULT_EXTENSIONS), max_length=5
    )
    ca_algorithm: CAAlgorithm = "ed25519"

    @field_validator("principals")
    @classmethod
    def _principals_not_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for action, names in value.items():
            if not 1 <= len(names) <= 32:
                raise ValueError(f"{action}: needs 1 to 32 principals")
            if len(set(names)) != len(names):
                raise ValueError(f"{action}: repeats a principal")
        return value

    @field_validator("source_address")
    @classmethod
    def _cidrs(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        networks: list[str] = []
        for item in value:
            if len(item) > 64:
                raise ValueError("an entry is too long to be a CIDR")
            try:
                networks.append(str(ipaddress.ip_network(item, strict=True)))
            except ValueError:
                raise ValueError(
                    "each entry must be an address or CIDR such as 10.0.0.0/8, "
                    "without host bits"
                ) from None
        return networks

    @field_validator("force_command")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and CONTROL.search(value):
            raise ValueError("must be one line without control characters")
        return value

    @field_validator("extensions")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("repeats an extension")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class SSHConfig:
    """
    A validated SSH mount.

    Attributes:
        target: the target name (CA comment, state file names, messages).
        max_ttl: the target's longest certificate.
        principals: for each action, the principals its certificate carries.
        source_address: networks the certificate may be used from (empty: any).
        force_command: the command hosts run instead of the agent's, or None.
        extensions: the OpenSSH extensions granted.
        ca_algorithm: the CA key type.
    """

    target: str
    max_ttl: dt.timedelta
    principals: Mapping[str, tuple[str, ...]]
    source_address: tuple[str, ...]
    force_command: str | None
    extensions: tuple[Extension, ...]
    ca_algorithm: CAAlgorithm


def parse_settings(target: Target, settings: Mapping[str, Any]) -> SSHConfig:
    """Validate an ``ssh`` table (it has no admin connection: the CA is local)."""
    parsed = parse_engine_table(SSHSettings, target, settings)
    return SSHConfig(
        target=target.name,
        max_ttl=target.max_ttl,
        principals={
            action: tuple(names) for action, names in parsed.principals.items()
        },
        source_address=tuple(parsed.source_address or ()),
        force_command=parsed.force_command,
        extensions=tuple(parsed.extensions),
        ca_algorithm=parsed.ca_algorithm,
    )
