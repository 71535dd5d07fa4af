"""Tests for FederatedVerifier: each preset end to end, with keys from a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gatepass.clock import FrozenClock
from gatepass.errors import InvalidGrantError
from gatepass.identity import (
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    FederatedIdentity,
    FederatedVerifier,
)
from gatepass.tokens import MemoryReplayCache

from .jose import IssuerKey, sign_jws
from .kit import (
    ISSUER_FACTORIES,
    TestIssuer,
    file_source,
    identity_settings,
    write_keys,
)

pytestmark = pytest.mark.anyio

Build = Callable[..., FederatedVerifier]


@pytest.fixture(scope="module", params=sorted(ISSUER_FACTORIES))
def issuer(request: pytest.FixtureRequest) -> TestIssuer:
    """One test issuer per preset (keys generated once per module)."""
    factory: Callable[[], TestIssuer] = ISSUER_FACTORIES[request.param]
    return factory()


@pytest.fixture(scope="module")
def spire() -> TestIssuer:
    """The SPIRE test issuer."""
    return ISSUER_FACTORIES["spire"]()


@pytest.fixture(scope="module")
def github() -> TestIssuer:
    """The GitHub test issuer."""
    return ISSUER_FACTORIES["github-actions"]()


@pytest.fixture
def build(tmp_path: Path, clock: FrozenClock) -> Build:
    """Build a verifier for issuers whose keys are written to files."""

    def make(
        *issuers: TestIssuer, replay: bool = False, **table: Any
    ) -> FederatedVerifier:
        tables = []
        for index, one in enumerate(issuers):
            path = write_keys(tmp_path / f"keys-{index}.json", one)
            tables.append({**one.table(**file_source(one, path)), **table})
        return FederatedVerifier.from_settings(
            identity_settings(*tables),
            clock=clock,
            replay=MemoryReplayCache(clock) if replay else None,
        )

    return make


async def refused(verifier: FederatedVerifier, token: str, message: str) -> None:
    """Assert the token is refused with invalid_grant and this message."""
    with pytest.raises(InvalidGrantError, match=message) as info:
        await verifier.verify(token, JWT_TOKEN_TYPE)
    assert info.value.code == "invalid_grant"
    if token:
        assert token not in info.value.detail


class TestFederatedVerifier:
    """A good token of each preset verifies to its mapped agent."""

    async def test_good_token_maps_name_tenant_and_labels(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """The preset's templates and the rule's tenant shape the identity."""
        verifier = build(issuer)
        identity = await verifier.verify(issuer.token(clock), JWT_TOKEN_TYPE)
        assert isinstance(identity, FederatedIdentity)
        assert identity.name == issuer.expected_name
        assert identity.tenant == "acme"
        assert identity.labels == issuer.expected_labels
        assert identity.issuer_name == issuer.name
        assert identity.subject == issuer.claims["sub"]
        assert identity.method == (
            "spiffe-jwt-svid" if issuer.preset == "spire" else "oidc"
        )
        assert identity.issuer == issuer.claims.get("iss", "spiffe://example.org")
        assert not identity.register_on_first_use

    async def test_second_key_of_the_set_verifies(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """Any key of the set verifies a token naming its kid."""
        verifier = build(issuer)
        token = issuer.token(clock, key=issuer.keys[1])
        assert (await verifier.verify(token, JWT_TOKEN_TYPE)).name == (
            issuer.expected_name
        )

    async def test_wrong_audience(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A token for another audience is refused."""
        token = issuer.token(clock, aud="https://other.example")
        await refused(build(issuer), token, "audience is not the one of issuer")

    async def test_two_audiences(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A token naming gatepass and another audience is refused."""
        token = issuer.token(clock, aud=["https://gatepass.example", "https://x"])
        await refused(build(issuer), token, "exactly one audience")

    async def test_expired(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """An expired token is refused."""
        verifier = build(issuer)
        token = issuer.token(clock)
        clock.advance(issuer.lifetime + 31)
        await refused(verifier, token, "expired")

    async def test_lifetime_above_the_cap(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A token living longer than the preset's cap is refused."""
        token = issuer.token(clock, lifetime=86_400 * 365)
        await refused(build(issuer), token, "lifetime exceeds the cap")

    async def test_unknown_issuer(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A token of an issuer that is not configured is refused."""
        other: dict[str, Any] = (
            {"sub": "spiffe://evil.example/ns/agents/sa/triage"}
            if issuer.bundle
            else {"iss": "https://evil.example"}
        )
        await refused(build(issuer), issuer.token(clock, **other), "not trusted")

    async def test_signed_by_a_key_outside_the_set(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A token signed by another key under a listed kid fails its signature."""
        forger = IssuerKey.generate(issuer.keys[0].kid, issuer.keys[0].algorithm)
        token = issuer.token(clock, key=forger)
        await refused(build(issuer), token, "signature is invalid")

    @pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c"])
    async def test_key_location_headers(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock, member: str
    ) -> None:
        """Headers that name or carry keys are refused before any key lookup."""
        token = issuer.token(clock, header={member: "https://attacker.example/k"})
        verifier = build(issuer)
        await refused(verifier, token, "names or carries a key")
        assert verifier.health()[issuer.name].state == "pending"

    @pytest.mark.parametrize("alg", ["HS256", "none", "ES384", "PS256"])
    async def test_algorithm_not_pinned(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock, alg: str
    ) -> None:
        """An alg outside the issuer's pinned set is refused."""
        token = issuer.token(clock, header={"alg": alg})
        await refused(build(issuer), token, "not pinned for issuer")

    async def test_claim_rule_does_not_match(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A token no rule accepts is refused."""
        by_preset: dict[str, dict[str, Any]] = {
            "kubernetes": {"kubernetes.io": {"namespace": "kube-system"}},
            "github-actions": {"repository_owner_id": "9999"},
            "gitlab-ci": {"namespace_path": "evil"},
            "spire": {"sub": "spiffe://example.org/ns/other/sa/x"},
        }
        overrides = by_preset[issuer.preset]
        await refused(build(issuer), issuer.token(clock, **overrides), "no claim rule")

    async def test_id_token_type(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """OIDC tokens may come as id_token; JWT-SVIDs only as jwt."""
        verifier = build(issuer)
        token = issuer.token(clock)
        if issuer.bundle:
            with pytest.raises(InvalidGrantError, match="token-type:jwt"):
                await verifier.verify(token, ID_TOKEN_TYPE)
        else:
            assert (await verifier.verify(token, ID_TOKEN_TYPE)).name
        with pytest.raises(InvalidGrantError, match="token type is not accepted"):
            await verifier.verify(token, "urn:ietf:params:oauth:token-type:saml2")

    async def test_register_on_first_use_is_carried(
        self, issuer: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """The issuer's on_unknown_subject setting reaches the identity."""
        verifier = build(issuer, on_unknown_subject="register")
        identity = await verifier.verify(issuer.token(clock), JWT_TOKEN_TYPE)
        assert identity.register_on_first_use


class TestSpiffeSpecifics:
    """JWT-SVID subjects are SPIFFE IDs of the issuer's trust domain."""

    @pytest.mark.parametrize(
        "sub",
        [
            "spiffe://example.org/ns/agents/../admin",
            "spiffe://Example.org/ns/agents/sa/x",
            "spiffe://example.org/ns/agents/sa/x/",
            "spiffe://example.org:8443/ns/agents/sa/x",
        ],
    )
    async def test_malformed_spiffe_id(
        self, spire: TestIssuer, build: Build, clock: FrozenClock, sub: str
    ) -> None:
        """A SPIFFE ID in other than its canonical form is refused."""
        await refused(
            build(spire), spire.token(clock, sub=sub), "not a valid spiffe id"
        )

    async def test_trust_domain_itself_is_not_a_workload(
        self, spire: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """The trust domain's own ID names no workload."""
        token = spire.token(clock, sub="spiffe://example.org")
        await refused(build(spire), token, "names a trust domain")

    async def test_configured_issuer_must_vouch_for_its_trust_domain(
        self, spire: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """With iss configured, a JWT-SVID of another trust domain is refused."""
        verifier = build(spire, issuer="https://spire.example.org")
        token = spire.token(
            clock,
            iss="https://spire.example.org",
            sub="spiffe://other.org/ns/agents/sa/x",
        )
        await refused(verifier, token, "not in the issuer's trust domain")
        no_iss = spire.token(clock)
        await refused(verifier, no_iss, "not trusted")

    async def test_spiffe_subject_must_be_a_spiffe_id(
        self, spire: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A SPIFFE issuer selected by iss still needs a SPIFFE ID subject."""
        verifier = build(spire, issuer="https://spire.example.org")
        token = spire.token(clock, iss="https://spire.example.org", sub="workload-1")
        await refused(verifier, token, "not a spiffe id")

    async def test_jose_typ_is_allowed(
        self, spire: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """JWT-SVID §2.3 allows typ JOSE."""
        token = spire.token(clock, header={"typ": "JOSE"})
        assert (await build(spire).verify(token, JWT_TOKEN_TYPE)).name


class TestOIDCSpecifics:
    """Checks that apply to every OIDC issuer (shown with the GitHub preset)."""

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"iat": None}, "no valid iat"),
            ({"iat": "now"}, "no valid iat"),
            ({"exp": None}, "no valid exp"),
            ({"exp": float("inf")}, "malformed"),
            ({"sub": None}, "no valid sub"),
            ({"sub": ""}, "no valid sub"),
            ({"jti": 5}, "no valid jti"),
            ({"nbf": 4_000_000_000}, "not yet valid"),
            ({"iss": 5}, "no issuer"),
            ({"iss": None}, "no issuer"),
        ],
    )
    async def test_bad_claims(
        self,
        github: TestIssuer,
        build: Build,
        clock: FrozenClock,
        overrides: dict[str, Any],
        message: str,
    ) -> None:
        """Each broken registered claim is refused with its own message."""
        await refused(build(github), github.token(clock, **overrides), message)

    async def test_issued_in_the_future(
        self, github: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A token issued past the leeway is refused."""
        now = int(clock.now().timestamp())
        token = github.token(clock, iat=now + 120, nbf=now, exp=now + 300)
        await refused(build(github), token, "issued in the future")

    @pytest.mark.parametrize("typ", ["at+jwt", "dpop+jwt", "txntoken+jwt", 5])
    async def test_other_token_kinds(
        self, github: TestIssuer, build: Build, clock: FrozenClock, typ: object
    ) -> None:
        """Access tokens, proofs and task tokens are not identity tokens."""
        token = github.token(clock, header={"typ": typ})
        await refused(build(github), token, "typ is not an identity token")

    async def test_missing_kid(self, github: TestIssuer, build: Build) -> None:
        """A token must name its key."""
        header = {"alg": "RS256", "typ": "JWT"}
        token = sign_jws(
            github.keys[0].key, header, {"iss": github.claims["iss"]}, "RS256"
        )
        await refused(build(github), token, "no kid")

    async def test_unknown_kid(
        self, github: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A kid not in the issuer's set is refused."""
        token = github.token(clock, header={"kid": "rotated-away"})
        await refused(build(github), token, "not in the key set")

    async def test_algorithm_must_match_the_key(
        self, github: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """A pinned alg that is not the key's own is refused (RFC 8725 §3.1)."""
        verifier = build(github, algorithms=["RS256", "ES256"])
        token = github.token(clock, header={"alg": "ES256"})
        await refused(verifier, token, "does not match its signing key")

    @pytest.mark.parametrize(
        "token", ["", "a.b.c", "x" * 20_000, "e30.W10.AA", "W10.e30.AA"]
    )
    async def test_malformed(
        self, build: Build, github: TestIssuer, token: str
    ) -> None:
        """Garbage is a malformed identity token."""
        await refused(build(github), token, "malformed")

    async def test_single_use_needs_a_jti_and_spends_it_once(
        self, github: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """GitHub tokens are single use: no jti is refused, a replay is refused."""
        verifier = build(github, replay=True)
        await refused(verifier, github.token(clock, jti=None), "requires a jti")
        token = github.token(clock, jti="once")
        identity = await verifier.verify(token, JWT_TOKEN_TYPE)
        assert identity.single_use is not None
        assert identity.single_use.key == "federated:github:once"
        assert identity.token_id == "once"
        await refused(verifier, token, "replayed")

    async def test_reusable_issuer_has_no_single_use(
        self, github: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """An issuer configured reusable leaves single_use empty."""
        verifier = build(github, single_use=False)
        token = github.token(clock, jti=None)
        first = await verifier.verify(token, JWT_TOKEN_TYPE)
        assert first.single_use is None
        assert (await verifier.verify(token, JWT_TOKEN_TYPE)).name == first.name

    async def test_select_issuer_reads_only_the_table(
        self, github: TestIssuer, build: Build, clock: FrozenClock
    ) -> None:
        """select_issuer picks the table without fetching any key."""
        verifier = build(github)
        assert verifier.select_issuer(github.token(clock)).name == "github"
        assert verifier.health()["github"].state == "pending"
        with pytest.raises(InvalidGrantError, match="not trusted"):
            verifier.select_issuer(github.token(clock, iss="https://evil.example"))

    async def test_refresh_due_loads_every_issuer(
        self, github: TestIssuer, build: Build
    ) -> None:
        """The background job's call loads keys before the first token."""
        k8s = ISSUER_FACTORIES["kubernetes"]()
        verifier = build(github, k8s)
        await verifier.refresh_due()
        assert {name: h.state for name, h in verifier.health().items()} == {
            "github": "ok",
            "prod-cluster": "ok",
        }
        assert {issuer.name for issuer in verifier.issuers} == {
            "github",
            "prod-cluster",
        }
