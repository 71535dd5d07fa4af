"""
Test issuers for each preset: their keys, their issuer table and their tokens.

Shared by the unit tests (keys in a file) and the integration tests (keys served by
a real local HTTP server). Claims follow what each platform really puts in its
tokens, trimmed to what the presets and rules read.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatepass.clock import FrozenClock
from gatepass.config import IdentitySettings

from .jose import IssuerKey, jwks

AUDIENCE = "https://gatepass.example"
WORKFLOW = "acme/deployer/.github/workflows/deploy.yml@refs/heads/main"


@dataclass
class TestIssuer:
    """One issuer under test: its preset, keys, rules and token claims."""

    __test__ = False  # not a pytest class

    name: str
    preset: str
    keys: list[IssuerKey]
    claims: dict[str, Any]
    rules: list[dict[str, Any]]
    lifetime: int
    expected_name: str
    expected_labels: dict[str, str]
    table_extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bundle(self) -> bool:
        """Whether its keys are published as a SPIFFE bundle."""
        return self.preset == "spire"

    def key_document(self, keys: list[IssuerKey] | None = None) -> dict[str, Any]:
        """The JWK Set (or SPIFFE bundle) of ``keys`` (default: all)."""
        chosen = self.keys if keys is None else keys
        if self.bundle:
            return jwks(*chosen, spiffe_sequence=1, spiffe_refresh_hint=300)
        return jwks(*chosen)

    def table(self, **source: Any) -> dict[str, Any]:
        """The [[identity.issuers]] table with a key source."""
        return {
            "name": self.name,
            "preset": self.preset,
            "audience": AUDIENCE,
            "rules": self.rules,
            **self.table_extra,
            **source,
        }

    def token(
        self,
        clock: FrozenClock,
        *,
        key: IssuerKey | None = None,
        lifetime: int | None = None,
        header: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        """A token issued now; overrides of None remove a claim."""
        now = int(clock.now().timestamp())
        claims: dict[str, Any] = {
            **self.claims,
            "iat": now,
            "exp": now + (lifetime if lifetime is not None else self.lifetime),
        }
        if not self.bundle:
            claims["nbf"] = now - 5
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        signer = key or self.keys[0]
        return signer.sign(claims, **(header or {}))


def kubernetes_issuer() -> TestIssuer:
    """A cluster issuer with a projected service-account token."""
    return TestIssuer(
        name="prod-cluster",
        preset="kubernetes",
        keys=[IssuerKey.generate("k8s-1"), IssuerKey.generate("k8s-2")],
        claims={
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": "system:serviceaccount:agents:triage",
            "aud": [AUDIENCE],
            "jti": "0d5b2a1c-k8s",
            "kubernetes.io": {
                "namespace": "agents",
                "serviceaccount": {"name": "triage", "uid": "5e1c"},
                "pod": {"name": "triage-7d9", "uid": "91aa"},
            },
        },
        rules=[{"match": {"kubernetes.io/namespace": "agents"}, "tenant": "acme"}],
        lifetime=600,
        expected_name="system:serviceaccount:agents:triage",
        expected_labels={"namespace": "agents", "service_account": "triage"},
        table_extra={"issuer": "https://kubernetes.default.svc.cluster.local"},
    )


def github_issuer() -> TestIssuer:
    """GitHub Actions' issuer and a deployment job's ID token."""
    return TestIssuer(
        name="github",
        preset="github-actions",
        keys=[IssuerKey.generate("gh-1"), IssuerKey.generate("gh-2")],
        claims={
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:acme/deployer:environment:prod",
            "aud": AUDIENCE,
            "jti": "gh-jti-1",
            "repository": "acme/deployer",
            "repository_owner": "acme",
            "repository_owner_id": "1234",
            "ref": "refs/heads/main",
            "environment": "prod",
            "job_workflow_ref": WORKFLOW,
        },
        rules=[
            {
                "match": {"repository_owner_id": "1234", "environment": ["prod"]},
                "tenant": "acme",
            }
        ],
        lifetime=300,
        expected_name="repo:acme/deployer:environment:prod",
        expected_labels={
            "repository": "acme/deployer",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "environment": "prod",
            "job_workflow_ref": WORKFLOW,
        },
    )


def gitlab_issuer() -> TestIssuer:
    """gitlab.com's issuer and a branch pipeline's ID token."""
    return TestIssuer(
        name="gitlab",
        preset="gitlab-ci",
        keys=[IssuerKey.generate("gl-1"), IssuerKey.generate("gl-2")],
        claims={
            "iss": "https://gitlab.com",
            "sub": "project_path:acme/agents:ref_type:branch:ref:main",
            "aud": AUDIENCE,
            "jti": "gl-jti-1",
            "namespace_id": "42",
            "namespace_path": "acme",
            "project_path": "acme/agents",
            "ref": "main",
            "ref_type": "branch",
            "pipeline_source": "push",
        },
        rules=[
            {
                "match": {"namespace_path": "acme", "ref_type": "branch"},
                "tenant": "acme",
            }
        ],
        lifetime=3000,
        expected_name="project_path:acme/agents:ref_type:branch:ref:main",
        expected_labels={
            "namespace": "acme",
            "project": "acme/agents",
            "ref": "main",
            "ref_type": "branch",
            "pipeline_source": "push",
        },
    )


def spire_issuer() -> TestIssuer:
    """A SPIRE trust domain and a workload's JWT-SVID (no iss, no jti)."""
    return TestIssuer(
        name="spire",
        preset="spire",
        keys=[
            IssuerKey.generate("spire-1", "ES256", use="jwt-svid"),
            IssuerKey.generate("spire-2", "ES256", use="jwt-svid"),
        ],
        claims={
            "sub": "spiffe://example.org/ns/agents/sa/triage",
            "aud": [AUDIENCE],
        },
        rules=[
            {"match": {"sub": "spiffe://example.org/ns/agents/**"}, "tenant": "acme"}
        ],
        lifetime=300,
        expected_name="spiffe://example.org/ns/agents/sa/triage",
        expected_labels={"trust_domain": "example.org", "path": "ns/agents/sa/triage"},
        table_extra={"trust_domain": "example.org"},
    )


ISSUER_FACTORIES = {
    "kubernetes": kubernetes_issuer,
    "github-actions": github_issuer,
    "gitlab-ci": gitlab_issuer,
    "spire": spire_issuer,
}


def identity_settings(*tables: dict[str, Any], **top: Any) -> IdentitySettings:
    """Validate an [identity] section as the config loader would."""
    return IdentitySettings.model_validate({"issuers": list(tables), **top})


def write_keys(
    path: Path, issuer: TestIssuer, keys: list[IssuerKey] | None = None
) -> Path:
    """Write the issuer's key document to a file."""
    path.write_text(json.dumps(issuer.key_document(keys)))
    return path


def file_source(issuer: TestIssuer, path: Path) -> dict[str, Any]:
    """The table member that points at a key file of this issuer."""
    return {"bundle_file" if issuer.bundle else "jwks_file": str(path)}


def later(clock: FrozenClock, seconds: float) -> dt.datetime:
    """The clock's time plus some seconds."""
    return clock.now() + dt.timedelta(seconds=seconds)
