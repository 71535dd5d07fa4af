"""
An agent that uses the example MCP server with gatepass tokens and no auth code.

With ``make run`` serving the broker, the demo API and the notes MCP server::

    .venv/bin/python examples/mcp/agent.py

The agent opens a task for reviewing notes, lists the notes (``read``: allowed),
tries to add one (``write``: the server asks for it, the broker's policy refuses
it for this purpose), closes the task, and is cut off. Pass
``--purpose support-triage`` to see the step-up granted instead.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from mcp.shared.exceptions import MCPError

from gatepass.mcp import MCPAuth, connect
from gatepass.sdk import AgentIdentity, GatepassClient, Task

RESOURCE = "http://127.0.0.1:8402/mcp"


def _say(step: str, outcome: str) -> None:
    print(f"{step:<44} {outcome}")  # noqa: T201


async def tour(task: Task, url: str) -> None:
    """Read, try to write, close the task, try again."""
    auth = MCPAuth(task, scopes=["read"])
    async with connect(task, url, auth=auth) as mcp:
        result = await mcp.call_tool("list_notes", {})
        notes = (result.structured_content or {}).get("result", [])
        _say("list_notes (read)", f"ok: {len(notes)} note(s)")
        try:
            note = await mcp.call_tool(
                "add_note", {"title": "from the agent", "text": "hello"}
            )
            written = note.structured_content or {}
            _say("add_note (write)", f"ok after step-up, by {written.get('agent')}")
        except MCPError:
            why = auth.last_error
            reason = f"{why.code}: {why.detail}" if why is not None else "refused"
            _say("add_note (write)", f"refused; the broker said {reason}")
        await asyncio.to_thread(task.close)
        _say("close the task", "closed: every token of the task is revoked")
        try:
            await mcp.call_tool("list_notes", {})
            _say("list_notes after close", "still served (unexpected)")
        except MCPError:
            why = auth.last_error
            reason = f"{why.code}: {why.detail}" if why is not None else "refused"
            _say("list_notes after close", f"refused; {reason}")


def main() -> None:
    """Open a task and walk through the tour."""
    parser = argparse.ArgumentParser(description="gatepass MCP agent example")
    parser.add_argument(
        "--identity", type=Path, default=Path(".gatepass/demo-agent.json")
    )
    parser.add_argument("--url", default=RESOURCE)
    parser.add_argument("--purpose", default="notes-review")
    args = parser.parse_args()
    identity = AgentIdentity.load(args.identity)
    with (
        GatepassClient(identity) as client,
        client.open_task(
            intent="review the team's notes",
            purpose=args.purpose,
            environment="dev",
            targets=[args.url],
        ) as task,
    ):
        _say("open a task", f"{task.id} ({args.purpose})")
        asyncio.run(tour(task, args.url))


if __name__ == "__main__":
    main()
