"""
The ceiling for bench/issuance.py: the broker's server stack doing only one signature.

``POST /token`` reads the form body and answers with one ES256 JWT signed by gatepass's
``JWTIssuer`` (a freshly generated key ring, the broker's key type), in the same
response shape as the broker. Served by Starlette on uvicorn, one worker, with the
options of ``gatepass serve`` (:data:`UVICORN_OPTIONS`).

Run: ``python bench/ceiling_app.py PORT``.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import uvicorn
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.clock import SystemClock, to_epoch
from gatepass.ids import new_token_id
from gatepass.sealing import Sealer
from gatepass.tokens import JWTIssuer, KeyRing, rotate

# The uvicorn.Config keywords of src/gatepass/cli/serve.py (besides app, host, port);
# loop and http stay "auto", i.e. uvloop and httptools, as there.
UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "server_header": False,
    "limit_concurrency": 2048,
    "timeout_keep_alive": 30,
}

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_AUDIENCE = "http://127.0.0.1:8401/"
_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"


def create_ceiling_app(issuer_url: str) -> Starlette:
    """Return the one-signature app; its key is generated here, in memory."""
    sealer = Sealer([Fernet.generate_key()])
    clock = SystemClock()
    records = rotate(
        [],
        algorithm="ES256",
        sealer=sealer,
        now=clock.now(),
        retire_after=dt.timedelta(hours=2),
    )
    issuer = JWTIssuer(KeyRing(records, sealer), issuer=issuer_url)

    async def token(request: Request) -> Response:
        await request.body()
        now = to_epoch(clock.now())
        access_token = issuer.sign(
            {
                "sub": "agt_ceiling",
                "aud": _AUDIENCE,
                "client_id": "agt_ceiling",
                "iat": now,
                "exp": now + 300,
                "jti": new_token_id(),
                "scope": "read",
                "txn": "tsk_ceiling",
                "tenant": "acme",
                "env": "dev",
                "cnf": {"jkt": _JKT},
            },
            typ="at+jwt",
        )
        return JSONResponse(
            {
                "access_token": access_token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "DPoP",
                "expires_in": 300,
                "scope": "read",
                "lease_id": "lse_ceiling",
            },
            headers=_NO_STORE,
        )

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    """Serve the ceiling app on 127.0.0.1:PORT until terminated."""
    port = int(sys.argv[1])
    app = create_ceiling_app(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **UVICORN_OPTIONS)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
