"""Drawing ``gatepass tasks tree`` (``cli/task_tree.py``)."""

from __future__ import annotations

from gatepass.cli.task_tree import render_tree


class TestRenderTree:
    """The tree's drawing, from an API answer."""

    def test_children_are_drawn_under_their_parents(self) -> None:
        """Guides continue below a middle child and end below the last one."""

        def node(
            task_id: str,
            agent: str,
            depth: int,
            children: tuple[dict[str, object], ...] = (),
            state: str = "open",
        ) -> dict[str, object]:
            return {
                "id": task_id,
                "agent_name": agent,
                "state": state,
                "depth": depth,
                "targets": ["db"],
                "actions": ["read"],
                "leases": [{"state": "active"}, {"state": "revoked"}],
                "children": list(children),
            }

        tree = {
            "requested": "tsk_c",
            **node(
                "tsk_a",
                "planner",
                0,
                (
                    node("tsk_b", "researcher", 1, (node("tsk_d", "reader", 2),)),
                    node("tsk_c", "writer\x1b[2J", 1, state="closed"),
                ),
            ),
        }
        assert render_tree(tree) == [
            "tsk_a  planner  open  depth 0  db  [read]  leases 2 (1 live)",
            "├── tsk_b  researcher  open  depth 1  db  [read]  leases 2 (1 live)",
            "│   └── tsk_d  reader  open  depth 2  db  [read]  leases 2 (1 live)",
            (
                "└── tsk_c  writer\\u001b[2J  closed  depth 1  db  [read]  "
                "leases 2 (1 live)  ◀"
            ),
        ]

    def test_missing_fields_render_as_question_marks(self) -> None:
        """A node without its fields still draws one line; odd children are skipped."""
        assert render_tree({"children": ["not a node"]}) == ["?  ?  ?  depth ?  -"]
