"""
Tokens: keys, signing, verification and DPoP.

This package is shared by the broker, the agent SDK and resource-server verifiers,
so it depends only on the standard library, PyJWT, cryptography, httpx and the
gatepass leaves (errors, clock, ids, secret, sealing, models).
"""

from __future__ import annotations

from gatepass.tokens.claims import (
    ACCESS_TOKEN_TYP,
    ACCESS_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TASK_TOKEN_TYP,
    TOKEN_EXCHANGE,
    TXN_TOKEN_TYPE,
    AccessTokenClaims,
    TaskTokenClaims,
)
from gatepass.tokens.delegation import (
    DELEGATION_TOKEN_TYP,
    DELEGATION_TOKEN_TYPE,
    DelegationClaims,
    actor_chain,
)
from gatepass.tokens.dpop import (
    DPOP_ALGORITHMS,
    DPoPProof,
    DPoPVerifier,
    access_token_hash,
    normalize_htu,
)
from gatepass.tokens.issuer import JWTIssuer
from gatepass.tokens.jwk import (
    PRIVATE_MEMBERS,
    PublicKey,
    algorithm_for,
    b64url,
    b64url_decode,
    load_public_jwk,
    public_jwk_from_key,
    public_key_from_jwk,
    thumbprint,
)
from gatepass.tokens.jws import (
    CompactJWS,
    algorithm_matches,
    canonical_algorithm,
    is_numeric_date,
    parse_compact,
    unverified_claims,
    unverified_issuer,
    verify_signature,
)
from gatepass.tokens.keys import (
    SIGNING_ALGORITHMS,
    KeyRecord,
    KeyRing,
    KeyState,
    generate_key,
    rotate,
)
from gatepass.tokens.mtls import (
    X5T_CLAIM,
    bound_thumbprint,
    certificate_thumbprint,
    check_certificate_binding,
)
from gatepass.tokens.nonce import NonceService
from gatepass.tokens.proofs import (
    DPoPKey,
    create_assertion,
    load_private_key,
    private_jwk,
)
from gatepass.tokens.replay import MemoryReplayCache, ReplayCache
from gatepass.tokens.verifier import JWKSKeySource, JWTVerifier, KeySource

__all__ = [
    "ACCESS_TOKEN_TYP",
    "ACCESS_TOKEN_TYPE",
    "DELEGATION_TOKEN_TYP",
    "DELEGATION_TOKEN_TYPE",
    "DPOP_ALGORITHMS",
    "ID_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "PRIVATE_MEMBERS",
    "SIGNING_ALGORITHMS",
    "TASK_TOKEN_TYP",
    "TOKEN_EXCHANGE",
    "TXN_TOKEN_TYPE",
    "X5T_CLAIM",
    "AccessTokenClaims",
    "CompactJWS",
    "DPoPKey",
    "DPoPProof",
    "DPoPVerifier",
    "DelegationClaims",
    "JWKSKeySource",
    "JWTIssuer",
    "JWTVerifier",
    "KeyRecord",
    "KeyRing",
    "KeySource",
    "KeyState",
    "MemoryReplayCache",
    "NonceService",
    "PublicKey",
    "ReplayCache",
    "TaskTokenClaims",
    "access_token_hash",
    "actor_chain",
    "algorithm_for",
    "algorithm_matches",
    "b64url",
    "b64url_decode",
    "bound_thumbprint",
    "canonical_algorithm",
    "certificate_thumbprint",
    "check_certificate_binding",
    "create_assertion",
    "generate_key",
    "is_numeric_date",
    "load_private_key",
    "load_public_jwk",
    "normalize_htu",
    "parse_compact",
    "private_jwk",
    "public_jwk_from_key",
    "public_key_from_jwk",
    "rotate",
    "thumbprint",
    "unverified_claims",
    "unverified_issuer",
    "verify_signature",
]
