"""
The live evidence checks: facts read from one deployment, each judged met or not.

The broker reads the facts (``broker/frameworks.py``); each check here is a pure
function of them that returns a :class:`Finding` with its status, the reason in
one line and the evidence it looked at, so the report shows what it judged and
why. Thresholds are named constants, documented in docs/frameworks.md.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["CHECKS", "Facts", "Finding", "Status", "TargetFact"]

# NIST SP 800-63B-style short sessions and RFC 9700 §2.2: access tokens that
# verify offline must live minutes. 15 minutes is met; up to an hour partly.
ACCESS_TTL_MET: Final = 900
ACCESS_TTL_PARTLY: Final = 3600
TASK_TTL_MET: Final = 3600
TASK_TTL_PARTLY: Final = 86_400
DELEGATION_DEPTH_MET: Final = 4


class Status(enum.StrEnum):
    """How well a control or framework item is met, best first."""

    MET = "met"
    PARTLY_MET = "partly met"
    NOT_MET = "not met"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetFact:
    """One configured target, as the checks see it."""

    name: str
    kind: str
    tenant: str
    environment: str
    uri: str
    risk: str
    max_ttl_seconds: int
    ttl_set: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """
    Everything the checks judge, read live from one deployment.

    ``signals`` and ``reuse`` are None when the deployment has no such
    configuration section (the features are configured elsewhere or not at all).
    """

    access_max_ttl_seconds: int
    task_max_ttl_seconds: int
    dpop_nonce_required: bool
    targets: tuple[TargetFact, ...]
    policy_count: int
    policy_digest: str
    policy_error: str | None
    audit_unready: str | None
    audit_head_seq: int
    audit_checkpoint_seq: int
    audit_checkpoint_age_seconds: float | None
    audit_checkpoint_interval_seconds: int
    revoking: int
    revoking_failed: int
    active_agents: int
    agents_without_owners: tuple[str, ...]
    approval_groups: int
    approval_policies: int
    federated_issuers: tuple[str, ...]
    delegation_max_depth: int
    signals: Mapping[str, Any] | None
    reuse: Mapping[str, Any] | None
    master_key_source: str
    tls: bool
    issuer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """The result of one check."""

    check: str
    status: Status
    reason: str
    evidence: Mapping[str, Any]


def _ttl(name: str, value: int, met: int, partly: int, key: str) -> Finding:
    evidence = {key: value, "met_at_most": met, "partly_at_most": partly}
    if value <= met:
        return Finding(
            check=name,
            status=Status.MET,
            reason=f"{key} is {value} s (at most {met} s)",
            evidence=evidence,
        )
    if value <= partly:
        return Finding(
            check=name,
            status=Status.PARTLY_MET,
            reason=f"{key} is {value} s: above {met} s",
            evidence=evidence,
        )
    return Finding(
        check=name,
        status=Status.NOT_MET,
        reason=f"{key} is {value} s: above {partly} s",
        evidence=evidence,
    )


def access_ttl(facts: Facts) -> Finding:
    """Access tokens are verified offline, so their lifetime is the exposure."""
    return _ttl(
        "access_ttl",
        facts.access_max_ttl_seconds,
        ACCESS_TTL_MET,
        ACCESS_TTL_PARTLY,
        "tokens.access_max_ttl_seconds",
    )


def task_ttl(facts: Facts) -> Finding:
    """A task token's lifetime bounds how long a task can keep asking."""
    return _ttl(
        "task_ttl",
        facts.task_max_ttl_seconds,
        TASK_TTL_MET,
        TASK_TTL_PARTLY,
        "tokens.task_max_ttl_seconds",
    )


def target_ttl_caps(facts: Facts) -> Finding:
    """Every target names its own lifetime cap, no longer than the global one."""
    uncapped = sorted(t.name for t in facts.targets if not t.ttl_set)
    above = sorted(
        t.name
        for t in facts.targets
        if t.max_ttl_seconds > facts.access_max_ttl_seconds
    )
    evidence = {
        "targets": len(facts.targets),
        "without_explicit_cap": uncapped[:50],
        "cap_above_access_max": above[:50],
    }
    if not facts.targets:
        return Finding(
            check="target_ttl_caps",
            status=Status.MET,
            reason="no targets are configured",
            evidence=evidence,
        )
    if uncapped or above:
        named = ", ".join((uncapped + above)[:5])
        return Finding(
            check="target_ttl_caps",
            status=Status.PARTLY_MET,
            reason=f"{len(set(uncapped + above))} of {len(facts.targets)} targets "
            f"have no explicit max_ttl_seconds or one above the global cap: {named}",
            evidence=evidence,
        )
    return Finding(
        check="target_ttl_caps",
        status=Status.MET,
        reason=f"all {len(facts.targets)} targets set max_ttl_seconds within "
        "the global cap",
        evidence=evidence,
    )


