from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatepass.errors import InvalidRequestError
from gatepass.policy import CedarPolicySet, DelegationRequest, run_cases
from gatepass.policy.cases import _delegation_request

CasesWriter = Callable[..., Path]

HEADER = """
[defaults]
agent = "demo"
target = "tickets"
task = "triage"
at = 2026-01-06T10:00:00Z

[agents.demo]
tenant = "acme"
labels = { team = "support" }

[targets.tickets]
environment = "dev"
tenant = "acme"
risk = "low"

[tasks.triage]
purpose = "support-triage"
environment = "dev"
tenant = "acme"
"""


@pytest.fixture
def write_cases(tmp_path: Path) -> CasesWriter:
    """Write a case file made of the shared header and the given cases."""

    def write(cases: str, *, header: str = HEADER, name: str = "cases.toml") -> Path:
        path = tmp_path / name
        path.write_text(header + cases, encoding="utf-8")
        return path

    return write


class TestQuickstartCases:
    """The quickstart's own case file."""

    def test_quickstart_cases_all_pass(
        self, quickstart: CedarPolicySet, quickstart_dir: Path
    ) -> None:
        """Every case shipped with the quickstart passes against its policies."""
        report = run_cases(quickstart, quickstart_dir / "tests" / "quickstart.toml")
        assert report.passed, report.summary()
        assert len(report.results) >= 10
        assert {r.decision.allowed for r in report.results} == {True, False}

    def test_directory_is_searched_recursively(
        self, quickstart: CedarPolicySet, quickstart_dir: Path
    ) -> None:
        """Pointing at the policy directory finds the cases under tests/."""
        report = run_cases(quickstart, quickstart_dir)
        assert report.passed
        assert report.results[0].file.name == "quickstart.toml"


