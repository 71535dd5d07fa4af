"""
Presets: the defaults for the four kinds of federated workload gatepass knows well.

A preset fills in what every deployment of that kind shares (the issuer of a public
CI service, its key URL, its signing algorithm, how long its tokens live, the claims
that name a workload); the operator still writes the audience, the tenant and the
rules that say *which* workloads are trusted. Anything written in the issuer table
overrides the preset. ``docs/identity.md`` shows each one end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["KEY_SOURCES", "PRESETS", "Preset", "apply_preset"]

# Where keys come from: one of these per issuer table. A table that names its own
# source replaces the preset's (a GitHub Enterprise Server, a mirrored JWKS file).
KEY_SOURCES = ("jwks_uri", "jwks_file", "bundle_endpoint", "bundle_file")


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    """
    Defaults for one kind of issuer.

    Attributes:
        name: the preset's name in configuration.
        issuer: issuer-table defaults (``kind``, ``issuer``, ``jwks_uri``...).
        rule_name: the default agent-name template of each rule.
        rule_labels: the default label templates of each rule.
        owner_claims: for issuers shared by everyone (github.com, gitlab.com),
            the claims of which each rule must pin one to an exact value, so that
            a stranger's workflow asking for gatepass's audience is not trusted.
    """

    name: str
    issuer: Mapping[str, Any]
    rule_name: str
    rule_labels: Mapping[str, str]
    owner_claims: tuple[str, ...] = field(default=())


_KUBERNETES = Preset(
    name="kubernetes",
    # Projected service-account tokens (TokenRequest API). RS256 unless the
    # cluster's service-account signing key is an EC key (then set ES256). The
    # shortest expirationSeconds Kubernetes allows is 600; one hour is its default.
    issuer={
        "kind": "oidc",
        "algorithms": ["RS256"],
        "max_token_lifetime_seconds": 3600,
        # Kubelet refreshes the projected token at 80% of its life and the pod
        # reuses it meanwhile, so one token opens many tasks.
        "single_use": False,
    },
    rule_name="{sub}",
    rule_labels={
        "namespace": "{kubernetes.io/namespace}",
        "service_account": "{kubernetes.io/serviceaccount/name}",
    },
)

_GITHUB_ACTIONS = Preset(
    name="github-actions",
    issuer={
        "kind": "oidc",
        "issuer": "https://token.actions.githubusercontent.com",
        "jwks_uri": "https://token.actions.githubusercontent.com/.well-known/jwks",
        "algorithms": ["RS256"],
        # GitHub's tokens live minutes; a job asks for a fresh one per use.
        "max_token_lifetime_seconds": 900,
        "single_use": True,
    },
    rule_name="{sub}",
    rule_labels={
        "repository": "{repository}",
        "repository_owner": "{repository_owner}",
        "ref": "{ref}",
        "environment": "{environment}",
        "job_workflow_ref": "{job_workflow_ref}",
    },
    owner_claims=(
        "repository_owner_id",
        "repository_owner",
        "repository_id",
        "repository",
    ),
)

_GITLAB_CI = Preset(
    name="gitlab-ci",
    issuer={
        "kind": "oidc",
        "issuer": "https://gitlab.com",
        "jwks_uri": "https://gitlab.com/oauth/discovery/keys",
        "algorithms": ["RS256"],
        # A GitLab ID token lives as long as the job's timeout (60 minutes by
        # default); raise this only as far as your longest job timeout.
        "max_token_lifetime_seconds": 3600,
        "single_use": True,
    },
    rule_name="{sub}",
    rule_labels={
        "namespace": "{namespace_path}",
        "project": "{project_path}",
        "ref": "{ref}",
        "ref_type": "{ref_type}",
        "environment": "{environment}",
        "pipeline_source": "{pipeline_source}",
    },
    owner_claims=("namespace_id", "namespace_path", "project_id", "project_path"),
)

_SPIRE = Preset(
    name="spire",
    # SPIRE signs JWT-SVIDs with ES256 (its default ec-p256 key) or RS256.
    issuer={
        "kind": "spiffe",
        "algorithms": ["ES256", "RS256"],
        # SPIRE's default JWT-SVID TTL is five minutes.
        "max_token_lifetime_seconds": 900,
        # Workloads cache a JWT-SVID and reuse it; SPIRE sets no jti.
        "single_use": False,
    },
    rule_name="{sub}",
    rule_labels={"trust_domain": "{$trust_domain}", "path": "{$path}"},
)

PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (_KUBERNETES, _GITHUB_ACTIONS, _GITLAB_CI, _SPIRE)
    }
)


def apply_preset(raw: Mapping[str, Any]) -> dict[str, Any]:
    """
    Fill an issuer table from its preset; what the table says wins.

    Args:
        raw: the issuer table as read from TOML.

    Returns:
        A new table with the preset's defaults, and each rule given the preset's
        name and label templates where it has none; unchanged without a preset.

    Raises:
        ValueError: the preset is unknown.
    """
    name = raw.get("preset")
    if name is None:
        return dict(raw)
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise ValueError(f"preset must be one of {', '.join(sorted(PRESETS))}")
    defaults = dict(preset.issuer)
    if any(source in raw for source in KEY_SOURCES):
        for source in KEY_SOURCES:
            defaults.pop(source, None)
    table = {**defaults, **raw}
    rules = raw.get("rules")
    if isinstance(rules, list):
        table["rules"] = [
            {"name": preset.rule_name, "labels": dict(preset.rule_labels), **rule}
            if isinstance(rule, Mapping)
            else rule
            for rule in rules
        ]
    return table