def dpop(facts: Facts) -> Finding:
    """Gatepass always requires DPoP; a server nonce also bounds a proof's reuse."""
    evidence = {"dpop_required": True, "dpop.require_nonce": facts.dpop_nonce_required}
    suffix = "" if facts.dpop_nonce_required else "; server nonces are off"
    return Finding(
        check="dpop",
        status=Status.MET,
        reason=f"every task and access token is DPoP-bound (cnf.jkt){suffix}",
        evidence=evidence,
    )


def policy(facts: Facts) -> Finding:
    """The live policy set: deny by default, any evaluation error a deny."""
    evidence = {
        "deny_by_default": True,
        "policy_count": facts.policy_count,
        "policy_digest": facts.policy_digest,
        "last_reload_error": facts.policy_error,
    }
    if facts.policy_count == 0:
        return Finding(
            check="policy",
            status=Status.NOT_MET,
            reason="no policies are loaded: everything is denied, nothing is governed",
            evidence=evidence,
        )
    if facts.policy_error:
        return Finding(
            check="policy",
            status=Status.PARTLY_MET,
            reason="the last policy reload failed; the previous set is live",
            evidence=evidence,
        )
    return Finding(
        check="policy",
        status=Status.MET,
        reason=f"{facts.policy_count} policies live, deny by default, digest "
        f"{facts.policy_digest[:16]}",
        evidence=evidence,
    )


def audit_chain(facts: Facts) -> Finding:
    """The chain is unsealed, with no integrity alarm and fresh checkpoints."""
    behind = facts.audit_head_seq - facts.audit_checkpoint_seq
    evidence = {
        "head_seq": facts.audit_head_seq,
        "last_checkpoint_seq": facts.audit_checkpoint_seq,
        "last_checkpoint_age_seconds": facts.audit_checkpoint_age_seconds,
        "records_after_last_checkpoint": behind,
        "problem": facts.audit_unready,
    }
    if facts.audit_unready is not None:
        return Finding(
            check="audit_chain",
            status=Status.NOT_MET,
            reason=f"the audit log is not trustworthy now: {facts.audit_unready}",
            evidence=evidence,
        )
    stale = (
        behind > 0
        and facts.audit_checkpoint_age_seconds is not None
        and facts.audit_checkpoint_age_seconds
        > 3 * facts.audit_checkpoint_interval_seconds
    )
    if facts.audit_checkpoint_seq == 0 or stale:
        return Finding(
            check="audit_chain",
            status=Status.PARTLY_MET,
            reason=f"{behind} records are not covered by a recent signed checkpoint",
            evidence=evidence,
        )
    return Finding(
        check="audit_chain",
        status=Status.MET,
        reason=f"hash chain signed through seq {facts.audit_checkpoint_seq} of "
        f"{facts.audit_head_seq}; no integrity alarm",
        evidence=evidence,
    )


def revocations(facts: Facts) -> Finding:
    """No revocation is failing; a lease is revoked only when its engine confirmed."""
    evidence = {"revoking": facts.revoking, "failing": facts.revoking_failed}
    if facts.revoking_failed:
        return Finding(
            check="revocations",
            status=Status.NOT_MET,
            reason=f"{facts.revoking_failed} revocations have failed and are being "
            "retried (gatepass leases list --state revoking)",
            evidence=evidence,
        )
    return Finding(
        check="revocations",
        status=Status.MET,
        reason="no revocation is failing"
        + (f"; {facts.revoking} in progress" if facts.revoking else ""),
        evidence=evidence,
    )


def agent_owners(facts: Facts) -> Finding:
    """Every active agent names an owner who answers for it."""
    missing = facts.agents_without_owners
    evidence = {
        "active_agents": facts.active_agents,
        "without_owners": list(missing[:50]),
    }
    if not missing:
        return Finding(
            check="agent_owners",
            status=Status.MET,
            reason=f"all {facts.active_agents} active agents have owners",
            evidence=evidence,
        )
    status = (
        Status.NOT_MET if len(missing) == facts.active_agents else Status.PARTLY_MET
    )
    return Finding(
        check="agent_owners",
        status=status,
        reason=f"{len(missing)} of {facts.active_agents} active agents have no owner",
        evidence=evidence,
    )


def approvals(facts: Facts) -> Finding:
    """High-risk grants need a human: approver groups and approval policies exist."""
    high = sorted(t.name for t in facts.targets if t.risk == "high")
    evidence = {
        "approver_groups": facts.approval_groups,
        "approval_policies": facts.approval_policies,
        "high_risk_targets": high[:50],
    }
    if facts.approval_policies:
        return Finding(
            check="approvals",
            status=Status.MET,
            reason=f"{facts.approval_policies} policies require a human approval",
            evidence=evidence,
        )
    if not high:
        return Finding(
            check="approvals",
            status=Status.PARTLY_MET,
            reason="no step-up approval is configured (no high-risk target either)",
            evidence=evidence,
        )
    return Finding(
        check="approvals",
        status=Status.NOT_MET,
        reason=f"{len(high)} high-risk targets but no step-up approval configured",
        evidence=evidence,
    )


