"""docs/cli.md stays true: its exit-code table is the errors' table (issue 17)."""

from __future__ import annotations

import re
from pathlib import Path

from gatepass import errors

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def _documented() -> dict[int, set[str]]:
    """Return the error codes docs/cli.md lists for each exit code."""
    text = DOCS.read_text(encoding="utf-8")
    table = text[text.index("## Exit codes") :]
    rows: dict[int, set[str]] = {}
    for line in table.splitlines():
        found = re.match(r"^\| (\d+) \|.*\| (.*) \|$", line)
        if found:
            rows[int(found.group(1))] = set(re.findall(r"`([a-z_]+)`", found.group(2)))
    return rows


def _classes() -> list[type[errors.GatepassError]]:
    found = [errors.GatepassError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return found


class TestIssue17ExitCodes:
    """Every CLI error exits with the code docs/cli.md documents."""

    def test_issue17_every_error_code_is_in_its_exit_row(self):
        """Each error class's code is listed in the row of its exit code."""
        documented = _documented()
        for cls in _classes():
            assert cls.code in documented.get(cls.exit_code, set()), cls.__name__

    def test_issue17_no_row_lists_a_code_that_exits_otherwise(self):
        """No code is documented under an exit code its class does not use."""
        actual = {(cls.code, cls.exit_code) for cls in _classes()}
        for exit_code, codes in _documented().items():
            for code in codes:
                assert (code, exit_code) in actual, (code, exit_code)

    def test_issue17_the_cli_only_codes_are_documented(self):
        """Usage errors (2), an unreachable broker and the SDK-only install (69)."""
        text = DOCS.read_text(encoding="utf-8")
        assert "| 2 | the command line itself is wrong" in text
        assert "the broker cannot be reached" in text
        assert "only the SDK is installed" in text
