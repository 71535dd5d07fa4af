"""
The Redis engine: one ACL user per lease, granted the mount's rules for its actions.

``issue`` runs ``ACL SETUSER <name> reset on >password ~pattern &channel +@cat -cmd``
with every rule as its own protocol argument, so nothing from the configuration is
ever spliced into a command string. ``revoke`` kills the user's connections and
deletes it in one ``MULTI``/``EXEC`` block: a disabled or deleted ACL user would
otherwise keep its authenticated connections (``ACL SETUSER off`` does not cut
them). Redis has no expiry on ACL users, so the credential lives until the broker
revokes it or the reaper removes it; the lease's ``expires_at`` is enforced there.

Every issued user also gets ``-@admin`` as its last rule, so no grant, however
written, lets an agent run ``ACL``, ``CONFIG``, ``MODULE``, ``CLIENT KILL`` and the
other administrative commands. Mounts are separated by their key and channel
patterns: ACL users are server-wide and logical databases are not a boundary.
Needs Redis 7 or later (ACL selectors, ``ACL DRYRUN``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, NoReturn
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from gatepass.engines.base import (
    IssuedCredential,
    IssueRequest,
    SecretEngine,
    credential_name,
)
from gatepass.engines.context import EngineContext
from gatepass.errors import (
    ConfigurationError,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
    InvalidScopeError,
)
from gatepass.models import Target
from gatepass.secret import Secret

__all__ = [
    "RedisConfig",
    "RedisEngine",
    "RedisGrant",
    "RedisGrantSettings",
    "RedisSettings",
    "parse_settings",
]

_NAME: Final = re.compile(r"gp_[a-z2-7]{26}")
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
# Appended to every issued user: administrative commands are never delegated.
_NO_ADMIN: Final = "-@admin"
# ``secrets.token_urlsafe(32)``: 256 bits, ``[A-Za-z0-9_-]`` only.
_PASSWORD_BYTES: Final = 32
# What ``check`` asks the server (ACL DRYRUN, nothing runs) to let the admin do.
_PROBE_NAME: Final = "gp_" + "a" * 26
_ADMIN_COMMANDS: Final = (
    ("acl", "setuser", _PROBE_NAME),
    ("acl", "deluser", _PROBE_NAME),
    ("acl", "users"),
    ("client", "kill", "user", _PROBE_NAME),
    ("multi",),
    ("exec",),
)


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
class RedisGrant:
    """
    The ACL rules of one action.

    Attributes:
        keys: key glob patterns (``~pattern``).
        channels: Pub/Sub channel glob patterns (``&pattern``).
        categories: ``+@category`` / ``-@category`` rules, in order.
        commands: ``+command`` / ``-command`` rules, in order.
    """

    keys: tuple[str, ...]
    channels: tuple[str, ...]
    categories: tuple[str, ...]
    commands: tuple[str, ...]

    def rules(self) -> list[str]:
        """Return the ACL rules, one protocol argument each, ending in ``-@admin``."""
        return [
            *(f"~{pattern}" for pattern in self.keys),
            *(f"&{pattern}" for pattern in self.channels),
            *self.categories,
            *self.commands,
            _NO_ADMIN,
        ]


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


def _raise_engine_error(
    operation: str, error: redis_errors.RedisError, *, redact: Sequence[str] = ()
) -> NoReturn:
    """Raise the gatepass error for a redis-py failure, without secrets or URLs."""
    # Order matters: AuthenticationError is a ConnectionError in redis-py.
    if isinstance(error, redis_errors.AuthenticationError):
        raise EngineError(f"redis refused the admin credential during {operation}")
    if isinstance(
        error,
        redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | redis_errors.BusyLoadingError,
    ):
        raise EngineUnavailableError(
            f"redis is unreachable during {operation} ({type(error).__name__})"
        )
    if isinstance(error, redis_errors.NoPermissionError):
        raise EngineError(f"the redis admin may not run {operation}")
    if isinstance(error, redis_errors.ResponseError):
        # Server replies name the offending ACL rule, which helps operators; they
        # never echo the admin URL, and the fresh password is redacted regardless.
        reply = str(error).splitlines()[0] if str(error) else ""
        for value in redact:
            reply = reply.replace(value, "**********")
        raise EngineError(f"redis refused {operation}: {reply[:160].lower()}")
    raise EngineError(f"redis failed during {operation} ({type(error).__name__})")


def _check_name(name: str) -> str:
    # Names reach Redis as single ACL arguments, but only gatepass's own shape is
    # ever created or deleted: never ``default`` or an operator's user.
    if _NAME.fullmatch(name) is None:
        raise InvalidRequestError("not a gatepass redis credential name")
    return name


async def _command(admin: aioredis.Redis, *args: str) -> Any:  # noqa: ANN401
    # redis-py leaves `execute_command` unannotated; confine that to one place.
    return await admin.execute_command(*args)  # type: ignore[no-untyped-call]


async def _revoke(admin: aioredis.Redis, name: str) -> None:
    """Kill the user's connections and delete it in one MULTI/EXEC block."""
    async with admin.pipeline(transaction=True) as pipe:
        # Inside MULTI/EXEC no client can authenticate between the kill and the
        # delete. The kill fails with "no such user" once the user is gone.
        pipe.execute_command("CLIENT", "KILL", "USER", name)
        pipe.execute_command("ACL", "DELUSER", name)
        killed, deleted = await pipe.execute(raise_on_error=False)
    if (
        isinstance(killed, redis_errors.RedisError)
        and "no such user" not in str(killed).lower()
    ):
        raise killed
    if isinstance(deleted, redis_errors.RedisError):
        raise deleted


