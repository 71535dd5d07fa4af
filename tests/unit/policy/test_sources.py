import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import ConfigurationError
from gatepass.policy import CedarPolicySet
from gatepass.policy.sources import _statement_offsets, statement_lines

DirFactory = Callable[..., Path]

READ = 'permit (principal, action == Gatepass::Action::"read", resource);\n'


class TestLoading:
    """Loading a sound policy directory."""

    def test_quickstart_loads_with_annotations(
        self, quickstart: CedarPolicySet
    ) -> None:
        """Each policy carries its @id, @ttl, effect, file and starting line."""
        by_id = {info.display_id: info for info in quickstart.policies}
        read = by_id["support-reads-low-risk"]
        assert read.ttl == dt.timedelta(seconds=600)
        assert read.effect == "permit"
        assert (read.file, read.line) == ("support.cedar", 3)
        assert by_id["never-admin"].ttl is None

    def test_digest_is_stable_and_content_sensitive(
        self, make_policy_dir: DirFactory
    ) -> None:
        """Loading the same files twice gives one digest; an edit changes it."""
        directory = make_policy_dir({"a.cedar": READ})
        first = CedarPolicySet.from_directory(directory).digest
        assert CedarPolicySet.from_directory(directory).digest == first
        (directory / "a.cedar").write_text(READ + "\n", encoding="utf-8")
        assert CedarPolicySet.from_directory(directory).digest != first

    def test_files_load_in_name_order(self, make_policy_dir: DirFactory) -> None:
        """Policies are numbered across files in file-name order."""
        directory = make_policy_dir({"b.cedar": READ, "a.cedar": READ + READ})
        policy_set = CedarPolicySet.from_directory(directory)
        ids = [info.display_id for info in policy_set.policies]
        assert ids == ["a.cedar:0", "a.cedar:1", "b.cedar:0"]

    def test_subdirectories_are_not_policies(self, make_policy_dir: DirFactory) -> None:
        """Only top-level *.cedar files are read; tests/ may sit beside them."""
        directory = make_policy_dir({"a.cedar": READ})
        (directory / "tests").mkdir()
        (directory / "tests" / "broken.cedar").write_text("nonsense", encoding="utf-8")
        assert CedarPolicySet.from_directory(directory).policy_count == 1


