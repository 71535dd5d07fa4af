"""
Real HTTP(S) servers on 127.0.0.1 standing for issuers' key endpoints (and attackers).

Each server answers from a table of routes and logs every request it receives, so
tests can assert that a server was (or was never) contacted. Misbehaviours are
routes too: a redirect, an oversize body with or without ``Content-Length``, and a
stall that holds the response until the test ends (released at teardown, so no
test sleeps).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Route:
    """What one path answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False
    length: bool = True


@dataclass
class Seen:
    """One request a server received."""

    path: str
    host: str | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: KeyServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        context = self.owner.tls
        if context is not None:
            # The handshake happens in the handler's thread, on first read.
            sock = context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Stay quiet."""

    def do_GET(self) -> None:
        """Answer from the route table and log the request."""
        owner = self.server.owner
        owner.requests.append(Seen(self.path, self.headers.get("Host")))
        route = owner.routes.get(self.path, Route(status=404))
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.length and not route.stall:
            self.send_header("Content-Length", str(len(route.body)))
        if route.stall:
            self.send_header("Content-Length", "1000")
        self.end_headers()
        if route.stall:
            self.wfile.write(b'{"keys": [')
            self.wfile.flush()
            owner.release.wait(timeout=30)
            return
        self.wfile.write(route.body)


class KeyServer:
    """
    A threaded HTTP server on 127.0.0.1 with a route table and a request log.

    Args:
        tls: a server-side TLS context, for https.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        """Bind to a free port; serving starts with :meth:`start`."""
        self.tls = tls
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self.release = threading.Event()
        self._server = _Server(self)
        # A short poll keeps shutdown() quick; it is the server loop's select timeout.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of a path on this server, under a host name or address."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def serve_json(self, path: str, value: Any) -> None:
        """Answer a path with a JSON document."""
        self.routes[path] = Route(
            body=json.dumps(value).encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )

    def paths(self) -> list[str]:
        """The paths requested so far."""
        return [seen.path for seen in self.requests]

    def start(self) -> KeyServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled handlers, stop serving and close the socket."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@dataclass
class TestCertificates:
    """A test CA and a server certificate for one DNS name, as files."""

    __test__ = False

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self, sni: list[str]) -> ssl.SSLContext:
        """A server TLS context that records the SNI names it is asked for."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)

        def record(_: Any, name: str | None, __: Any) -> None:
            sni.append(name or "")

        context.sni_callback = record
        return context


def make_certificates(directory: Path, dns_name: str) -> TestCertificates:
    """Issue a CA and a certificate for ``dns_name`` valid for a day."""
    now = dt.datetime.now(dt.UTC)  # noqa: TID251 - certificates need wall time
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gatepass test ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file = directory / "server.pem"
    cert_file.write_bytes(cert.public_bytes(pem))
    key_file = directory / "server-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TestCertificates(ca_file, cert_file, key_file)


LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]
