"""
The approvals bench's broker: ``gatepass serve`` plus one bench-only vote route.

    .venv/bin/python bench/approvals_broker.py <config.toml>

Serves the broker exactly as ``gatepass serve`` does (same uvicorn options, background
jobs on, ``gc.freeze()``), with one addition in front of it: ``POST /_bench/vote``
with ``{"approval_id": "apr_…"}`` casts an approving vote by a built-in approver
through ``broker.approvals.vote``, the use case an admin route will call, on the
broker's own event loop. The answer carries the use case's own duration
(``server_us``), measured around the call. The admin API has no vote route yet on
this branch; this route exists only in the bench process and only on 127.0.0.1.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from ceiling_app import UVICORN_OPTIONS
from gatepass.api import create_app
from gatepass.broker import build_runtime
from gatepass.clock import SystemClock
from gatepass.config import load_settings
from gatepass.ids import OperatorId, new_operator_id
from gatepass.models import AgentStatus, Operator, OperatorRole, VoteChoice
from gatepass.observability import configure_logging

VOTE_PATH = "/_bench/vote"
APPROVER_GROUP = "bench-approvers"

Scope = dict[str, Any]
Receive = Any
Send = Any


def approver() -> Operator:
    """The bench's approver, in the bench group, for the demo agent's tenant."""
    return Operator(
        id=OperatorId(new_operator_id()),
        name="bench-approver",
        roles=frozenset({OperatorRole.APPROVER}),
        groups=frozenset({APPROVER_GROUP}),
        tenants=frozenset({"acme"}),
        status=AgentStatus.ACTIVE,
        created_at=SystemClock().now(),
    )


def with_vote_route(app: Any, vote: Any, who: Operator) -> Any:  # noqa: ANN401
    """Wrap the broker's ASGI app with the bench's vote route."""

    async def bench_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != VOTE_PATH:
            await app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        approval_id = json.loads(body)["approval_id"]
        started = time.perf_counter()
        result = await vote(who, approval_id, VoteChoice.APPROVE, "bench")
        took = time.perf_counter() - started
        answer = json.dumps(
            {"state": result["state"], "server_us": round(took * 1e6, 1)}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return bench_app


def main() -> None:
    """Serve the broker of the configuration named on the command line."""
    settings = load_settings(Path(sys.argv[1]))
    configure_logging(settings.server.log_level)
    runtime = build_runtime(settings)
    app = with_vote_route(
        create_app(runtime), runtime.broker.approvals.vote, approver()
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.server.port,
            **UVICORN_OPTIONS,
        )
    )
    gc.collect()
    gc.freeze()
    server.run()


if __name__ == "__main__":
    main()
