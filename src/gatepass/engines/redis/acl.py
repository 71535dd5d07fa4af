"""
The ACL rules and user names of the Redis engine.

**Key scope.** Redis checks ACL key patterns only against a command's *key*
arguments. Commands that take a pattern, a cursor or nothing at all and answer with
key names, key counts or key events (``KEYS``, ``SCAN``, ``RANDOMKEY``,
``CLIENT TRACKING … BCAST``…) are never matched against ``~pattern``: a grant of
``+@read ~app:*`` still lists every key of the server. So every grant whose key
patterns are not "all keys" (``*``) gets :data:`SCOPE_REFUSALS` appended after the
operator's own rules (ACL rules apply left to right, so no ``+command`` of the
grant can win them back); scripts run under the caller's ACL user, so
``redis.call('KEYS', '*')`` inside ``EVAL`` or ``FCALL`` is refused as well. A grant
whose key patterns are restricted may not name channel patterns that can match
keyspace notifications (``__keyspace@…``/``__keyevent@…``): those carry the
names of keys outside the grant. The reasoning for every keyless command of
Redis 7 is in docs/engines.md ("What a restricted grant may never run").

**Names.** A user is ``gp_<marker>_<lease body>``: the installation marker (see
:func:`gatepass.engines.context.installation_marker`) tells the reaper of one
broker deployment its own users from another deployment's on a shared server,
and the lease body lets it match a user to its live lease. Both parts are
``[a-z2-7]``, 40 characters in all, well inside what Redis accepts as a user name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ALL_PATTERN",
    "CHANNEL_LISTING_REFUSALS",
    "NO_ADMIN",
    "SCOPE_REFUSALS",
    "RedisGrant",
    "UserName",
    "may_match_keyspace_channel",
    "parse_user_name",
    "user_name",
]

# The pattern Redis itself treats as ``allkeys`` / ``allchannels``.
ALL_PATTERN: Final = "*"
# Appended to every issued user: administrative commands are never delegated. It
# also covers MONITOR, CLIENT LIST, DEBUG, SLOWLOG, LATENCY, CONFIG, SYNC/PSYNC and
# the other commands that show other clients' traffic or the whole dataset.
NO_ADMIN: Final = "-@admin"
# Refused to every credential whose key patterns are not "all keys". Each is a
# command (or subcommand) Redis does not check against key patterns that either
# reveals key names or counts, or reaches beyond the credential's keys.
SCOPE_REFUSALS: Final[tuple[str, ...]] = (
    # Enumerate or sample key names.
    "-keys",
    "-scan",
    "-randomkey",
    "-cluster|getkeysinslot",
    "-cluster|countkeysinslot",
    # Count keys (INFO's keyspace section cannot be refused alone: Redis ACLs refuse
    # whole commands or subcommands, not arguments).
    "-dbsize",
    "-info",
    "-memory|stats",
    "-memory|doctor",
    "-memory|malloc-stats",
    # Broadcast tracking (BCAST without PREFIX) sends the name of every key written
    # by anyone; PUBSUB CHANNELS lists keyspace-notification channels in use.
    "-client|tracking",
    "-pubsub|channels",
    "-pubsub|shardchannels",
    # Act on keys outside the patterns, or on the server-wide script and function
    # registries shared with every other tenant.
    "-flushall",
    "-flushdb",
    "-swapdb",
    "-function",
    "-script|flush",
    "-script|kill",
    "-script|debug",
    # Makes the server connect to any host: not a key's business.
    "-migrate",
)
# Refused when the channel patterns are not "all channels": channel names in use
# are not checked against ``&pattern`` either.
CHANNEL_LISTING_REFUSALS: Final[tuple[str, ...]] = (
    "-pubsub|channels",
    "-pubsub|shardchannels",
)
# Channels on which Redis publishes keyspace notifications (``notify-keyspace-events``).
_NOTIFICATION_PREFIXES: Final = ("__keyspace@", "__keyevent@")

_BODY: Final = r"[a-z2-7]{26}"
_MARKER: Final = r"[a-z2-7]{10}"
_MARKED_NAME: Final = re.compile(rf"gp_(?P<marker>{_MARKER})_(?P<body>{_BODY})")
_PLAIN_NAME: Final = re.compile(rf"gp_(?P<body>{_BODY})")


@dataclass(frozen=True, slots=True)
class UserName:
    """
    A parsed gatepass Redis user name.

    Attributes:
        body: the 26 base32 characters of the lease id.
        marker: the installation marker, or None for a plain ``gp_<body>`` name
            (the name the broker records on a pending lease, and the user name
            engines used before markers).
    """

    body: str
    marker: str | None

    @property
    def lease_id(self) -> str:
        """The lease id this name belongs to."""
        return f"lse_{self.body}"

    @property
    def plain(self) -> str:
        """The unmarked name (``gp_<body>``), as recorded on a pending lease."""
        return f"gp_{self.body}"


def user_name(marker: str, body: str) -> str:
    """Return the user name of a lease body under an installation marker."""
    return f"gp_{marker}_{body}"


def parse_user_name(name: str) -> UserName | None:
    """
    Parse ``gp_<marker>_<body>`` or ``gp_<body>``; None for anything else.

    Only these shapes are ever created or deleted: never ``default`` or an
    operator's own user.
    """
    marked = _MARKED_NAME.fullmatch(name)
    if marked is not None:
        return UserName(body=marked["body"], marker=marked["marker"])
    plain = _PLAIN_NAME.fullmatch(name)
    if plain is not None:
        return UserName(body=plain["body"], marker=None)
    return None


def may_match_keyspace_channel(pattern: str) -> bool:
    """
    Tell whether a channel glob can match a keyspace-notification channel.

    Conservative: a character class counts as matching any character, so the
    answer may be yes where Redis would say no, never the other way round.

    Args:
        pattern: a channel glob as Redis reads it (``*``, ``?``, ``[...]``; the
            configuration admits no backslash).

    Returns:
        True when some channel starting with ``__keyspace@`` or ``__keyevent@``
        matches the pattern.
    """
    return any(_matches_a_prefix(pattern, prefix) for prefix in _NOTIFICATION_PREFIXES)


def _matches_a_prefix(pattern: str, prefix: str) -> bool:
    # A tiny NFA over pattern positions: after reading the prefix, any surviving
    # position can go on to match some suffix (or the prefix itself, at the end).
    positions = _closure(pattern, {0})
    for char in prefix:
        following: set[int] = set()
        for position in positions:
            following |= _step(pattern, position, char)
        positions = _closure(pattern, following)
        if not positions:
            return False
    return True


def _closure(pattern: str, positions: set[int]) -> set[int]:
    closed = set(positions)
    for start in positions:
        position = start
        while position < len(pattern) and pattern[position] == "*":
            position += 1
            closed.add(position)
    return closed


def _step(pattern: str, position: int, char: str) -> set[int]:
    if position >= len(pattern):
        return set()
    symbol = pattern[position]
    if symbol == "*":
        return {position}
    if symbol == "?":
        return {position + 1}
    if symbol == "[":
        end = pattern.find("]", position + 1)
        # An unclosed class: treat the rest as matching anything (conservative).
        return {position} if end < 0 else {end + 1}
    return {position + 1} if symbol == char else set()


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

    @property
    def restricts_keys(self) -> bool:
        """Whether the grant reaches only some keys (no ``*`` key pattern)."""
        return ALL_PATTERN not in self.keys

    def rules(self) -> list[str]:
        """
        Return the ACL rules, one protocol argument each.

        The operator's rules come first, then the refusals a restricted grant
        always gets, then ``-@admin``.
        """
        refusals: list[str] = []
        if self.restricts_keys:
            refusals.extend(SCOPE_REFUSALS)
        elif ALL_PATTERN not in self.channels:
            refusals.extend(CHANNEL_LISTING_REFUSALS)
        return [
            *(f"~{pattern}" for pattern in self.keys),
            *(f"&{pattern}" for pattern in self.channels),
            *self.categories,
            *self.commands,
            *refusals,
            NO_ADMIN,
        ]
