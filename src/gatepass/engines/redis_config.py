"""
The ``[targets.engine]`` table of a ``redis`` target, validated into a typed mount.

Every rule an operator writes reaches Redis as one protocol argument of
``ACL SETUSER``, so the table admits only shapes that cannot smuggle a second rule:
glob patterns of printable ASCII without whitespace, quotes, backslashes or
parentheses, ``+@category`` / ``-@category`` and ``+command`` / ``-command``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from gatepass.engines.redis_acl import (
    ALL_PATTERN,
    RedisGrant,
    may_match_keyspace_channel,
)
from gatepass.errors import ConfigurationError
from gatepass.models import Target
from gatepass.secret import Secret

__all__ = [
    "RedisConfig",
    "RedisGrantSettings",
    "RedisSettings",
    "parse_settings",
]

# Printable ASCII without space, quotes, backslash or parentheses: Redis re-splits
# ACL rules with sdssplitargs when it loads an ACL file or a selector, and quotes,
# backslashes or parentheses there would change how a saved rule is read back.
_GLOB: Final = re.compile(r"[\x21\x23-\x26\x2a-\x5b\x5d-\x7e]{1,256}")
_CATEGORY: Final = re.compile(r"[+-]@[a-z]{1,32}")
# Redis command names carry underscores (``georadius_ro``) and subcommands hyphens
# (``client|no-evict``), hence slightly wider than ``[a-z|]+``.
_COMMAND: Final = re.compile(r"[+-][a-z][a-z_]{0,63}(?:\|[a-z][a-z_-]{0,63})?")
_HOST: Final = re.compile(r"[A-Za-z0-9.:\[\]-]{1,253}")
_ENV_NAME: Final = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def _matching(pattern: re.Pattern[str], problem: str) -> AfterValidator:
    def validate(value: str) -> str:
        if pattern.fullmatch(value) is None:
            raise ValueError(problem)
        return value

    return AfterValidator(validate)


# Lengths are checked before the expression runs, so a 10 kB pattern costs nothing.
_Glob = Annotated[
    str,
    Field(min_length=1, max_length=256),
    _matching(
        _GLOB,
        "must be 1-256 printable ASCII characters without whitespace, quotes, "
        "backslashes or parentheses",
    ),
]
_Category = Annotated[
    str,
    Field(max_length=34),
    _matching(_CATEGORY, "must look like +@read or -@dangerous"),
]
_Command = Annotated[
    str,
    Field(max_length=130),
    _matching(_COMMAND, "must look like +get, -keys or +client|setname"),
]


class RedisGrantSettings(BaseModel):
    """The ACL rules one action grants, as written in ``[targets.engine.grants]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: tuple[_Glob, ...] = Field(default=(), max_length=64)
    channels: tuple[_Glob, ...] = Field(default=(), max_length=64)
    categories: tuple[_Category, ...] = Field(default=(), max_length=64)
    commands: tuple[_Command, ...] = Field(default=(), max_length=128)

    @model_validator(mode="after")
    def _grants_something(self) -> RedisGrantSettings:
        if "+@admin" in self.categories:
            raise ValueError("+@admin is never granted to an agent")
        if not any(rule.startswith("+") for rule in self.categories + self.commands):
            raise ValueError("grants no command; add a +@category or a +command")
        if ALL_PATTERN not in self.keys and any(
            may_match_keyspace_channel(pattern) for pattern in self.channels
        ):
            # Keyspace notifications name the keys they are about, in the channel
            # (__keyspace@0__:<key>) or the message (__keyevent@0__:set): a grant
            # limited to some keys must not receive those of all keys.
            raise ValueError(
                "a channel pattern may match keyspace notifications "
                "(__keyspace@/__keyevent@), which name keys outside the key patterns"
            )
        return self


