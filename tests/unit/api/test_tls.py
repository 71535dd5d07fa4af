"""``[server.tls]`` becomes uvicorn's options; the ASGI TLS extension is read back."""

from __future__ import annotations

import ssl
from pathlib import Path

from gatepass.api.tls import TLSHttpProtocol, uvicorn_tls_options
from gatepass.config import Settings
from gatepass.tokens import certificate_thumbprint
from gatepass.verify import client_certificate_thumbprint


def _settings(tmp_path: Path, **tls: str) -> Settings:
    server: dict[str, object] = {"state_dir": str(tmp_path)}
    if tls:
        server["tls"] = tls
    return Settings.model_validate({"server": server})


def test_no_tls_means_no_options(tmp_path: Path) -> None:
    """Without ``[server.tls]`` the broker serves plain HTTP (behind a proxy)."""
    assert uvicorn_tls_options(_settings(tmp_path)) == {}


def test_tls_without_client_ca_keeps_the_default_protocol(tmp_path: Path) -> None:
    """Server-only TLS asks for no client certificate."""
    options = uvicorn_tls_options(
        _settings(tmp_path, cert_file="/c.pem", key_file="/k.pem")
    )
    assert options == {"ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"}


def test_client_ca_asks_for_certificates(tmp_path: Path) -> None:
    """With a client CA the handshake verifies them and the app is told."""
    options = uvicorn_tls_options(
        _settings(
            tmp_path,
            cert_file="/c.pem",
            key_file="/k.pem",
            client_ca_file="/ca.pem",
            client_certificates="required",
        )
    )
    assert options["ssl_ca_certs"] == "/ca.pem"
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert options["http"] is TLSHttpProtocol


def test_thumbprint_read_from_the_asgi_extension() -> None:
    """The leaf PEM in ``client_cert_chain`` becomes its RFC 8705 thumbprint."""
    der = bytes(range(64))
    pem = ssl.DER_cert_to_PEM_cert(der)
    scope = {"extensions": {"tls": {"client_cert_chain": [pem]}}}
    assert client_certificate_thumbprint(scope) == certificate_thumbprint(der)
    assert client_certificate_thumbprint({}) is None
    assert client_certificate_thumbprint({"extensions": {"tls": {}}}) is None
