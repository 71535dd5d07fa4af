"""
The approvals bench's broker: ``gatepass serve``, with the approve route timed.

    .venv/bin/python bench/approvals_broker.py <config.toml>

Serves the broker exactly as ``gatepass serve`` does (same uvicorn options, background
jobs on, ``gc.freeze()``). Votes go through the real admin route
``POST /v1/admin/approvals/{id}/approve`` with an approver operator's token; the only
addition is a ``Server-Timing: app;dur=<ms>`` header on that route's answers: the
time the broker's ASGI app spent on it (authentication, parsing, the vote's
transaction, the audit record), without the client's and the socket's share.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from ceiling_app import UVICORN_OPTIONS
from gatepass.api import create_app
from gatepass.broker import build_runtime
from gatepass.config import load_settings
from gatepass.observability import configure_logging

APPROVER_GROUP = "bench-approvers"
APPROVE_SUFFIX = "/approve"

Scope = dict[str, Any]
Receive = Any
Send = Any
Message = dict[str, Any]


def with_server_timing(app: Any) -> Any:  # noqa: ANN401
    """Wrap the broker's ASGI app: time the approve route, say so in a header."""

    async def timed_app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path.startswith("/v1/admin/approvals/") and path.endswith(APPROVE_SUFFIX)
        ):
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        held: list[Message] = []

        async def hold(message: Message) -> None:
            # The body is complete only when the app has finished: hold the answer
            # until then, so the header can carry the whole duration.
            held.append(message)

        await app(scope, receive, hold)
        took_ms = (time.perf_counter() - started) * 1000
        timing = (b"server-timing", f"app;dur={took_ms:.3f}".encode())
        for message in held:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), timing]
                await send({**message, "headers": headers})
            else:
                await send(message)

    return timed_app


def main() -> None:
    """Serve the broker of the configuration named on the command line."""
    settings = load_settings(Path(sys.argv[1]))
    configure_logging(settings.server.log_level)
    runtime = build_runtime(settings)
    app = with_server_timing(create_app(runtime))
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
