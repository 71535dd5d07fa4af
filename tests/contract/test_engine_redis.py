"""The Redis engine against a real Redis 7: ACL users as short-lived credentials."""

from __future__ import annotations

import datetime as dt
import os
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
import redis
import redis.asyncio as aioredis
from cryptography.fernet import Fernet
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from tests.conftest import require_service

from gatepass.clock import FrozenClock
from gatepass.engines import (
    EngineContext,
    IssuedCredential,
    IssueRequest,
    credential_name,
    new_installation_id,
)
from gatepass.engines.redis import RedisEngine
from gatepass.engines.redis import admin as redis_admin
from gatepass.engines.redis.acl import SCOPE_REFUSALS
from gatepass.engines.redis.admin import engine_error
from gatepass.errors import (
    ConfigurationError,
    EngineError,
    EngineUnavailableError,
    InvalidRequestError,
)
from gatepass.ids import LeaseId, new_lease_id
from gatepass.models import Target
from gatepass.sealing import Sealer
from gatepass.testing import SecretEngineContract, fresh_clock

REDIS_URL = os.environ.get("GATEPASS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Every ACL user this session creates, so the session safety net can remove it even
# when a test's own teardown never ran.
CREATED_USERS: set[str] = set()
# Unique per session: several developers may share one Redis.
RUN = uuid.uuid4().hex[:10]
ADMIN_PASSWORD = "hunter2-admin-password-in-url"
DEADLINE_SECONDS = 5.0


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis under test; skipped locally when absent, a failure under CI."""
    require_service("Redis", REDIS_URL, 6379)
    return REDIS_URL


@pytest.fixture(scope="session", autouse=True)
def _delete_known_users() -> Iterator[None]:
    """Safety net: delete every user the session created, whatever happened."""
    yield
    if not CREATED_USERS:
        return
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.acl_deluser(*sorted(CREATED_USERS))
    finally:
        client.close()


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio, the broker's event loop."""
    return "asyncio"


@pytest.fixture
def user_names(redis_url: str) -> Iterator[Callable[[], str]]:
    """
    Hand out fresh plain ``gp_`` names and delete their users after the test.

    A plain name is what the broker records on a pending lease; the user the
    engine creates for it carries the installation marker (:func:`marked`).
    """
    names: list[str] = []

    def new_name() -> str:
        name = credential_name(new_lease_id())
        names.extend((name, marked(name)))
        CREATED_USERS.update((name, marked(name)))
        return name

    try:
        yield new_name
    finally:
        if names:
            client = redis.Redis.from_url(redis_url)
            try:
                client.acl_deluser(*names)
            finally:
                client.close()


def make_target(
    name: str = "cache",
    actions: tuple[str, ...] = (),
    max_ttl: dt.timedelta = dt.timedelta(minutes=15),
) -> Target:
    """Return a redis target offering ``actions`` (read, write and logs by default)."""
    return Target(
        name=name,
        uri=f"https://{name}.example",
        kind="redis",
        environment="dev",
        tenant="acme",
        risk="low",
        actions=actions or ("read", "write", "logs"),
        max_ttl=max_ttl,
    )


def make_settings(
    url: str = REDIS_URL, prefix: str = f"t{RUN}", **overrides: Any
) -> dict[str, Any]:
    """Return a valid engine table whose keys all start with ``prefix``."""
    settings: dict[str, Any] = {
        "admin_url": url,
        "grants": {
            "read": {
                "keys": [f"{prefix}:app:*"],
                "categories": ["+@read", "-@dangerous"],
                "commands": ["+ping"],
            },
            "write": {
                "keys": [f"{prefix}:app:*"],
                "categories": ["+@read", "+@write", "-@dangerous"],
                "commands": ["+ping"],
            },
            "logs": {"keys": [f"{prefix}:log:*"], "commands": ["+set", "+ping"]},
        },
    }
    settings.update(overrides)
    return settings


CLOCK = FrozenClock()
CONTEXT = EngineContext(
    state_dir=Path("/nonexistent"),
    sealer=Sealer([Fernet.generate_key()]),
    clock=CLOCK,
    installation_id=new_installation_id(),
)


def marked(name: str, context: EngineContext = CONTEXT) -> str:
    """Return the user an installation creates for the plain lease name ``name``."""
    return f"gp_{context.marker}_{name.removeprefix('gp_')}"


def other_context() -> EngineContext:
    """Return the context of another broker deployment (its own installation id)."""
    return EngineContext(
        state_dir=CONTEXT.state_dir,
        sealer=CONTEXT.sealer,
        clock=CLOCK,
        installation_id=new_installation_id(),
    )


def build(
    settings: Mapping[str, Any],
    target: Target | None = None,
    *,
    context: EngineContext = CONTEXT,
) -> RedisEngine:
    """Build an engine from a table, as the broker does."""
    return RedisEngine.from_target(target or make_target(), settings, context)


def request(
    name: str, *actions: str, ttl: dt.timedelta = dt.timedelta(minutes=10)
) -> IssueRequest:
    """Return an issue request for the lease behind ``name``, expiring after ``ttl``."""
    return IssueRequest(
        lease_id=LeaseId("lse_" + name.removeprefix("gp_")),
        name=name,
        actions=actions or ("read",),
        principal="agt_test",
        expires_at=CLOCK.now() + ttl,
    )


@pytest.fixture
async def engine(redis_url: str) -> AsyncIterator[RedisEngine]:
    """An engine on the test Redis, closed after the test."""
    built = build(make_settings(redis_url))
    try:
        yield built
    finally:
        await built.aclose()


def connect_as(credential: IssuedCredential) -> aioredis.Redis:
    """Open one dedicated connection with the credential, never retrying."""
    assert credential.secret is not None
    return aioredis.Redis(
        host=str(credential.fields["host"]),
        port=int(credential.fields["port"]),
        username=str(credential.fields["username"]),
        password=credential.secret.reveal(),
        decode_responses=True,
        single_connection_client=True,
        retry=Retry(NoBackoff(), 0),
        socket_timeout=DEADLINE_SECONDS,
    )


async def wait_until_dropped(client: aioredis.Redis) -> None:
    """Poll with PING under a deadline until the server has closed the connection."""
    with anyio.fail_after(DEADLINE_SECONDS):
        while True:
            try:
                await client.ping()
            except redis.ConnectionError:
                return
            # The poll step: an event nobody sets, awaited with a short timeout.
            with anyio.move_on_after(0.05):
                await anyio.Event().wait()


async def acl_users(redis_url: str) -> list[str]:
    """Return the server's ACL user names."""
    admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [str(user) for user in await admin.acl_users()]
    finally:
        await admin.aclose()


async def delete_keys(*keys: str) -> None:
    """Delete test keys as the admin."""
    admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await admin.unlink(*keys)
    finally:
        await admin.aclose()


HOSTILE_PATTERNS = [
    "app: *",
    "app:\n*",
    "app:\r\nFLUSHALL",
    "app:\t*",
    'app:"*',
    "app:'*",
    "app:\\*",
    "(app:*)",
    "app:\u00e9*",
    "app:\u202e*",
    "app:\x00*",
    "app:\x7f*",
    "",
    "a" * 10240,
]


class TestConfiguration:
    """``from_target`` validates the engine table strictly and never leaks the URL."""

    def test_valid_table_builds(self):
        """A complete table yields an engine with host and port from the URL."""
        engine = build(make_settings("redis://10.1.2.3:6380/0"))
        assert (engine.config.host, engine.config.port) == ("10.1.2.3", 6380)
        assert repr(engine) == "RedisEngine(target='cache')"

    def test_host_and_port_override_the_url(self):
        """Explicit host and port are what agents receive."""
        engine = build(make_settings(host="redis.internal", port=7000))
        assert (engine.config.host, engine.config.port) == ("redis.internal", 7000)

    @pytest.mark.parametrize("field", ["keys", "channels"])
    @pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
    def test_hostile_patterns_are_refused(self, field, pattern):
        """Whitespace, quotes, unicode, control characters and huge patterns fail."""
        settings = make_settings()
        settings["grants"]["read"][field] = [pattern]
        with pytest.raises(ConfigurationError) as caught:
            build(settings)
        assert str(caught.value).startswith(f"targets.cache.engine.grants.read.{field}")

    @pytest.mark.parametrize(
        ("field", "rule"),
        [
            ("categories", "+read"),
            ("categories", "+@read -@write"),
            ("categories", "+@READ"),
            ("categories", "@read"),
            ("categories", "+@read\n"),
            ("commands", "get"),
            ("commands", "+GET"),
            ("commands", "+get +set"),
            ("commands", "+get\n"),
            ("commands", "+@read"),
            ("commands", "+" + "a" * 10240),
        ],
    )
    def test_malformed_rules_are_refused(self, field, rule):
        """Categories and commands must each be a single well-formed rule."""
        settings = make_settings()
        settings["grants"]["read"][field] = [rule]
        with pytest.raises(ConfigurationError, match=f"grants.read.{field}"):
            build(settings)

    def test_admin_category_is_refused(self):
        """No grant may hand out administrative commands."""
        settings = make_settings()
        settings["grants"]["read"]["categories"] = ["+@admin"]
        with pytest.raises(ConfigurationError, match="never granted"):
            build(settings)

    def test_grant_without_command_is_refused(self):
        """A grant that allows no command at all is a mistake."""
        settings = make_settings()
        settings["grants"]["read"] = {"keys": ["x:*"], "categories": ["-@all"]}
        with pytest.raises(
            ConfigurationError, match=r"grants\.read: grants no command"
        ):
            build(settings)

    def test_every_action_needs_grants(self):
        """An action the target offers without grants stops startup."""
        settings = make_settings()
        del settings["grants"]["logs"]
        with pytest.raises(ConfigurationError, match=r"grants\.logs: missing"):
            build(settings)

    def test_grants_for_unknown_actions_are_refused(self):
        """A grant for an action the target does not offer is a typo."""
        with pytest.raises(
            ConfigurationError, match=r"grants\.logs: not an action of the target"
        ):
            build(make_settings(), make_target(actions=("read", "write")))

    def test_unknown_field_is_refused(self):
        """Extra fields are refused, at the top and inside grants."""
        with pytest.raises(ConfigurationError, match=r"engine\.password"):
            build(make_settings(password="x"))
        settings = make_settings()
        settings["grants"]["read"]["allkeys"] = True
        with pytest.raises(ConfigurationError, match=r"grants\.read\.allkeys"):
            build(settings)

    @pytest.mark.parametrize(
        "overrides",
        [{"admin_url_env": "GATEPASS_REDIS_ADMIN"}, {"admin_url": None}],
    )
    def test_exactly_one_admin_url(self, overrides):
        """Both admin_url and admin_url_env, or neither, are refused."""
        with pytest.raises(ConfigurationError, match="exactly one of admin_url"):
            build(make_settings(**overrides))

    def test_admin_url_from_environment(self, monkeypatch):
        """admin_url_env reads the URL from the environment, and must be set."""
        settings = make_settings(admin_url_env="GATEPASS_TEST_REDIS_ADMIN")
        del settings["admin_url"]
        monkeypatch.delenv("GATEPASS_TEST_REDIS_ADMIN", raising=False)
        with pytest.raises(
            ConfigurationError, match="GATEPASS_TEST_REDIS_ADMIN is not"
        ):
            build(settings)
        monkeypatch.setenv("GATEPASS_TEST_REDIS_ADMIN", "redis://10.9.8.7:6379/0")
        assert build(settings).config.host == "10.9.8.7"

    @pytest.mark.parametrize(
        "url",
        [
            f"http://admin:{ADMIN_PASSWORD}@127.0.0.1:6379/0",
            f"redis://admin:{ADMIN_PASSWORD}@127.0.0.1:notaport/0",
            f"{ADMIN_PASSWORD}",
        ],
    )
    def test_bad_admin_url_error_hides_it(self, url):
        """A malformed admin URL is refused without echoing it."""
        with pytest.raises(ConfigurationError) as caught:
            build(make_settings(url))
        assert ADMIN_PASSWORD not in str(caught.value)
        assert str(caught.value).startswith("targets.cache.engine.admin_url")

    def test_unix_socket_url_needs_a_host_for_agents(self):
        """A unix-socket admin URL needs an explicit host to hand to agents."""
        with pytest.raises(ConfigurationError, match=r"engine\.host: required"):
            build(make_settings("unix:///run/redis.sock"))
        engine = build(make_settings("unix:///run/redis.sock", host="redis.internal"))
        assert (engine.config.host, engine.config.port) == ("redis.internal", 6379)

    @pytest.mark.parametrize(
        "tail", ["/notadb", "/0?socket_timeout=x", "/0/x", "/123456"]
    )
    def test_unusable_admin_url_is_refused_without_echo(self, tail):
        """A URL redis-py cannot use is refused without being repeated."""
        url = f"redis://admin:{ADMIN_PASSWORD}@127.0.0.1:6379{tail}"
        with pytest.raises(ConfigurationError, match="admin") as caught:
            build(make_settings(url))
        assert ADMIN_PASSWORD not in "".join(traceback.format_exception(caught.value))

    def test_validation_error_hides_admin_url(self):
        """Errors elsewhere in the table never carry the admin URL."""
        settings = make_settings(f"redis://admin:{ADMIN_PASSWORD}@h:6379/0", port=0)
        with pytest.raises(ConfigurationError) as caught:
            build(settings)
        rendered = "".join(traceback.format_exception(caught.value))
        assert ADMIN_PASSWORD not in rendered


@pytest.mark.redis
@pytest.mark.anyio
class TestIssue:
    """Issued users can do what their actions grant, and nothing else."""

    async def test_credential_fields(self, engine, user_names):
        """The handle is the marked user name; fields carry host, port and username."""
        name = user_names()
        credential = await engine.issue(request(name))
        parts = urlsplit(REDIS_URL)
        assert credential.handle == marked(name)
        assert credential.expires_at == request(name).expires_at
        assert dict(credential.fields) == {
            "host": parts.hostname,
            "port": parts.port or 6379,
            "username": marked(name),
        }
        assert credential.secret is not None
        assert len(credential.secret.reveal()) >= 43
        assert credential.secret.reveal() not in repr(credential)

    async def test_write_allows_get_and_set_on_its_keys(self, engine, user_names):
        """A write credential reads and writes keys matching its pattern."""
        client = connect_as(await engine.issue(request(user_names(), "write")))
        try:
            assert await client.set(f"t{RUN}:app:1", "v")
            assert await client.get(f"t{RUN}:app:1") == "v"
            assert await client.delete(f"t{RUN}:app:1") == 1
        finally:
            await client.aclose()

    async def test_read_allows_only_reading(self, engine, user_names):
        """A read credential may GET but not SET."""
        client = connect_as(await engine.issue(request(user_names(), "read")))
        try:
            assert await client.get(f"t{RUN}:app:1") is None
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.set(f"t{RUN}:app:1", "v")
        finally:
            await client.aclose()

    @pytest.mark.parametrize(
        "command",
        [
            ("GET", "other:key"),
            ("SET", "other:key", "v"),
            ("KEYS", "*"),
            ("FLUSHALL",),
            ("CONFIG", "GET", "*"),
            ("ACL", "SETUSER", "gp_evil", "on", "nopass", "allcommands"),
            ("ACL", "LIST"),
            ("CLIENT", "KILL", "USER", "default"),
            ("SUBSCRIBE", "news"),
        ],
    )
    async def test_other_keys_and_commands_are_refused(
        self, engine, user_names, command
    ):
        """Keys outside the pattern, dangerous and admin commands answer NOPERM."""
        client = connect_as(await engine.issue(request(user_names(), "write")))
        try:
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.execute_command(*command)  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()

    async def test_actions_do_not_combine(self, engine, user_names):
        """Read plus logs never lets one action's commands reach another's keys."""
        client = connect_as(await engine.issue(request(user_names(), "logs", "read")))
        try:
            assert await client.get(f"t{RUN}:app:1") is None
            assert await client.set(f"t{RUN}:log:1", "line")
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.set(f"t{RUN}:app:1", "v")
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.get(f"t{RUN}:log:1")
        finally:
            await client.aclose()
            await delete_keys(f"t{RUN}:log:1")

    async def test_issue_again_replaces_the_user(self, engine, user_names):
        """Issuing the same name again cuts the old password and its connection."""
        name = user_names()
        first = await engine.issue(request(name))
        client = connect_as(first)
        try:
            assert await client.ping()
            await engine.issue(request(name))
            await wait_until_dropped(client)
        finally:
            await client.aclose()
        again = connect_as(first)
        try:
            with pytest.raises(redis.exceptions.AuthenticationError):
                await again.ping()
        finally:
            await again.aclose()

    @pytest.mark.parametrize(
        "name",
        [
            "admin",
            "gp_short",
            "gp_ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "gp_x y",
            "gp_" + "a" * 10 + "_" + "b" * 26,
        ],
    )
    async def test_malformed_name_is_refused(self, engine, name):
        """Only plain gp_ names with a 26-character base32 body are accepted."""
        with pytest.raises(InvalidRequestError, match="not a gatepass"):
            await engine.issue(request(name))
        assert not {name, marked(name)} & set(await acl_users(REDIS_URL))

    async def test_name_must_belong_to_the_lease(self, engine, user_names):
        """A well-formed name of another lease is refused."""
        name = user_names()
        wrong = IssueRequest(
            lease_id=new_lease_id(),
            name=name,
            actions=("read",),
            principal="agt_test",
            expires_at=CLOCK.now() + dt.timedelta(minutes=1),
        )
        with pytest.raises(InvalidRequestError, match="does not belong"):
            await engine.issue(wrong)
        assert not {name, marked(name)} & set(await acl_users(REDIS_URL))

    @pytest.mark.parametrize(
        ("ttl", "problem"),
        [
            (dt.timedelta(0), "not in the future"),
            (dt.timedelta(minutes=16), "max ttl"),
        ],
    )
    async def test_expiry_outside_the_target_window_is_refused(
        self, engine, user_names, ttl, problem
    ):
        """Expiries already past or beyond the target's max ttl fail before Redis."""
        name = user_names()
        with pytest.raises(EngineError, match=problem):
            await engine.issue(request(name, ttl=ttl))
        assert not {name, marked(name)} & set(await acl_users(REDIS_URL))

    async def test_naive_expiry_is_refused(self, engine, user_names):
        """An expiry without a timezone is refused."""
        name = user_names()
        naive = IssueRequest(
            lease_id=LeaseId("lse_" + name.removeprefix("gp_")),
            name=name,
            actions=("read",),
            principal="agt_test",
            expires_at=dt.datetime(2026, 1, 1, 0, 5),  # noqa: DTZ001 - the point
        )
        with pytest.raises(EngineError, match="timezone"):
            await engine.issue(naive)

    @pytest.mark.parametrize("actions", [(), ("admin",), ("read", "admin")])
    async def test_actions_without_grants_are_refused(
        self, engine, user_names, actions
    ):
        """No action, or one the target does not grant, fails before Redis."""
        name = user_names()
        bad = IssueRequest(
            lease_id=LeaseId("lse_" + name.removeprefix("gp_")),
            name=name,
            actions=actions,
            principal="agt_test",
            expires_at=CLOCK.now() + dt.timedelta(minutes=1),
        )
        with pytest.raises(EngineError, match="action"):
            await engine.issue(bad)
        assert not {name, marked(name)} & set(await acl_users(REDIS_URL))


# The documented read grant, and the widest grant an operator could write for the
# same keys: the refusals must hold for both.
SCOPE_PREFIX = f"s{RUN}"
SCOPE_SETTINGS: dict[str, Any] = {
    "admin_url": REDIS_URL,
    "grants": {
        "read": {"keys": [f"{SCOPE_PREFIX}:*"], "categories": ["+@read"]},
        "everything": {"keys": [f"{SCOPE_PREFIX}:*"], "categories": ["+@all"]},
    },
}
# Run for real: harmless even if a refusal were missing (nothing is written).
ENUMERATIONS = [
    ("KEYS", "*"),
    ("SCAN", "0"),
    ("SCAN", "0", "MATCH", "*"),
    ("SCAN", "0", "TYPE", "string"),
    ("RANDOMKEY",),
    ("DBSIZE",),
]
EVERYTHING_ENUMERATIONS = [
    *ENUMERATIONS,
    ("INFO", "keyspace"),
    ("MEMORY", "STATS"),
    ("CLIENT", "TRACKING", "on", "BCAST"),
    ("PUBSUB", "CHANNELS"),
    ("FUNCTION", "LIST"),
]
# Asked with ACL DRYRUN only: on a shared server these must never actually run.
SERVER_WIDE = [
    ("FLUSHALL",),
    ("FLUSHDB", "ASYNC"),
    ("SWAPDB", "0", "1"),
    ("FUNCTION", "FLUSH"),
    ("SCRIPT", "FLUSH"),
    ("SCRIPT", "KILL"),
    ("MIGRATE", "127.0.0.1", "1", f"{SCOPE_PREFIX}:k", "0", "10"),
    ("CLUSTER", "GETKEYSINSLOT", "0", "10"),
    ("CLUSTER", "COUNTKEYSINSLOT", "0"),
    ("MEMORY", "DOCTOR"),
    ("MONITOR",),
    ("CLIENT", "LIST"),
    ("DEBUG", "OBJECT", f"{SCOPE_PREFIX}:k"),
]
# Every keyless command of Redis 7 outside @admin, reviewed and left allowed: each
# answers about the caller's own connection, names only what the caller passed,
# or checks channel patterns itself. A Redis release adding a keyless command
# fails test_issue8_every_keyless_command_is_reviewed until it is placed here or
# in SCOPE_REFUSALS.
REVIEWED_ALLOWED = frozenset(
    {
        # The caller's own connection, authentication and transaction.
        "asking", "auth", "hello", "ping", "echo", "quit", "reset", "select",
        "readonly", "readwrite", "multi", "exec", "discard", "unwatch", "wait",
        "time", "lolwut", "client|caching", "client|getname", "client|getredir",
        "client|help", "client|id", "client|info", "client|reply",
        "client|setname", "client|trackinginfo", "acl|cat", "acl|genpass",
        "acl|help", "acl|whoami",
        # The command table; GETKEYS returns the names in the arguments given.
        "command|count", "command|docs", "command|getkeys",
        "command|getkeysandflags", "command|help", "command|info", "command|list",
        # Cluster topology, no key names.
        "cluster|help", "cluster|info", "cluster|keyslot", "cluster|links",
        "cluster|myid", "cluster|nodes", "cluster|shards", "cluster|slots",
        # Help texts and harmless memory upkeep.
        "config|help", "latency|help", "memory|help", "memory|purge", "module|help",
        "object|help", "pubsub|help", "slowlog|help", "xgroup|help", "xinfo|help",
        "function|help", "script|help",
        # Pub/Sub checks channels against &patterns; NUMSUB/NUMPAT are counts of
        # channels the caller names, or of patterns.
        "publish", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
        "pubsub|numpat", "pubsub|numsub", "pubsub|shardnumsub",
        # Scripts run every inner command under the caller's ACL user.
        "script|exists", "script|load",
    }
)  # fmt: skip


def _leaf_commands(table: list[Any]) -> list[tuple[str, list[str], list[Any]]]:
    """Return (name, categories, key specs) for every command and subcommand."""
    found: list[tuple[str, list[str], list[Any]]] = []
    for info in table:
        name, categories, key_specs, subcommands = info[0], info[6], info[8], info[9]
        if subcommands:
            found.extend(_leaf_commands(subcommands))
        else:
            found.append((str(name), [str(c) for c in categories], key_specs))
    return found


@pytest.fixture
async def scoped(redis_url: str) -> AsyncIterator[RedisEngine]:
    """An engine whose grants are the documented read grant and +@all, both scoped."""
    settings = {**SCOPE_SETTINGS, "admin_url": redis_url}
    built = build(settings, make_target("scoped", actions=("read", "everything")))
    admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await admin.set(f"{SCOPE_PREFIX}:k", "mine")
        await admin.rpush(f"{SCOPE_PREFIX}:list", "2", "1")
        await admin.set(f"o{RUN}:secret-name", "theirs")
        yield built
    finally:
        await admin.unlink(
            f"{SCOPE_PREFIX}:k", f"{SCOPE_PREFIX}:list", f"o{RUN}:secret-name"
        )
        await admin.aclose()
        await built.aclose()


async def dry_run(user: str, *command: str) -> str:
    """Ask the server whether ``user`` may run ``command``, running nothing."""
    admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        return str(await admin.execute_command("ACL", "DRYRUN", user, *command))  # type: ignore[no-untyped-call]
    finally:
        await admin.aclose()


@pytest.mark.redis
@pytest.mark.anyio
class TestIssue8KeyScope:
    """A credential scoped to some keys never learns the names of the others."""

    @pytest.mark.parametrize("command", ENUMERATIONS, ids=" ".join)
    async def test_issue8_read_grant_cannot_enumerate_keys(
        self, scoped, user_names, command
    ):
        """The documented read grant: KEYS, SCAN, RANDOMKEY, DBSIZE answer NOPERM."""
        client = connect_as(await scoped.issue(request(user_names(), "read")))
        try:
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.execute_command(*command)  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()

    @pytest.mark.parametrize("command", EVERYTHING_ENUMERATIONS, ids=" ".join)
    async def test_issue8_widest_grant_cannot_enumerate_keys(
        self, scoped, user_names, command
    ):
        """Even +@all on some keys may not list, count or track all keys."""
        client = connect_as(await scoped.issue(request(user_names(), "everything")))
        try:
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.execute_command(*command)  # type: ignore[no-untyped-call]
        finally:
            await client.aclose()

    @pytest.mark.parametrize("actions", [("everything",), ("read", "everything")])
    @pytest.mark.parametrize("command", SERVER_WIDE, ids=" ".join)
    async def test_issue8_server_wide_commands_are_refused(
        self, scoped, user_names, actions, command
    ):
        """Flushes, registries, MIGRATE and slot listings are refused, selectors too."""
        credential = await scoped.issue(request(user_names(), *actions))
        verdict = await dry_run(credential.handle, *command)
        assert verdict != "OK"
        assert "no permissions" in verdict.lower()

    async def test_issue8_a_script_calling_keys_is_refused(self, scoped, user_names):
        """KEYS and SCAN inside EVAL run as the caller and are refused."""
        client = connect_as(await scoped.issue(request(user_names(), "everything")))
        try:
            for inner in ("redis.call('KEYS', '*')", "redis.call('SCAN', '0')"):
                with pytest.raises(redis.exceptions.ResponseError) as caught:
                    await client.eval(f"return {inner}", 0)
                assert "can't run this command" in str(caught.value)
        finally:
            await client.aclose()

    async def test_issue8_sort_patterns_reach_no_other_key(self, scoped, user_names):
        """SORT BY/GET with patterns is refused by Redis itself to scoped users."""
        client = connect_as(await scoped.issue(request(user_names(), "read")))
        try:
            for option in ("BY", "GET"):
                with pytest.raises(redis.exceptions.ResponseError, match=option):
                    await client.execute_command(  # type: ignore[no-untyped-call]
                        "SORT_RO", f"{SCOPE_PREFIX}:list", option, f"o{RUN}:*"
                    )
        finally:
            await client.aclose()

    async def test_issue8_reads_of_its_own_keys_still_work(self, scoped, user_names):
        """GET, TYPE, EXISTS, SORT and a scripted GET of its own keys still answer."""
        client = connect_as(await scoped.issue(request(user_names(), "read")))
        everything = connect_as(await scoped.issue(request(user_names(), "everything")))
        try:
            assert await client.get(f"{SCOPE_PREFIX}:k") == "mine"
            assert await client.type(f"{SCOPE_PREFIX}:k") == "string"
            assert await client.exists(f"{SCOPE_PREFIX}:k") == 1
            sorted_list = await client.execute_command(  # type: ignore[no-untyped-call]
                "SORT_RO", f"{SCOPE_PREFIX}:list"
            )
            assert sorted_list == ["1", "2"]
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.get(f"o{RUN}:secret-name")
            script = "return redis.call('GET', KEYS[1])"
            assert await everything.eval(script, 1, f"{SCOPE_PREFIX}:k") == "mine"
        finally:
            await client.aclose()
            await everything.aclose()

    async def test_issue8_every_keyless_command_is_reviewed(self, redis_url):
        """Each keyless non-admin command of this server is refused or reviewed."""
        options = aioredis.ConnectionPool.from_url(redis_url).connection_kwargs
        connection = aioredis.Connection(**{**options, "decode_responses": True})
        try:
            # The raw reply: redis-py's COMMAND parser drops key specs.
            await connection.send_command("COMMAND")
            table = await connection.read_response()
        finally:
            await connection.disconnect()
        refused = {rule[1:] for rule in SCOPE_REFUSALS}
        unreviewed = sorted(
            name
            for name, categories, key_specs in _leaf_commands(table)
            if "@admin" not in categories
            and not key_specs
            and name not in refused
            and name.split("|")[0] not in refused
            and name not in REVIEWED_ALLOWED
        )
        assert unreviewed == []
        assert len(_leaf_commands(table)) > 200


@pytest.mark.redis
@pytest.mark.anyio
class TestRevoke:
    """Revocation deletes the user and cuts its live connections."""

    async def test_open_connection_is_killed_and_auth_fails(self, engine, user_names):
        """After revoke an open connection drops and a new AUTH is refused."""
        credential = await engine.issue(request(user_names(), "write"))
        client = connect_as(credential)
        try:
            assert await client.ping()
            await engine.revoke(credential.handle)
            await wait_until_dropped(client)
        finally:
            await client.aclose()
        fresh = connect_as(credential)
        try:
            with pytest.raises(redis.exceptions.AuthenticationError):
                await fresh.ping()
        finally:
            await fresh.aclose()
        assert credential.handle not in await acl_users(REDIS_URL)

    async def test_revoke_is_idempotent(self, engine, user_names):
        """Revoking twice, or a name never issued, succeeds quietly."""
        name = user_names()
        await engine.issue(request(name))
        await engine.revoke(name)
        await engine.revoke(name)
        await engine.revoke(user_names())

    @pytest.mark.parametrize(
        "handle", ["default", "gp_", "gp_abc", "app_user", "gp_aaaa aaaa", "*"]
    )
    async def test_foreign_handle_is_refused(self, engine, handle):
        """Revoke never touches a user that is not a gatepass credential."""
        with pytest.raises(InvalidRequestError, match="not a gatepass"):
            await engine.revoke(handle)
        assert "default" in await acl_users(REDIS_URL)

    async def test_issue9_another_installations_user_is_refused(
        self, engine, redis_url, user_names
    ):
        """Revoke and renew refuse a user carrying another installation's marker."""
        elsewhere = other_context()
        other = build(make_settings(redis_url), context=elsewhere)
        name = user_names()
        CREATED_USERS.add(marked(name, elsewhere))
        try:
            credential = await other.issue(request(name))
            with pytest.raises(InvalidRequestError, match="another gatepass"):
                await engine.revoke(credential.handle)
            with pytest.raises(InvalidRequestError, match="another gatepass"):
                await engine.renew(credential.handle, CLOCK.now())
            assert credential.handle in await acl_users(redis_url)
        finally:
            await other.revoke(marked(name, elsewhere))
            await other.aclose()

    async def test_issue9_revoking_the_pending_name_removes_the_user(
        self, engine, user_names
    ):
        """A crash before activation leaves the plain name on the lease: it suffices."""
        name = user_names()
        credential = await engine.issue(request(name))
        client = connect_as(credential)
        try:
            assert await client.ping()
            await engine.revoke(name)
            await wait_until_dropped(client)
        finally:
            await client.aclose()
        assert credential.handle not in await acl_users(REDIS_URL)

    async def test_renew_of_a_revoked_user_fails(self, engine, user_names):
        """Renewing finds the user gone after revocation (by either of its names)."""
        name = user_names()
        credential = await engine.issue(request(name))
        assert await engine.renew(credential.handle, CLOCK.now()) == CLOCK.now()
        await engine.revoke(credential.handle)
        for handle in (credential.handle, name):
            with pytest.raises(EngineError, match="no longer exists"):
                await engine.renew(handle, CLOCK.now())

    async def test_issue9_a_user_from_before_markers_is_still_revoked(
        self, engine, redis_url, user_names
    ):
        """An unmarked gp_ user of an older broker goes when its lease is revoked."""
        name = user_names()
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await admin.acl_setuser(name, enabled=True, reset=True, nopass=True)
            assert await engine.renew(name, CLOCK.now()) == CLOCK.now()
            await engine.revoke(name)
        finally:
            await admin.aclose()
        assert name not in await acl_users(redis_url)


@pytest.mark.redis
@pytest.mark.anyio
class TestMounts:
    """Two mounts on one server are kept apart by their key patterns."""

    async def test_credential_of_one_mount_fails_on_another(
        self, redis_url, user_names
    ):
        """
        A credential for mount A cannot touch mount B's keys.

        ACL users are server-wide and every logical database shares them (SELECT
        is not an ACL boundary), so on Redis "mount" separation means disjoint
        key and channel patterns on the same server; that is what is tested here.
        """
        mount_a = build(make_settings(redis_url, prefix=f"a{RUN}"), make_target("a"))
        mount_b = build(make_settings(redis_url, prefix=f"b{RUN}"), make_target("b"))
        client = connect_as(await mount_a.issue(request(user_names(), "write")))
        try:
            assert await client.set(f"a{RUN}:app:1", "v")
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.get(f"b{RUN}:app:1")
            with pytest.raises(redis.exceptions.NoPermissionError):
                await client.set(f"b{RUN}:app:1", "v")
        finally:
            await client.aclose()
            await delete_keys(f"a{RUN}:app:1")
            await mount_a.aclose()
            await mount_b.aclose()


@pytest.mark.redis
@pytest.mark.anyio
class TestReap:
    """The reaper removes this installation's stray users and nothing else."""

    async def test_reap_removes_stray_and_keeps_the_rest(
        self, engine, redis_url, user_names
    ):
        """A stray user goes; live ones, default and non-gatepass users stay."""
        stray, live, pending = user_names(), user_names(), user_names()
        other = f"gp_Manual{RUN}"
        CREATED_USERS.update({other, f"app_{RUN}"})
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await engine.issue(request(stray))
            active = await engine.issue(request(live))
            await engine.issue(request(pending))
            for foreign in (other, f"app_{RUN}"):
                await admin.acl_setuser(foreign, enabled=False, reset=True)
            # The broker's live set: an active lease by its handle, a pending one by
            # its lease id and plain name.
            live_handles = {active.handle, f"lse_{pending[3:]}", pending}
            removed = await engine.reap(live_handles)
            users = await acl_users(redis_url)
        finally:
            await admin.acl_deluser(other, f"app_{RUN}")
            await admin.aclose()
        assert marked(stray) in removed
        assert not {marked(live), marked(pending)} & set(removed)
        assert marked(stray) not in users
        assert {marked(live), marked(pending), other, f"app_{RUN}", "default"} <= set(
            users
        )

    @pytest.mark.parametrize(
        "live_name", ["lease id", "plain name"], ids=["lease-id", "plain-name"]
    )
    async def test_issue9_a_pending_lease_keeps_its_user(
        self, engine, user_names, live_name
    ):
        """A user of a pending lease is live by its lease id or its plain name."""
        name = user_names()
        await engine.issue(request(name))
        alive = f"lse_{name[3:]}" if live_name == "lease id" else name
        assert marked(name) not in await engine.reap({alive})
        assert marked(name) in await acl_users(REDIS_URL)

    async def test_issue9_reap_spares_other_installations_and_unmarked_users(
        self, engine, redis_url, user_names
    ):
        """Another installation's users and unmarked gp_ users survive any reap."""
        elsewhere = other_context()
        other = build(make_settings(redis_url), context=elsewhere)
        theirs, unmarked, ours = user_names(), user_names(), user_names()
        CREATED_USERS.add(marked(theirs, elsewhere))
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            foreign = await other.issue(request(theirs))
            await admin.acl_setuser(unmarked, enabled=False, reset=True)
            await engine.issue(request(ours))
            removed = await engine.reap(set())
            users = set(await acl_users(redis_url))
            assert marked(ours) in removed
            assert not {foreign.handle, unmarked} & set(removed)
            assert {foreign.handle, unmarked} <= users
            assert await other.reap(set()) == [foreign.handle]
        finally:
            await other.aclose()
            await admin.aclose()


@pytest.mark.redis
@pytest.mark.anyio
class TestConcurrency:
    """Many issues and revocations at once leave nothing behind."""

    async def test_fifty_concurrent_issue_and_revoke(self, engine, user_names):
        """50 concurrent issue-then-revoke pairs leave none of their users."""
        names = [user_names() for _ in range(50)]

        async def issue_and_revoke(name: str) -> None:
            credential = await engine.issue(request(name, "write"))
            await engine.revoke(credential.handle)

        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(issue_and_revoke, name)
        assert not set(names) & set(await acl_users(REDIS_URL))


@pytest.mark.redis
@pytest.mark.anyio
class TestCheck:
    """check proves the admin can manage ACL users, and errors never leak."""

    async def test_check_passes_with_an_acl_admin(self, engine):
        """The default user on the test server is an ACL admin."""
        await engine.check()

    async def test_unreachable_is_unavailable_and_hides_the_url(self):
        """A refused connection is EngineUnavailableError without the URL."""
        engine = build(make_settings(f"redis://admin:{ADMIN_PASSWORD}@127.0.0.1:1/0"))
        name = credential_name(new_lease_id())
        calls: list[Callable[[], Awaitable[object]]] = [
            engine.check,
            lambda: engine.issue(request(name)),
            lambda: engine.revoke(name),
            lambda: engine.renew(name, CLOCK.now()),
            lambda: engine.reap(set()),
        ]
        try:
            for call in calls:
                with pytest.raises(EngineUnavailableError) as caught:
                    await call()
                rendered = "".join(traceback.format_exception(caught.value))
                assert ADMIN_PASSWORD not in rendered
                assert "redis://" not in rendered
                assert caught.value.__context__ is None
        finally:
            await engine.aclose()

    async def test_wrong_admin_password_is_engine_error(self, redis_url):
        """An admin the server refuses is EngineError without the password."""
        parts = urlsplit(redis_url)
        url = f"redis://nobody{RUN}:{ADMIN_PASSWORD}@{parts.netloc}/0"
        engine = build(make_settings(url))
        try:
            with pytest.raises(EngineError) as caught:
                await engine.check()
        finally:
            await engine.aclose()
        assert not isinstance(caught.value, EngineUnavailableError)
        rendered = "".join(traceback.format_exception(caught.value))
        assert ADMIN_PASSWORD not in rendered
        assert "admin credential" in str(caught.value)

    async def test_admin_without_acl_rights_is_refused(self, redis_url):
        """An admin that may not run ACL SETUSER fails the check."""
        weak = f"weak_{RUN}"
        CREATED_USERS.add(weak)
        admin = aioredis.Redis.from_url(redis_url, decode_responses=True)
        parts = urlsplit(redis_url)
        engine = build(
            make_settings(f"redis://{weak}:{ADMIN_PASSWORD}@{parts.netloc}/0")
        )
        try:
            await admin.acl_setuser(
                weak,
                enabled=True,
                reset=True,
                passwords=[f"+{ADMIN_PASSWORD}"],
                categories=["+@read", "+@connection"],
                commands=["+acl|whoami", "+acl|dryrun"],
            )
            with pytest.raises(EngineError) as caught:
                await engine.check()
        finally:
            await engine.aclose()
            await admin.acl_deluser(weak)
            await admin.aclose()
        assert ADMIN_PASSWORD not in str(caught.value)

    async def test_issue8_check_needs_every_refused_command(
        self, redis_url, monkeypatch
    ):
        """A server lacking a command gatepass refuses fails the check, not issue."""
        monkeypatch.setattr(redis_admin, "REFUSED_COMMANDS", ("keys", "nosuchcommand"))
        engine = build(make_settings(redis_url))
        try:
            with pytest.raises(EngineError, match="no command nosuchcommand"):
                await engine.check()
        finally:
            await engine.aclose()

    async def test_unknown_category_or_command_is_reported(self, redis_url):
        """Grants naming rules this server lacks fail the check, not issue."""
        for field, rule in (("categories", "+@nosuch"), ("commands", "+nosuchcmd")):
            settings = make_settings(redis_url)
            settings["grants"]["logs"][field] = [rule]
            engine = build(settings)
            try:
                with pytest.raises(EngineError, match=f"grants.logs.{field}"):
                    await engine.check()
            finally:
                await engine.aclose()


class TestErrorScrubbing:
    """Redis errors become gatepass errors that carry no secret."""

    def test_server_reply_is_redacted(self):
        """A refusal quoting the fresh password shows it redacted."""
        reply = redis.exceptions.ResponseError("ERR bad modifier '>s3cr3t-pass'")
        error = engine_error("acl setuser", reply, redact=["s3cr3t-pass"])
        assert "s3cr3t-pass" not in str(error)
        assert "**********" in str(error)

    def test_pipeline_annotation_is_dropped(self):
        """The pipeline prefix of redis-py, quoting a cut password, is dropped."""
        reply = redis.exceptions.ResponseError(
            "Command # 1 (ACL SETUSER gp_x reset on >s3cr3t-pa...) of pipeline "
            "caused error: ERR Error in ACL SETUSER modifier '+@nosuch'"
        )
        error = engine_error("acl setuser", reply, redact=["s3cr3t-password"])
        assert "s3cr3t" not in str(error)
        assert str(error) == (
            "redis refused acl setuser: err error in acl setuser modifier '+@nosuch'"
        )

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (
                redis.exceptions.ConnectionError("redis://u:pw@h"),
                EngineUnavailableError,
            ),
            (redis.exceptions.TimeoutError("redis://u:pw@h"), EngineUnavailableError),
            (redis.exceptions.AuthenticationError("redis://u:pw@h"), EngineError),
            (redis.exceptions.NoPermissionError("redis://u:pw@h"), EngineError),
            (redis.exceptions.DataError("redis://u:pw@h"), EngineError),
        ],
    )
    def test_messages_never_carry_the_driver_text(self, error, expected):
        """Connection, auth and client errors are described without their text."""
        translated = engine_error("check", error)
        assert type(translated) is expected
        assert "redis://" not in str(translated)

    @pytest.mark.redis
    @pytest.mark.anyio
    async def test_server_refusal_at_issue_is_engine_error(self, redis_url, user_names):
        """A grant the server rejects fails issue with an EngineError."""
        settings = make_settings(redis_url)
        settings["grants"]["read"]["categories"] = ["+@nosuch"]
        engine = build(settings)
        name = user_names()
        try:
            with pytest.raises(EngineError, match="nosuch") as caught:
                await engine.issue(request(name))
        finally:
            await engine.aclose()
        assert not isinstance(caught.value, EngineUnavailableError)
        # The driver's exception is neither the cause nor the context.
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
        # Neither the command nor any part of the password it carried.
        assert ">" not in str(caught.value)
        assert "pipeline" not in str(caught.value)


