"""``gatepass audit tail``: a table by default, filtered, followed (issue 17)."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import Result


def _records(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


class TestIssue17TailTable:
    """The default is a table: kinds whole, agent names, relative times."""

    def test_issue17_tail_is_a_table_by_default(self, cli):
        """Headers, kinds, the agent's name and relative times; no JSON."""
        cli.broker.open_lease()
        cli.broker.clock.advance(120)
        result = cli("audit", "tail")
        assert result.exit_code == 0, result.output
        header = result.stdout.splitlines()[0].split()
        assert header[:4] == ["seq", "at", "kind", "outcome"]
        assert "credential.issue" in result.stdout
        assert "demo-agent" in result.stdout
        assert "2m ago" in result.stdout
        assert '"prev_hash"' not in result.stdout

    def test_issue17_refusal_detail_in_the_table(self, cli):
        """A refused request shows its error and description in the detail column."""
        cli("agents", "add", "x", "--tenant", "acme", "--public-key", "/dev/null")
        result = cli("audit", "tail", "--outcome", "deny")
        assert "invalid_request: public key is neither a jwk nor a pem" in result.stdout


class TestIssue17TailFilters:
    """--agent, --task, --kind, --outcome and --since are applied by the broker."""

    def test_issue17_kind_family_and_exact(self, cli):
        """--kind task matches task.*; --kind task.open only itself."""
        task_id, _ = cli.broker.open_lease()
        cli("tasks", "close", task_id)
        family = {
            r["kind"]
            for r in _records(cli("audit", "tail", "--kind", "task", "-o", "json"))
        }
        assert family == {"task.open", "task.close"}
        exact = {
            r["kind"]
            for r in _records(cli("audit", "tail", "-k", "task.open", "-o", "json"))
        }
        assert exact == {"task.open"}

    def test_issue17_kind_is_not_a_pattern(self, cli):
        """Underscores and percent signs in --kind are literal, not LIKE wildcards."""
        cli.broker.open_lease()
        assert _records(cli("audit", "tail", "--kind", "api%", "-o", "json")) == []
        assert _records(cli("audit", "tail", "--kind", "api_tok_n", "-o", "json")) == []
        tokens = _records(cli("audit", "tail", "--kind", "api_token", "-o", "json"))
        assert {r["kind"] for r in tokens} == {"api_token.create"}

    def test_issue17_agent_by_name_or_id(self, cli):
        """--agent takes a name or an id: the agent's records and those about it."""
        cli.broker.open_lease()
        by_name = _records(cli("audit", "tail", "--agent", "demo-agent", "-o", "json"))
        by_id = _records(
            cli("audit", "tail", "--agent", cli.broker.demo_agent_id, "-o", "json")
        )
        assert by_name == by_id
        kinds = [r["kind"] for r in by_name]
        assert kinds == ["agent.add", "task.open", "credential.issue"]

    def test_issue17_unknown_agent_name_exits_66(self, cli):
        """An agent name no agent has is not_found."""
        result = cli("audit", "tail", "--agent", "nobody")
        assert result.exit_code == 66
        assert "nobody" in result.stderr

    def test_issue17_task_filter(self, cli):
        """--task keeps the records of that task only."""
        first, _ = cli.broker.open_lease()
        second, _ = cli.broker.open_lease()
        records = _records(cli("audit", "tail", "--task", first, "-o", "json"))
        assert records
        assert {r["subject"] for r in records} == {first}
        assert second not in json.dumps(records)

    def test_issue17_outcome_and_since(self, cli):
        """--outcome picks decisions; --since cuts by time (frozen clock)."""
        cli.broker.open_lease()
        cli.broker.clock.advance(3600)
        cli.broker.open_lease()
        allowed = _records(cli("audit", "tail", "--outcome", "allow", "-o", "json"))
        assert {r["outcome"] for r in allowed} == {"allow"}
        recent = _records(cli("audit", "tail", "--since", "10m", "-o", "json"))
        assert [r["kind"] for r in recent] == ["task.open", "credential.issue"]
        assert (
            _records(cli("audit", "tail", "--since", "2d", "-o", "json"))[0]["seq"] == 1
        )

    def test_issue17_bad_filters(self, cli):
        """A bad --outcome is a usage error (2); a bad --since is exit 64."""
        assert cli("audit", "tail", "--outcome", "maybe").exit_code == 2
        since = cli("audit", "tail", "--since", "yesterday")
        assert since.exit_code == 64
        assert "--since must be" in since.stderr

    def test_issue17_limit_counts_matching_events(self, cli):
        """--limit 1 with a filter is the newest matching event, not the newest."""
        cli.broker.open_lease()
        records = _records(cli("audit", "tail", "-k", "agent", "-n", "1", "-o", "json"))
        assert [r["kind"] for r in records] == ["agent.add"]


class TestIssue17TailFollow:
    """--follow with filters continues exactly where it was, headers once."""

    def test_issue17_follow_with_a_filter_prints_new_matches_once(self, cli):
        """An empty first answer does not restart from seq 0; headers print once."""
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            if len(waits) == 1:
                cli.broker.open_lease()
                return
            if len(waits) == 2:
                cli.broker.open_lease()
                return
            raise KeyboardInterrupt

        result = cli("audit", "tail", "-f", "--kind", "credential", wait=wait)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0] == "no audit events"
        assert sum(1 for line in lines if line.split()[:2] == ["seq", "at"]) == 1
        assert sum("credential.issue" in line for line in lines) == 2
        assert "task.open" not in result.stdout
