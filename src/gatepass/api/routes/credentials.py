"""Engine-backed credentials: ``POST /v1/credentials`` and the SSH KRL hosts pull."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_body, read_json
from gatepass.api.errors import NO_STORE
from gatepass.broker import Runtime, idempotency_key_from_headers
from gatepass.errors import DPoPProofError, GatepassError, NotFoundError

__all__ = ["credential_routes"]


async def issue_credential(request: Request) -> Response:
    """Mint a PostgreSQL role, Redis user or SSH certificate for the task."""
    runtime: Runtime = request.app.state.runtime
    url = f"{runtime.settings.server.issuer}/v1/credentials"
    proofs = request.headers.getlist("dpop")
    try:
        if len(proofs) > 1:
            # RFC 9449 §4.3 item 1: exactly one DPoP header.
            raise DPoPProofError("more than one dpop header")
        key = idempotency_key_from_headers(request.headers.getlist("idempotency-key"))
        payload = await read_json(request, runtime.settings.server.max_body_bytes)
    except GatepassError as error:
        await runtime.broker.record_rejection("credential.issue", error)
        raise
    answer = await runtime.credentials.issue(
        authorization=request.headers.get("authorization"),
        dpop_proof=proofs[0] if proofs else None,
        url=url,
        payload=payload,
        idempotency_key=key,
    )
    if answer.get("idempotent_replay"):
        # The same lease as the first answer, without its secret.
        headers = {**NO_STORE, "Idempotent-Replayed": "true"}
        return JSONResponse(answer, status_code=200, headers=headers)
    return JSONResponse(answer, status_code=201, headers=NO_STORE)


async def renew_credential(request: Request) -> Response:
    """Extend a live engine credential of the task."""
    runtime: Runtime = request.app.state.runtime
    lease_id = str(request.path_params["lease_id"])
    url = f"{runtime.settings.server.issuer}/v1/credentials/{lease_id}/renew"
    proofs = request.headers.getlist("dpop")
    if len(proofs) > 1:
        error = DPoPProofError("more than one dpop header")
        await runtime.broker.record_rejection("credential.renew", error)
        raise error
    await read_body(request, runtime.settings.server.max_body_bytes)
    answer = await runtime.credentials.renew(
        lease_id,
        authorization=request.headers.get("authorization"),
        dpop_proof=proofs[0] if proofs else None,
        url=url,
    )
    return JSONResponse(answer, headers=NO_STORE)


async def ssh_krl(request: Request) -> Response:
    """Serve the key revocation list of an SSH target (public: hosts pull it)."""
    runtime: Runtime = request.app.state.runtime
    name = str(request.path_params["target"])
    guarded = runtime.broker.engines.get(name)
    krl = getattr(guarded.engine, "krl_bytes", None) if guarded else None
    if krl is None:
        raise NotFoundError("no ssh target of that name")
    body: bytes = krl()
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Cache-Control": "no-cache"},
    )


credential_routes = [
    Route("/v1/credentials", issue_credential, methods=["POST"]),
    Route("/v1/credentials/{lease_id}/renew", renew_credential, methods=["POST"]),
    Route("/v1/ssh/{target}/krl", ssh_krl, methods=["GET"]),
]
