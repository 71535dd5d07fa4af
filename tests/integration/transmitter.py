"""A local SSF transmitter for tests: its own keys, JWKS file and signed SETs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gatepass.tokens import b64url, public_jwk_from_key
from gatepass.tokens.jws import sign

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"


class LocalTransmitter:
    """Signs Security Event Tokens (RFC 8417) with a key generated for the test."""

    def __init__(self, directory: Path, *, issuer: str, audience: str) -> None:
        """Generate a P-256 key and write its JWK Set and a push token."""
        self.issuer = issuer
        self.audience = audience
        self.kid = "ssf-test-1"
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = {**public_jwk_from_key(self.key.public_key()), "kid": self.kid}
        jwk["alg"] = "ES256"
        jwk["use"] = "sig"
        self.jwks_file = directory / "transmitter-jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
        self.push_token = uuid.uuid4().hex + uuid.uuid4().hex
        self.push_token_file = directory / "transmitter-push.token"
        self.push_token_file.write_text(self.push_token, encoding="utf-8")

    def settings(self) -> dict[str, Any]:
        """Return the ``[[signals.transmitters]]`` table for this transmitter."""
        return {
            "issuer": self.issuer,
            "jwks_file": str(self.jwks_file),
            "audience": self.audience,
            "algorithms": ["ES256"],
            "push_token_file": str(self.push_token_file),
        }

    def make_set(
        self,
        event: str,
        subject: dict[str, Any],
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """Return a signed SET carrying one event about ``subject``."""
        event_type = event if event.startswith("https://") else CAEP + event
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": int(time.time()),
            "jti": uuid.uuid4().hex,
            "sub_id": subject,
            "events": {event_type: {"event_timestamp": int(time.time())}},
            **claims,
        }
        protected = {"alg": "ES256", "typ": "secevent+jwt", "kid": self.kid}
        protected.update(header or {})
        signing_input = (
            b64url(json.dumps(protected).encode())
            + "."
            + b64url(json.dumps(payload).encode())
        )
        signature = sign(signing_input.encode(), key or self.key, "ES256")
        return f"{signing_input}.{b64url(signature)}"
