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
of :mod:`gatepass.engines.redis.acl`, since Redis does not hold ``KEYS``, ``SCAN``
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

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, Final, TypeVar

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
from gatepass.engines.redis.acl import (
    UserName,
    parse_user_name,
    user_name,
)
from gatepass.engines.redis.admin import (
    check_admin,
    command,
    delete_users,
    engine_error,
)
from gatepass.engines.redis.settings import RedisConfig, parse_settings
from gatepass.engines.requests import check_actions, check_expiry
from gatepass.engines.settings import ConfiguredEngine
from gatepass.errors import EngineError, InvalidRequestError
from gatepass.models import Target
from gatepass.secret import Secret

__all__ = ["RedisEngine"]

T = TypeVar("T")

# ``secrets.token_urlsafe(32)``: 256 bits, ``[A-Za-z0-9_-]`` only.
_PASSWORD_BYTES: Final = 32


class RedisEngine(ConfiguredEngine[RedisConfig]):
    """
    Mint Redis ACL users for one mount.

    Args:
        config: the validated mount.
        context: shared engine facilities (the clock, the installation marker).
    """

    kind: ClassVar[str] = "redis"

    def __init__(self, config: RedisConfig, context: EngineContext) -> None:
        """Keep the configuration; nothing connects until the first call."""
        super().__init__(config, context)
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
    def parse_settings(cls, target: Target, settings: Mapping[str, Any]) -> RedisConfig:
        """Validate a ``redis`` table (:func:`.settings.parse_settings`)."""
        return parse_settings(target, settings)

    async def _call(
        self,
        operation: str,
        work: Callable[[aioredis.Redis], Awaitable[T]],
        *,
        redact: Sequence[str] = (),
    ) -> T:
        """
        Run ``work`` on a fresh admin connection, translating redis-py errors.

        Each operation opens its own admin connection and closes it: credentials
        are issued and revoked once per lease, and a connection never outlives
        the event loop that opened it (the CLI and tests run one loop per call).
        The replacement error is raised outside the ``except`` block, so the
        driver's exception is neither its cause nor its context.
        """
        failure: EngineError
        client = aioredis.Redis.from_url(
            self._config.admin_url.reveal(), **self._options
        )
        try:
            return await work(client)
        except redis_errors.RedisError as error:
            failure = engine_error(operation, error, redact=redact)
        finally:
            await client.aclose()
        raise failure

    async def check(self) -> None:
        """
        Verify the admin may manage ACL users and that every grant names real rules.

        Raises:
            EngineUnavailableError: Redis cannot be reached.
            EngineError: the admin is refused or lacks a permission, a grant names
                a category or command this server does not know, or the server
                lacks a command restricted grants are refused.
        """
        await self._call("check", lambda admin: check_admin(admin, self._config))

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
            InvalidRequestError: the name is not the lease's gatepass name.
            EngineError: Redis refused, or the expiry or the actions are
                unacceptable (:mod:`gatepass.engines.requests`).
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

        async def create(admin: aioredis.Redis) -> None:
            async with admin.pipeline() as pipe:
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

        await self._call("acl setuser", create, redact=[password])
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
            InvalidRequestError: the name is not the lease's gatepass name.
            EngineError: the expiry or the actions are unacceptable
                (:mod:`gatepass.engines.requests`).
        """
        parsed = parse_user_name(request.name)
        if parsed is None or parsed.marker is not None:
            raise InvalidRequestError("not a gatepass redis credential name")
        if request.name != credential_name(request.lease_id):
            raise InvalidRequestError("the name does not belong to the lease")
        check_expiry(
            request.expires_at, now=self._clock.now(), max_ttl=self._config.max_ttl
        )
        check_actions(request.actions, self._config.grants)
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

        async def lookup(admin: aioredis.Redis) -> list[Any]:
            return [await command(admin, "ACL", "GETUSER", n) for n in names]

        found = await self._call("renew", lookup)
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
        await self._call("revoke", lambda admin: delete_users(admin, names))

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

        async def remove_strays(admin: aioredis.Redis) -> list[str]:
            users = await command(admin, "ACL", "USERS")
            stray = sorted(user for user in users if self._is_stray(user, live_handles))
            for name in stray:
                await delete_users(admin, [name])
            return stray

        return await self._call("reap", remove_strays)

    async def aclose(self) -> None:
        """Release nothing: every operation closes its own admin connection."""


_: type[SecretEngine] = RedisEngine
