"""
The ``[targets.engine]`` table of a ``redis`` target, validated into a typed mount.

Every rule an operator writes reaches Redis as one protocol argument of
``ACL SETUSER``, so the table admits only shapes that cannot smuggle a second rule:
glob patterns of printable ASCII without whitespace, quotes, backslashes or
parentheses, ``+@category`` / ``-@category`` and ``+command`` / ``-command``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatepass.engines.redis.acl import (
    ALL_PATTERN,
    RedisGrant,
    may_match_keyspace_channel,
)
from gatepass.engines.settings import (
    AdminURLTable,
    engine_path,
    matching,
    parse_engine_table,
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


# Lengths are checked before the expression runs, so a 10 kB pattern costs nothing.
_Glob = Annotated[
    str,
    Field(min_length=1, max_length=256),
    matching(
        _GLOB,
        "must be 1-256 printable ASCII characters without whitespace, quotes, "
        "backslashes or parentheses",
    ),
]
_Category = Annotated[
    str,
    Field(max_length=34),
    matching(_CATEGORY, "must look like +@read or -@dangerous"),
]
_Command = Annotated[
    str,
    Field(max_length=130),
    matching(_COMMAND, "must look like +get, -keys or +client|setname"),
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


class RedisSettings(AdminURLTable):
    """
    The ``[targets.engine]`` table of a ``redis`` target.

    Attributes:
        host: the host handed to agents (default: the admin URL's).
        port: the port handed to agents (default: the admin URL's, else 6379).
        timeout_seconds: connect and command timeout of admin calls.
        grants: the ACL rules of every action.
    """

    host: Annotated[str, matching(_HOST, "must be a host name or address")] | None = (
        None
    )
    port: int | None = Field(default=None, ge=1, le=65535)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    grants: dict[str, RedisGrantSettings]


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


def parse_settings(target: Target, settings: Mapping[str, Any]) -> RedisConfig:
    """Validate a ``redis`` table; its admin URL is parsed, never connected to."""
    parsed = parse_engine_table(RedisSettings, target, settings)
    admin = parsed.admin(target.name)
    url = admin.value.reveal()
    problem = _url_problem(url)
    if problem is not None:
        # Raised here, not in an except block: parse errors quote the URL.
        raise ConfigurationError(f"{admin.where}: {problem}")
    parts = urlsplit(url)
    url_host, url_port = parts.hostname, parts.port
    host = parsed.host or url_host
    if not host:
        raise ConfigurationError(
            f"{engine_path(target.name)}.host: required when the url has no host"
        )
    return RedisConfig(
        target=target.name,
        admin_url=admin.value,
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


def _url_problem(url: str) -> str | None:
    """Tell what makes ``url`` unusable as a Redis admin URL, or None."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "not a valid url"
    if parts.scheme not in {"redis", "rediss", "unix"}:
        return "scheme must be redis, rediss or unix"
    if parts.scheme != "unix" and not re.fullmatch(r"/?[0-9]{0,5}", parts.path):
        return "the path must be a db number"
    try:
        # Parsing only: a pool opens no connection until it is used. redis-py
        # reads the query string too.
        aioredis.ConnectionPool.from_url(url)
    except ValueError:
        return "the admin url is not usable"
    return None
