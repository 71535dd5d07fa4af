"""
An unmodified OAuth client completes the whole flow with no gatepass code.

The agent side uses only requests-oauth2client (token exchange, DPoP, revocation)
and jwskate (to sign its RFC 7523 identity assertion); it is given nothing but the
metadata URL, the demo agent's key and the documented ``authorization_details``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from jwskate import Jwk, Jwt
from requests_oauth2client import DPoPKey, OAuth2Client
from requests_oauth2client.dpop import MissingDPoPNonce

from gatepass.api import create_app
from gatepass.broker import build_runtime
from gatepass.clock import SystemClock, to_epoch
from gatepass.demo import create_resource_app

from .conftest import RunningServer, free_port, quickstart_settings, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, Path]]:
    """A broker and the demo resource server, both on 127.0.0.1."""
    state = tmp_path_factory.mktemp("standard") / "state"
    port, resource_port = free_port(), free_port()
    settings = quickstart_settings(state, port=port, resource_port=resource_port)
    runtime = build_runtime(settings)
    running: list[RunningServer] = [
        start_server(create_app(runtime, background_jobs=False), port)
    ]
    try:
        running.append(start_server(create_resource_app(settings), resource_port))
        yield running[0].url, running[1].url, state
    finally:
        for server in running:
            server.stop()
        runtime.database.dispose()


def identity_assertion(
    private_jwk: dict[str, object], agent_id: str, audience: str
) -> str:
    """Sign an RFC 7523 assertion with a generic JOSE library."""
    now = to_epoch(SystemClock().now())
    claims = {
        "iss": agent_id,
        "sub": agent_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    key = Jwk(private_jwk)
    return str(Jwt.sign(claims, key=key, alg="ES256"))


class TestStandardClient:
    """requests-oauth2client drives open task → token → call → close → refused."""

    def test_full_flow(self, servers: tuple[str, str, Path]) -> None:
        """The flow works end to end and the closed task's token is refused."""
        broker_url, resource_url, state = servers
        identity = json.loads((state / "demo-agent.json").read_text())
        client = OAuth2Client.from_discovery_endpoint(
            f"{broker_url}/.well-known/oauth-authorization-server",
            issuer=broker_url,
            client_id=identity["agent_id"],
            testing=True,
        )
        dpop_key = DPoPKey.generate(alg="ES256")
        task = client.token_exchange(
            subject_token=identity_assertion(
                identity["private_jwk"], identity["agent_id"], broker_url
            ),
            subject_token_type="urn:ietf:params:oauth:token-type:jwt",
            requested_token_type="urn:ietf:params:oauth:token-type:txn_token",
            dpop=True,
            dpop_key=dpop_key,
            authorization_details=json.dumps(
                [
                    {
                        "type": "agent_task",
                        "intent": "triage new tickets",
                        "purpose": "support-triage",
                        "environment": "dev",
                        "targets": [f"{resource_url}/"],
                    }
                ]
            ),
        )
        access = client.token_exchange(
            subject_token=task.access_token,
            subject_token_type="urn:ietf:params:oauth:token-type:txn_token",
            resource=f"{resource_url}/",
            scope="read",
            dpop=True,
            dpop_key=dpop_key,
        )
        with requests.Session() as session:
            listed = session.get(f"{resource_url}/tickets", auth=access, timeout=10)
            assert listed.status_code == 200, listed.text
            assert client.revoke_token(task.access_token) is True
            try:
                refused = session.get(
                    f"{resource_url}/tickets", auth=access, timeout=10
                )
            except MissingDPoPNonce as quirk:
                # requests-oauth2client 1.8 reads every 401 with a DPoP challenge as a
                # nonce request (it does not look at error="..."); the answer it
                # received is the refusal we expect.
                refused = quirk.response
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
