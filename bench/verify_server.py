"""
A trivial resource server for bench/verify.py, protected or not.

``BENCH_MODE=open`` serves ``GET /ping`` to anyone; ``BENCH_MODE=protected`` serves
the same endpoint behind :class:`~gatepass.verify.GatepassMiddleware`, with a
verifier built by :meth:`~gatepass.verify.ResourceVerifier.for_broker` (JWKS,
revocations pushed by the broker's stream, introspection while it is down).
With ``BENCH_REVOCATIONS=ssf`` the verifier subscribes to the broker's SSF
transmitter by poll instead (``BENCH_SSF_TOKEN_FILE``: an ``ssf_receiver`` token),
and ``GET /_bench/feed`` tells whether that subscription is up (bench/ssf.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.secret import Secret
from gatepass.verify import GatepassMiddleware, ResourceVerifier


async def ping(_request: Request) -> Response:
    """Answer a tiny JSON document."""
    return JSONResponse({"pong": True})


async def healthz(_request: Request) -> Response:
    """Answer while the process runs."""
    return JSONResponse({"status": "ok"})


def _token() -> Secret:
    return Secret(Path(os.environ["BENCH_TOKEN_FILE"]).read_text().strip())


def _ssf_token() -> Secret:
    return Secret(Path(os.environ["BENCH_SSF_TOKEN_FILE"]).read_text().strip())


app = Starlette(
    routes=[
        Route("/ping", ping, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
if os.environ.get("BENCH_MODE") == "protected":
    ssf = os.environ.get("BENCH_REVOCATIONS") == "ssf"
    verifier = ResourceVerifier.for_broker(
        os.environ["BENCH_ISSUER"],
        os.environ["BENCH_AUDIENCE"],
        api_token=_token,
        revocations="ssf" if ssf else "stream",
        ssf_token=_ssf_token if ssf else None,
    )

    async def feed(_request: Request) -> Response:
        """Tell whether revocations arrive as they happen."""
        revocations = verifier.revocations
        return JSONResponse({"healthy": bool(revocations and revocations.healthy)})

    app.add_route("/_bench/feed", feed, methods=["GET"])
    app.add_middleware(
        GatepassMiddleware, verifier=verifier, public_paths=["/healthz", "/_bench/feed"]
    )
