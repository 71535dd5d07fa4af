"""
Reading the access token and the DPoP proof that one request presents.

A request to a resource server presents exactly one ``Authorization: DPoP <token>``
header and at most one ``DPoP`` proof header. :func:`presented_credentials` reads
both from ASGI headers and refuses anything else with one error of the
:mod:`gatepass.errors` tree, so the middleware, the proxy and
:meth:`~gatepass.verify.ResourceVerifier.verify` refuse a request the same way::

    TokenMissingError     no Authorization header, or an empty one
    InvalidRequestError   more than one Authorization header (RFC 6750 §3.1)
    DPoPProofError        more than one DPoP header (RFC 9449 §4.3 item 1)
    TokenError            the Bearer scheme for a DPoP-bound token (RFC 9449 §7.1),
                          another scheme, or a credential that is not a b64token
                          (RFC 6750 §2.1)

Whether the proof itself is valid is the verifier's question, not this module's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gatepass.errors import (
    DPoPProofError,
    InvalidRequestError,
    TokenError,
    TokenMissingError,
)

__all__ = [
    "Header",
    "PresentedCredentials",
    "dpop_access_token",
    "header_values",
    "presented_credentials",
    "single_dpop_proof",
]

Header = tuple[bytes, bytes]

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True, slots=True, kw_only=True)
class PresentedCredentials:
    """
    The access token and the DPoP proof of one request, read but not yet verified.

    Attributes:
        token: the access token, a b64token taken from ``Authorization: DPoP``.
        proof: the one ``DPoP`` header, None when the request sent none (the
            verifier refuses that).
        certificate: the RFC 8705 thumbprint of the connection's client
            certificate, when the server terminates mutual TLS; a
            certificate-bound token needs the same one.
    """

    token: str = field(repr=False)
    proof: str | None = field(repr=False)
    certificate: str | None = None


def header_values(headers: Iterable[Header], name: bytes) -> list[str]:
    """
    Return every value of one header, in order.

    Args:
        headers: the ASGI header list.
        name: the lower-case header name.

    Returns:
        The values, decoded as latin-1 (RFC 9110 §5.5: field values are octets).
    """
    return [value.decode("latin-1") for key, value in headers if key.lower() == name]


def single_dpop_proof(values: list[str]) -> str | None:
    """
    Return the request's one ``DPoP`` header value, or None when it sent none.

    Args:
        values: every ``DPoP`` header value of the request.

    Raises:
        DPoPProofError: the request sent more than one (RFC 9449 §4.3 item 1).
    """
    if len(values) > 1:
        raise DPoPProofError("more than one dpop header")
    return values[0] if values else None


def dpop_access_token(authorization: str | None) -> str:
    """
    Return the access token of an ``Authorization: DPoP <token>`` header value.

    The scheme is case-insensitive (RFC 9110 §11.1).

    Args:
        authorization: the header's value, None when the request had none.

    Returns:
        The token.

    Raises:
        TokenMissingError: there is no header, or it is empty.
        TokenError: the scheme is Bearer or anything other than DPoP, or the
            credential is not a b64token.
    """
    if authorization is None or not authorization.strip():
        raise TokenMissingError("missing access token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer":
        # RFC 9449 §7.1: a DPoP-bound token presented as a bearer token is refused,
        # so a stolen token cannot be replayed without the key.
        raise TokenError("dpop-bound token presented with the bearer scheme")
    if scheme.lower() != "dpop":
        raise TokenError("authorization scheme must be dpop")
    # RFC 6750 §2.1 b64token syntax; anything else is not one of our tokens.
    if _B64TOKEN.fullmatch(token) is None:
        raise TokenError("malformed authorization header")
    return token


def presented_credentials(
    headers: Iterable[Header], *, certificate: str | None = None
) -> PresentedCredentials:
    """
    Read the one access token and the one DPoP proof of a request.

    Args:
        headers: the request's ASGI headers (names are matched case-insensitively).
        certificate: the connection's client certificate thumbprint, if any
            (:func:`~gatepass.verify.mtls.client_certificate_thumbprint`).

    Returns:
        The token and the proof, for the verifier.

    Raises:
        TokenMissingError: the request has no Authorization header (or an empty one).
        InvalidRequestError: it has more than one.
        DPoPProofError: it has more than one DPoP header.
        TokenError: the Authorization header is not ``DPoP <b64token>``.
    """
    pairs = list(headers)
    authorization = header_values(pairs, b"authorization")
    proofs = header_values(pairs, b"dpop")
    if not authorization:
        raise TokenMissingError("missing access token")
    if len(authorization) > 1:
        # RFC 6750 §3.1: a request that repeats a parameter is invalid_request.
        raise InvalidRequestError("more than one authorization header")
    proof = single_dpop_proof(proofs)
    return PresentedCredentials(
        token=dpop_access_token(authorization[0]), proof=proof, certificate=certificate
    )
