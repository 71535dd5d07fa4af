"""``gatepass tasks``."""

from __future__ import annotations


class TestTasksList:
    """``gatepass tasks list``."""

    def test_list_shows_an_open_task(self, cli):
        """An open task appears in the table with its purpose and state."""
        task_id, _ = cli.broker.open_lease()
        result = cli("tasks", "list")
        assert result.exit_code == 0, result.output
        assert task_id in result.stdout
        assert "support-triage" in result.stdout

    def test_list_filters_as_json(self, cli):
        """--state, --agent and --limit reach the API; --json prints its answer."""
        task_id, _ = cli.broker.open_lease()
        agent = cli.broker.demo_agent_id
        answer = cli.json(
            "tasks", "list", "--state", "open", "--agent", agent, "--limit", "5"
        )
        assert [task["id"] for task in answer["items"]] == [task_id]
        assert cli.json("tasks", "list", "--state", "closed") == {"items": []}

    def test_empty_list(self, cli):
        """With no tasks the command says so."""
        result = cli("tasks", "list")
        assert result.exit_code == 0
        assert "no tasks" in result.stdout

    def test_bad_state_exits_64(self, cli):
        """The broker refuses an unknown state."""
        result = cli("tasks", "list", "--state", "dreaming")
        assert result.exit_code == 64


class TestTasksShow:
    """``gatepass tasks show``."""

    def test_show_includes_leases(self, cli):
        """Show prints the task and a table of its leases."""
        task_id, lease_id = cli.broker.open_lease()
        result = cli("tasks", "show", task_id)
        assert result.exit_code == 0, result.output
        assert "triage new tickets" in result.stdout
        assert lease_id in result.stdout

    def test_show_json(self, cli):
        """--json prints the task with its leases as the API answers it."""
        task_id, lease_id = cli.broker.open_lease()
        task = cli.json("tasks", "show", task_id)
        assert task["id"] == task_id
        assert [lease["id"] for lease in task["leases"]] == [lease_id]

    def test_show_unknown_exits_66(self, cli):
        """An unknown task id is not_found."""
        result = cli("tasks", "show", "tsk_missing")
        assert result.exit_code == 66
        assert result.stderr == "gatepass: no such task\n"


class TestTasksClose:
    """``gatepass tasks close``."""

    def test_close_revokes_leases(self, cli):
        """Closing a task closes it and revokes its leases."""
        task_id, lease_id = cli.broker.open_lease()
        result = cli("tasks", "close", task_id, "--reason", "done")
        assert result.exit_code == 0, result.output
        assert "closed" in result.stdout
        assert cli.json("leases", "show", lease_id)["state"] == "revoked"

    def test_close_json(self, cli):
        """--json prints the closed task."""
        task_id, _ = cli.broker.open_lease()
        assert cli.json("tasks", "close", task_id)["state"] == "closed"

    def test_close_unknown_exits_66(self, cli):
        """Closing an unknown task is not_found."""
        assert cli("tasks", "close", "tsk_missing").exit_code == 66


class TestTasksTree:
    """``gatepass tasks tree``."""

    def test_tree_of_a_root_task(self, cli):
        """A task nobody delegated from is a tree of one, marked as asked."""
        task_id, _ = cli.broker.open_lease()
        result = cli("tasks", "tree", task_id)
        assert result.exit_code == 0, result.output
        [line] = result.stdout.splitlines()
        assert line.startswith(task_id)
        assert "demo-agent" in line
        assert "open" in line
        assert "depth 0" in line
        assert "leases 1 (1 live)" in line
        assert line.endswith("◀")

    def test_tree_json(self, cli):
        """--json prints the API's nested answer."""
        task_id, lease_id = cli.broker.open_lease()
        answer = cli.json("tasks", "tree", task_id)
        assert answer["id"] == task_id
        assert answer["requested"] == task_id
        assert answer["children"] == []
        assert [lease["id"] for lease in answer["leases"]] == [lease_id]

    def test_unknown_task_exits_66(self, cli):
        """An unknown task is not found."""
        result = cli("tasks", "tree", "tsk_nope")
        assert result.exit_code == 66
