"""
TLS with client certificates, for certificate-bound tokens (RFC 8705).

uvicorn terminates TLS but does not tell the application which client certificate
the connection presented. :func:`tls_protocol` returns its httptools protocol with
the ASGI TLS extension added (``scope["extensions"]["tls"]["client_cert_chain"]``,
the leaf certificate in PEM), and ``gatepass.verify``'s
:func:`client_certificate_thumbprint` reads it back as the RFC 8705 thumbprint.
:func:`uvicorn_tls_options` is the one place the broker's ``[server.tls]`` settings
become uvicorn's.
"""

from __future__ import annotations

import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gatepass.config import Settings
from gatepass.verify.mtls import client_certificate_thumbprint

__all__ = [
    "TLSHttpProtocol",
    "client_certificate_thumbprint",
    "uvicorn_tls_options",
]

_REQUIREMENTS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class TLSHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, telling the app the client's certificate."""

    _client_cert: str | None = None

    def connection_made(self, transport: Any) -> None:  # noqa: ANN401 - asyncio
        """Remember the certificate the TLS handshake verified, if any."""
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        self._client_cert = ssl.DER_cert_to_PEM_cert(der) if der else None

    def on_message_begin(self) -> None:
        """Add the ASGI TLS extension to every request of the connection."""
        super().on_message_begin()
        if self._client_cert is not None:
            extensions = self.scope.setdefault("extensions", {})
            extensions["tls"] = {"client_cert_chain": [self._client_cert]}


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """Return uvicorn's TLS options for the broker's settings (empty without TLS)."""
    tls = settings.server.tls
    if tls is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(tls.cert_file),
        "ssl_keyfile": str(tls.key_file),
    }
    if tls.client_ca_file is not None:
        options["ssl_ca_certs"] = str(tls.client_ca_file)
        options["ssl_cert_reqs"] = _REQUIREMENTS[tls.client_certificates]
        options["http"] = TLSHttpProtocol
    return options
