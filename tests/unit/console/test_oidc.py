"""ID token verification of the console's OIDC sign-in (issue 13, RFC 8725)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gatepass.config import ConsoleOIDCSettings
from gatepass.console.oidc import OIDCClient, pkce_challenge
from gatepass.errors import AuthenticationError, FetchError

ISSUER = "https://idp.test"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())


def client(tmp_path: Path, **overrides: Any) -> OIDCClient:
    """A client whose metadata and keys are already known (no network)."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    raw: dict[str, Any] = {
        "issuer": ISSUER,
        "client_id": "console",
        "client_secret_file": str(secret),
        "redirect_uri": "http://127.0.0.1:8400/console/login/oidc/callback",
        "operators": {"ann@example.com": "ann"},
        **overrides,
    }
    oidc = OIDCClient(ConsoleOIDCSettings.model_validate(raw))
    oidc._metadata = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
    }
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))
    oidc._keys = {"k1": jwt.PyJWK({**public, "kid": "k1", "alg": "ES256"})}
    return oidc


def id_token(key: Any = KEY, alg: str = "ES256", **claims: Any) -> str:
    """An ID token signed by ``key``."""
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": "console",
        "sub": "u1",
        "iat": now,
        "exp": now + 300,
        "nonce": "n1",
        "email": "ann@example.com",
        "email_verified": True,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": "k1"})


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def verify(oidc: OIDCClient, token: str, nonce: str = "n1") -> dict[str, Any]:
    """Verify a token synchronously."""
    result: dict[str, Any] = anyio.run(lambda: oidc.verify_id_token(token, nonce=nonce))
    return result


class TestIdToken:
    """Every check of OpenID Connect Core §3.1.3.7 that matters, each failing alone."""

    def test_issue13_good_token_maps_to_its_operator(self, tmp_path: Path) -> None:
        """A valid token with a verified email signs in the mapped operator."""
        oidc = client(tmp_path)
        claims = verify(oidc, id_token())
        assert oidc.operator_for(claims) == ("ann", "ann@example.com")

    @pytest.mark.parametrize(
        "claims",
        [
            {"iss": "https://evil.test"},
            {"aud": "someone-else"},
            {"exp": int(time.time()) - 3600},
            {"nonce": None},
            {"aud": ["console", "other"]},
        ],
    )
    def test_issue13_bad_claims_fail(
        self, tmp_path: Path, claims: dict[str, Any]
    ) -> None:
        """Wrong issuer, audience, expiry, a missing nonce or a foreign azp fail."""
        with pytest.raises(AuthenticationError):
            verify(client(tmp_path), id_token(**claims))

    def test_issue13_wrong_nonce_fails(self, tmp_path: Path) -> None:
        """A token minted for another sign-in is refused."""
        with pytest.raises(AuthenticationError):
            verify(client(tmp_path), id_token(), nonce="n2")

    def test_issue13_other_key_fails(self, tmp_path: Path) -> None:
        """A token signed by a key the provider never published is refused."""
        with pytest.raises(AuthenticationError):
            verify(client(tmp_path), id_token(key=OTHER))

    def test_issue13_alg_is_never_taken_from_the_token(self, tmp_path: Path) -> None:
        """HS256 keyed with the public key (alg confusion) and none are refused."""
        public_pem = KEY.public_key().public_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        # Made by hand: PyJWT itself refuses to key HMAC with a public key.
        signing_input = b".".join(
            _b64(json.dumps(part).encode())
            for part in (
                {"alg": "HS256", "kid": "k1", "typ": "JWT"},
                {"iss": ISSUER, "aud": "console", "nonce": "n1"},
            )
        )
        mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
        forged = (signing_input + b"." + _b64(mac)).decode()
        with pytest.raises(AuthenticationError):
            verify(client(tmp_path), forged)
        unsigned = jwt.encode({"iss": ISSUER}, "", algorithm="none")
        with pytest.raises(AuthenticationError):
            verify(client(tmp_path), unsigned)

    def test_issue13_unverified_email_maps_to_no_one(self, tmp_path: Path) -> None:
        """An email the provider did not verify signs nobody in."""
        oidc = client(tmp_path)
        claims = verify(oidc, id_token(email_verified=False))
        assert oidc.operator_for(claims)[0] is None


class TestStart:
    """The authorization request carries PKCE S256, state and nonce."""

    def test_issue13_authorization_url_has_pkce(self, tmp_path: Path) -> None:
        """The URL's challenge is S256 of the verifier the cookie remembers."""
        started = anyio.run(client(tmp_path).start)
        state, nonce, verifier = started.cookie.split(".")
        assert f"state={state}" in started.url
        assert f"nonce={nonce}" in started.url
        assert f"code_challenge={pkce_challenge(verifier)}" in started.url
        assert "code_challenge_method=S256" in started.url

    def test_issue13_state_mismatch_is_refused(self, tmp_path: Path) -> None:
        """A callback whose state is not the browser's is refused before any call."""
        with pytest.raises(AuthenticationError):
            anyio.run(
                lambda: client(tmp_path).finish(code="c", state="x", cookie="y.n.v")
            )