class RedisSettings(BaseModel):
    """The ``[targets.engine]`` table of a ``redis`` target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    admin_url: SecretStr | None = None
    admin_url_env: (
        Annotated[str, _matching(_ENV_NAME, "must be an environment variable name")]
        | None
    ) = None
    host: Annotated[str, _matching(_HOST, "must be a host name or address")] | None = (
        None
    )
    port: int | None = Field(default=None, ge=1, le=65535)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    grants: dict[str, RedisGrantSettings]

    @model_validator(mode="after")
    def _one_admin_url(self) -> RedisSettings:
        if (self.admin_url is None) == (self.admin_url_env is None):
            raise ValueError("set exactly one of admin_url and admin_url_env")
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisConfig:
    """
    A validated Redis mount.

    Attributes:
        target: the target name, for messages.
        admin_url: the admin connection URL; it may carry a password.
        host: the host handed to agents.
        port: the port handed to agents.
        max_ttl: the target's longest credential.
        timeout: connect and command timeout.
        grants: the rules per action.
    """

    target: str
    admin_url: Secret
    host: str
    port: int
    max_ttl: dt.timedelta
    timeout: dt.timedelta
    grants: Mapping[str, RedisGrant]


def _configuration_error(target: str, error: ValidationError) -> ConfigurationError:
    # include_input=False: the offending value may be the admin URL itself.
    first = error.errors(include_url=False, include_input=False, include_context=False)
    detail = first[0]
    where = ".".join(str(part) for part in detail["loc"])
    prefix = f"targets.{target}.engine" + (f".{where}" if where else "")
    message = str(detail["msg"]).removeprefix("Value error, ").lower()
    return ConfigurationError(f"{prefix}: {message}")


def parse_settings(target: Target, settings: Mapping[str, Any]) -> RedisConfig:
    """
    Validate a ``[targets.engine]`` table.

    Args:
        target: the target the table belongs to.
        settings: the raw table.

    Returns:
        The typed configuration.

    Raises:
        ConfigurationError: naming the offending field, never its value.
    """
    prefix = f"targets.{target.name}.engine"
    try:
        parsed = RedisSettings.model_validate(dict(settings))
    except ValidationError as error:
        raise _configuration_error(target.name, error) from None
    if parsed.admin_url_env is not None:
        url = os.environ.get(parsed.admin_url_env, "")
        if not url:
            raise ConfigurationError(
                f"{prefix}.admin_url_env: {parsed.admin_url_env} is not set"
            )
        field = "admin_url_env"
    else:
        url = parsed.admin_url.get_secret_value() if parsed.admin_url else ""
        field = "admin_url"
    try:
        parts = urlsplit(url)
        url_host, url_port = parts.hostname, parts.port
    except ValueError:
        raise ConfigurationError(f"{prefix}.{field}: not a valid url") from None
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigurationError(
            f"{prefix}.{field}: scheme must be redis, rediss or unix"
        )
    if parts.scheme != "unix" and not re.fullmatch(r"/?[0-9]{0,5}", parts.path):
        raise ConfigurationError(f"{prefix}.{field}: the path must be a db number")
    host = parsed.host or url_host
    if not host:
        raise ConfigurationError(f"{prefix}.host: required when the url has no host")
    missing = [action for action in target.actions if action not in parsed.grants]
    if missing:
        raise ConfigurationError(f"{prefix}.grants: no grants for action {missing[0]}")
    unknown = sorted(set(parsed.grants) - set(target.actions))
    if unknown:
        raise ConfigurationError(
            f"{prefix}.grants.{unknown[0]}: the target offers no such action"
        )
    return RedisConfig(
        target=target.name,
        admin_url=Secret(url),
        host=host,
        port=parsed.port or url_port or 6379,
        max_ttl=target.max_ttl,
        timeout=dt.timedelta(seconds=parsed.timeout_seconds),
        grants={
            action: RedisGrant(
                keys=grant.keys,
                channels=grant.channels,
                categories=grant.categories,
                commands=grant.commands,
            )
            for action, grant in parsed.grants.items()
        },
    )
