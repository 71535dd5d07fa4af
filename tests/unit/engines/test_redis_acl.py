"""The Redis engine's ACL rules, user names and installation markers, without Redis."""

from __future__ import annotations

import datetime as dt
import fnmatch
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from gatepass.clock import FrozenClock
from gatepass.engines import EngineContext, installation_marker, new_installation_id
from gatepass.engines.redis.acl import (
    CHANNEL_LISTING_REFUSALS,
    NO_ADMIN,
    SCOPE_REFUSALS,
    RedisGrant,
    may_match_keyspace_channel,
    parse_user_name,
    user_name,
)
from gatepass.engines.redis.settings import parse_settings
from gatepass.errors import ConfigurationError
from gatepass.models import Target
from gatepass.sealing import Sealer

NOTIFICATION_CHANNELS = ("__keyspace@0__:", "__keyevent@0__:", "__keyspace@15__:")
# Characters that occur in notification channels, plus a few that do not.
CHANNEL_ALPHABET = "_keyspacvnt@0159:xz-"


def grant(
    keys: tuple[str, ...] = ("app:*",),
    channels: tuple[str, ...] = (),
    commands: tuple[str, ...] = (),
) -> RedisGrant:
    """Return a grant of ``+@read`` with the given patterns and extra commands."""
    return RedisGrant(
        keys=keys, channels=channels, categories=("+@read",), commands=commands
    )


def target() -> Target:
    """Return a redis target with one action, read."""
    return Target(
        name="cache",
        uri="https://cache.example",
        kind="redis",
        environment="dev",
        tenant="acme",
        risk="low",
        actions=("read",),
        max_ttl=dt.timedelta(minutes=15),
    )


class TestRules:
    """What every issued user is refused, whatever the grant says."""

    def test_issue8_restricted_grant_ends_with_the_refusals(self) -> None:
        """A grant of some keys is refused enumeration even if it names +keys."""
        rules = grant(commands=("+keys", "+scan", "+info")).rules()
        assert rules[-1] == NO_ADMIN
        tail = rules[-len(SCOPE_REFUSALS) - 1 : -1]
        assert tail == list(SCOPE_REFUSALS)
        # Later rules win in Redis ACLs: the grant's +keys comes before -keys.
        assert rules.index("+keys") < rules.index("-keys")

    def test_issue8_refusals_cover_the_named_commands(self) -> None:
        """KEYS, SCAN, RANDOMKEY, DBSIZE, INFO and broadcast tracking are refused."""
        for command in ("keys", "scan", "randomkey", "dbsize", "info"):
            assert f"-{command}" in SCOPE_REFUSALS
        assert "-client|tracking" in SCOPE_REFUSALS
        assert set(CHANNEL_LISTING_REFUSALS) <= set(SCOPE_REFUSALS)

    def test_issue8_a_grant_without_key_patterns_is_restricted(self) -> None:
        """No key pattern means no key: enumeration is refused too."""
        assert set(SCOPE_REFUSALS) <= set(grant(keys=()).rules())

    def test_all_keys_grant_keeps_enumeration_but_not_channel_listing(self) -> None:
        """A grant of every key may list keys; channel names stay private."""
        rules = grant(keys=("*",), channels=("news",)).rules()
        assert "-keys" not in rules
        assert rules[-3:] == [*CHANNEL_LISTING_REFUSALS, NO_ADMIN]

    def test_all_keys_and_channels_grant_gets_only_no_admin(self) -> None:
        """A grant of everything is refused administration only."""
        rules = grant(keys=("*",), channels=("*",)).rules()
        assert rules == ["~*", "&*", "+@read", NO_ADMIN]