class TestSettings:
    """The [console.oidc] section refuses unsafe settings."""

    def test_issue13_http_issuer_only_on_localhost(self) -> None:
        """A plain-http issuer on a public host is refused."""
        with pytest.raises(ValueError, match="https"):
            ConsoleOIDCSettings.model_validate(
                {
                    "issuer": "http://idp.example.com",
                    "client_id": "c",
                    "client_secret_file": "/x",
                    "redirect_uri": "https://gp.example.com/console/login/oidc/callback",
                }
            )

    def test_issue13_exactly_one_client_credential(self) -> None:
        """Neither, or both, of secret file and private key is refused."""
        with pytest.raises(ValueError, match="exactly one"):
            ConsoleOIDCSettings.model_validate(
                {
                    "issuer": "https://idp.test",
                    "client_id": "c",
                    "redirect_uri": "https://gp.test/console/login/oidc/callback",
                }
            )


class FakeProvider:
    """An in-memory provider behind httpx.MockTransport: metadata, JWKS, token."""

    def __init__(self, *, issuer: str = ISSUER, client_key: Any = None) -> None:
        """Keep what the token endpoint checks."""
        self.issuer = issuer
        self.client_key = client_key
        self.nonce = ""
        self.challenge = ""
        self.forms: list[dict[str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                },
            )
        if path == "/jwks":
            public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))
            return httpx.Response(200, json={"keys": [{**public, "kid": "k1"}]})
        if path == "/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            self.forms.append(form)
            if pkce_challenge(form["code_verifier"]) != self.challenge:
                return httpx.Response(400, json={"error": "invalid_grant"})
            if self.client_key is not None:
                jwt.decode(
                    form["client_assertion"],
                    self.client_key,
                    algorithms=["ES256"],
                    audience=f"{ISSUER}/token",
                )
            return httpx.Response(200, json={"id_token": id_token(nonce=self.nonce)})
        return httpx.Response(404)


def live_client(tmp_path: Path, provider: FakeProvider, **overrides: Any) -> OIDCClient:
    """A client that fetches everything from the fake provider."""
    raw: dict[str, Any] = {
        "issuer": ISSUER,
        "client_id": "console",
        "redirect_uri": "http://127.0.0.1:8400/console/login/oidc/callback",
        "operators": {"ann@example.com": "ann"},
        **overrides,
    }
    if "private_key_file" not in raw:
        secret = tmp_path / "secret"
        secret.write_text("s3cret\n")
        raw["client_secret_file"] = str(secret)
    return OIDCClient(
        ConsoleOIDCSettings.model_validate(raw),
        transport=httpx.MockTransport(provider.handle),
    )


def sign_in(oidc: OIDCClient, provider: FakeProvider) -> dict[str, Any]:
    """Start, let the fake provider see the challenge and nonce, finish."""

    async def flow() -> dict[str, Any]:
        started = await oidc.start()
        query = httpx.URL(started.url).params
        provider.challenge = query["code_challenge"]
        provider.nonce = query["nonce"]
        return await oidc.finish(
            code="code-1", state=query["state"], cookie=started.cookie
        )

    result: dict[str, Any] = anyio.run(flow)
    return result


class TestFlow:
    """The whole relying-party side against a fake provider (no network)."""

    def test_issue13_secret_client_signs_in(self, tmp_path: Path) -> None:
        """Metadata, keys, the code exchange with PKCE, the ID token: ann."""
        provider = FakeProvider()
        oidc = live_client(tmp_path, provider)
        claims = sign_in(oidc, provider)
        assert oidc.operator_for(claims)[0] == "ann"
        assert provider.forms[0]["grant_type"] == "authorization_code"
        assert "client_assertion" not in provider.forms[0]

    def test_issue13_private_key_jwt_client_signs_in(self, tmp_path: Path) -> None:
        """The client authenticates with an ES256 assertion the provider verifies."""
        client_key = ec.generate_private_key(ec.SECP256R1())
        private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(client_key))
        key_file = tmp_path / "client.jwk"
        key_file.write_text(json.dumps({**private, "kid": "c1", "alg": "ES256"}))
        provider = FakeProvider(client_key=client_key.public_key())
        oidc = live_client(tmp_path, provider, private_key_file=str(key_file))
        claims = sign_in(oidc, provider)
        assert claims["email"] == "ann@example.com"
        assert provider.forms[0]["client_id"] == "console"

    def test_issue13_metadata_naming_another_issuer_is_refused(
        self, tmp_path: Path
    ) -> None:
        """A discovery document for another issuer is never used."""
        provider = FakeProvider(issuer="https://evil.test")
        with pytest.raises(FetchError):
            anyio.run(live_client(tmp_path, provider).start)

    def test_issue13_unreachable_provider_is_a_fetch_error(
        self, tmp_path: Path
    ) -> None:
        """A provider that cannot be reached is fetch_failed, not a crash."""

        def down(_request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("down")

        oidc = OIDCClient(
            client(tmp_path).settings, transport=httpx.MockTransport(down)
        )
        with pytest.raises(FetchError):
            anyio.run(oidc.start)