def identity(facts: Facts) -> Finding:
    """Agents prove who they are with keys; federation removes hand-managed keys."""
    evidence = {"federated_issuers": list(facts.federated_issuers)}
    if facts.federated_issuers:
        return Finding(
            check="identity",
            status=Status.MET,
            reason=f"{len(facts.federated_issuers)} federated issuers configured; "
            "agents otherwise sign assertions with registered keys",
            evidence=evidence,
        )
    return Finding(
        check="identity",
        status=Status.PARTLY_MET,
        reason="agents authenticate with registered keys only; no workload "
        "identity federation is configured",
        evidence=evidence,
    )


def delegation(facts: Facts) -> Finding:
    """Delegated tasks only narrow; the chain length is capped."""
    depth = facts.delegation_max_depth
    evidence = {"delegation.max_depth": depth, "narrowing_only": True}
    if depth <= DELEGATION_DEPTH_MET:
        return Finding(
            check="delegation",
            status=Status.MET,
            reason=f"delegation narrows targets, actions and lifetime, at most "
            f"{depth} deep",
            evidence=evidence,
        )
    return Finding(
        check="delegation",
        status=Status.PARTLY_MET,
        reason=f"delegation may go {depth} deep (more than {DELEGATION_DEPTH_MET})",
        evidence=evidence,
    )


def _configured(name: str, section: Mapping[str, Any] | None, what: str) -> Finding:
    if not section:
        return Finding(
            check=name,
            status=Status.NOT_MET,
            reason=f"not configured: {what}",
            evidence={"configured": False},
        )
    # Only the names of what is set: a section may hold a transmitter's secret.
    return Finding(
        check=name,
        status=Status.MET,
        reason=f"configured: {what}",
        evidence={"configured": True, "settings": sorted(str(k) for k in section)},
    )


def signals(facts: Facts) -> Finding:
    """Context signals (SSF, gatepass's own) revoke what they touch."""
    return _configured(
        "signals", facts.signals, "shared signals receivers and transmitters"
    )


def reuse(facts: Facts) -> Finding:
    """Reuse of a credential outside its task is detected and answered."""
    return _configured("reuse", facts.reuse, "credential reuse detection rules")


def secrets_at_rest(facts: Facts) -> Finding:
    """The database holds hashes; keys are sealed by a master key kept outside it."""
    evidence = {
        "master_key": facts.master_key_source,
        "tokens_stored_as": "sha-256 hashes",
    }
    if facts.master_key_source == "environment":
        return Finding(
            check="secrets_at_rest",
            status=Status.MET,
            reason="keys sealed by a master key from GATEPASS_MASTER_KEY; tokens "
            "stored only as hashes",
            evidence=evidence,
        )
    return Finding(
        check="secrets_at_rest",
        status=Status.PARTLY_MET,
        reason="keys sealed by a master key in a 0600 file in the state directory "
        "(keep it on another disk than the database, or use GATEPASS_MASTER_KEY)",
        evidence=evidence,
    )


def tls(facts: Facts) -> Finding:
    """Tokens travel over TLS unless the broker is only reachable on loopback."""
    evidence = {"tls": facts.tls, "issuer": facts.issuer}
    if facts.tls or facts.issuer.startswith("https://"):
        return Finding(
            check="tls",
            status=Status.MET,
            reason="the broker is served over https",
            evidence=evidence,
        )
    loopback = facts.issuer.startswith(
        ("http://127.", "http://localhost", "http://[::1]")
    )
    return Finding(
        check="tls",
        status=Status.PARTLY_MET if loopback else Status.NOT_MET,
        reason="plain http on loopback only"
        if loopback
        else "plain http: tokens cross the network unencrypted",
        evidence=evidence,
    )


def environment_isolation(facts: Facts) -> Finding:
    """Each target belongs to one tenant and environment; no URI serves two."""
    homes: dict[str, set[tuple[str, str]]] = {}
    for target in facts.targets:
        homes.setdefault(target.uri, set()).add((target.tenant, target.environment))
    shared = sorted(uri for uri, places in homes.items() if len(places) > 1)
    evidence = {
        "environments": sorted({t.environment for t in facts.targets})[:50],
        "tenants": sorted({t.tenant for t in facts.targets})[:50],
        "uris_in_several_environments": shared[:20],
    }
    if shared:
        return Finding(
            check="environment_isolation",
            status=Status.PARTLY_MET,
            reason=f"{len(shared)} target URIs are configured in more than one "
            "tenant or environment",
            evidence=evidence,
        )
    return Finding(
        check="environment_isolation",
        status=Status.MET,
        reason="every target is one tenant's, in one environment",
        evidence=evidence,
    )


CHECKS: Final[Mapping[str, Callable[[Facts], Finding]]] = {
    "access_ttl": access_ttl,
    "task_ttl": task_ttl,
    "target_ttl_caps": target_ttl_caps,
    "dpop": dpop,
    "policy": policy,
    "audit_chain": audit_chain,
    "revocations": revocations,
    "agent_owners": agent_owners,
    "approvals": approvals,
    "identity": identity,
    "delegation": delegation,
    "signals": signals,
    "reuse": reuse,
    "secrets_at_rest": secrets_at_rest,
    "tls": tls,
    "environment_isolation": environment_isolation,
}