class RedisEngine:
    """
    Mint Redis ACL users for one mount.

    Args:
        config: the validated mount.
        context: shared engine facilities (the clock).
    """

    kind: ClassVar[str] = "redis"

    def __init__(self, config: RedisConfig, context: EngineContext) -> None:
        """Check the admin URL parses; nothing connects until the first call."""
        self._config = config
        self._clock = context.clock
        timeout = config.timeout.total_seconds()
        self._options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": True,
            "client_name": "gatepass",
            # One quick retry absorbs a connection the server dropped mid-call.
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        }
        try:
            # Parsing only: a pool opens no connection until it is used.
            aioredis.ConnectionPool.from_url(config.admin_url.reveal(), **self._options)
        except ValueError:
            raise ConfigurationError(
                f"targets.{config.target}.engine: the admin url is not usable"
            ) from None

    @classmethod
    def from_target(
        cls, target: Target, settings: Mapping[str, Any], context: EngineContext
    ) -> RedisEngine:
        """
        Build the engine of a ``redis`` target.

        Args:
            target: the target.
            settings: its ``[targets.engine]`` table.
            context: shared engine facilities.

        Returns:
            The engine, not yet connected.

        Raises:
            ConfigurationError: the table is invalid.
        """
        return cls(parse_settings(target, settings), context)

    @property
    def config(self) -> RedisConfig:
        """The validated mount."""
        return self._config

    def __repr__(self) -> str:
        """Name the target only; the admin URL may carry a password."""
        return f"RedisEngine(target={self._config.target!r})"

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[aioredis.Redis]:
        # Each operation opens its own admin connection and closes it: credentials
        # are issued and revoked once per lease, and a connection never outlives
        # the event loop that opened it (the CLI and tests run one loop per call).
        client = aioredis.Redis.from_url(
            self._config.admin_url.reveal(), **self._options
        )
        try:
            yield client
        finally:
            await client.aclose()

    async def check(self) -> None:
        """
        Verify the admin may manage ACL users and that every grant names real rules.

        Raises:
            EngineUnavailableError: Redis cannot be reached.
            EngineError: the admin is refused or lacks a permission, or a grant
                names a category or command this server does not know.
        """
        try:
            async with self._connect() as admin:
                await self._check_admin(admin)
        except redis_errors.RedisError as error:
            _raise_engine_error("check", error)

    async def _check_admin(self, admin: aioredis.Redis) -> None:
        whoami = str(await _command(admin, "ACL", "WHOAMI"))
        for command in _ADMIN_COMMANDS:
            verdict = await _command(admin, "ACL", "DRYRUN", whoami, *command)
            if verdict != "OK":
                raise EngineError(
                    f"the redis admin may not run {' '.join(command[:2])}"
                )
        known = set(await _command(admin, "ACL", "CAT"))
        for action, grant in self._config.grants.items():
            await self._check_grant(admin, action, grant, known)

    async def _check_grant(
        self, admin: aioredis.Redis, action: str, grant: RedisGrant, known: set[str]
    ) -> None:
        where = f"targets.{self._config.target}.engine.grants.{action}"
        for rule in grant.categories:
            if rule[2:] not in known:
                raise EngineError(f"{where}.categories: redis has no category {rule}")
        for rule in grant.commands:
            # "COMMAND INFO" as one name skips redis-py's reply parser, which
            # fails on the nil an unknown command yields.
            info = await _command(admin, "COMMAND INFO", rule[1:])
            if not info or info[0] is None:
                raise EngineError(f"{where}.commands: redis has no command {rule[1:]}")

    async def issue(self, request: IssueRequest) -> IssuedCredential:
        """
        Create (or replace) the ACL user ``request.name`` with the actions' rules.

        The first requested action's rules form the user's root permissions; each
        further action becomes its own selector, so rules never combine across
        actions (one action's keys with another's commands).

        Args:
            request: the lease being issued.

        Returns:
            The user name as handle, the password as secret, and host, port and
            username as fields.

        Raises:
            InvalidRequestError: the name or the expiry is unacceptable.
            InvalidScopeError: an action has no grants on this target.
            EngineError: Redis refused.
            EngineUnavailableError: Redis cannot be reached.
        """
        name = _check_name(request.name)
        if name != credential_name(request.lease_id):
            raise InvalidRequestError("the name does not belong to the lease")
        now = self._clock.now()
        if request.expires_at.utcoffset() is None:
            raise InvalidRequestError("expires_at must be timezone-aware")
        if request.expires_at <= now:
            raise InvalidRequestError("expires_at is not in the future")
        if request.expires_at - now > self._config.max_ttl:
            raise InvalidRequestError("expires_at exceeds the target's max ttl")
        if not request.actions:
            raise InvalidScopeError("no action requested")
        for action in request.actions:
            if action not in self._config.grants:
                raise InvalidScopeError(f"action {action!r} has no redis grants")
        # Target order, not request order: the same actions always make the same user.
        ordered = [a for a in self._config.grants if a in set(request.actions)]
        password = secrets.token_urlsafe(_PASSWORD_BYTES)
        root = self._config.grants[ordered[0]].rules()
        # A selector is one ACL argument that Redis splits on spaces itself; every
        # piece was validated to hold no whitespace, quote or parenthesis.
        selectors = [
            "(" + " ".join(self._config.grants[action].rules()) + ")"
            for action in ordered[1:]
        ]
        try:
            async with self._connect() as admin, admin.pipeline() as pipe:
                # `reset` first: nothing is inherited from a half-made user of the
                # same name, and its old passwords stop working.
                pipe.execute_command(
                    "ACL",
                    "SETUSER",
                    name,
                    "reset",
                    "on",
                    f">{password}",
                    *root,
                    *selectors,
                )
                # Connections left from an earlier attempt must not keep the name.
                pipe.execute_command("CLIENT", "KILL", "USER", name)
                await pipe.execute()
        except redis_errors.RedisError as error:
            _raise_engine_error("acl setuser", error, redact=[password])
        return IssuedCredential(
            handle=name,
            expires_at=request.expires_at,
            secret=Secret(password),
            fields={
                "host": self._config.host,
                "port": self._config.port,
                "username": name,
            },
        )

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """
        Confirm the user still exists; Redis users have no expiry of their own.

        The broker's lease is what ends the user (revocation and the reaper), so
        renewing is moving the lease's expiry once the user is known to be there.

        Raises:
            InvalidRequestError: the handle is not a gatepass credential name.
            EngineError: the user is gone, or Redis refused.
            EngineUnavailableError: Redis cannot be reached.
        """
        name = _check_name(handle)
        try:
            async with self._connect() as admin:
                found = await _command(admin, "ACL", "GETUSER", name)
        except redis_errors.RedisError as error:
            _raise_engine_error("renew", error)
        if not found:
            msg = f"renew: user {name} no longer exists"
            raise EngineError(msg)
        return expires_at

    async def revoke(self, handle: str) -> None:
        """
        Cut the user's live connections and delete it, atomically. Idempotent.

        Args:
            handle: the user name.

        Raises:
            InvalidRequestError: the handle is not a gatepass credential name.
            EngineError: Redis refused.
            EngineUnavailableError: Redis cannot be reached; the broker retries.
        """
        name = _check_name(handle)
        try:
            async with self._connect() as admin:
                await _revoke(admin, name)
        except redis_errors.RedisError as error:
            _raise_engine_error("revoke", error)

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:
        """
        Delete every ``gp_…`` ACL user not in ``live_handles``; other users stay.

        Args:
            live_handles: handles of leases still pending or active.

        Returns:
            The handles removed, sorted.

        Raises:
            EngineUnavailableError: Redis cannot be reached.
            EngineError: Redis refused.
        """
        try:
            async with self._connect() as admin:
                users = await _command(admin, "ACL", "USERS")
                stray = sorted(
                    user
                    for user in users
                    if _NAME.fullmatch(user) is not None and user not in live_handles
                )
                for name in stray:
                    await _revoke(admin, name)
        except redis_errors.RedisError as error:
            _raise_engine_error("reap", error)
        return stray

    async def aclose(self) -> None:
        """Release nothing: every operation closes its own admin connection."""


_: type[SecretEngine] = RedisEngine
