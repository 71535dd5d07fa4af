"""Engine-backed credentials: ``POST /v1/credentials``, renewal, and the SSH KRL."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatepass.api.bodies import read_body, read_json
from gatepass.api.errors import NO_STORE
from gatepass.api.inputs import credential_request
from gatepass.api.tls import client_certificate_thumbprint
from gatepass.broker import Broker, PresentedTaskToken, idempotency_key_from_headers
from gatepass.errors import GatepassError
from gatepass.verify import header_values, single_dpop_proof

__all__ = ["credential_routes"]


def _presented(request: Request, broker: Broker, path: str) -> PresentedTaskToken:
    """The task token and proof of the request; the ``htu`` built from the issuer."""
    return PresentedTaskToken(
        authorization=request.headers.get("authorization"),
        dpop_proof=single_dpop_proof(header_values(request.scope["headers"], b"dpop")),
        url=f"{broker.settings.server.issuer}{path}",
        certificate=client_certificate_thumbprint(request.scope),
    )


async def issue_credential(request: Request) -> Response:
    """Mint a PostgreSQL role, Redis user or SSH certificate for the task."""
    broker: Broker = request.app.state.broker
    try:
        presented = _presented(request, broker, "/v1/credentials")
        key = idempotency_key_from_headers(request.headers.getlist("idempotency-key"))
        payload = await read_json(request, broker.settings.server.max_body_bytes)
        wanted = credential_request(payload, idempotency_key=key)
    except GatepassError as error:
        await broker.audit.reject("credential.issue", error)
        raise
    answer = await broker.issue_credential(wanted, presented)
    if answer.get("idempotent_replay"):
        # The same lease as the first answer, without its secret.
        headers = {**NO_STORE, "Idempotent-Replayed": "true"}
        return JSONResponse(answer, status_code=200, headers=headers)
    return JSONResponse(answer, status_code=201, headers=NO_STORE)


async def renew_credential(request: Request) -> Response:
    """Extend a live engine credential of the task."""
    broker: Broker = request.app.state.broker
    lease_id = str(request.path_params["lease_id"])
    try:
        presented = _presented(request, broker, f"/v1/credentials/{lease_id}/renew")
    except GatepassError as error:
        await broker.audit.reject("credential.renew", error)
        raise
    await read_body(request, broker.settings.server.max_body_bytes)
    answer = await broker.renew_credential(lease_id, presented)
    return JSONResponse(answer, headers=NO_STORE)


async def ssh_krl(request: Request) -> Response:
    """Serve the key revocation list of an SSH target (public: hosts pull it)."""
    broker: Broker = request.app.state.broker
    body = broker.reads.krl(str(request.path_params["target"]))
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
