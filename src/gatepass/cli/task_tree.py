"""Render a delegation tree (``GET /v1/admin/tasks/{id}/tree``) for a terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatepass.cli.output import terminal_safe

__all__ = ["render_tree"]

_LIVE = frozenset({"pending", "active", "revoking"})


def render_tree(tree: Mapping[str, Any]) -> list[str]:
    """
    Return one line per task: id, agent, state, depth, targets, actions, leases.

    The root comes first; each child is drawn below its parent with box-drawing
    guides. Every value is made terminal-safe (agent names and targets are
    operator or agent text). The task the operator asked about is marked ``◀``.

    Args:
        tree: the API's answer.

    Returns:
        The lines, without trailing newlines.
    """
    requested = str(tree.get("requested", ""))
    lines: list[str] = []
    _render(tree, requested, prefix="", branch="", lines=lines)
    return lines


def _render(
    node: Mapping[str, Any],
    requested: str,
    *,
    prefix: str,
    branch: str,
    lines: list[str],
) -> None:
    lines.append(prefix + branch + _describe(node, requested))
    children = node.get("children")
    if not isinstance(children, list):
        return
    # Below a child drawn with "├── " the guide continues; below "└── " it ends.
    below = prefix + {"": "", "├── ": "│   ", "└── ": "    "}[branch]
    for number, child in enumerate(children):
        if isinstance(child, Mapping):
            last = number == len(children) - 1
            _render(
                child,
                requested,
                prefix=below,
                branch="└── " if last else "├── ",
                lines=lines,
            )


def _describe(node: Mapping[str, Any], requested: str) -> str:
    task_id = str(node.get("id", "?"))
    agent = node.get("agent_name") or node.get("agent_id") or "?"
    targets = node.get("targets")
    actions = node.get("actions")
    leases = node.get("leases")
    parts = [
        task_id,
        str(agent),
        str(node.get("state", "?")),
        f"depth {node.get('depth', '?')}",
        ",".join(map(str, targets)) if isinstance(targets, list) else "-",
    ]
    if isinstance(actions, list):
        parts.append("[" + " ".join(map(str, actions)) + "]")
    if isinstance(leases, list):
        live = sum(
            1
            for lease in leases
            if isinstance(lease, Mapping) and lease.get("state") in _LIVE
        )
        parts.append(f"leases {len(leases)} ({live} live)")
    line = "  ".join(terminal_safe(part) for part in parts)
    return f"{line}  ◀" if task_id == requested else line
