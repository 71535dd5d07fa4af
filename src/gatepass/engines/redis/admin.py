"""
The Redis engine's admin side: what ``check`` asks, and how failures read.

``check`` asks the server with ``ACL DRYRUN`` (nothing runs) whether the admin may
manage ACL users, and with ``COMMAND INFO`` / ``ACL CAT`` whether every rule of
every grant, and every command gatepass refuses to restricted grants, exists
(``ACL SETUSER`` fails on an unknown one). redis-py failures become gatepass errors
that never carry the admin URL or a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from gatepass.engines.redis.acl import (
    CHANNEL_LISTING_REFUSALS,
    SCOPE_REFUSALS,
    RedisGrant,
    user_name,
)
from gatepass.engines.redis.settings import RedisConfig
from gatepass.engines.settings import engine_path
from gatepass.errors import EngineError, EngineUnavailableError

__all__ = [
    "REFUSED_COMMANDS",
    "check_admin",
    "command",
    "delete_users",
    "engine_error",
]

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
REFUSED_COMMANDS: Final = tuple(
    dict.fromkeys(rule[1:] for rule in SCOPE_REFUSALS + CHANNEL_LISTING_REFUSALS)
)


def engine_error(
    operation: str, error: redis_errors.RedisError, *, redact: Sequence[str] = ()
) -> EngineError:
    """
    Return the gatepass error for a redis-py failure, without secrets or URLs.

    The caller raises it *after* its ``except`` block, so that the driver's
    exception (a pipeline's can quote the start of a password) is neither its
    cause nor its context.
    """
    # Order matters: AuthenticationError is a ConnectionError in redis-py.
    if isinstance(error, redis_errors.AuthenticationError):
        return EngineError(f"redis refused the admin credential during {operation}")
    if isinstance(
        error,
        redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | redis_errors.BusyLoadingError,
    ):
        return EngineUnavailableError(
            f"redis is unreachable during {operation} ({type(error).__name__})"
        )
    if isinstance(error, redis_errors.NoPermissionError):
        return EngineError(f"the redis admin may not run {operation}")
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
        return EngineError(f"redis refused {operation}: {reply[:160].lower()}")
    return EngineError(f"redis failed during {operation} ({type(error).__name__})")


async def command(admin: aioredis.Redis, *args: str) -> Any:  # noqa: ANN401
    """Run one command as the admin."""
    # redis-py leaves `execute_command` unannotated; confine that to one place.
    return await admin.execute_command(*args)  # type: ignore[no-untyped-call]


async def delete_users(admin: aioredis.Redis, names: Sequence[str]) -> None:
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


async def check_admin(admin: aioredis.Redis, config: RedisConfig) -> None:
    """
    Verify the admin may manage ACL users and that every grant names real rules.

    Raises:
        EngineError: the admin lacks a permission, a grant names a category or
            command this server does not know, or the server lacks a command
            restricted grants are refused.
    """
    whoami = str(await command(admin, "ACL", "WHOAMI"))
    for probe in _ADMIN_COMMANDS:
        verdict = await command(admin, "ACL", "DRYRUN", whoami, *probe)
        if verdict != "OK":
            raise EngineError(f"the redis admin may not run {' '.join(probe[:2])}")
    infos = await command(admin, "COMMAND INFO", *REFUSED_COMMANDS)
    for refused, info in zip(REFUSED_COMMANDS, infos, strict=True):
        if info is None:
            raise EngineError(
                f"redis has no command {refused}, which gatepass refuses to "
                "restricted grants (needs redis 7 or later)"
            )
    known = set(await command(admin, "ACL", "CAT"))
    for action, grant in config.grants.items():
        await _check_grant(admin, config, action, grant, known)


async def _check_grant(
    admin: aioredis.Redis,
    config: RedisConfig,
    action: str,
    grant: RedisGrant,
    known: set[str],
) -> None:
    where = f"{engine_path(config.target)}.grants.{action}"
    for rule in grant.categories:
        if rule[2:] not in known:
            raise EngineError(f"{where}.categories: redis has no category {rule}")
    for rule in grant.commands:
        # "COMMAND INFO" as one name skips redis-py's reply parser, which
        # fails on the nil an unknown command yields.
        info = await command(admin, "COMMAND INFO", rule[1:])
        if not info or info[0] is None:
            raise EngineError(f"{where}.commands: redis has no command {rule[1:]}")
