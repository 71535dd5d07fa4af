"""One way to read an engine table: problems, admin URLs and action keys."""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from gatepass.engines.postgres import PostgresEngine
from gatepass.engines.redis import RedisEngine
from gatepass.engines.settings import (
    MAX_PROBLEMS,
    AdminURLTable,
    EngineTable,
    matching,
    parse_engine_table,
)
from gatepass.engines.ssh import SSHEngine
from gatepass.errors import ConfigurationError
from gatepass.testing import FrozenClock, make_engine_context, make_target

Word = Annotated[
    str, Field(max_length=16), matching(re.compile("[a-z]+"), "must be a word")
]


class ExampleTable(AdminURLTable):
    """A table with an admin URL, a bounded number and words per action."""

    limit: int = Field(default=1, ge=1, le=10)
    grants: dict[str, list[Word]]


class PrincipalsTable(EngineTable):
    """A table whose action-keyed field is not called grants."""

    action_field: ClassVar[str] = "principals"
    principals: dict[str, list[str]]


# A minimal valid table of each built-in engine for a target offering "read",
# with the name of its action-keyed field.
ENGINE_TABLES: dict[str, tuple[str, dict[str, Any]]] = {
    "postgres": (
        "grants",
        {
            "admin_url": "postgresql://u:pw@h/db",
            "grants": {
                "read": [{"schema": "app", "privileges": ["SELECT"], "tables": ["*"]}]
            },
        },
    ),
    "redis": (
        "grants",
        {
            "admin_url": "redis://u:pw@h:6379/0",
            "grants": {"read": {"keys": ["a:*"], "commands": ["+get"]}},
        },
    ),
    "ssh": ("principals", {"principals": {"read": ["app"]}}),
}


def target(*actions: str) -> Any:
    """Return a target named ``t`` offering ``actions`` (read, write by default)."""
    return make_target("example", name="t", actions=actions or ("read", "write"))


def table(**changes: Any) -> dict[str, Any]:
    """Return a valid raw table with some keys replaced."""
    raw: dict[str, Any] = {
        "admin_url": "scheme://admin:pw@host/",
        "grants": {"read": ["a"], "write": ["b"]},
    }
    raw.update(changes)
    return raw


class TestParseEngineTable:
    """Pydantic problems become one ConfigurationError, the same for every engine."""

    def test_a_valid_table_parses(self) -> None:
        """A complete table yields the model with its defaults."""
        parsed = parse_engine_table(ExampleTable, target(), table())
        assert parsed.limit == 1
        assert parsed.action_keys() == ("read", "write")

    def test_every_problem_is_reported_with_its_location(self) -> None:
        """Several bad fields give one error naming each, separated by '; '."""
        raw = table(limit=0, colour="blue", grants={"read": ["A"], "write": ["b"]})
        with pytest.raises(ConfigurationError) as caught:
            parse_engine_table(ExampleTable, target(), raw)
        problems = caught.value.detail.split("; ")
        assert sorted(problem.split(":")[0] for problem in problems) == [
            "targets.t.engine.colour",
            "targets.t.engine.grants.read.0",
            "targets.t.engine.limit",
        ]
        assert "targets.t.engine.colour: extra inputs are not permitted" in problems
        assert "targets.t.engine.grants.read.0: must be a word" in problems

    def test_messages_lose_pydantic_prefix_but_keep_keywords(self) -> None:
        """'Value error, ' is dropped; a leading upper-case keyword stays."""
        with pytest.raises(ConfigurationError) as caught:
            parse_engine_table(ExampleTable, target(), table(limit="x"))
        assert caught.value.detail.startswith("targets.t.engine.limit: input should")
        assert "Value error" not in caught.value.detail

    def test_many_problems_are_cut_short(self) -> None:
        """A table with hundreds of bad entries gives a bounded message."""
        words = {"read": ["BAD"] * 300, "write": ["b"]}
        with pytest.raises(ConfigurationError) as caught:
            parse_engine_table(ExampleTable, target(), table(grants=words))
        detail = caught.value.detail
        assert detail.count("must be a word") == MAX_PROBLEMS
        assert detail.endswith(f"; and {300 - MAX_PROBLEMS} more")

    @given(st.text(alphabet=string.printable, min_size=12, max_size=60))
    def test_no_value_is_ever_echoed(self, value: str) -> None:
        """Whatever the bad values are (an admin URL among them), none is shown."""
        raw = table(admin_url=value * 100, limit=value, grants={"read": [value]})
        with pytest.raises(ConfigurationError) as caught:
            parse_engine_table(ExampleTable, target(), raw)
        assert value not in caught.value.detail
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None

    def test_hostile_keys_are_cut_in_messages(self) -> None:
        """An unknown key of 10 kB is named by its first 64 characters only."""
        with pytest.raises(ConfigurationError) as caught:
            parse_engine_table(ExampleTable, target(), table(**{"k" * 10_000: 1}))
        assert f"targets.t.engine.{'k' * 64}: extra" in caught.value.detail
        assert "k" * 65 not in caught.value.detail