class TestKeyspaceChannels:
    """Channel patterns that could receive keyspace notifications are found."""

    @pytest.mark.parametrize(
        "pattern",
        [
            "*",
            "_*",
            "__keyspace@0__:*",
            "__keyevent@*",
            "__key*",
            "?_keyevent@0__:set",
            "[_]_keyspace@0__:app:1",
            "*keyspace*",
            "__keyspace@",
            "[abc",
        ],
    )
    def test_issue8_notification_patterns_are_found(self, pattern: str) -> None:
        """Wildcards, classes and literal notification channels all count."""
        assert may_match_keyspace_channel(pattern)

    @pytest.mark.parametrize(
        "pattern", ["news", "news:*", "app:*:events", "_x*", "__keys", "a*"]
    )
    def test_other_patterns_are_not(self, pattern: str) -> None:
        """Patterns that cannot start like a notification channel pass."""
        assert not may_match_keyspace_channel(pattern)

    @given(
        prefix=st.sampled_from(NOTIFICATION_CHANNELS),
        suffix=st.text(alphabet=CHANNEL_ALPHABET, max_size=12),
        singles=st.lists(st.integers(0, 40), max_size=4),
        star=st.none() | st.tuples(st.integers(0, 40), st.integers(0, 40)),
    )
    def test_issue8_any_pattern_matching_a_notification_is_found(
        self,
        prefix: str,
        suffix: str,
        singles: list[int],
        star: tuple[int, int] | None,
    ) -> None:
        """Soundness: a pattern that matches some notification channel is reported."""
        channel = prefix + suffix
        pattern = list(channel)
        for position in singles:
            pattern[position % len(pattern)] = "?"
        if star is not None:
            # ``*`` stands for any run of the channel (possibly empty).
            start = star[0] % len(pattern)
            pattern[start : start + star[1]] = ["*"]
        text = "".join(pattern)
        assert fnmatch.fnmatchcase(channel, text)
        assert may_match_keyspace_channel(text)

    @given(
        head=st.text(alphabet="abcdefghijklmnopqrstuvwxyz:-", min_size=1, max_size=8),
        tail=st.text(alphabet=CHANNEL_ALPHABET + "*?", max_size=12),
    )
    def test_a_literal_first_character_other_than_underscore_is_safe(
        self, head: str, tail: str
    ) -> None:
        """Precision: a pattern starting with a letter never matches ``__key…``."""
        assert not may_match_keyspace_channel(head + tail)

    def test_issue8_restricted_grant_may_not_receive_notifications(self) -> None:
        """A grant of some keys with a notification-capable channel stops startup."""
        read: dict[str, list[str]] = {
            "keys": ["app:*"],
            "channels": ["*"],
            "categories": ["+@read"],
        }
        table = {"admin_url": "redis://127.0.0.1:6379/0", "grants": {"read": read}}
        with pytest.raises(ConfigurationError, match=r"grants\.read: .*keyspace"):
            parse_settings(target(), table)
        read["keys"] = ["*"]
        assert parse_settings(target(), table).grants["read"].channels == ("*",)


class TestNames:
    """User names carry the installation marker and the lease body."""

    def test_issue9_marked_names_parse_back(self) -> None:
        """A marked name yields its marker, body, lease id and plain name."""
        marker, body = "abcdefghij", "a" * 26
        parsed = parse_user_name(user_name(marker, body))
        assert parsed is not None
        assert (parsed.marker, parsed.body) == (marker, body)
        assert parsed.lease_id == f"lse_{body}"
        assert parsed.plain == f"gp_{body}"
        assert len(user_name(marker, body)) == 40

    @pytest.mark.parametrize(
        "name",
        [
            "default",
            "gp_",
            "gp_" + "a" * 25,
            "gp_" + "A" * 26,
            "gp_abcdefghi_" + "a" * 26,
            "gp_abcdefghij_" + "a" * 27,
            "gp_abcdefghij-" + "a" * 26,
            "gp_" + "a" * 26 + "\n",
        ],
    )
    def test_other_names_are_not_ours(self, name: str) -> None:
        """Only the two exact shapes parse."""
        assert parse_user_name(name) is None

    @given(st.text(max_size=80))
    def test_installation_markers_are_short_base32(self, installation_id: str) -> None:
        """Any id maps to 10 characters of [a-z2-7], the same every time."""
        marker = installation_marker(installation_id)
        assert len(marker) == 10
        assert set(marker) <= set("abcdefghijklmnopqrstuvwxyz234567")
        assert marker == installation_marker(installation_id)

    def test_issue9_installations_get_different_markers(self) -> None:
        """Fresh installation ids differ, and so do their markers."""
        ids = {new_installation_id() for _ in range(200)}
        assert len(ids) == 200
        assert len({installation_marker(i) for i in ids}) == 200


class TestContext:
    """The engine context refuses an installation id that names nobody."""

    @pytest.mark.parametrize("installation_id", ["", "short", "has space12", "x" * 65])
    def test_issue9_unusable_installation_ids_are_refused(
        self, installation_id: str
    ) -> None:
        """Empty, short, long or odd ids would let deployments collide."""
        with pytest.raises(ConfigurationError, match="installation id"):
            EngineContext(
                state_dir=Path("/nonexistent"),
                sealer=Sealer([Fernet.generate_key()]),
                clock=FrozenClock(),
                installation_id=installation_id,
            )