class RedisSession:
    """One open connection of an issued credential."""

    def __init__(self, client: aioredis.Redis) -> None:
        """Hold the connection."""
        self._client = client

    async def alive(self) -> bool:
        """Tell whether the connection still answers PING."""
        try:
            return bool(await self._client.ping())
        except redis.ConnectionError:
            return False

    async def aclose(self) -> None:
        """Close the connection."""
        await self._client.aclose()


class RedisProbe:
    """Looks at Redis with its own admin connection, independently of the engine."""

    async def can_login(self, credential: IssuedCredential) -> bool:
        """Tell whether the credential authenticates a new connection."""
        client = connect_as(credential)
        try:
            return bool(await client.ping())
        except redis.exceptions.AuthenticationError:
            return False
        finally:
            await client.aclose()

    async def exists(self, handle: str) -> bool:
        """Tell whether the ACL user still exists."""
        return handle in await acl_users(REDIS_URL)

    async def open_session(self, credential: IssuedCredential) -> RedisSession:
        """Open a dedicated connection with the credential."""
        return RedisSession(connect_as(credential))

    async def create_foreign(self) -> list[str]:
        """
        Create users the engine must leave alone.

        A plain user, malformed gp_ names, a user of another installation and an
        unmarked gp_ user (as a broker before installation markers made them).
        """
        names = [
            f"app_{RUN}",
            f"gp_Manual{RUN}",
            "gp_" + "A" * 26,
            marked(credential_name(new_lease_id()), other_context()),
            credential_name(new_lease_id()),
        ]
        CREATED_USERS.update(names)
        admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            for name in names:
                await admin.acl_setuser(name, enabled=False, reset=True)
        finally:
            await admin.aclose()
        return names

    async def drop_foreign(self, names: list[str]) -> None:
        """Delete the users :meth:`create_foreign` made."""
        admin = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            await admin.acl_deluser(*names)
        finally:
            await admin.aclose()