class TestActionKeys:
    """The action-keyed field names exactly the target's actions."""

    def test_issue8_unknown_and_missing_actions_are_both_reported(self) -> None:
        """A key the target lacks and an action without entry are named together."""
        raw = table(grants={"read": ["a"], "drop": ["b"]})
        with pytest.raises(ConfigurationError) as caught:
            parse_engine_table(ExampleTable, target(), raw)
        assert caught.value.detail == (
            "targets.t.engine.grants.drop: not an action of the target; "
            "targets.t.engine.grants.write: missing "
            "(every action of the target needs one)"
        )

    def test_the_action_field_is_named_by_the_model(self) -> None:
        """An engine keying another field by action gets the same check."""
        with pytest.raises(ConfigurationError, match=r"principals\.write: missing"):
            parse_engine_table(
                PrincipalsTable, target(), {"principals": {"read": ["x"]}}
            )

    @pytest.mark.parametrize("engine", [PostgresEngine, RedisEngine, SSHEngine])
    def test_issue8_every_engine_needs_every_action(
        self, engine: Any, tmp_path: Any
    ) -> None:
        """PostgreSQL, Redis and SSH refuse a table leaving an action unmapped."""
        field, raw = ENGINE_TABLES[engine.kind]
        mapped = raw[field]["read"]
        with pytest.raises(ConfigurationError) as caught:
            engine.from_target(
                make_target(engine.kind, name="t", actions=("read",)),
                {**raw, field: {"other": mapped}},
                make_engine_context(tmp_path, FrozenClock()),
            )
        assert caught.value.detail == (
            f"targets.t.engine.{field}.other: not an action of the target; "
            f"targets.t.engine.{field}.read: missing "
            "(every action of the target needs one)"
        )


class TestAdminURL:
    """admin_url xor admin_url_env, resolved without ever showing the value."""

    @pytest.mark.parametrize(
        "raw",
        [
            table(admin_url_env="GP_UNIT_ADMIN"),
            {"grants": {"read": ["a"], "write": ["b"]}},
        ],
        ids=["both", "neither"],
    )
    def test_exactly_one_source(self, raw: dict[str, Any]) -> None:
        """Both or neither of admin_url and admin_url_env is a problem."""
        with pytest.raises(
            ConfigurationError,
            match=r"^targets\.t\.engine: give exactly one of admin_url and \w+$",
        ):
            parse_engine_table(ExampleTable, target(), raw)

    def test_inline_url(self) -> None:
        """An inline admin_url resolves to itself, located at admin_url."""
        admin = parse_engine_table(ExampleTable, target(), table()).admin("t")
        assert admin.value.reveal() == "scheme://admin:pw@host/"
        assert admin.where == "targets.t.engine.admin_url"
        assert "pw" not in repr(admin)

    def test_url_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """admin_url_env names a variable that must be set and not empty."""
        raw = table(admin_url_env="GP_UNIT_ADMIN")
        del raw["admin_url"]
        parsed = parse_engine_table(ExampleTable, target(), raw)
        monkeypatch.setenv("GP_UNIT_ADMIN", "")
        with pytest.raises(
            ConfigurationError,
            match=r"admin_url_env: environment variable GP_UNIT_ADMIN is not set",
        ):
            parsed.admin("t")
        monkeypatch.setenv("GP_UNIT_ADMIN", "scheme://from-env/")
        admin = parsed.admin("t")
        assert admin.value.reveal() == "scheme://from-env/"
        assert admin.where == "targets.t.engine.admin_url_env"

    @pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "x" * 129, ""])
    def test_variable_names_are_checked(self, name: str) -> None:
        """Only environment-variable names are accepted for admin_url_env."""
        raw = {"admin_url_env": name, "grants": {"read": ["a"], "write": ["b"]}}
        with pytest.raises(ConfigurationError, match=r"engine\.admin_url_env: "):
            parse_engine_table(ExampleTable, target(), raw)


class TestEngineShape:
    """Every built-in engine is built as XEngine(config, context)."""

    @pytest.mark.parametrize("engine", [PostgresEngine, RedisEngine, SSHEngine])
    def test_from_target_and_the_constructor_agree(
        self, engine: Any, tmp_path: Any
    ) -> None:
        """from_target parses the table; its config rebuilds an equal engine."""
        _, raw = ENGINE_TABLES[engine.kind]
        context = make_engine_context(tmp_path, FrozenClock())
        built = engine.from_target(
            make_target(engine.kind, name="t", actions=("read",)), raw, context
        )
        again = engine(built.config, context)
        assert again.config == built.config
        assert repr(again) == f"{engine.__name__}(target='t')"
        assert "pw" not in repr(again)