class TestLoadErrors:
    """Every way a policy directory can be broken."""

    def test_missing_directory(self, tmp_path: Path) -> None:
        """A directory that does not exist is a configuration error."""
        with pytest.raises(ConfigurationError, match="policy directory not found"):
            CedarPolicySet.from_directory(tmp_path / "nowhere")

    def test_empty_directory(self, tmp_path: Path) -> None:
        """A directory without policy files is refused, not loaded as deny-all."""
        with pytest.raises(ConfigurationError, match=r"no \*\.cedar policy files"):
            CedarPolicySet.from_directory(tmp_path)

    def test_missing_schema(self, tmp_path: Path) -> None:
        """Policies without a schema are refused."""
        (tmp_path / "a.cedar").write_text(READ, encoding="utf-8")
        with pytest.raises(ConfigurationError, match="schema file missing"):
            CedarPolicySet.from_directory(tmp_path)

    def test_broken_schema(self, make_policy_dir: DirFactory) -> None:
        """A schema that does not parse names the schema file."""
        directory = make_policy_dir({"a.cedar": READ}, schema="namespace {")
        with pytest.raises(ConfigurationError, match=r"schema\.cedarschema: invalid"):
            CedarPolicySet.from_directory(directory)

    def test_schema_that_does_not_fit_gatepass(
        self, make_policy_dir: DirFactory
    ) -> None:
        """A schema without gatepass's entity shapes is refused at load."""
        schema = (
            "namespace Gatepass { entity Agent; entity Target;\n"
            "action OpenTask, read appliesTo "
            "{ principal: [Agent], resource: [Target] }; }"
        )
        directory = make_policy_dir({"a.cedar": READ}, schema=schema)
        with pytest.raises(ConfigurationError, match="does not fit gatepass"):
            CedarPolicySet.from_directory(directory)

    def test_parse_error_names_file_and_line(self, make_policy_dir: DirFactory) -> None:
        """A syntax error is reported with the file and the failing statement's line."""
        text = (
            READ
            + "// a comment with ; inside\n"
            + '@id("x;y")\n'
            + "forbid (principal action, resource);\n"
        )
        directory = make_policy_dir({"a.cedar": READ, "b.cedar": text})
        with pytest.raises(ConfigurationError) as caught:
            CedarPolicySet.from_directory(directory)
        assert "b.cedar:3: cannot parse policy" in caught.value.detail

    def test_missing_semicolon_points_at_last_statement(
        self, make_policy_dir: DirFactory
    ) -> None:
        """An unterminated final statement is reported at its first line."""
        directory = make_policy_dir(
            {"a.cedar": READ + "\n\npermit (principal, action, resource)"}
        )
        with pytest.raises(ConfigurationError, match=r"a\.cedar:4: cannot parse"):
            CedarPolicySet.from_directory(directory)

    def test_validation_error_names_file_line_and_policy(
        self, make_policy_dir: DirFactory
    ) -> None:
        """A policy that reads an undeclared attribute fails validation at load."""
        text = (
            READ
            + '@id("reads-owner")\n'
            + 'forbid (principal, action, resource) when { resource.owner == "x" };\n'
        )
        directory = make_policy_dir({"a.cedar": text})
        with pytest.raises(ConfigurationError) as caught:
            CedarPolicySet.from_directory(directory)
        assert (
            "a.cedar:2: policy 'reads-owner' does not validate" in caught.value.detail
        )
        assert "owner" in caught.value.detail
        assert "`policy1`" not in caught.value.detail

    def test_unguarded_tag_read_fails_validation(
        self, make_policy_dir: DirFactory
    ) -> None:
        """Reading a label without hasTag is refused, so it can never error later."""
        text = (
            "permit (principal, action, resource) "
            'when { principal.getTag("team") == "support" };'
        )
        directory = make_policy_dir({"a.cedar": text})
        with pytest.raises(ConfigurationError, match="does not validate"):
            CedarPolicySet.from_directory(directory)

    def test_unknown_action_in_policy_fails_validation(
        self, make_policy_dir: DirFactory
    ) -> None:
        """A policy about an action the schema does not declare is refused."""
        text = 'permit (principal, action == Gatepass::Action::"delete", resource);'
        directory = make_policy_dir({"a.cedar": text})
        with pytest.raises(ConfigurationError, match="does not validate"):
            CedarPolicySet.from_directory(directory)

    def test_duplicate_id_across_files(self, make_policy_dir: DirFactory) -> None:
        """The same @id in two files is refused, naming both places."""
        policy = '@id("same")\n' + READ
        directory = make_policy_dir({"a.cedar": policy, "b.cedar": "\n" + policy})
        with pytest.raises(ConfigurationError) as caught:
            CedarPolicySet.from_directory(directory)
        assert "b.cedar:2: duplicate @id 'same'" in caught.value.detail
        assert "first used in a.cedar:1" in caught.value.detail

    def test_empty_id(self, make_policy_dir: DirFactory) -> None:
        """An empty @id is refused."""
        directory = make_policy_dir({"a.cedar": '@id("")\n' + READ})
        with pytest.raises(ConfigurationError, match="@id must not be empty"):
            CedarPolicySet.from_directory(directory)

    @pytest.mark.parametrize("ttl", ["0", "-5", "10m", "", "1.5", "12345678901"])
    def test_ttl_must_be_positive_whole_seconds(
        self, make_policy_dir: DirFactory, ttl: str
    ) -> None:
        """A @ttl that is not a positive whole number of seconds is refused."""
        directory = make_policy_dir({"a.cedar": f'@ttl("{ttl}")\n' + READ})
        with pytest.raises(ConfigurationError, match="@ttl must be a positive"):
            CedarPolicySet.from_directory(directory)

    def test_ttl_on_forbid_is_refused(self, make_policy_dir: DirFactory) -> None:
        """A @ttl on a forbid would mean nothing, so it is an error."""
        text = '@ttl("60")\nforbid (principal, action, resource);'
        directory = make_policy_dir({"a.cedar": text})
        with pytest.raises(ConfigurationError, match="no effect on a forbid"):
            CedarPolicySet.from_directory(directory)

    def test_templates_are_refused(self, make_policy_dir: DirFactory) -> None:
        """A template (a ?principal slot) is refused: nothing would link it."""
        directory = make_policy_dir(
            {"a.cedar": "permit (principal == ?principal, action, resource);"}
        )
        with pytest.raises(ConfigurationError, match="templates"):
            CedarPolicySet.from_directory(directory)

    def test_unreadable_file(self, make_policy_dir: DirFactory) -> None:
        """A policy file that is not UTF-8 names the file."""
        directory = make_policy_dir({})
        (directory / "a.cedar").write_bytes(b"\xff\xfe")
        with pytest.raises(ConfigurationError, match=r"a\.cedar: cannot read"):
            CedarPolicySet.from_directory(directory)


class TestStatementLines:
    """Locating policy statements for error messages."""

    def test_lines_skip_comments_strings_and_blank_lines(self) -> None:
        """Statements start at their first significant line; ; in strings is text."""
        text = (
            "// header; not a statement\n"
            "\n"
            '@id("a;b")\n'
            'permit (principal, action, resource) when { "\\";" == "x" };\n'
            "forbid (principal, action, resource);"
        )
        assert statement_lines(text) == [3, 5]

    def test_unterminated_string_ends_the_text(self) -> None:
        """An unterminated string runs to the end without looping."""
        assert statement_lines('permit "abc') == [1]

    @given(st.text(alphabet='p;"\n/ \\x', max_size=60))
    def test_lines_are_those_counted_from_the_start(self, text: str) -> None:
        """Counting newlines once, statement to statement, gives each start's line."""
        expected = [
            text.count("\n", 0, start) + 1 for start in _statement_offsets(text)
        ]
        assert statement_lines(text) == expected