@pytest.mark.redis
class TestRedisEngineContract(SecretEngineContract):
    """
    The shared engine contract on the real Redis.

    Every test builds its engine under a fresh installation id, so its reaps never
    touch users of other tests or of other sessions sharing the server.
    """

    @pytest.fixture
    def clock(self):
        """A frozen clock starting now."""
        return fresh_clock()

    @pytest.fixture
    def actions(self):
        """The contract issues write credentials."""
        return ("write",)

    @staticmethod
    def _mount(redis_url: str, clock: FrozenClock) -> Iterator[RedisEngine]:
        context = EngineContext(
            state_dir=Path("/nonexistent"),
            sealer=CONTEXT.sealer,
            clock=clock,
            installation_id=new_installation_id(),
        )
        built = RedisEngine.from_target(
            make_target(max_ttl=dt.timedelta(hours=2)),
            make_settings(redis_url),
            context,
        )
        try:
            yield built
        finally:
            anyio.run(built.aclose)

    @pytest.fixture
    def engine(self, redis_url, clock):
        """A Redis mount under an installation id of its own."""
        yield from self._mount(redis_url, clock)

    @pytest.fixture
    def other_installation(self, redis_url, clock):
        """The same mount, built by another deployment on the same server."""
        yield from self._mount(redis_url, clock)

    @pytest.fixture
    def probe(self, redis_url):  # noqa: ARG002 - skips when Redis is absent
        """A probe with its own admin connections."""
        return RedisProbe()