class TestCaseOutcomes:
    """How cases pass, fail and explain themselves."""

    def test_failed_expectations_say_why(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """A failing case lists every expectation that did not hold."""
        path = write_cases(
            """
[[case]]
name = "wrong on purpose"
action = "admin"
expect = "allow"
ttl_at_most = 60
policy_ids_include = ["support-reads-low-risk"]
"""
        )
        report = run_cases(quickstart, path)
        assert not report.passed
        [failure] = report.failures
        assert failure.problems == (
            "expected allow, got deny (never-admin)",
            "expected a ttl cap of at most 60s, got none",
            "expected policy ids ['support-reads-low-risk'] among ['never-admin']",
        )
        assert "FAIL cases.toml: wrong on purpose" in report.summary()
        assert report.summary().endswith("0 passed, 1 failed")

    def test_ttl_above_the_bound_fails(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """A cap larger than ttl_at_most fails the case."""
        path = write_cases(
            '[[case]]\nname = "ttl"\naction = "read"\nexpect = "allow"\n'
            "ttl_at_most = 599\n"
        )
        [result] = run_cases(quickstart, path).results
        assert result.problems == ("expected a ttl cap of at most 599s, got 600s",)

    def test_default_deny_failure_says_no_policy_applied(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """A deny with no deciding policy is explained as such."""
        path = write_cases(
            '[[case]]\nname = "d"\naction = "read"\nexpect = "allow"\n'
            'agent = { from = "demo", labels = {} }\n'
        )
        [result] = run_cases(quickstart, path).results
        assert result.problems == ("expected allow, got deny (no policy applied)",)

    def test_evaluation_errors_fail_the_case(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """A case whose decision carries an error fails even when it expects deny."""
        path = write_cases('[[case]]\nname = "e"\naction = "delete"\nexpect = "deny"\n')
        [result] = run_cases(quickstart, path).results
        assert not result.passed
        assert result.problems[0].startswith("evaluation error:")

    def test_inline_facts_and_string_times(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """Inline tables define facts without a name; at may be an ISO string."""
        path = write_cases(
            """
[[case]]
name = "inline"
action = "read"
agent = { id = "agt_x", tenant = "acme" }
target = { name = "t", environment = "prod", tenant = "acme", risk = "high" }
task = { purpose = "p", environment = "prod", tenant = "acme", age_seconds = 3 }
at = "2026-01-10T10:00:00+00:00"
expect = "deny"
policy_ids_include = ["prod-business-hours-only"]
"""
        )
        report = run_cases(quickstart, path)
        assert report.passed, report.summary()
        assert report.results[0].decision.policy_ids == ("prod-business-hours-only",)


class TestBadCaseFiles:
    """Malformed case files are refused with a precise message."""

    @pytest.mark.parametrize(
        ("cases", "message"),
        [
            ('[[case]]\naction = "read"\nexpect = "allow"\n', "case 1 needs a name"),
            (
                (
                    '[[case]]\nname = "a"\naction = "read"\nexpect = "allow"\n'
                    '[[case]]\nname = "a"\naction = "read"\nexpect = "allow"\n'
                ),
                "case 'a': duplicate case name",
            ),
            (
                '[[case]]\nname = "a"\naction = "read"\nexpected = "allow"\n',
                "case 'a': unknown keys ['expected']",
            ),
            (
                '[[case]]\nname = "a"\naction = "read"\nexpect = "yes"\n',
                "expect must be",
            ),
            (
                (
                    '[[case]]\nname = "a"\nagent = "ghost"\naction = "read"\n'
                    'expect = "allow"\n'
                ),
                "unknown agent 'ghost'",
            ),
            (
                '[[case]]\nname = "a"\ntarget = 3\naction = "read"\nexpect = "allow"\n',
                "target must be a name or a table",
            ),
            (
                (
                    '[[case]]\nname = "a"\ntask = { from = 1 }\naction = "read"\n'
                    'expect = "allow"\n'
                ),
                "task.from must be a name",
            ),
            (
                (
                    '[[case]]\nname = "a"\ntask = { from = "triage", colour = "x" }\n'
                    'action = "read"\nexpect = "allow"\n'
                ),
                "case 'a': task: unknown keys ['colour']",
            ),
            (
                (
                    '[[case]]\nname = "a"\n'
                    'task = { from = "triage", age_seconds = -1 }\n'
                    'action = "read"\nexpect = "allow"\n'
                ),
                "age_seconds must be a whole number",
            ),
            (
                (
                    '[[case]]\nname = "a"\n'
                    'agent = { from = "demo", labels = { a = 1 } }\n'
                    'action = "read"\nexpect = "allow"\n'
                ),
                "labels must map names to strings",
            ),
            (
                '[[case]]\nname = "a"\nexpect = "allow"\n',
                "action must be a string",
            ),
            (
                (
                    '[[case]]\nname = "a"\naction = "read"\nexpect = "allow"\n'
                    "ttl_at_most = 0\n"
                ),
                "ttl_at_most must be a positive integer",
            ),
            (
                (
                    '[[case]]\nname = "a"\naction = "read"\nexpect = "allow"\n'
                    'policy_ids_include = "x"\n'
                ),
                "policy_ids_include must be strings",
            ),
            (
                (
                    '[[case]]\nname = "a"\naction = "read"\nexpect = "allow"\n'
                    "at = 2026-01-06T10:00:00\n"
                ),
                "at needs an offset",
            ),
            (
                (
                    '[[case]]\nname = "a"\naction = "read"\nexpect = "allow"\n'
                    'at = "tuesday"\n'
                ),
                "case 'a': at:",
            ),
            (
                '[[case]]\nname = "a"\naction = "read"\nexpect = "allow"\nat = 5\n',
                "at must be a date and time",
            ),
            ("", "no [[case]] entries"),
        ],
    )
    def test_malformed_case_files_name_file_and_case(
        self,
        quickstart: CedarPolicySet,
        write_cases: CasesWriter,
        cases: str,
        message: str,
    ) -> None:
        """Each kind of mistake raises InvalidRequestError naming file and case."""
        path = write_cases(cases)
        with pytest.raises(InvalidRequestError) as caught:
            run_cases(quickstart, path)
        assert message in caught.value.detail
        assert "cases.toml" in caught.value.detail

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            ("agents = 1\n", "[agents] must be a table"),
            ("[defaults]\ncolour = 1\n", "[defaults]: unknown keys ['colour']"),
            ("[agents.a]\ntenant = 1\n", "tenant must be a string"),
            ("[agents.a]\ntenant = 'x'\n", "no target"),
            (
                (
                    "[agents.a]\ntenant = 'x'\n[targets.t]\nenvironment='e'\n"
                    "tenant='x'\nrisk='r'\n[tasks.k]\npurpose='p'\nenvironment='e'\n"
                    "tenant='x'\n"
                ),
                "no at time",
            ),
        ],
    )
    def test_missing_or_malformed_facts(
        self,
        quickstart: CedarPolicySet,
        write_cases: CasesWriter,
        header: str,
        message: str,
    ) -> None:
        """Facts tables and defaults are checked as strictly as cases."""
        cases = (
            '[[case]]\nname = "a"\nagent = "a"\ntarget = "t"\ntask = "k"\n'
            'action = "read"\nexpect = "allow"\n'
        )
        if "no target" in message:
            cases = (
                '[[case]]\nname = "a"\nagent = "a"\naction = "read"\nexpect = "allow"\n'
            )
        path = write_cases(cases, header=header)
        with pytest.raises(InvalidRequestError) as caught:
            run_cases(quickstart, path)
        assert message in caught.value.detail

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("case = [1]\n", "case 1 is not a table"),
            ("extra = 1\n", "unknown keys ['extra']"),
        ],
    )
    def test_malformed_top_level(
        self,
        quickstart: CedarPolicySet,
        write_cases: CasesWriter,
        text: str,
        message: str,
    ) -> None:
        """Top-level keys other than the known tables are refused."""
        path = write_cases(text + HEADER, header="")
        with pytest.raises(InvalidRequestError) as caught:
            run_cases(quickstart, path)
        assert message in caught.value.detail

    def test_invalid_toml(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """A file that is not TOML is reported with its name."""
        path = write_cases("[[case]\n")
        with pytest.raises(InvalidRequestError, match=r"cases\.toml: cannot read"):
            run_cases(quickstart, path)

    def test_missing_path(self, quickstart: CedarPolicySet, tmp_path: Path) -> None:
        """A path that does not exist is an error, not an empty pass."""
        with pytest.raises(InvalidRequestError, match="case file not found"):
            run_cases(quickstart, tmp_path / "nope.toml")

    def test_directory_without_case_files(
        self, quickstart: CedarPolicySet, tmp_path: Path
    ) -> None:
        """A directory with no *.toml is an error, not an empty pass."""
        with pytest.raises(InvalidRequestError, match=r"no \*\.toml case files"):
            run_cases(quickstart, tmp_path)


DELEGATION_HEADER = (
    HEADER
    + """
[agents.planner]
tenant = "acme"
labels = { role = "planner" }

[agents.researcher]
tenant = "acme"
labels = { role = "researcher" }
"""
)


class TestDelegationCases:
    """Cases can ask Delegate, and ask as a delegated task."""

    def test_delegate_case_decides_with_the_subtask(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """A Delegate case is decided by decide_delegation, in file order."""
        path = write_cases(
            """
[[case]]
name = "reads"
agent = "planner"
action = "Delegate"
child = "researcher"
subtask = { targets = ["tickets"], actions = ["read"], ttl_seconds = 900 }
expect = "allow"
ttl_at_most = 600

[[case]]
name = "an ordinary case between two delegations"
action = "read"
expect = "allow"

[[case]]
name = "wrong way round"
agent = "researcher"
action = "Delegate"
child = "planner"
expect = "deny"
""",
            header=DELEGATION_HEADER,
        )
        report = run_cases(quickstart, path)
        assert report.passed, report.summary()
        assert [r.decision.allowed for r in report.results] == [True, True, False]

    def test_delegated_task_case_sees_context_delegation(
        self, quickstart: CedarPolicySet, write_cases: CasesWriter
    ) -> None:
        """A case's delegation table reaches the policies (a write is denied)."""
        path = write_cases(
            """
[[case]]
name = "a delegated write"
action = "write"
delegation = { depth = 1, parent_agent = "agt_planner" }
expect = "allow"
"""
        )
        [result] = run_cases(quickstart, path).results
        assert not result.passed
        assert "delegated-tasks-never-write" in result.problems[0]

    @pytest.mark.parametrize(
        ("case", "message"),
        [
            ('action = "Delegate"\nchild = "planner"\ntarget = "tickets"', "no target"),
            ('action = "read"\nchild = "planner"', "child is only for Delegate"),
            ('action = "read"\nsubtask = {}', "subtask is only for Delegate"),
            ('action = "Delegate"', "no child"),
            ('action = "Delegate"\nchild = "planner"\nsubtask = 3', "must be a table"),
            (
                'action = "Delegate"\nchild = "planner"\nsubtask = { scope = "x" }',
                "unknown keys ['scope']",
            ),
            (
                'action = "Delegate"\nchild = "planner"\nsubtask = { ttl_seconds = 0 }',
                "ttl_seconds must be a positive integer",
            ),
            (
                'action = "Delegate"\nchild = "planner"\nsubtask = { actions = "x" }',
                "actions must be a list of strings",
            ),
            (
                'action = "read"\ndelegation = { parent_agent = "agt_x" }',
                "depth must be a positive integer",
            ),
            ('action = "read"\ndelegation = { depth = 1 }', "parent_agent must be"),
            ('action = "read"\ndelegation = 1', "delegation: must be a table"),
            (
                'action = "read"\ndelegation = { depth = 1, parent_agent = "a", x = 0}',
                "unknown keys ['x']",
            ),
        ],
    )
    def test_malformed_delegation_cases_say_what(
        self,
        quickstart: CedarPolicySet,
        write_cases: CasesWriter,
        case: str,
        message: str,
    ) -> None:
        """Each malformed delegation case names its problem."""
        path = write_cases(
            f'\n[[case]]\nname = "bad"\nexpect = "deny"\n{case}\n',
            header=DELEGATION_HEADER,
        )
        with pytest.raises(InvalidRequestError, match=message.replace("[", r"\[")):
            run_cases(quickstart, path)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_tables = st.dictionaries(
    st.sampled_from(
        [
            *("depth", "parent_agent", "root_agent", "root_purpose", "root_tenant"),
            *("targets", "actions", "purpose", "ttl_seconds", "x"),
        ]
    ),
    _values,
    max_size=5,
)


class TestDelegationCaseProperties:
    """Whatever a case file holds, its delegation parts parse or name the problem."""

    @given(delegation=_tables | _values, subtask=_tables | _values)
    def test_any_delegate_case_parses_or_is_refused(
        self, delegation: object, subtask: object
    ) -> None:
        """Only DelegationRequest or InvalidRequestError ever comes out."""
        case = {
            "name": "n",
            "action": "Delegate",
            "agent": {"tenant": "acme"},
            "child": {"tenant": "acme"},
            "task": {"purpose": "p", "environment": "dev", "tenant": "acme"},
            "at": "2026-01-06T10:00:00+00:00",
            "delegation": delegation,
            "subtask": subtask,
        }
        try:
            request = _delegation_request(
                case, {"agents": {}, "targets": {}, "tasks": {}}, "w"
            )
        except InvalidRequestError:
            return
        assert isinstance(request, DelegationRequest)
        assert request.delegation.depth >= 1
        assert request.ttl_seconds >= 1
