"""
The client certificate of a request, for certificate-bound tokens (RFC 8705 §3).

A server that terminates mutual TLS itself tells the application which certificate
the connection presented through the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``, the leaf first, PEM); the
broker's own server sets it (``gatepass.api.tls``), as do servers that implement the
extension. Nothing else is trusted: never a certificate from a forwarded header.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from gatepass.tokens import certificate_thumbprint

__all__ = ["client_certificate_thumbprint"]


def client_certificate_thumbprint(scope: Mapping[str, Any]) -> str | None:
    """
    Return the RFC 8705 thumbprint of the request's client certificate, if any.

    Args:
        scope: the request's ASGI scope.

    Returns:
        ``base64url(SHA-256(DER))`` of the leaf certificate the TLS handshake
        verified, or None when the connection presented none.
    """
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    chain = tls.get("client_cert_chain") if isinstance(tls, Mapping) else None
    if not chain or not isinstance(chain[0], str):
        return None
    return certificate_thumbprint(ssl.PEM_cert_to_DER_cert(chain[0]))
