"""
Certificate-bound tokens over the broker's own mutual TLS (RFC 8705, issue 11).

A broker terminating TLS with ``[server.tls] client_ca_file`` binds the tokens of a
task opened over a client-certificate connection to that certificate
(``cnf.x5t#S256`` beside ``cnf.jkt``): the task token is then useless over a
connection without the certificate, or with another one from the same CA.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from gatepass.api import create_app
from gatepass.api.tls import uvicorn_tls_options
from gatepass.broker import Runtime, build_runtime
from gatepass.store import tasks as task_rows
from gatepass.tokens import X5T_CLAIM, certificate_thumbprint

from .agents import ProtocolAgent
from .certificates import Authority, Issued
from .conftest import RunningServer, free_port, quickstart_settings, start_server

pytestmark = pytest.mark.slow


@dataclass
class TLSBroker:
    """A broker behind its own TLS, the CA it trusts, and two client certificates."""

    runtime: Runtime
    server: RunningServer
    authority: Authority
    alice: Issued
    mallory: Issued
    stranger: Issued

    def agent(self, certificate: Issued | None) -> ProtocolAgent:
        """The demo agent, connecting with ``certificate`` (or none)."""
        identity = self.runtime.broker.settings.server.state_dir / "demo-agent.json"
        agent = ProtocolAgent(self.server.url, json.loads(identity.read_text()))
        agent.http.close()
        if certificate is None:
            context = ssl.create_default_context(cafile=str(self.authority.cert_file))
        else:
            context = certificate.client_context(self.authority.cert_file)
        agent.http = httpx.Client(timeout=10, verify=context)
        return agent


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSBroker]:
    """A quickstart broker served over TLS that asks for client certificates."""
    folder = tmp_path_factory.mktemp("mtls")
    authority = Authority(folder)
    other = Authority(folder, name="someone else ca")
    server_cert = authority.issue("broker", server=True)
    port = free_port()
    settings = quickstart_settings(
        folder / "state",
        port=port,
        resource_port=free_port(),
        server={
            "issuer": f"https://127.0.0.1:{port}",
            "tls": {
                "cert_file": str(server_cert.cert_file),
                "key_file": str(server_cert.key_file),
                "client_ca_file": str(authority.cert_file),
                "client_certificates": "optional",
            },
        },
    )
    runtime = build_runtime(settings)
    running = start_server(
        create_app(runtime, background_jobs=False),
        port,
        **uvicorn_tls_options(settings),
    )
    try:
        yield TLSBroker(
            runtime=runtime,
            server=running,
            authority=authority,
            alice=authority.issue("alice"),
            mallory=authority.issue("mallory"),
            stranger=other.issue("stranger"),
        )
    finally:
        running.stop()
        runtime.database.dispose()


def _error(response: httpx.Response) -> Any:
    return response.status_code, response.json()["error"]


def unverified_claims(token: str) -> dict[str, Any]:
    """A token's claims (the tests read what the broker wrote; clients verify)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


class TestCertificateBoundTasks:
    """The task's tokens carry the certificate; only that certificate can use them."""

    def test_tokens_carry_the_client_certificate_thumbprint(
        self, tls_broker: TLSBroker
    ) -> None:
        """Task and access tokens have ``cnf.x5t#S256`` of the presented certificate."""
        expected = certificate_thumbprint(tls_broker.alice.der)
        with tls_broker.agent(tls_broker.alice) as agent:
            opened = agent.open_task()
            task_claims = unverified_claims(opened["access_token"])
            assert task_claims["cnf"] == {"jkt": agent.key.jkt, X5T_CLAIM: expected}
            issued = agent.post_token(agent.access_form(opened["access_token"]))
            assert issued.status_code == 200, issued.text
            access_claims = unverified_claims(issued.json()["access_token"])
        assert access_claims["cnf"] == {"jkt": agent.key.jkt, X5T_CLAIM: expected}
        with tls_broker.runtime.database.reading() as conn:
            task = task_rows.get_task(conn, task_claims["txn"])
        assert task is not None
        assert task.x5t == expected

    @pytest.mark.parametrize("other", ["mallory", None])
    def test_task_token_refused_without_its_certificate(
        self, tls_broker: TLSBroker, other: str | None
    ) -> None:
        """Over another certificate (same CA) or none, the exchange is invalid_grant."""
        with tls_broker.agent(tls_broker.alice) as owner:
            opened = owner.open_task()
        thief_cert = getattr(tls_broker, other) if other else None
        with tls_broker.agent(thief_cert) as thief:
            # The thief holds the task's DPoP key too: only the certificate is missing.
            thief.key = owner.key
            refused = thief.post_token(thief.access_form(opened["access_token"]))
            assert _error(refused) == (400, "invalid_grant")
            assert "client certificate" in refused.json()["error_description"]
            task_token = opened["access_token"]
            close_url = (
                f"{thief.url}/v1/tasks/{unverified_claims(task_token)['txn']}/close"
            )
            closing = thief.http.post(
                close_url,
                headers={
                    "Authorization": f"DPoP {task_token}",
                    "DPoP": thief.key.proof("POST", close_url, access_token=task_token),
                },
            )
            assert _error(closing) == (401, "invalid_token")

    def test_without_a_certificate_tokens_are_dpop_bound_only(
        self, tls_broker: TLSBroker
    ) -> None:
        """``client_certificates = "optional"``: no certificate, no x5t, DPoP still."""
        with tls_broker.agent(None) as agent:
            opened = agent.open_task()
            claims = unverified_claims(opened["access_token"])
            issued = agent.post_token(agent.access_form(opened["access_token"]))
        assert claims["cnf"] == {"jkt": agent.key.jkt}
        assert issued.status_code == 200, issued.text

    def test_certificate_from_another_ca_fails_the_handshake(
        self, tls_broker: TLSBroker
    ) -> None:
        """A certificate the CA did not issue never reaches the application."""
        with (
            tls_broker.agent(tls_broker.stranger) as agent,
            pytest.raises(
                (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
            ),
        ):
            agent.open_task()
