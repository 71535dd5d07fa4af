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
other administrative commands; a grant limited to some keys also gets the refusals
of :mod:`gatepass.engines.redis_acl`, since Redis does not hold ``KEYS``, ``SCAN``
and their kind to key patterns. Mounts are separated by their key and channel
patterns: ACL users are server-wide and logical databases are not a boundary.

Users are named ``gp_<installation marker>_<lease body>``. The broker records the
plain ``gp_<lease body>`` on the pending lease before the user exists; the engine
adds its marker, so ``revoke`` of that plain name removes the marked user (a crash
between issue and activation), and ``reap`` only ever considers users carrying this
installation's marker: brokers of other deployments sharing the server keep theirs.
Needs Redis 7 or later (ACL selectors, ``ACL DRYRUN``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, Final, NoReturn

import redis.asyncio as aioredis
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
from gatepass.engines.redis_acl import (
    CHANNEL_LISTING_REFUSALS,
    SCOPE_REFUSALS,
    RedisGrant,
    UserName,
    parse_user_name,
    user_name,
)
from gatepass.engines.redis_config import (
    RedisConfig,
    RedisGrantSettings,
    RedisSettings,
    parse_settings,
)
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

# ``secrets.token_urlsafe(32)``: 256 bits, ``[A-Za-z0-9_-]`` only.
_PASSWORD_BYTES: Final = 32
# What ``check`` asks the server (ACL DRYRUN, nothing runs) to let the admin do.
_PROBE_NAME: Final = user_name("a" * 10, "a" * 26)
_ADMIN_COMMANDS: Final = (
    ("acl", "setuser", _PROBE_NAME),
    ("acl", "deluser", _PROBE_NAME),
    ("acl", "users"),
    ("client", "kill", "user", _PROBE_NAME),
    ("multi",),
    ("exec",),
)
# The commands named by the refusals every restricted grant gets; ``check`` makes
# sure the server knows them, since ``ACL SETUSER`` fails on an unknown command.
_REFUSED_COMMANDS: Final = tuple(
    dict.fromkeys(rule[1:] for rule in SCOPE_REFUSALS + CHANNEL_LISTING_REFUSALS)
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
        # redis-py prefixes a pipeline's first error with the command and its
        # arguments cut short ("Command # 1 (ACL SETUSER … >pass...) of pipeline
        # caused error: …"): a cut password escapes the redaction below, so only
        # the server's own reply is kept.
        _, annotated, server_reply = reply.partition(" of pipeline caused error: ")
        if annotated:
            reply = server_reply
        for value in redact:
            reply = reply.replace(value, "**********")
        raise EngineError(f"redis refused {operation}: {reply[:160].lower()}")
    raise EngineError(f"redis failed during {operation} ({type(error).__name__})")


async def _command(admin: aioredis.Redis, *args: str) -> Any:  # noqa: ANN401
    # redis-py leaves `execute_command` unannotated; confine that to one place.
    return await admin.execute_command(*args)  # type: ignore[no-untyped-call]


async def _revoke(admin: aioredis.Redis, names: Sequence[str]) -> None:
    """Kill the users' connections and delete them in one MULTI/EXEC block."""
    async with admin.pipeline(transaction=True) as pipe:
        # Inside MULTI/EXEC no client can authenticate between the kill and the
        # delete. The kill fails with "no such user" once the user is gone.
        for name in names:
            pipe.execute_command("CLIENT", "KILL", "USER", name)
        pipe.execute_command("ACL", "DELUSER", *names)
        *killed, deleted = await pipe.execute(raise_on_error=False)
    for reply in killed:
        if (
            isinstance(reply, redis_errors.RedisError)
            and "no such user" not in str(reply).lower()
        ):
            raise reply
    if isinstance(deleted, redis_errors.RedisError):
        raise deleted


class RedisEngine:
    """
    Mint Redis ACL users for one mount.

    Args:
        config: the validated mount.
        context: shared engine facilities (the clock, the installation marker).
    """

    kind: ClassVar[str] = "redis"

    def __init__(self, config: RedisConfig, context: EngineContext) -> None:
        """Check the admin URL parses; nothing connects until the first call."""
        self._config = config
        self._clock = context.clock
        self._marker = context.marker
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

    def _names_of(self, handle: str) -> list[str]:
        """
        Return the users a handle stands for; refuse anything not ours.

        A marked name of this installation is itself. A plain ``gp_<body>`` is the
        name a pending lease carries (its user is the marked one) or a user made
        before markers existed: both are removed, as both derive from a lease id
        this broker's store issued.

        Raises:
            InvalidRequestError: not a gatepass name, or another installation's.
        """
        parsed = parse_user_name(handle)
        if parsed is None:
            raise InvalidRequestError("not a gatepass redis credential name")
        if parsed.marker is None:
            return [user_name(self._marker, parsed.body), parsed.plain]
        if parsed.marker != self._marker:
            raise InvalidRequestError(
                "the redis credential belongs to another gatepass installation"
            )
        return [handle]

    def _is_stray(self, user: str, live_handles: AbstractSet[str]) -> bool:
        """Tell whether ``user`` is this installation's and no live lease has it."""
        parsed: UserName | None = parse_user_name(user)
        if parsed is None or parsed.marker != self._marker:
            return False
        # The full name is the handle of an active lease; the lease id and the plain
        # name are what a pending lease is known by. Each miss may cost the broker a
        # store read, so the common case (an active lease) is asked first.
        return not any(
            name in live_handles for name in (user, parsed.lease_id, parsed.plain)
        )

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
            EngineError: the admin is refused or lacks a permission, a grant names
                a category or command this server does not know, or the server
                lacks a command restricted grants are refused.
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
        infos = await _command(admin, "COMMAND INFO", *_REFUSED_COMMANDS)
        for refused, info in zip(_REFUSED_COMMANDS, infos, strict=True):
            if info is None:
                raise EngineError(
                    f"redis has no command {refused}, which gatepass refuses to "
                    "restricted grants (needs redis 7 or later)"
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
        Create (or replace) the ACL user of the lease with the actions' rules.

        The user is ``request.name`` with this installation's marker inserted
        (``gp_<marker>_<lease body>``). The first requested action's rules form
        the user's root permissions; each further action becomes its own
        selector, so rules never combine across actions (one action's keys with
        another's commands).

        Args:
            request: the lease being issued.

        Returns:
            The marked user name as handle, the password as secret, and host,
            port and username as fields.

        Raises:
            InvalidRequestError: the name or the expiry is unacceptable.
            InvalidScopeError: an action has no grants on this target.
            EngineError: Redis refused.
            EngineUnavailableError: Redis cannot be reached.
        """
        name = self._user_of(request)
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
                # raise_on_error=False: redis-py would prefix the first error with
                # the command it failed on, and so with the start of the password.
                for reply in await pipe.execute(raise_on_error=False):
                    if isinstance(reply, redis_errors.RedisError):
                        raise reply
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

    def _user_of(self, request: IssueRequest) -> str:
        """
        Check a request before anything reaches Redis; return the user to create.

        Raises:
            InvalidRequestError: the name or the expiry is unacceptable.
            InvalidScopeError: an action has no grants on this target.
        """
        parsed = parse_user_name(request.name)
        if parsed is None or parsed.marker is not None:
            raise InvalidRequestError("not a gatepass redis credential name")
        if request.name != credential_name(request.lease_id):
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
        return user_name(self._marker, parsed.body)

    async def renew(self, handle: str, expires_at: dt.datetime) -> dt.datetime:
        """
        Confirm the user still exists; Redis users have no expiry of their own.

        The broker's lease is what ends the user (revocation and the reaper), so
        renewing is moving the lease's expiry once the user is known to be there.

        Raises:
            InvalidRequestError: the handle is not a gatepass credential name, or
                names another installation's user.
            EngineError: the user is gone, or Redis refused.
            EngineUnavailableError: Redis cannot be reached.
        """
        names = self._names_of(handle)
        try:
            async with self._connect() as admin:
                found = [await _command(admin, "ACL", "GETUSER", n) for n in names]
        except redis_errors.RedisError as error:
            _raise_engine_error("renew", error)
        if not any(found):
            msg = f"renew: user {names[0]} no longer exists"
            raise EngineError(msg)
        return expires_at

    async def revoke(self, handle: str) -> None:
        """
        Cut the user's live connections and delete it, atomically. Idempotent.

        Args:
            handle: the user name, or the plain name of a pending lease (its
                marked user, and a user of that plain name, are both removed).

        Raises:
            InvalidRequestError: the handle is not a gatepass credential name, or
                names another installation's user.
            EngineError: Redis refused.
            EngineUnavailableError: Redis cannot be reached; the broker retries.
        """
        names = self._names_of(handle)
        try:
            async with self._connect() as admin:
                await _revoke(admin, names)
        except redis_errors.RedisError as error:
            _raise_engine_error("revoke", error)

    async def reap(self, live_handles: AbstractSet[str]) -> list[str]:
        """
        Delete this installation's users that no live lease accounts for.

        Only users named ``gp_<this marker>_<lease body>`` are considered; one is
        live when its name, its lease id or its plain ``gp_<body>`` name is in
        ``live_handles``. Users of other installations, users from before markers
        (``gp_<body>``), ``default`` and operators' users are never touched.

        Args:
            live_handles: names (lease ids and handles) of leases still pending or
                active, of every mount of this broker.

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
                    user for user in users if self._is_stray(user, live_handles)
                )
                for name in stray:
                    await _revoke(admin, [name])
        except redis_errors.RedisError as error:
            _raise_engine_error("reap", error)
        return stray

    async def aclose(self) -> None:
        """Release nothing: every operation closes its own admin connection."""


_: type[SecretEngine] = RedisEngine
